import PhotosUI
import SwiftUI

/// One screen: pick a bundled sample or a photo; show the top-3 labels with scores and the inference time.
struct ContentView: View {
    @State private var classifier: Classifier?
    @State private var loadError: String?
    @State private var image: UIImage?
    @State private var expected: String?
    @State private var top3: [(label: String, score: Float)] = []
    @State private var milliseconds: Double?
    @State private var photo: PhotosPickerItem?
    @State private var launchCheck: String?

    var body: some View {
        NavigationStack {
            List {
                if let error = loadError {
                    Text(error).foregroundStyle(.red)
                }
                if let classifier {
                    let artifact = classifier.manifest.artifacts[0]
                    Section("Model") {
                        Text("\(artifact.name) (\(artifact.format), \(artifact.quantization))")
                        if let launchCheck { Text(launchCheck).font(.system(.footnote, design: .monospaced)) }
                    }
                    Section("Input") {
                        Menu("Bundled samples") {
                            ForEach(classifier.samples, id: \.self) { sample in
                                Button(sample.file) {
                                    expected = sample.expected_top1
                                    run(classifier.sampleData(sample))
                                }
                            }
                        }
                        PhotosPicker("Pick a photo", selection: $photo, matching: .images)
                        if let image {
                            Image(uiImage: image).resizable().interpolation(.none).scaledToFit().frame(height: 200)
                        }
                    }
                    if !top3.isEmpty {
                        Section("Top 3") {
                            ForEach(top3.indices, id: \.self) { i in
                                HStack {
                                    Text(top3[i].label)
                                    Spacer()
                                    Text(String(format: "%.3f", top3[i].score)).monospacedDigit()
                                }
                            }
                            if let ms = milliseconds {
                                Text(String(format: "inference: %.2f ms", ms))
                            }
                            if let expected {
                                Text("mobilepack expects: \(expected)").foregroundStyle(.secondary)
                            }
                        }
                    }
                }
            }
            .navigationTitle("mobilepack demo")
        }
        .task {
            do {
                let loaded = try Classifier()
                classifier = loaded
                launchCheck = loaded.launchCheck()  // the shipped samples must come out as mobilepack's pixels
            } catch { loadError = error.localizedDescription }
        }
        .onChange(of: photo) { item in
            Task {
                guard let data = try? await item?.loadTransferable(type: Data.self) else { return }
                expected = nil
                run(data)
            }
        }
    }

    private func run(_ data: Data?) {
        guard let data, let classifier else { return }
        image = UIImage(data: data)
        do {
            let result = try classifier.classify(data)
            top3 = result.top3
            milliseconds = result.milliseconds
        } catch {
            loadError = error.localizedDescription
        }
    }
}
