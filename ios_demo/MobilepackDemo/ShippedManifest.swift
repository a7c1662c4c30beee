import Foundation

/// The parts of mobilepack's manifest.json the app reads. `mobilepack ship` writes a manifest that
/// holds exactly the shipped artifact; nothing about the model is a constant in this code.
struct ShippedManifest: Decodable {
    struct Artifact: Decodable {
        let name: String
        let file: String
        let target: String
        let format: String
        let quantization: String
    }
    struct Preprocessing: Decodable {
        let image_size: [Int]
        let channel_order: String
        let resize: String
        let normalization_in_model: Bool
    }
    let artifacts: [Artifact]
    let labels: [String]
    let preprocessing: Preprocessing

    static let folder = "mobilepack"

    static func load(bundle: Bundle = .main) throws -> (ShippedManifest, URL) {
        guard let base = bundle.resourceURL?.appendingPathComponent(folder),
              FileManager.default.fileExists(atPath: base.appendingPathComponent("manifest.json").path) else {
            throw ClassifierError.notShipped
        }
        let data = try Data(contentsOf: base.appendingPathComponent("manifest.json"))
        return (try JSONDecoder().decode(ShippedManifest.self, from: data), base)
    }
}

struct Sample: Decodable, Hashable {
    let file: String
    let label: String
    let expected_top1: String
    let expected_pixels: String  // the contract's pixels at the model's size, for the launch check
}

struct SampleList: Decodable {
    let artifact: String
    let samples: [Sample]
}
