import CDCData
import CDCFileIO
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// Settings of stage 1 (joint training of the autoencoder and the elementary classifier).
public struct EdgeConfig: Codable, Sendable, Equatable {
    /// The guidance weight α every command and experiment starts from: 8, which the
    /// rate–accuracy experiment's α sweep chose on Fashion-MNIST images (the paper used 48).
    public static let defaultAlpha: Float = 8
    /// The guidance weight α for audio clips: the paper's 16 (its audio experiments), which the
    /// audio α sweep (4, 16, 48) also checks.
    public static let defaultAudioAlpha: Float = 16
    /// The default α for images or audio.
    public static func defaultAlpha(audio: Bool) -> Float { audio ? defaultAudioAlpha : defaultAlpha }
    /// Quantizer mask m (0…4): 5 − m bits per latent.
    public var mask = 4
    /// Guidance weight: the AE's loss is L_A + L_C/α.
    public var alpha: Float = EdgeConfig.defaultAlpha
    /// False trains the plain autoencoder (the EC still learns, but sends nothing back).
    public var guidance = true
    public var epochs = 1
    public var batchSize = 128
    public var learningRate: Float = 1e-3
    public var seed: UInt64 = 0
    /// Train a learned factorized prior with the AE (its tables then code the uploads).
    public var learnedPrior = false
    /// Weight λ of the rate term R (bits per pixel position) in the AE's loss; needs `learnedPrior`.
    public var rateWeight: Float = 0
    /// The autoencoder's architecture: the spec's `cdc-ae` (default) or `cdc-ae-wide` for
    /// images, `cdc-ae-1d` for audio (``EdgeSession/init(config:for:)`` picks it for audio data).
    public var autoencoder = AutoencoderArchitecture.spec
    public init() {}

    enum CodingKeys: String, CodingKey {
        case mask, alpha, guidance, epochs, batchSize, learningRate, seed, learnedPrior, rateWeight, autoencoder
    }

    /// Reads configurations written before the prior existed too (missing keys keep their defaults).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mask = try c.decode(Int.self, forKey: .mask)
        alpha = try c.decode(Float.self, forKey: .alpha)
        guidance = try c.decode(Bool.self, forKey: .guidance)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        seed = try c.decode(UInt64.self, forKey: .seed)
        learnedPrior = try c.decodeIfPresent(Bool.self, forKey: .learnedPrior) ?? false
        rateWeight = try c.decodeIfPresent(Float.self, forKey: .rateWeight) ?? 0
        autoencoder = try c.decodeIfPresent(AutoencoderArchitecture.self, forKey: .autoencoder) ?? .spec
    }
}

/// Losses and accuracy of one epoch of stage 1.
public struct EdgeEpochStats: Codable, Sendable {
    public var epoch: Int
    public var reconstruction: Float, classification: Float, ecAccuracy: Float, seconds: Double
    /// Code length under the learned prior, bits per pixel position (nil without one).
    public var rate: Float?
}

/// A stage-1 training run on the edge: the models, their optimizers and the progress so far.
/// Saved to and resumed from a directory (`ae.safetensors`, `ec.safetensors`, optimizer
/// state, `session.json`), each file written atomically.
public final class EdgeSession {
    public let config: EdgeConfig
    public let autoencoder: CDCAutoencoder
    public let classifier: Sequential
    public let trainer: EdgeTrainer
    /// The learned prior (when `config.learnedPrior`), trained with the AE.
    public let prior: FactorizedPrior?
    /// Sample geometry the models were built for (audio: 1 × 1 × L).
    public let channels: Int, height: Int, width: Int, classes: Int
    /// Samples per second when the session is for audio clips; nil for images.
    public let sampleRate: Int?
    /// Epochs finished so far.
    public private(set) var epochsDone = 0
    public private(set) var history: [EdgeEpochStats] = []

    /// A session for samples of the given geometry: images (`sampleRate` nil) or mono audio
    /// clips of `width` samples (`channels` and `height` 1, `config.autoencoder` `.audio`).
    public init(config: EdgeConfig, channels: Int, height: Int, width: Int, classes: Int, sampleRate: Int? = nil) {
        precondition(config.autoencoder.isAudio == (sampleRate != nil),
                     "\(config.autoencoder.rawValue) does not take \(sampleRate == nil ? "images" : "audio")")
        self.config = config
        self.channels = channels; self.height = height; self.width = width; self.classes = classes
        self.sampleRate = sampleRate
        (autoencoder, classifier) = GlobalRandom.withSeed(config.seed) {
            (config.autoencoder.make(channels: channels, mask: config.mask),
             sampleRate == nil ? ElementaryClassifier.image(channels: channels, height: height, width: width, classes: classes)
                               : ElementaryClassifier.audio(classes: classes))
        }
        prior = config.learnedPrior || config.rateWeight > 0 ? FactorizedPrior(channels: 16) : nil
        trainer = EdgeTrainer(autoencoder: autoencoder, classifier: classifier, alpha: config.alpha,
                              guidance: config.guidance, learningRate: config.learningRate, prior: prior,
                              rateWeight: config.rateWeight)
    }

    /// A new session for the samples of `data`, refusing shapes the autoencoder cannot take
    /// (image sides must be multiples of 4: the latent is a quarter of the image each way; clip
    /// lengths multiples of 16). For audio data the image architectures give way to `cdc-ae-1d`.
    public convenience init(config: EdgeConfig, for data: LabelledDataset) throws {
        var config = config
        if data.isAudio {
            guard config.autoencoder != .wide else { throw PipelineError("cdc-ae-wide is an image autoencoder; audio uses cdc-ae-1d") }
            config.autoencoder = .audio
            guard data.width % 16 == 0 else {
                throw PipelineError("the audio autoencoder needs clips whose length is a multiple of 16 samples; these have \(data.width) (choose another --length)")
            }
        } else {
            guard !config.autoencoder.isAudio else { throw PipelineError("cdc-ae-1d is the audio autoencoder; these are images") }
            guard data.height % 4 == 0, data.width % 4 == 0 else {
                throw PipelineError("the autoencoder needs image sides that are multiples of 4; these images are \(data.height)×\(data.width) (crop or pad them first)")
            }
        }
        guard data.count >= config.batchSize else {
            throw PipelineError("\(data.count) samples are fewer than one batch of \(config.batchSize)")
        }
        self.init(config: config, channels: data.channels, height: data.height, width: data.width, classes: data.classes,
                  sampleRate: data.sampleRate)
    }

    /// A fresh session like this one (same geometry) with another configuration.
    public func withConfig(_ config: EdgeConfig) -> EdgeSession {
        EdgeSession(config: config, channels: channels, height: height, width: width, classes: classes, sampleRate: sampleRate)
    }

    /// Whether `data` has the geometry this session was trained for.
    public func accepts(_ data: LabelledDataset) -> Bool {
        (channels, height, width) == (data.channels, data.height, data.width) && sampleRate == data.sampleRate
    }

    /// The sample geometry in words (`1×28×28 images`, `8000 samples at 8000 Hz`).
    public var geometry: String {
        if let sampleRate { return "\(width) samples at \(sampleRate) Hz" }
        return "\(channels)×\(height)×\(width)"
    }

    /// One epoch over `data` (seeded order; the last partial batch is dropped).
    @discardableResult
    public func trainEpoch(_ data: LabelledDataset, progress: ((Int, Int, String) -> Void)? = nil) -> EdgeEpochStats {
        let epoch = epochsDone + 1
        let start = Date()
        let batches = data.batchIndices(size: config.batchSize, shuffle: config.seed &+ UInt64(epoch) &* 7919, dropLast: true)
        var sumA: Float = 0, sumC: Float = 0, sumR: Float = 0, correct = 0, seen = 0
        GlobalRandom.withSeed(config.seed &+ UInt64(epoch)) {
            for (i, indices) in batches.enumerated() {
                let (x, y) = data.batch(indices)
                let r = trainer.step(x, labels: y)
                sumA += r.reconstruction; sumC += r.classification; sumR += r.rate; correct += r.correct; seen += r.count
                let rate = prior == nil ? "" : String(format: "  R %.3f bpp", sumR / Float(i + 1))
                progress?(i + 1, batches.count, String(format: "L_A %.4f  L_C %.3f  EC acc %.1f%%", sumA / Float(i + 1),
                                                       sumC / Float(i + 1), 100 * Float(correct) / Float(max(seen, 1))) + rate)
            }
        }
        let n = Float(max(batches.count, 1))
        var stats = EdgeEpochStats(epoch: epoch, reconstruction: sumA / n, classification: sumC / n,
                                   ecAccuracy: Float(correct) / Float(max(seen, 1)), seconds: Date().timeIntervalSince(start))
        if prior != nil { stats.rate = sumR / n }
        epochsDone = epoch
        history.append(stats)
        return stats
    }

    /// Reconstruction MSE and EC accuracy on `data` passed through the codec (inference mode).
    public func evaluate(_ data: LabelledDataset) -> (mse: Float, ecAccuracy: Float) {
        autoencoder.eval()
        defer { autoencoder.train(); classifier.train() }
        var mse: Double = 0
        let accuracy = CloudClassifier.accuracy(classifier, on: data) { x in
            let xHat = autoencoder(x)
            mse += Double(Tensor.mse(xHat, x).item) * Double(x.shape[0])
            return xHat
        }
        return (Float(mse / Double(max(data.count, 1))), accuracy)
    }

    // MARK: Saving and resuming

    struct Saved: Codable {
        var config: EdgeConfig
        var channels: Int, height: Int, width: Int, classes: Int
        var sampleRate: Int?
        var epochsDone: Int
        var history: [EdgeEpochStats]
    }

    /// Writes the session into `dir` (created if needed). Weights first, `session.json` last,
    /// so an interrupted save leaves the previous `session.json` pointing at complete files
    /// of the previous or the new epoch, never at a half-written one.
    public func save(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Checkpoint.save(autoencoder, to: dir.appendingPathComponent("ae.safetensors"),
                            metadata: ["model": config.autoencoder.rawValue, "mask": "\(config.mask)"])
        try Checkpoint.save(classifier, to: dir.appendingPathComponent("ec.safetensors"),
                            metadata: ["model": sampleRate == nil ? "cdc-ec" : "cdc-ec-1d"])
        try OptimizerState.save(trainer.aeOptimizer, to: dir.appendingPathComponent("ae.optimizer.safetensors"))
        try OptimizerState.save(trainer.ecOptimizer, to: dir.appendingPathComponent("ec.optimizer.safetensors"))
        if let prior, let opt = trainer.priorOptimizer {
            try PriorFile.save(prior, mask: config.mask, to: dir.appendingPathComponent("prior.safetensors"))
            try OptimizerState.save(opt, to: dir.appendingPathComponent("prior.optimizer.safetensors"))
        }
        let saved = Saved(config: config, channels: channels, height: height, width: width, classes: classes,
                          sampleRate: sampleRate, epochsDone: epochsDone, history: history)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(enc.encode(saved), to: dir.appendingPathComponent("session.json"))
    }

    /// Restores a session saved by `save(to:)`.
    public static func resume(from dir: URL) throws -> EdgeSession {
        let url = dir.appendingPathComponent("session.json")
        guard let data = try? Data(contentsOf: url) else { throw PipelineError("\(url.path): no saved session here") }
        let saved: Saved
        do { saved = try JSONDecoder().decode(Saved.self, from: data) } catch {
            throw PipelineError("\(url.path): not a session file (\(error))")
        }
        let s = EdgeSession(config: saved.config, channels: saved.channels, height: saved.height, width: saved.width,
                            classes: saved.classes, sampleRate: saved.sampleRate)
        try Checkpoint.load(into: s.autoencoder, from: dir.appendingPathComponent("ae.safetensors"))
        try Checkpoint.load(into: s.classifier, from: dir.appendingPathComponent("ec.safetensors"))
        try OptimizerState.load(into: s.trainer.aeOptimizer, from: dir.appendingPathComponent("ae.optimizer.safetensors"))
        try OptimizerState.load(into: s.trainer.ecOptimizer, from: dir.appendingPathComponent("ec.optimizer.safetensors"))
        if let prior = s.prior, let opt = s.trainer.priorOptimizer {
            try PriorFile.load(into: prior, from: dir.appendingPathComponent("prior.safetensors"))
            try OptimizerState.load(into: opt, from: dir.appendingPathComponent("prior.optimizer.safetensors"))
        }
        s.epochsDone = saved.epochsDone
        s.history = saved.history
        return s
    }
}

/// An error of the pipeline, with a message for the user.
public struct PipelineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
