import Foundation
import CDCData
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor

/// `vae-cls` in its own setting (co-inference): the device runs the VAE codec's encoder and
/// quantizer and rANS-codes each sample's centre indices on their own; the server decodes them
/// and classifies the latents with the classifier trained jointly with the encoder — the image
/// is never restored. With the default per-channel prior the codes use a per-channel histogram
/// counted on training codes (the one-off); a model trained with the anchor's 3-D masked context
/// model (`vae-cls-ctx3d`) codes each sample under that model with adaptive rANS (the one-off:
/// the context model's weights, which the server needs to decode).
public final class VAEClsSystem: CoInferenceSystem {
    public let split = "latent", channel = "none"
    public var system: String { model.rateModel.systemName }
    public var config: String { "L=\(model.quantizer.levels) R=\(String(format: "%g", rateTarget))" }
    public let model: VAEClassifier
    public let rateTarget: Float
    /// How each sample's indices are coded.
    enum Coder {
        case histogram(StaticSymbolCoder)
        case context(ContextSymbolCoder, modelFileBytes: Int)
    }
    let coder: Coder
    public let latentShape: [Int]
    public var oneOffBytes: Int {
        switch coder {
        case .histogram(let c): return c.oneOffBytes
        case .context(_, let bytes): return bytes
        }
    }
    public var featureValues: Int? { latentShape.reduce(1, *) }

    /// `calibration`: images (e.g. the training set) whose codes the histogram is counted on
    /// (with a context model: only their shape is read).
    public init(model: VAEClassifier, rateTarget: Float, calibration: Tensor) throws {
        self.model = model; self.rateTarget = rateTarget
        model.eval()
        let (s, shape) = model.encode(calibration)
        latentShape = Array(shape.dropFirst())
        if let context = model.contextCoder(latentShape: latentShape) {
            coder = .context(context, modelFileBytes: try VAEClsCodec.contextModelFile(model).count)
        } else {
            coder = .histogram(try StaticSymbolCoder(calibration: s.map(UInt16.init), channels: latentShape[0],
                                                     symbolsPerChannel: latentShape.dropFirst().reduce(1, *),
                                                     alphabetSize: model.quantizer.levels))
        }
    }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        let symbols = model.encode(batch).symbols, n = batch.shape[0]
        switch coder {
        case .histogram(let c):
            return try c.encodeSamples(symbols.map(UInt16.init), count: n)
        case .context(let c, _):
            return try c.encode(samples: symbols, samplesPerStream: 1)
        }
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        var symbols: [UInt8] = []
        switch coder {
        case .histogram(let c):
            symbols.reserveCapacity(payloads.count * c.symbolsPerSample)
            for b in payloads { symbols += try c.decode(b[...]).map { UInt8($0) } }
        case .context(let c, _):
            do { symbols = try c.decode(streams: payloads, samples: payloads.count, samplesPerStream: 1) } catch {
                throw SplitError("a coded sample is corrupt or truncated: \(error)")
            }
        }
        return model.classify(symbols, shape: [payloads.count] + latentShape)
    }
}

extension CoInferenceExperiment {
    /// The directory name of a trained vae-cls session: `vae-cls-L<L>-R<target>-s<seed>`, or
    /// `vae-cls-ctx3d-…` with the context rate model.
    public static func vaeClsDirectory(_ point: VAERatePoint, rateModel: VAERateModel, seed: UInt64) -> String {
        String(format: "%@-L%d-R%g-s%d", rateModel.systemName, point.levels, point.target, seed)
    }

    /// The vae-cls system at rate point `point`: the edge session trained on `train` (cached in
    /// ``vaeClsDirectory(_:rateModel:seed:)`` under `models/`), its histogram counted on `calibration`.
    func vaeClsSystem(_ point: VAERatePoint, rateModel: VAERateModel = .factorized, train: LabelledDataset,
                      calibration: LabelledDataset) throws -> (VAEClsSystem, VAEClsSession) {
        let dir = models.appendingPathComponent(Self.vaeClsDirectory(point, rateModel: rateModel, seed: config.seed))
        let session = try Self.trainedVAECls(point, rateModel: rateModel, epochs: config.vaeEpochs, decoder: config.vaeDecoder,
                                             seed: config.seed, train: train, dir: dir, log: log) { body in
            self.timed("edge-train:" + rateModel.systemName) { body() }
        }
        let (x, _) = calibration.batch(0..<calibration.count)
        return (try VAEClsSystem(model: session.model, rateTarget: point.target, calibration: x), session)
    }

    /// The vae-cls row at `point` on the test set, with the decoder branch's PSNR when it has one.
    func vaeClsRow(_ point: VAERatePoint, rateModel: VAERateModel = .factorized, train: LabelledDataset,
                   calibration: LabelledDataset, test: LabelledDataset) throws {
        let (s, session) = try vaeClsSystem(point, rateModel: rateModel, train: train, calibration: calibration)
        guard !has(s.system, s.split, s.config, s.channel) else { return }
        let row = try timed("measure") { try CoInferenceHarness.evaluate(s, on: test, seed: config.seed) }
        try add(row.withRestoredPSNR(timed("restore") { session.reconstruction(test)?.psnr }))
    }

    /// A vae-cls session at `point` trained for `epochs` on `train`, resumed from (and saved after
    /// every epoch to) `dir`.
    static func trainedVAECls(_ point: VAERatePoint, rateModel: VAERateModel = .factorized, epochs: Int, decoder: Bool, seed: UInt64,
                              train: LabelledDataset, dir: URL, log: (String) -> Void,
                              timed: (() -> Void) -> Void) throws -> VAEClsSession {
        var vc = VAEClsConfig()
        vc.rateModel = rateModel
        vc.mask = VAERatePoint.mask(forLevels: point.levels) ?? 0
        vc.levels = point.levels; vc.rateTarget = point.target; vc.epochs = epochs; vc.seed = seed; vc.decoder = decoder
        let session: VAEClsSession
        if VAEClsSession.exists(in: dir), let s = try? VAEClsSession.resume(from: dir), s.config == vc { session = s }
        else { session = try VAEClsSession(config: vc, for: train) }
        while session.epochsDone < epochs {
            timed { session.trainEpoch(train) }
            let s = session.history.last!
            log(String(format: "  [%@ %@] epoch %d: CE %.3f  R %.3f bpp  acc %.1f%%", rateModel.systemName,
                       point.description, s.epoch,
                       s.classification, s.rate, 100 * s.accuracy))
            try session.save(to: dir)
        }
        return session
    }
}
