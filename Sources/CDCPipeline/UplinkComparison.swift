import CDCData
import CDCImageCodecs
import CDCNN
import Foundation

/// The question a user of CDC asks: what if the edge sent its images as they are, or as JPEG or
/// WebP at about the bytes CDC's upload took? Each way of sending is trained on like the cloud
/// trainer trains on CDC's restored images — the same classifier recipe, the same images (the
/// same stratified share held out, by the same seed) — and tested through the same codec.
public enum UplinkComparison {
    /// One way of sending the training set, and what the classifier trained on it scored.
    public struct Row: Codable, Sendable, Equatable {
        /// `raw`, `jpeg` or `webp`.
        public var method: String
        /// The codec's quality (nil for raw).
        public var quality: Int?
        /// Bytes of the whole upload: images (per-image parts plus a shared header once) and one
        /// byte per label.
        public var uplinkBytes: Int
        /// Uplink bits per pixel position.
        public var bitsPerPixel: Double
        /// Test accuracy through the same codec, and on raw test images.
        public var accuracy: Float, accuracyRawTest: Float
        /// Images the classifier trained on (the rest of the upload is held out).
        public var trainImages: Int

        /// A row with these values.
        public init(method: String, quality: Int?, uplinkBytes: Int, bitsPerPixel: Double, accuracy: Float,
                    accuracyRawTest: Float, trainImages: Int) {
            self.method = method; self.quality = quality; self.uplinkBytes = uplinkBytes; self.bitsPerPixel = bitsPerPixel
            self.accuracy = accuracy; self.accuracyRawTest = accuracyRawTest; self.trainImages = trainImages
        }
    }

    /// Trains on `train` sent raw, and sent with each of `codecs` at the quality whose whole upload
    /// comes closest to `matchBytes`; tests on `test` (through the same codec, and raw).
    public static func run(train: LabelledDataset, test: LabelledDataset, classifier: ClassifierConfig, validationFraction: Double,
                           matchBytes: Int, codecs: [ImageCodecKind], progress: @escaping ProgressHandler = { _ in }) throws -> [Row] {
        guard train.count > 0, test.count > 0 else { throw PipelineError("the comparison needs training and test images") }
        let pixels = Double(train.count * train.height * train.width)
        var rows: [Row] = []
        func trained(_ images: LabelledDataset, label: String) throws -> Module {
            let (part, _) = images.split(validationFraction: validationFraction, seed: classifier.seed)
            progress(.message("\(label): training \(classifier.model) on \(part.count) images for \(classifier.epochs) epochs"))
            return try CloudClassifier.train(part, config: classifier) { epoch, batch, batches, status in
                progress(.step(task: "\(label) epoch \(epoch)/\(classifier.epochs)", done: batch, total: batches, status: status))
            }
        }
        let trainImages = train.split(validationFraction: validationFraction, seed: classifier.seed).train.count

        let rawModel = try trained(train, label: "raw")
        let rawAccuracy = CloudClassifier.accuracy(rawModel, on: test)
        let rawBytes = train.rawBytes
        rows.append(Row(method: "raw", quality: nil, uplinkBytes: rawBytes, bitsPerPixel: Double(rawBytes * 8) / pixels,
                        accuracy: rawAccuracy, accuracyRawTest: rawAccuracy, trainImages: trainImages))

        let train8 = train.rawImages(), test8 = test.rawImages()
        let target = Double(max(matchBytes - train.count, 1) * 8) / pixels
        for kind in codecs {
            let quality = try BaselineCodec.qualities(bracketing: [target], kind: kind, sample: Array(train8.prefix(1000)),
                                                      counting: \.bitsPerPixelSharedHeaders)[0]
            let mTrain = try BaselineCodec.measure(train8, kind: kind, quality: quality)
            let mTest = try BaselineCodec.measure(test8, kind: kind, quality: quality)
            let decoded = try LabelledDataset.fromRawImages(mTrain.decoded, labels: train.labels, classes: train.classes)
            let decodedTest = try LabelledDataset.fromRawImages(mTest.decoded, labels: test.labels, classes: test.classes)
            let model = try trained(decoded, label: "\(kind.rawValue) q=\(quality)")
            let uplink = mTrain.perImageBytes + mTrain.sharedHeaderBytes + train.count
            rows.append(Row(method: kind.rawValue, quality: quality, uplinkBytes: uplink, bitsPerPixel: Double(uplink * 8) / pixels,
                            accuracy: CloudClassifier.accuracy(model, on: decodedTest),
                            accuracyRawTest: CloudClassifier.accuracy(model, on: test), trainImages: trainImages))
        }
        return rows
    }
}

extension UplinkComparison {
    /// The rows as a Markdown table, each against the first `raw` row: bytes, bits per pixel,
    /// times fewer bytes than raw, test accuracy through the row's codec, and its difference.
    public static func markdown(_ rows: [(label: String, row: Row)]) -> String {
        let raw = rows.first { $0.row.method == "raw" }?.row
        var out = "| how the edge sends its images | uplink bytes | bits/pixel | × fewer bytes than raw | test accuracy | vs raw |\n"
        out += "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        for (label, r) in rows {
            let fewer = raw.map { String(format: "%.1f×", Double($0.uplinkBytes) / Double(max(r.uplinkBytes, 1))) } ?? "–"
            let delta = raw.map { r.method == "raw" ? "–" : String(format: "%+.2f pp", 100 * (r.accuracy - $0.accuracy)) } ?? "–"
            out += String(format: "| %@ | %d | %.3f | %@ | %.2f %% | %@ |\n", label, r.uplinkBytes, r.bitsPerPixel, fewer,
                          100 * r.accuracy, delta)
        }
        return out
    }
}
