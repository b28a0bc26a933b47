import CDCData
import CDCImageCodecs
import CDCNN
import CDCPipeline
import CDCTensor
import CDCWire
import Foundation
import Synchronization

/// The co-inference systems of one trained experiment directory (`cdc experiment co-inference
/// --out DIR`), as both sides of a deployment build them: the edge to encode, the cloud to
/// classify. Systems are named by their ``CoInferenceSystem/key``
/// (`system/split/config/channel`): `raw`, CDC (one per trained mask), vae-cls and vae-cls-ctx3d (one
/// per trained rate point) and BottleNet++ (one per
/// trained configuration, at any test channel) come from `DIR/models`; DISC-like, JPEG and WebP
/// need no training and are built from the key itself, at any setting.
///
/// Histograms (DISC-like, CDC, vae-cls) are counted on the first `calibration` training images on both
/// sides — the same images give the same tables, and their serialized size is what the
/// results report as the one-off transfer.
public final class CoInferenceDeployment {
    public let directory: URL
    public let seed: UInt64
    public let raw: Module
    public let sampleShape: [Int]
    public let classes: Int
    let train: LabelledDataset
    let calibration: Tensor
    var cache: [String: any CoInferenceSystem] = [:]
    var models: URL { directory.appendingPathComponent("models") }

    /// Loads the raw classifier of `directory` (trained with `seed`); `train` is the training set
    /// the experiment used (for the calibration images and the classifier's shape).
    public init(directory: URL, train: LabelledDataset, calibration: Int = 1000, seed: UInt64 = 0) throws {
        self.directory = directory; self.seed = seed; self.train = train
        let url = directory.appendingPathComponent("models/raw-s\(seed).safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw SplitError("\(url.path) is missing: train the systems first with `cdc experiment co-inference --out \(directory.path)`")
        }
        var cc = ClassifierConfig()
        cc.seed = seed
        raw = try CloudClassifier.make(cc, for: train)
        _ = try Checkpoint.load(into: raw, from: url)
        raw.eval()
        sampleShape = [train.channels, train.height, train.width]
        classes = train.classes
        let n = min(calibration, train.count)
        self.calibration = train.batch(0..<n).0
    }

    /// Every trained system at its default test channel, plus raw: what the cloud lists.
    public func trainedSystems() throws -> [any CoInferenceSystem] {
        var out: [any CoInferenceSystem] = [try system(forKey: "raw/input/8-bit/none")]
        let files = (try? FileManager.default.contentsOfDirectory(atPath: models.path)) ?? []
        for f in files.sorted() where f.hasPrefix("cdc-m") && !f.hasSuffix(".safetensors") {
            if let m = Int(f.dropFirst(5).prefix { $0.isNumber }), let s = try? cdc(mask: m) { out.append(s) }
        }
        for f in files.sorted() where (f.hasPrefix("vae-cls-L") || f.hasPrefix("vae-cls-ctx3d-L")) && f.hasSuffix("-s\(seed)") {
            if let s = try? vaeCls(directory: models.appendingPathComponent(f)) { out.append(s) }
        }
        return out
    }

    /// The system named `key`, built on first use and kept.
    public func system(forKey key: String) throws -> any CoInferenceSystem {
        if let s = cache[key] { return s }
        let f = key.split(separator: "/", omittingEmptySubsequences: false).map { String($0).replacingOccurrences(of: "_", with: " ") }
        guard f.count == 4 else { throw SplitError("a system key is system/split/config/channel, not '\(key)'") }
        let (system, split, config, channel) = (f[0], f[1], f[2], f[3])
        let settings = Self.settings(config)
        let s: any CoInferenceSystem
        switch system {
        case "raw":
            s = RawSystem(classifier: raw, sampleShape: sampleShape)
        case "jpeg", "webp":
            guard let q = settings["q"].flatMap(Int.init), (1...100).contains(q) else { throw SplitError("\(system) needs q=1…100 in '\(config)'") }
            s = try ImageCodecSystem(kind: ImageCodecKind(rawValue: system)!, quality: q, classifier: raw,
                                     channels: sampleShape[0], height: sampleShape[1], width: sampleShape[2])
        case "cdc":
            guard let m = settings["m"].flatMap(Int.init) else { throw SplitError("cdc needs m=… in '\(config)'") }
            s = try cdc(mask: m)
        case "disc-like", "disc-like-zlib":
            guard let tau = settings["tau"].flatMap(Float.init), let b = settings["b"].flatMap(Int.init) else {
                throw SplitError("\(system) needs tau=… b=… in '\(config)'")
            }
            let splitter = try SplitClassifier(raw)
            let features = try Autograd.noGrad { try splitter.device(calibration, to: split) }
            s = try DISCLikeSystem(classifier: splitter, split: split, tau: tau, bits: b, coding: system == "disc-like" ? .rans : .zlib,
                                   calibration: features)
        case "vae-cls", "vae-cls-ctx3d":
            guard let l = settings["L"].flatMap(Int.init), let r = settings["R"].flatMap(Float.init) else {
                throw SplitError("\(system) needs L=… R=… in '\(config)'")
            }
            let name = CoInferenceExperiment.vaeClsDirectory(VAERatePoint(levels: l, target: r),
                                                             rateModel: system == "vae-cls" ? .factorized : .context3d, seed: seed)
            s = try vaeCls(directory: models.appendingPathComponent(name))
        default:
            if let bn = try bottlenet(system: system, split: split, config: config, channel: channel) { s = bn; break }
            throw SplitError("unknown system '\(system)' (raw, jpeg, webp, cdc, vae-cls, vae-cls-ctx3d, disc-like, disc-like-zlib, bottlenet++, bottlenet++-coded)")
        }
        guard s.key == key || system == "cdc" || system.hasPrefix("bottlenet") else {
            throw SplitError("'\(key)' names \(s.key): write the key as the catalog does")
        }
        cache[key] = s
        return s
    }

    /// `a=1 b=2` → ["a": "1", "b": "2"].
    static func settings(_ config: String) -> [String: String] {
        var out: [String: String] = [:]
        for item in config.split(separator: " ") {
            let kv = item.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    /// vae-cls from its trained session directory (`models/vae-cls-L<L>-R<target>-s<seed>/`, or
    /// `vae-cls-ctx3d-…`).
    func vaeCls(directory dir: URL) throws -> VAEClsSystem {
        let session = try VAEClsSession.resume(from: dir)
        let target = session.config.ratePoint.target
        let s = try VAEClsSystem(model: session.model, rateTarget: target, calibration: calibration)
        cache[s.key] = s
        return s
    }

    /// CDC at mask `m` from `models/cdc-m<m>-s<seed>/` and its classifier.
    func cdc(mask m: Int) throws -> CDCSystem {
        if let s = cache.values.first(where: { ($0 as? CDCSystem)?.encoder.quantizer.mask == m }) as? CDCSystem { return s }
        let dir = models.appendingPathComponent("cdc-m\(m)-s\(seed)")
        let session = try EdgeSession.resume(from: dir)
        let decoder = try EdgeCodec.decoderFile(session)
        var cc = ClassifierConfig()
        cc.seed = seed
        let cls = try CloudClassifier.make(cc, for: train)
        _ = try Checkpoint.load(into: cls, from: models.appendingPathComponent("cdc-m\(m)-s\(seed).safetensors"))
        let s = try CDCSystem(encoder: session.autoencoder, decoderFile: decoder, classifier: cls.eval(), calibration: calibration,
                              label: String(format: "alpha=%g", session.config.alpha))
        cache[s.key] = s
        return s
    }
}

/// The cloud's ``InferenceBackend`` over a ``CoInferenceDeployment``: one batch at a time (the
/// engine's kernels use every core already), timing only decoding and classification.
public final class CoInferenceServer: InferenceBackend, @unchecked Sendable {
    let deployment: CoInferenceDeployment
    /// Serializes every use of the deployment (its systems hold tensors and caches).
    let lock = Mutex(())
    let infos: [InferenceSystemInfo]

    public init(_ deployment: CoInferenceDeployment) throws {
        infos = try deployment.trainedSystems().map { Self.info($0, deployment) }
        self.deployment = deployment
    }

    static func info(_ s: any CoInferenceSystem, _ d: CoInferenceDeployment) -> InferenceSystemInfo {
        InferenceSystemInfo(key: s.key, system: s.system, split: s.split, config: s.config, channel: s.channel,
                            oneOffBytes: s.oneOffBytes, sampleShape: d.sampleShape, classes: d.classes)
    }

    public var catalog: [InferenceSystemInfo] { infos }

    public func classify(system key: String, payloads: [[UInt8]]) async throws -> InferenceReply {
        let d = deployment
        return try lock.withLock { _ throws(InferenceError) -> InferenceReply in
            let s: any CoInferenceSystem
            do { s = try d.system(forKey: key) } catch { throw InferenceError.unknownSystem("\(key): \(error)") }
            let t0 = Date()
            let scores: Tensor
            do { scores = try s.classify(payloads) } catch { throw InferenceError.badPayload("\(error)") }
            return InferenceReply(system: key, count: payloads.count, classes: scores.shape.last ?? 0, scores: scores.values,
                                  serverMilliseconds: Date().timeIntervalSince(t0) * 1000)
        }
    }
}
