import CoreML
import UIKit
import Vision

enum ClassifierError: LocalizedError {
    case notShipped
    case notCoreML(String)

    var errorDescription: String? {
        switch self {
        case .notShipped:
            return "No model shipped: run `mobilepack ship DIST --ios ios_demo`, then rebuild."
        case .notCoreML(let target):
            return "manifest.json ships a \(target) artifact; ship with --ios to get a Core ML one."
        }
    }
}

/// The shipped .mlpackage / .mlmodel through Vision (VNCoreMLRequest). The model's ImageType input
/// carries mobilepack's scale and bias; the app hands Vision pixels already at the model's size,
/// made by mobilepack's pixel contract (AppImages.prepare), so Vision's own scaler never runs.
final class Classifier {
    let manifest: ShippedManifest
    let base: URL
    private let request: VNCoreMLRequest

    init() throws {
        (manifest, base) = try ShippedManifest.load()
        let artifact = manifest.artifacts[0]
        guard artifact.target == "coreml" else { throw ClassifierError.notCoreML(artifact.target) }
        let compiled = try MLModel.compileModel(at: base.appendingPathComponent(artifact.file))
        let model = try MLModel(contentsOf: compiled, configuration: MLModelConfiguration())
        request = VNCoreMLRequest(model: try VNCoreMLModel(for: model))
        // The input is already the model's size (no crop, as the contract says): scaleFill is a no-op.
        request.imageCropAndScaleOption = .scaleFill
    }

    var samples: [Sample] {
        let url = base.appendingPathComponent("samples/samples.json")
        guard let data = try? Data(contentsOf: url),
              let list = try? JSONDecoder().decode(SampleList.self, from: data) else { return [] }
        return list.samples
    }

    func sampleData(_ sample: Sample) -> Data? {
        try? Data(contentsOf: base.appendingPathComponent("samples/\(sample.file)"))
    }

    /// What the app shows on launch: the shipped samples through this app's decode + contract.
    func launchCheck() -> String {
        SelfCheck.summary(AppImages.launchCheck(manifest: manifest, base: base, samples: samples))
    }

    /// Top-3 labels with scores, and the time Vision + Core ML took, for any image file's bytes.
    func classify(_ data: Data) throws -> (top3: [(label: String, score: Float)], milliseconds: Double) {
        let rgb = try AppImages.prepare(data, manifest.preprocessing)
        guard let buffer = AppImages.pixelBuffer(rgb) else { throw AppImageError.undecodable }
        let handler = VNImageRequestHandler(cvPixelBuffer: buffer, orientation: .up)
        let start = CFAbsoluteTimeGetCurrent()
        try handler.perform([request])
        let ms = (CFAbsoluteTimeGetCurrent() - start) * 1000
        let observations = (request.results as? [VNClassificationObservation]) ?? []
        return (observations.prefix(3).map { ($0.identifier, $0.confidence) }, ms)
    }
}
