import CDCCodec
import CDCData
import CDCFileIO
import CDCModels
import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation

/// A rate point of `vae-cls`: L centres and the rate target R_target (bits per input pixel).
public struct VAERatePoint: Codable, Sendable, Equatable, CustomStringConvertible {
    public var levels: Int
    public var target: Float
    public init(levels: Int, target: Float) { self.levels = levels; self.target = target }

    /// The point that mask m stands for in the edge–cloud loop (the cloud asks for an m; a
    /// smaller m is clearer): m = 4, 3, 2 are the spec's L = 2, 3, 6 (at most 1, 1.58, 2.58
    /// bits per latent) with targets 0.5, 1 and 2 bits per pixel; m = 1 and 0, beyond the
    /// spec, are L = 12 and 24 with targets 3 and 4. L never exceeds the container's alphabet
    /// at that m (2^(5−m) symbols), so the codes travel in the CDC container unchanged.
    public static func forMask(_ m: Int) -> VAERatePoint {
        precondition((0...4).contains(m), "mask m must be in 0...4, got \(m)")
        return [VAERatePoint(levels: 24, target: 4), VAERatePoint(levels: 12, target: 3), VAERatePoint(levels: 6, target: 2),
                VAERatePoint(levels: 3, target: 1), VAERatePoint(levels: 2, target: 0.5)][m]
    }

    /// The largest mask whose container alphabet (2^(5−m)) holds L symbols.
    public static func mask(forLevels levels: Int) -> Int? {
        (0...4).reversed().first { (1 << (5 - $0)) >= levels }
    }

    public var description: String { String(format: "L=%d R≤%g", levels, target) }
}

/// Settings of a `vae-cls` edge session (the spec's recipe: SGD momentum 0.9, lr 0.05 cosine,
/// weight decay 5e-4, β = 2).
public struct VAEClsConfig: Codable, Sendable, Equatable {
    /// The mask m the codes are uploaded at; sets L and R_target (``VAERatePoint/forMask(_:)``)
    /// unless ``levels`` / ``rateTarget`` are given.
    public var mask = 4
    /// L, overriding the mask's.
    public var levels: Int?
    /// R_target in bits per input pixel, overriding the mask's.
    public var rateTarget: Float?
    /// β of the rate penalty.
    public var rateWeight: Float = 2
    public var epochs = 10
    public var batchSize = 128
    public var learningRate: Float = 0.05
    public var weightDecay: Float = 5e-4
    /// Train the optional decoder branch on the latents (for a cloud that also needs images).
    public var decoder = false
    /// The rate model trained with the codec (the per-channel prior, or the anchor's 3-D masked
    /// context model).
    public var rateModel: VAERateModel = .factorized
    public var seed: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey {
        case mask, levels, rateTarget, rateWeight, epochs, batchSize, learningRate, weightDecay, decoder, rateModel, seed
    }

    /// Reads a configuration; keys that earlier versions did not write keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mask = try c.decode(Int.self, forKey: .mask)
        levels = try c.decodeIfPresent(Int.self, forKey: .levels)
        rateTarget = try c.decodeIfPresent(Float.self, forKey: .rateTarget)
        rateWeight = try c.decode(Float.self, forKey: .rateWeight)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        weightDecay = try c.decode(Float.self, forKey: .weightDecay)
        self.decoder = try c.decode(Bool.self, forKey: .decoder)
        rateModel = try c.decodeIfPresent(VAERateModel.self, forKey: .rateModel) ?? .factorized
        seed = try c.decode(UInt64.self, forKey: .seed)
    }

    /// L and R_target in effect.
    public var ratePoint: VAERatePoint {
        let p = VAERatePoint.forMask(mask)
        return VAERatePoint(levels: levels ?? p.levels, target: rateTarget ?? p.target)
    }
}

/// Losses and accuracy of one epoch of `vae-cls` training.
public struct VAEClsEpochStats: Codable, Sendable {
    public var epoch: Int
    /// Mean cross-entropy, rate (bits per input pixel of the hard symbols under the prior) and
    /// reconstruction MSE (0 without the decoder branch); training accuracy.
    public var classification: Float, rate: Float, reconstruction: Float, accuracy: Float, seconds: Double
}

/// A `vae-cls` training run on the edge (the VAE codec in CDC's edge–cloud setting): the model,
/// its trainer and the progress so far; saved to and resumed from a directory
/// (`vae-cls.safetensors`, optimizer states, `vae-session.json`, each written atomically, the
/// JSON last).
public final class VAEClsSession {
    public let config: VAEClsConfig
    public let model: VAEClassifier
    public let trainer: VAEClassifierTrainer
    /// Image geometry the model was built for.
    public let channels: Int, height: Int, width: Int, classes: Int
    public private(set) var epochsDone = 0
    public private(set) var history: [VAEClsEpochStats] = []
    /// The name of the file that marks a saved session.
    public static let sessionFile = "vae-session.json"

    public init(config: VAEClsConfig, channels: Int, height: Int, width: Int, classes: Int) throws {
        let point = config.ratePoint
        guard let m = VAERatePoint.mask(forLevels: point.levels), m >= config.mask else {
            throw PipelineError("L = \(point.levels) centres do not fit the container at m = \(config.mask) (at most \(1 << (5 - config.mask)))")
        }
        guard height % 4 == 0, width % 4 == 0 else {
            throw PipelineError("vae-cls needs image sides that are multiples of 4; these images are \(height)×\(width)")
        }
        self.config = config
        self.channels = channels; self.height = height; self.width = width; self.classes = classes
        model = GlobalRandom.withSeed(config.seed) {
            VAEClassifier(channels: channels, classes: classes, levels: point.levels, withDecoder: config.decoder,
                          rateModel: config.rateModel)
        }
        trainer = VAEClassifierTrainer(model: model, learningRate: config.learningRate, weightDecay: config.weightDecay,
                                       rateWeight: config.rateWeight, rateTarget: point.target)
    }

    /// A new session for the images of `data` (audio is refused: the 1-D variant is not built).
    public convenience init(config: VAEClsConfig, for data: LabelledDataset) throws {
        guard !data.isAudio, data.latentCodec == nil else {
            throw PipelineError("vae-cls takes images; \(data.isAudio ? "audio clips are" : "latents are") not supported")
        }
        guard data.count >= config.batchSize else {
            throw PipelineError("\(data.count) samples are fewer than one batch of \(config.batchSize)")
        }
        try self.init(config: config, channels: data.channels, height: data.height, width: data.width, classes: data.classes)
    }

    /// Whether `data` has the geometry this session was trained for.
    public func accepts(_ data: LabelledDataset) -> Bool {
        (channels, height, width) == (data.channels, data.height, data.width) && !data.isAudio
    }

    /// The sample geometry in words.
    public var geometry: String { "\(channels)×\(height)×\(width)" }

    /// The learning rate at `step` of `totalSteps`: cosine decay after a warm-up of a tenth of
    /// the steps (at most one epoch).
    func learningRate(step: Int, total: Int, epochSteps: Int) -> Float {
        CosineSchedule(base: config.learningRate, totalSteps: max(total, 2),
                       warmupSteps: min(epochSteps, total / 10)).learningRate(at: step)
    }

    /// One epoch over `data` (seeded order; the last partial batch dropped).
    @discardableResult
    public func trainEpoch(_ data: LabelledDataset, progress: ((Int, Int, String) -> Void)? = nil) -> VAEClsEpochStats {
        let epoch = epochsDone + 1
        let start = Date()
        let batches = data.batchIndices(size: config.batchSize, shuffle: config.seed &+ UInt64(epoch) &* 7919, dropLast: true)
        let total = batches.count * config.epochs
        var ce: Float = 0, rate: Float = 0, mse: Float = 0, correct = 0, seen = 0
        GlobalRandom.withSeed(config.seed &+ UInt64(epoch)) {
            for (i, indices) in batches.enumerated() {
                trainer.setLearningRate(learningRate(step: epochsDone * batches.count + i, total: total, epochSteps: batches.count))
                let (x, y) = data.batch(indices)
                let r = trainer.step(x, labels: y)
                ce += r.classification; rate += r.rate; mse += r.reconstruction; correct += r.correct; seen += r.count
                progress?(i + 1, batches.count, String(format: "CE %.3f  R %.3f bpp  acc %.1f%%", ce / Float(i + 1),
                                                       rate / Float(i + 1), 100 * Float(correct) / Float(max(seen, 1)))
                                                + (model.decoder == nil ? "" : String(format: "  MSE %.4f", mse / Float(i + 1))))
            }
        }
        let n = Float(max(batches.count, 1))
        let stats = VAEClsEpochStats(epoch: epoch, classification: ce / n, rate: rate / n, reconstruction: mse / n,
                                     accuracy: Float(correct) / Float(max(seen, 1)), seconds: Date().timeIntervalSince(start))
        epochsDone = epoch
        history.append(stats)
        return stats
    }

    /// One epoch reported as steps of the task `label`.
    @discardableResult
    public func trainEpoch(_ data: LabelledDataset, task label: String, progress: @escaping ProgressHandler) -> VAEClsEpochStats {
        let total = data.count / config.batchSize
        return trainEpoch(data) { done, _, status in progress(.step(task: label, done: done, total: total, status: status)) }
    }

    /// The edge model's own accuracy on `data` (encoder, hard quantizer, classifier; inference mode).
    public func accuracy(_ data: LabelledDataset) -> Float {
        defer { model.train() }
        return CloudClassifier.accuracy(model, on: data)
    }

    /// Reconstruction MSE and PSNR (dB, peak 1) of the decoder branch on `data`; nil without it.
    public func reconstruction(_ data: LabelledDataset) -> (mse: Double, psnr: Double)? {
        guard let decoder = model.decoder else { return nil }
        model.eval()
        defer { model.train() }
        var sum = 0.0
        Autograd.noGrad {
            for indices in data.batchIndices(size: 500, shuffle: nil) {
                let (x, _) = data.batch(indices)
                let r = decoder(model.quantizer(model.encoder(x))).clamp(0, 1)
                sum += Double(Tensor.mse(r, x).item) * Double(indices.count)
            }
        }
        let mse = sum / Double(max(data.count, 1))
        return (mse, 10 * log10(1 / max(mse, 1e-12)))
    }

    /// A new session at mask `m` starting from this one's encoder, classifier (and decoder); the
    /// centres and prior start afresh when L changes. Trained on for `epochs` at `learningRate`.
    public func retuned(mask m: Int, learningRate: Float, epochs: Int) throws -> VAEClsSession {
        var c = config
        c.mask = m; c.learningRate = learningRate; c.epochs = epochs
        c.levels = nil; c.rateTarget = nil
        let s = try VAEClsSession(config: c, channels: channels, height: height, width: width, classes: classes)
        try Checkpoint.load(Checkpoint.stateDict(model.encoder), into: s.model.encoder)
        try Checkpoint.load(Checkpoint.stateDict(model.classifier), into: s.model.classifier)
        if let from = model.decoder, let to = s.model.decoder { try Checkpoint.load(Checkpoint.stateDict(from), into: to) }
        if s.model.quantizer.levels == model.quantizer.levels {
            try Checkpoint.load(Checkpoint.stateDict(model.quantizer), into: s.model.quantizer)
            try Checkpoint.load(Checkpoint.stateDict(model.prior), into: s.model.prior)
            if let from = model.context, let to = s.model.context { try Checkpoint.load(Checkpoint.stateDict(from), into: to) }
        }
        return s
    }

    // MARK: Saving and resuming

    struct Saved: Codable {
        var system = VAEClassifier.architecture
        var config: VAEClsConfig
        var channels: Int, height: Int, width: Int, classes: Int
        var epochsDone: Int
        var history: [VAEClsEpochStats]
    }

    /// Writes the session into `dir`: weights and optimizer states first, the JSON last.
    public func save(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Checkpoint.save(model, to: dir.appendingPathComponent("vae-cls.safetensors"),
                            metadata: ["model": VAEClassifier.architecture, "levels": "\(model.quantizer.levels)",
                                       "rate_model": model.rateModel.rawValue])
        try OptimizerState.save(trainer.sgd, to: dir.appendingPathComponent("vae-cls.sgd.safetensors"))
        try OptimizerState.save(trainer.centreOptimizer, to: dir.appendingPathComponent("vae-cls.centres.safetensors"))
        try OptimizerState.save(trainer.priorOptimizer, to: dir.appendingPathComponent("vae-cls.prior.safetensors"))
        if let d = trainer.decoderOptimizer { try OptimizerState.save(d, to: dir.appendingPathComponent("vae-cls.decoder.safetensors")) }
        if let c = trainer.contextOptimizer { try OptimizerState.save(c, to: dir.appendingPathComponent("vae-cls.context.safetensors")) }
        let saved = Saved(config: config, channels: channels, height: height, width: width, classes: classes,
                          epochsDone: epochsDone, history: history)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(enc.encode(saved), to: dir.appendingPathComponent(Self.sessionFile))
    }

    /// Whether `dir` holds a saved `vae-cls` session.
    public static func exists(in dir: URL) -> Bool {
        FileManager.default.fileExists(atPath: dir.appendingPathComponent(sessionFile).path)
    }

    /// Restores a session saved by ``save(to:)``.
    public static func resume(from dir: URL) throws -> VAEClsSession {
        let url = dir.appendingPathComponent(sessionFile)
        guard let data = try? Data(contentsOf: url) else { throw PipelineError("\(url.path): no saved vae-cls session here") }
        let saved: Saved
        do { saved = try JSONDecoder().decode(Saved.self, from: data) } catch {
            throw PipelineError("\(url.path): not a vae-cls session file (\(error))")
        }
        let s = try VAEClsSession(config: saved.config, channels: saved.channels, height: saved.height, width: saved.width,
                                  classes: saved.classes)
        try Checkpoint.load(into: s.model, from: dir.appendingPathComponent("vae-cls.safetensors"))
        try OptimizerState.load(into: s.trainer.sgd, from: dir.appendingPathComponent("vae-cls.sgd.safetensors"))
        try OptimizerState.load(into: s.trainer.centreOptimizer, from: dir.appendingPathComponent("vae-cls.centres.safetensors"))
        try OptimizerState.load(into: s.trainer.priorOptimizer, from: dir.appendingPathComponent("vae-cls.prior.safetensors"))
        if let d = s.trainer.decoderOptimizer {
            try OptimizerState.load(into: d, from: dir.appendingPathComponent("vae-cls.decoder.safetensors"))
        }
        if let c = s.trainer.contextOptimizer {
            try OptimizerState.load(into: c, from: dir.appendingPathComponent("vae-cls.context.safetensors"))
        }
        s.epochsDone = saved.epochsDone
        s.history = saved.history
        return s
    }

    // MARK: Uploads

    /// The one-off file of an upload (in place of CDC's decoder): the centres and the shapes
    /// (``VAEClsCodec/latentFile(_:mask:channels:height:width:)``).
    public func latentFile() throws -> [UInt8] {
        try VAEClsCodec.latentFile(model, mask: config.mask, channels: channels, height: height, width: width)
    }

    /// `data` encoded into a container at the session's mask, coded with `coding` (``Coding/prior``
    /// is refused: the uploads are coded under measured histograms).
    public func compress(_ data: LabelledDataset, coding: Coding, decoderHash: UInt64) throws -> LatentContainer {
        let fixed = try VAEClsCodec.compress(model, data, mask: config.mask, fileHash: decoderHash)
        switch coding {
        case .prior: throw PipelineError("vae-cls uploads are coded with measured histograms (--coding histogram or auto)")
        case .auto: return try EdgeCodec.code(fixed, .histogram)
        default: return try EdgeCodec.code(fixed, coding)
        }
    }
}

/// How `vae-cls` codes travel: the centre indices in the CDC latent container (mask m, each
/// index i stored as the symbol q = i − (2^(4−m) − 1), so fixed-length files spend 5 − m bits
/// and coded files only what the histogram says), and a small *latent file* in place of CDC's
/// decoder: a safetensors file with the centres and the shapes, which the cloud needs to turn
/// indices into latent values. No decoder is uploaded.
public enum VAEClsCodec {
    /// The `model` metadata value of a latent file.
    public static let fileModel = "vae-cls latents"

    /// The latent file of `model` for images of the given geometry at mask `m`.
    public static func latentFile(_ model: VAEClassifier, mask m: Int, channels: Int, height: Int, width: Int) throws -> [UInt8] {
        let centres = model.quantizer.centres
        return try SafetensorsFile(tensors: ["centres": SafetensorsTensor(float32: centres.values, shape: centres.shape)],
                                   metadata: ["model": fileModel, "architecture": VAEClassifier.architecture, "mask": "\(m)",
                                              "levels": "\(model.quantizer.levels)", "latent_channels": "\(model.latentChannels)",
                                              "channels": "\(channels)", "height": "\(height)", "width": "\(width)"]).encoded()
    }

    /// Whether `bytes` is a latent file (rather than a CDC decoder file).
    public static func isLatentFile(_ bytes: [UInt8]) -> Bool {
        (try? SafetensorsFile.decode(bytes))?.metadata["model"] == fileModel
    }

    /// What a latent file says: the centres and the image geometry.
    public struct LatentFile: Sendable {
        public var centres: [Float], mask: Int, channels: Int, height: Int, width: Int
        /// Channels, height and width of the images.
        public var geometry: (Int, Int, Int) { (channels, height, width) }
    }

    /// Reads a latent file, refusing anything else.
    public static func read(_ bytes: [UInt8]) throws -> LatentFile {
        let file = try SafetensorsFile.decode(bytes)
        guard file.metadata["model"] == fileModel, let m = file.metadata["mask"].flatMap(Int.init), (0...4).contains(m),
              let c = file.metadata["channels"].flatMap(Int.init), let h = file.metadata["height"].flatMap(Int.init),
              let w = file.metadata["width"].flatMap(Int.init), c >= 1, h >= 1, w >= 1,
              let t = file.tensors["centres"], t.shape.count == 1 else {
            throw PipelineError("not a vae-cls latent file (metadata \(file.metadata))")
        }
        let centres = try t.floats()
        guard (2...(1 << (5 - m))).contains(centres.count), centres.allSatisfy(\.isFinite) else {
            throw PipelineError("a vae-cls latent file at m = \(m) needs 2…\(1 << (5 - m)) finite centres, has \(centres.count)")
        }
        return LatentFile(centres: centres, mask: m, channels: c, height: h, width: w)
    }

    /// Encodes every image of `data` (inference mode) into a fixed-length container at mask `m`
    /// naming the latent file by `fileHash`.
    public static func compress(_ model: VAEClassifier, _ data: LabelledDataset, mask m: Int, fileHash: UInt64,
                                batchSize: Int = 500) throws -> LatentContainer {
        let offset = (1 << (4 - m)) - 1
        guard model.quantizer.levels <= 1 << (5 - m) else {
            throw PipelineError("L = \(model.quantizer.levels) centres do not fit the container at m = \(m)")
        }
        var symbols: [Int8] = []
        symbols.reserveCapacity(data.count * model.latentChannels * (data.height / 4) * (data.width / 4))
        var shape: [Int] = []
        for indices in data.batchIndices(size: batchSize, shuffle: nil) {
            let (x, _) = data.batch(indices)
            let (s, sh) = model.encode(x)
            symbols += s.map { Int8(Int($0) - offset) }
            shape = Array(sh.dropFirst())
        }
        return try LatentContainer(mask: m, latentShape: shape, symbols: symbols, labels: data.labels, classes: data.classes,
                                   decoderHash: fileHash, samplesPerChunk: 1024)
    }

    /// An upload whose chunks carry streams coded under the 3-D masked context model
    /// (``ContextSymbolCoder``) instead of histogram-coded ones: what the context model's bits
    /// cost on the wire. Measured, and checked by decoding every stream back; the latent
    /// container has no context-coded version, so the service carries these uploads
    /// histogram-coded.
    public struct ContextCodedUpload: Sendable {
        /// One stream per chunk of the container.
        public var streams: [[UInt8]]
        /// Bytes of the container with these streams as its chunks' codes: header, labels,
        /// 12 bytes of framing per chunk (as a coded container's), the streams; no model section.
        public var containerBytes: Int
        /// Bytes of the context model's weights as a safetensors file (what the cloud needs once
        /// to decode), beside the latent file.
        public var modelFileBytes: Int
        /// The streams' bytes.
        public var payloadBytes: Int { streams.reduce(0) { $0 + $1.count } }
    }

    /// The context model's weights as the safetensors file an upload would carry.
    public static func contextModelFile(_ model: VAEClassifier) throws -> [UInt8] {
        guard let context = model.context else { throw PipelineError("this vae-cls model has no context model (rate model: factorized)") }
        return try SafetensorsFile(tensors: Checkpoint.stateDict(context), metadata: ["model": "vae-cls context3d", "levels": "\(model.quantizer.levels)"]).encoded()
    }

    /// Codes the symbols of `container` (made by ``compress(_:_:mask:fileHash:batchSize:)`` from
    /// `model`) chunk by chunk under the model's context model, on the engine's threads, and
    /// decodes each stream back to check it.
    public static func contextCoded(_ container: LatentContainer, model: VAEClassifier) throws -> ContextCodedUpload {
        guard model.context != nil else { throw PipelineError("this vae-cls model has no context model (rate model: factorized)") }
        guard container.latentShape.count == 3, let coder = model.contextCoder(latentShape: container.latentShape) else {
            throw PipelineError("vae-cls codes have [K, h, w] latents, not \(container.latentShape)")
        }
        let offset = (1 << (4 - container.mask)) - 1, levels = coder.levels
        if let bad = container.symbols.firstIndex(where: { !(0..<levels).contains(Int($0) + offset) }) {
            throw PipelineError("latent \(bad) names no centre of the model's \(levels) (codes of another model?)")
        }
        let indices = container.symbols.map { UInt8(Int($0) + offset) }
        let chunk = container.samplesPerChunk
        let streams = try coder.encode(samples: indices, samplesPerStream: chunk)
        guard try coder.decode(streams: streams, samples: container.count, samplesPerStream: chunk) == indices else {
            throw PipelineError("the context-coded upload does not decode to its symbols")
        }
        let chunks = streams.count
        let a = container.accounting
        return ContextCodedUpload(streams: streams,
                                  containerBytes: a.header + a.labels + 12 * chunks + streams.reduce(0) { $0 + $1.count },
                                  modelFileBytes: try contextModelFile(model).count)
    }

    /// The latents of `container` (centre values, `[K, h, w]` per sample) as a dataset a latent
    /// classifier trains on: the cloud's "restore". The container must name this latent file and
    /// hold only indices of its centres.
    public static func latents(_ container: LatentContainer, latentFile bytes: [UInt8]) throws -> LabelledDataset {
        guard container.decoderHash == ModelIdentity.hash(bytes) else {
            throw PipelineError("the codes were encoded for another latent file than the one given (model hashes differ)")
        }
        let file = try read(bytes)
        guard container.mask == file.mask, container.latentShape.count == 3 else {
            throw PipelineError("the latent file is for m = \(file.mask) and [K, h, w] latents; the codes are m = \(container.mask), shape \(container.latentShape)")
        }
        let offset = (1 << (4 - file.mask)) - 1, L = file.centres.count
        var values = [Float](repeating: 0, count: container.symbols.count)
        for (i, q) in container.symbols.enumerated() {
            let index = Int(q) + offset
            guard index >= 0 && index < L else {
                throw PipelineError("latent \(i) holds symbol \(index), but the latent file has \(L) centres (corrupt or mismatched codes)")
            }
            values[i] = file.centres[index]
        }
        let s = container.latentShape
        var d = LabelledDataset(pixels: values, labels: container.labels, channels: s[0], height: s[1], width: s[2],
                                classes: container.classes)
        d.latentCodec = VAEClassifier.architecture
        return d
    }
}
