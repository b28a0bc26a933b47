import Foundation
import CDCData
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor

/// `vae-cls` in its own setting (co-inference): the device runs the VAE codec's encoder and
/// quantizer and rANS-codes each sample's centre indices on their own under a per-channel
/// histogram counted on training codes; the server decodes them and classifies the latents with
/// the classifier trained jointly with the encoder — the image is never restored. One-off: the
/// histogram (the server holds the classifier and the centres).
public final class VAEClsSystem: CoInferenceSystem {
    public let system = "vae-cls", split = "latent", channel = "none"
    public var config: String { "L=\(model.quantizer.levels) R=\(String(format: "%g", rateTarget))" }
    public let model: VAEClassifier
    public let rateTarget: Float
    public let coder: StaticSymbolCoder
    public let latentShape: [Int]
    public var oneOffBytes: Int { coder.oneOffBytes }
    public var featureValues: Int? { latentShape.reduce(1, *) }

    /// `calibration`: images (e.g. the training set) whose codes the histogram is counted on.
    public init(model: VAEClassifier, rateTarget: Float, calibration: Tensor) throws {
        self.model = model; self.rateTarget = rateTarget
        model.eval()
        let (s, shape) = model.encode(calibration)
        latentShape = Array(shape.dropFirst())
        coder = try StaticSymbolCoder(calibration: s.map(UInt16.init), channels: latentShape[0],
                                      symbolsPerChannel: latentShape.dropFirst().reduce(1, *), alphabetSize: model.quantizer.levels)
    }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        try coder.encodeSamples(model.encode(batch).symbols.map(UInt16.init), count: batch.shape[0])
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        var symbols: [UInt8] = []
        symbols.reserveCapacity(payloads.count * coder.symbolsPerSample)
        for b in payloads { symbols += try coder.decode(b[...]).map { UInt8($0) } }
        return model.classify(symbols, shape: [payloads.count] + latentShape)
    }
}

extension CoInferenceExperiment {
    /// The vae-cls system at rate point `point`: the edge session trained on `train` (cached in
    /// `models/vae-cls-L<L>-R<target>-s<seed>/`), its histogram counted on `calibration`.
    func vaeClsSystem(_ point: VAERatePoint, train: LabelledDataset, calibration: LabelledDataset) throws -> (VAEClsSystem, VAEClsSession) {
        let dir = models.appendingPathComponent(String(format: "vae-cls-L%d-R%g-s%d", point.levels, point.target, config.seed))
        let session = try Self.trainedVAECls(point, epochs: config.vaeEpochs, decoder: config.vaeDecoder, seed: config.seed,
                                             train: train, dir: dir, log: log) { body in
            self.timed("edge-train:vae-cls") { body() }
        }
        let (x, _) = calibration.batch(0..<calibration.count)
        return (try VAEClsSystem(model: session.model, rateTarget: point.target, calibration: x), session)
    }

    /// The vae-cls row at `point` on the test set, with the decoder branch's PSNR when it has one.
    func vaeClsRow(_ point: VAERatePoint, train: LabelledDataset, calibration: LabelledDataset, test: LabelledDataset) throws {
        let (s, session) = try vaeClsSystem(point, train: train, calibration: calibration)
        guard !has(s.system, s.split, s.config, s.channel) else { return }
        let row = try timed("measure") { try CoInferenceHarness.evaluate(s, on: test, seed: config.seed) }
        try add(row.withRestoredPSNR(timed("restore") { session.reconstruction(test)?.psnr }))
    }

    /// A vae-cls session at `point` trained for `epochs` on `train`, resumed from (and saved after
    /// every epoch to) `dir`.
    static func trainedVAECls(_ point: VAERatePoint, epochs: Int, decoder: Bool, seed: UInt64, train: LabelledDataset, dir: URL,
                              log: (String) -> Void, timed: (() -> Void) -> Void) throws -> VAEClsSession {
        var vc = VAEClsConfig()
        vc.mask = VAERatePoint.mask(forLevels: point.levels) ?? 0
        vc.levels = point.levels; vc.rateTarget = point.target; vc.epochs = epochs; vc.seed = seed; vc.decoder = decoder
        let session: VAEClsSession
        if VAEClsSession.exists(in: dir), let s = try? VAEClsSession.resume(from: dir), s.config == vc { session = s }
        else { session = try VAEClsSession(config: vc, for: train) }
        while session.epochsDone < epochs {
            timed { session.trainEpoch(train) }
            let s = session.history.last!
            log(String(format: "  [vae-cls %@] epoch %d: CE %.3f  R %.3f bpp  acc %.1f%%", point.description, s.epoch,
                       s.classification, s.rate, 100 * s.accuracy))
            try session.save(to: dir)
        }
        return session
    }
}
