import CDCCodec
import CDCData
import CDCNN
import CDCPipeline
import CDCStore
import CDCWire
import Foundation

/// How a ``CloudTrainer`` trains.
public struct CloudTrainerSettings: Sendable {
    /// The advanced classifier and its recipe.
    public var classifier = ClassifierConfig()
    /// Share of the restored images held out to measure convergence (stratified, seeded by the
    /// classifier's seed).
    public var validationFraction = 0.1
    /// Converged: held-out accuracy up by less than this over the last two epochs (or the
    /// last epoch done).
    public var plateau = 0.002
    /// After training, wait for a clearer upload and train on it too.
    public var follow = false
    /// With ``follow``: give up waiting after this many seconds; ask the store this often.
    public var followTimeout: Double = 3600, poll: Double = 2

    /// The defaults above.
    public init() {}
}

/// A classifier the cloud trained on one upload, and how to check it.
public struct TrainedClassifier {
    /// The upload it was trained on.
    public let upload: UploadStatus
    /// The trained classifier (evaluation mode).
    public let model: Module
    /// The decoder file of the upload (restores test codes encoded by the same encoder).
    public let decoderFile: [UInt8]
    /// Images trained on and held out.
    public let trainImages: Int, heldOutImages: Int
    /// Held-out accuracy after every epoch (restored images, 0…1).
    public let heldOutAccuracy: [Double]
    /// Bytes the upload took in the store: its parts and its decoder.
    public let uplinkBytes: Int
    /// The shape of the samples the classifier reads (audio: 1 × 1 × L).
    public let channels: Int, height: Int, width: Int
    /// Samples per second of the audio clips it reads; nil for images.
    public let sampleRate: Int?
    /// The classifier's name (`resnext-11`, `m5`, …).
    public let modelName: String

    /// A record of a trained classifier.
    public init(upload: UploadStatus, model: Module, modelName: String, decoderFile: [UInt8], trainImages: Int, heldOutImages: Int,
                heldOutAccuracy: [Double], uplinkBytes: Int, geometryOf data: LabelledDataset) {
        self.upload = upload; self.model = model; self.modelName = modelName; self.decoderFile = decoderFile
        self.trainImages = trainImages
        self.heldOutImages = heldOutImages; self.heldOutAccuracy = heldOutAccuracy; self.uplinkBytes = uplinkBytes
        self.channels = data.channels; self.height = data.height; self.width = data.width; self.sampleRate = data.sampleRate
    }

    /// Accuracy on test images the edge encoded with this upload's encoder (the deployment
    /// case), on the first `limit` of them when given; nil when `container` was encoded for
    /// another decoder.
    public func accuracy(throughCodec container: LatentContainer, limit: Int? = nil) throws -> (accuracy: Float, images: Int)? {
        guard container.decoderHash == ModelIdentity.hash(decoderFile) else { return nil }
        var test = try EdgeCodec.restore(container, decoderFile: decoderFile)
        if let limit, limit > 0 { test = test.prefix(limit) }
        return (CloudClassifier.accuracy(model, on: test), test.count)
    }
}

/// What `cdc cloud train` measured, as JSON for scripts and reports.
public struct CloudTrainingSummary: Codable, Sendable, Equatable {
    /// The upload trained on: its id and mask, and the bytes it took (parts + decoder).
    public var upload: String, mask: Int, uplinkBytes: Int
    /// Images uploaded, trained on and held out.
    public var samples: Int, trainImages: Int, heldOutImages: Int
    /// The classifier and its epochs.
    public var model: String, epochs: Int
    /// Held-out accuracy (restored images) after the last epoch.
    public var heldOutAccuracy: Double?
    /// Test accuracy through the codec (test images the edge encoded), and on raw test images.
    public var accuracyThroughCodec: Float?, accuracyRawTest: Float?
    /// Test images of those accuracies.
    public var testImages: Int?

    /// The summary of `t` trained as `config`, before any test accuracy.
    public init(_ t: TrainedClassifier, config: ClassifierConfig) {
        upload = t.upload.id; mask = t.upload.spec.mask; uplinkBytes = t.uplinkBytes
        samples = t.upload.spec.samples; trainImages = t.trainImages; heldOutImages = t.heldOutImages
        model = t.modelName; epochs = config.epochs; heldOutAccuracy = t.heldOutAccuracy.last
    }
}

/// The cloud's side of CDC as a library: take an edge's clearest complete upload from any
/// ``UploadStore``, restore its images with the uploaded decoder, train the advanced classifier
/// (holding out a share to measure convergence), and write progress to the store after every
/// epoch — where the service's ``MaskPolicy`` reads it: once training has converged it asks the
/// edge for clearer data if the bandwidth allows. With ``CloudTrainerSettings/follow`` it then
/// waits for that upload and trains again.
///
/// ```swift
/// let trainer = CloudTrainer(store: store, edge: "edge-1", settings: CloudTrainerSettings()) { print($0) }
/// let trained = try await trainer.run()
/// ```
public final class CloudTrainer {
    public let store: any UploadStore
    public let edge: String
    public let settings: CloudTrainerSettings
    let progress: ProgressHandler

    /// A trainer of `edge`'s uploads in `store`.
    public init(store: any UploadStore, edge: String, settings: CloudTrainerSettings, progress: @escaping ProgressHandler = { _ in }) {
        self.store = store; self.edge = edge; self.settings = settings; self.progress = progress
    }

    /// The edge's clearest (smallest m) complete upload, if any.
    public func clearestUpload() async throws -> UploadStatus? {
        try await store.uploads(edge: edge).filter(\.complete).min { $0.spec.mask < $1.spec.mask }
    }

    /// Trains on the clearest complete upload; with ``CloudTrainerSettings/follow``, then on
    /// every clearer one that arrives, until m = 0 or the timeout. Returns a classifier per upload
    /// trained on, in order.
    public func run() async throws -> [TrainedClassifier] {
        var trained: [TrainedClassifier] = []
        let deadline = Date().addingTimeInterval(settings.followTimeout)
        while true {
            if let best = try await clearestUpload(), trained.last.map({ best.spec.mask < $0.upload.spec.mask }) ?? true {
                trained.append(try await train(on: best))
                if best.spec.mask == 0 || !settings.follow { break }
                progress(.message("waiting for a clearer upload than m = \(best.spec.mask) …"))
            } else if trained.isEmpty && !settings.follow {
                throw PipelineError("the store holds no complete upload from edge '\(edge)'")
            }
            if Date() > deadline {
                progress(.message("no clearer upload arrived; stopping"))
                break
            }
            try await Task.sleep(nanoseconds: UInt64(settings.poll * 1e9))
        }
        return trained
    }

    /// The upload's codes (its parts joined) and decoder file, checked against each other.
    public func restore(_ upload: UploadStatus) async throws -> (container: LatentContainer, decoderFile: [UInt8]) {
        var parts: [LatentContainer] = []
        for i in 0..<upload.spec.partCount {
            guard let bytes = try await store.part(edge: edge, upload: upload.id, index: i) else {
                throw PipelineError("part \(i) of upload \(upload.id) is missing from the store")
            }
            parts.append(try LatentContainer.decode(bytes))
        }
        guard let decoderFile = try await store.decoder(edge: edge, upload: upload.id) else {
            throw PipelineError("the decoder of upload \(upload.id) is missing from the store")
        }
        let all = try LatentContainer.joined(parts)
        guard all.decoderHash == ModelIdentity.hash(decoderFile) else {
            throw PipelineError("the stored decoder of upload \(upload.id) does not match its codes")
        }
        return (all, decoderFile)
    }

    /// Restores `upload` and trains a fresh classifier on it, writing the held-out accuracy and
    /// whether training has converged to the store after every epoch.
    public func train(on upload: UploadStatus) async throws -> TrainedClassifier {
        let (codes, decoderFile) = try await restore(upload)
        let restored = try EdgeCodec.restore(codes, decoderFile: decoderFile)
        // vae-cls uploads restore latents; their latent file names the images' geometry.
        let imageGeometry = restored.latentCodec == nil ? (restored.channels, restored.height, restored.width)
            : try VAEClsCodec.read(decoderFile).geometry
        if let r = try await store.registration(edge: edge), (r.channels, r.height, r.width) != imageGeometry {
            throw PipelineError("edge \(edge) registered \(r.channels)×\(r.height)×\(r.width) samples; upload \(upload.id) holds \(imageGeometry.0)×\(imageGeometry.1)×\(imageGeometry.2)")
        }
        let cfg = settings.classifier
        let (train, validation) = restored.split(validationFraction: settings.validationFraction, seed: cfg.seed)
        progress(.message("edge \(edge), upload \(upload.id): restored \(restored.count) samples "
                          + "(\(restored.geometry)); training \(cfg.modelName(for: restored)) for \(cfg.epochs) epochs "
                          + "(\(validation.count) held out)"))
        let training = try ClassifierTraining(train, config: cfg)
        var history: [Double] = []
        let m = upload.spec.mask
        while training.epoch < cfg.epochs {
            training.runEpoch { epoch, batch, batches, status in
                self.progress(.step(task: "m=\(m) epoch \(epoch)/\(cfg.epochs)", done: batch, total: batches, status: status))
            }
            let accuracy = Double(CloudClassifier.accuracy(training.model, on: validation))
            _ = training.model.train()
            history.append(accuracy)
            try await store.setTraining(edge: edge, TrainingProgress(mask: m, epoch: training.epoch, epochs: cfg.epochs,
                                                                     accuracy: accuracy, converged: Self.converged(history, epochs: cfg.epochs, plateau: settings.plateau)))
            progress(.message(String(format: "  held-out accuracy after epoch %d: %.2f%%", training.epoch, 100 * accuracy)))
        }
        let model = training.model.eval()
        return TrainedClassifier(upload: upload, model: model, modelName: cfg.modelName(for: restored), decoderFile: decoderFile,
                                 trainImages: train.count, heldOutImages: validation.count, heldOutAccuracy: history,
                                 uplinkBytes: upload.storedBytes + decoderFile.count, geometryOf: restored)
    }

    /// Whether training with held-out accuracies `history` (one per epoch so far) of `epochs`
    /// has converged: the last epoch is done, or accuracy rose by less than `plateau` over the
    /// last two epochs.
    public static func converged(_ history: [Double], epochs: Int, plateau: Double) -> Bool {
        history.count >= epochs || (history.count >= 3 && history[history.count - 1] - history[history.count - 3] < plateau)
    }
}
