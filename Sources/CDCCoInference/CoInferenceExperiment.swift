import CDCCodec
import CDCData
import CDCFileIO
import CDCImageCodecs
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation

/// Settings of `cdc experiment co-inference`.
public struct CoInferenceConfig: Codable, Sendable {
    /// Training images of the classifiers and edges (0 = all), held-out validation images after
    /// them (the partition search is run on these, never on the test set), calibration images
    /// (the first of the training set: histograms are counted on them), test images (0 = all).
    public var trainSubset = 10000, validation = 1000, calibration = 1000, testSubset = 0
    public var classifier = ClassifierConfig()
    public var seed: UInt64 = 0
    /// JPEG/WebP qualities are chosen to hit these bits per pixel (per-image payload).
    public var codecTargets: [Double] = [1, 2]
    /// CDC rows: masks m (m = 4 ≈ 1 bpp coded, m = 3 ≈ 2), α, edge epochs.
    public var cdcMasks = [4, 3]
    public var cdcAlpha: Float = EdgeConfig.defaultAlpha
    public var edgeEpochs = 10
    /// The DISC-like grid: split × threshold τ × bits b.
    public var discSplits = ["S0", "S1", "S2", "S3", "G"]
    public var discTaus: [Float] = [0, 0.01, 0.05, 0.1]
    public var discBits = [1, 2, 3, 4, 6, 8]
    /// The accuracy-loss bound of the search (fraction: 0.01 = 1 pp) against the raw classifier
    /// on the validation images.
    public var maxLoss: Float = 0.01
    /// Uplink bandwidths (bits per second) at which the lowest-latency point is chosen.
    public var bandwidths: [Double] = [2e6, 20e6]
    /// BottleNet++ configurations: split, code channels C′, training channel (`none`,
    /// `awgn=0.1` = σmax, `bec=0.01` = pmax).
    public var bottlenet: [BottleNetSpec] = [
        .init(split: "S2", codeChannels: 2, channel: "bec=0.01"), .init(split: "S2", codeChannels: 4, channel: "bec=0.01"),
        .init(split: "S2", codeChannels: 8, channel: "bec=0.01"), .init(split: "S2", codeChannels: 4, channel: "awgn=0.1"),
        .init(split: "S3", codeChannels: 8, channel: "bec=0.01"), .init(split: "S1", codeChannels: 1, channel: "bec=0.01"),
    ]
    public var bottlenetPhase2Epochs = 2, bottlenetPhase3Epochs = 1
    /// Test channels of the BottleNet++ robustness curves: σ (AWGN; 26 down to 0 dB) and p (BEC).
    public var testSigmas: [Float] = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 1]
    public var testErasures: [Float] = [0, 0.001, 0.01, 0.05, 0.1]
    /// Test images of the channel curves (0 = all): each level is a full forward pass.
    public var channelTestSubset = 2000
    /// vae-cls rate points (L centres, R_target bits per pixel) and training epochs: by default
    /// the edge–cloud loop's m = 4, 3, 2 (L = 2, 3, 6).
    public var vaeRates: [VAERatePoint] = [4, 3, 2].map(VAERatePoint.forMask)
    public var vaeEpochs = 10
    /// Train vae-cls's optional decoder branch too (its PSNR is reported beside the accuracy).
    public var vaeDecoder = true
    /// The system families to run (nil: all): `jpeg`, `webp`, `cdc`, `disc-like`, `bottlenet++`,
    /// `vae-cls`, `vae-cls-ctx3d` (vae-cls trained and coded with the anchor's 3-D masked context
    /// model, at the same rate points). The raw classifier always runs (it is the backbone and the
    /// reference).
    public var systems: [String]? = nil
    /// Every family ``systems`` may name.
    public static let families = ["jpeg", "webp", "cdc", "disc-like", "bottlenet++", "vae-cls", "vae-cls-ctx3d"]
    /// Whether the run includes `family`.
    public func runs(_ family: String) -> Bool { systems?.contains(family) ?? true }

    public init() {
        classifier.epochs = 6
    }

    /// Minutes on 2 cores: small subsets (3000 training, 1000 test images), short training
    /// (4 classifier epochs), a reduced grid, one BottleNet++ configuration.
    public static var quick: CoInferenceConfig {
        var c = CoInferenceConfig()
        c.trainSubset = 3000; c.validation = 500; c.calibration = 500; c.testSubset = 1000
        c.classifier.epochs = 4
        c.cdcMasks = [4]; c.edgeEpochs = 4
        c.channelTestSubset = 500
        c.discSplits = ["S1", "S2", "S3", "G"]; c.discTaus = [0, 0.05]; c.discBits = [1, 2, 4, 8]
        c.bottlenet = [.init(split: "S2", codeChannels: 4, channel: "bec=0.01")]
        c.bottlenetPhase2Epochs = 1; c.bottlenetPhase3Epochs = 0
        c.testSigmas = [0, 0.1, 0.3]; c.testErasures = [0, 0.01, 0.1]
        c.vaeRates = [VAERatePoint.forMask(4)]; c.vaeEpochs = 4
        return c
    }
}

/// One BottleNet++ configuration of the experiment.
public struct BottleNetSpec: Codable, Sendable, Hashable {
    public var split: String, codeChannels: Int
    /// `none`, `awgn=σmax` or `bec=pmax`.
    public var channel: String
    public init(split: String, codeChannels: Int, channel: String) {
        self.split = split; self.codeChannels = codeChannels; self.channel = channel
    }

    /// The training channel's kind and level (`none` → level 0).
    public var channelKind: (kind: String, level: Float)? { Self.parse(channel) }

    static func parse(_ channel: String) -> (kind: String, level: Float)? {
        if channel == "none" { return ("none", 0) }
        let f = channel.split(separator: "=")
        guard f.count == 2, ["awgn", "bec"].contains(String(f[0])), let v = Float(f[1]), v >= 0, f[0] == "awgn" || v <= 1 else { return nil }
        return (String(f[0]), v)
    }

    /// Whether `channel` is `none`, `awgn=σ` (σ ≥ 0) or `bec=p` (0 ≤ p ≤ 1).
    public static func channelIsValid(_ channel: String) -> Bool { parse(channel) != nil }
}

/// `cdc experiment co-inference`: trains what each system needs (once; models cached in
/// `out/models`, so a rerun resumes), measures every system on the test set with
/// ``CoInferenceHarness``, runs the DISC-like partition search on validation images, and writes
/// `results.csv`, `search.csv`, `results.md`, `plot.svg`, `channel-awgn.svg`, `channel-bec.svg` and `timings.json`.
/// Rows already in `results.csv` are kept and not measured again.
public final class CoInferenceExperiment {
    public let config: CoInferenceConfig
    public let out: URL
    let log: (String) -> Void
    public private(set) var rows: [CoInferenceRow] = []
    public private(set) var searchRows: [CoInferenceRow] = []
    var timings: [String: Double] = [:]
    var models: URL { out.appendingPathComponent("models") }

    public init(config: CoInferenceConfig, out: URL, log: @escaping (String) -> Void) {
        self.config = config; self.out = out; self.log = log
    }

    func timed<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        let t0 = Date()
        defer { timings[phase, default: 0] += Date().timeIntervalSince(t0) }
        return try body()
    }

    /// Whether a row with these keys was measured already (a resumed run).
    func has(_ system: String, _ split: String, _ config: String, _ channel: String, trainChannel: String? = nil) -> Bool {
        rows.contains {
            $0.system == system && $0.split == split && $0.config == config && $0.channel == channel && $0.seed == self.config.seed
                && $0.trainChannel == trainChannel
        }
    }

    func add(_ row: CoInferenceRow) throws {
        rows.append(row)
        log(String(format: "→ %@ %@ %@ %@: %.0f bits/sample (%.3f bpp), accuracy %.2f%%, device %.2f ms, server %.2f ms",
                   row.system, row.split, row.config, row.channel, row.bitsPerSample, row.bitsPerPixel, 100 * row.accuracy,
                   row.deviceMs, row.serverMs))
        try write()
    }

    func measure(_ s: any CoInferenceSystem, on test: LabelledDataset, trainChannel: String? = nil) throws {
        guard !has(s.system, s.split, s.config, s.channel, trainChannel: trainChannel) else { return }
        let row = try timed("measure") { try CoInferenceHarness.evaluate(s, on: test, seed: config.seed, trainChannel: trainChannel) }
        try add(row)
    }

    /// Runs every system; `train` and `test` are the dataset's full training and test sets.
    public func run(train fullTrain: LabelledDataset, test fullTest: LabelledDataset) throws {
        guard !fullTrain.isAudio else {
            throw PipelineError("the co-inference experiment runs on images (resnext-11 split points); audio is not supported yet")
        }
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        let csv = out.appendingPathComponent("results.csv")
        if let text = try? String(contentsOf: csv, encoding: .utf8) {
            rows = try CoInferenceReport.rows(fromCSV: text)
            if !rows.isEmpty { log("resuming: \(rows.count) rows of \(csv.path) kept") }
        }
        if let text = try? String(contentsOf: out.appendingPathComponent("search.csv"), encoding: .utf8) {
            searchRows = try CoInferenceReport.rows(fromCSV: text)
        }
        // A resumed run adds its phase times to those of the runs before it.
        struct Saved: Decodable { var phaseSeconds: [String: Double] }
        if let data = try? Data(contentsOf: out.appendingPathComponent("timings.json")),
           let saved = try? JSONDecoder().decode(Saved.self, from: data) {
            timings.merge(saved.phaseSeconds, uniquingKeysWith: +)
        }
        let n = config.trainSubset > 0 ? min(config.trainSubset, fullTrain.count) : fullTrain.count
        let v = min(config.validation, max(fullTrain.count - n, 0))
        guard v > 0 || config.validation == 0 else {
            throw PipelineError("no training images left after the \(n) training ones for validation: lower --train-subset")
        }
        let train = fullTrain.prefix(n), validation = fullTrain.subset(n..<(n + v))
        let calibration = train.prefix(min(config.calibration, train.count))
        let test = config.testSubset > 0 ? fullTest.prefix(min(config.testSubset, fullTest.count)) : fullTest
        log("co-inference: \(train.count) training / \(validation.count) validation / \(calibration.count) calibration / "
            + "\(test.count) test images (\(train.geometry)), seed \(config.seed)")
        let sample = [train.channels, train.height, train.width]

        // The raw-data classifier: the backbone of every split system and the reference accuracy.
        let raw = try classifier(named: "raw", on: train)
        try measure(RawSystem(classifier: raw, sampleShape: sample), on: test)

        // JPEG and WebP at test time through the raw classifier.
        let sample8 = Array(train.prefix(min(500, train.count)).rawImages())
        for kind in ImageCodecKind.allCases where config.runs(kind.rawValue) {
            let qualities = try timed("codec-search") {
                try BaselineCodec.qualities(bracketing: config.codecTargets, kind: kind, sample: sample8, counting: \.bitsPerPixelSharedHeaders)
            }
            for q in Array(Set(qualities)).sorted() {
                try measure(try ImageCodecSystem(kind: kind, quality: q, classifier: raw, channels: train.channels,
                                                 height: train.height, width: train.width), on: test)
            }
        }

        // CDC: the edge's codes, the cloud's classifier trained on restored images.
        for m in config.cdcMasks where config.runs("cdc") {
            let cdc = try cdcSystem(mask: m, train: train, calibration: calibration)
            try measure(cdc, on: test)
        }

        // vae-cls: encoder and latent classifier trained jointly under the rate constraint.
        for point in config.vaeRates where config.runs("vae-cls") {
            try vaeClsRow(point, train: train, calibration: calibration, test: test)
        }
        for point in config.vaeRates where config.runs("vae-cls-ctx3d") {
            try vaeClsRow(point, rateModel: .context3d, train: train, calibration: calibration, test: test)
        }

        // DISC-like: the grid on validation images, then the chosen points on the test set.
        if config.runs("disc-like") { try discRows(raw: raw, calibration: calibration, validation: validation, test: test) }

        // BottleNet++: trained per configuration from the raw classifier, tested over its channels;
        // beside it, the raw classifier fine-tuned as its phase 3 fine-tunes it.
        if config.runs("bottlenet++") {
            try fineTunedRawRow(train: train, test: test)
            for spec in config.bottlenet {
                try bottlenetRows(spec, train: train, calibration: calibration, test: test)
            }
        }
        try write()
        log("wrote \(out.path)/results.csv, search.csv, results.md, plot.svg, channel-awgn.svg, channel-bec.svg, timings.json")
    }

    // MARK: Phases

    /// A classifier trained on `data` (cached as `models/<name>-s<seed>.safetensors`).
    func classifier(named name: String, on data: LabelledDataset) throws -> Module {
        let url = models.appendingPathComponent("\(name)-s\(config.seed).safetensors")
        var cc = config.classifier
        cc.seed = config.seed
        if FileManager.default.fileExists(atPath: url.path) {
            let m = try CloudClassifier.make(cc, for: data)
            _ = try Checkpoint.load(into: m, from: url)
            log("  [\(name)] classifier loaded from \(url.lastPathComponent)")
            return m.eval()
        }
        var lastEpoch = 0
        let m = try timed("classifier:\(name)") {
            try CloudClassifier.train(data, config: cc) { epoch, batch, batches, status in
                if batch == batches && epoch != lastEpoch {
                    lastEpoch = epoch
                    self.log("  [\(name)] classifier epoch \(epoch)/\(cc.epochs): \(status)")
                }
            }
        }
        try Checkpoint.save(m, to: url, metadata: ["model": cc.modelName(for: data), "trained_on": name])
        return m
    }

    /// The CDC system at mask `m`: the edge session (cached in `models/cdc-m<m>-s<seed>/`),
    /// the cloud's classifier trained on the restored training images.
    func cdcSystem(mask m: Int, train: LabelledDataset, calibration: LabelledDataset) throws -> CDCSystem {
        let dir = models.appendingPathComponent("cdc-m\(m)-s\(config.seed)")
        var ec = EdgeConfig()
        ec.mask = m; ec.alpha = config.cdcAlpha; ec.seed = config.seed; ec.epochs = config.edgeEpochs
        let session: EdgeSession
        if let s = try? EdgeSession.resume(from: dir), s.config.mask == m { session = s } else { session = try EdgeSession(config: ec, for: train) }
        while session.epochsDone < config.edgeEpochs {
            let s = timed("edge-train") { session.trainEpoch(train) }
            log(String(format: "  [cdc m=%d] edge epoch %d: L_A %.4f  L_C %.3f  EC acc %.1f%%", m, session.epochsDone,
                       s.reconstruction, s.classification, 100 * s.ecAccuracy))
            try session.save(to: dir)
        }
        let decoder = try EdgeCodec.decoderFile(session)
        let container = try timed("compress") { try EdgeCodec.compress(session.autoencoder, train, decoderHash: ModelIdentity.hash(decoder)) }
        let restored = try timed("restore") { try EdgeCodec.restore(container, decoderFile: decoder) }
        let cls = try classifier(named: "cdc-m\(m)", on: restored)
        let (x, _) = calibration.batch(0..<calibration.count)
        return try CDCSystem(encoder: session.autoencoder, decoderFile: decoder, classifier: cls, calibration: x,
                             label: String(format: "alpha=%g", config.cdcAlpha))
    }

    /// The DISC-like grid over split × τ × b on the validation images (`search.csv`), then on the
    /// test set: the fewest-bits point within the loss bound (and its zlib twin), the
    /// lowest-latency point at each bandwidth, the most accurate points at about 1 and 2 bpp,
    /// and the bits frontier up to the raw image's size.
    func discRows(raw: Module, calibration: LabelledDataset, validation: LabelledDataset, test: LabelledDataset) throws {
        guard validation.count > 0 else { log("no validation images: DISC-like search skipped"); return }
        let split = try SplitClassifier(raw)
        // The reference of the bound: the raw classifier on the validation images (a row of search.csv).
        if !searchRows.contains(where: { $0.system == "raw" }) {
            searchRows.append(try CoInferenceHarness.evaluate(RawSystem(classifier: raw, sampleShape: Array(calibration.batch(0..<1).0.shape.dropFirst())),
                                                              on: validation, seed: config.seed))
        }
        let reference = CoInferenceReport.reference(searchRows)
        var grid: [String: DISCLikeSystem] = [:]
        let (cx, _) = calibration.batch(0..<calibration.count)
        for point in config.discSplits {
            let features = try Autograd.noGrad { try split.device(cx, to: point) }
            for tau in config.discTaus {
                for b in config.discBits {
                    let s = try DISCLikeSystem(classifier: split, split: point, tau: tau, bits: b, calibration: features)
                    grid[s.key] = s
                    if searchRows.contains(where: { $0.split == point && $0.config == s.config && $0.system == s.system }) { continue }
                    let row = try timed("disc-search") { try CoInferenceHarness.evaluate(s, on: validation, seed: config.seed) }
                    searchRows.append(row)
                    log(String(format: "  [disc-like search] %@ %@: %.0f bits, validation %.2f%% (raw %.2f%%)", point, s.config,
                               row.bitsPerSample, 100 * row.accuracy, 100 * reference))
                    try write()
                }
            }
        }
        let searched = searchRows.filter { $0.system == "disc-like" }
        var chosen: [(CoInferenceRow, String)] = []
        if let best = PartitionSearch.fewestBits(searched, reference: reference, maxLoss: config.maxLoss) {
            chosen.append((best, "fewest bits"))
        }
        for bw in config.bandwidths {
            if let best = PartitionSearch.lowestLatency(searched, bitsPerSecond: bw, reference: reference, maxLoss: config.maxLoss) {
                chosen.append((best, String(format: "lowest latency at %g Mbit/s", bw / 1e6)))
            }
        }
        for target in [784.0, 1568.0].map({ $0 * Double(validation.positionsPerSample) / 784 }) {
            if let best = searched.filter({ $0.bitsPerSample <= target * 1.1 }).max(by: { $0.accuracy < $1.accuracy }) {
                chosen.append((best, String(format: "most accurate at ≤ %.0f bits", target * 1.1)))
            }
        }
        // The frontier up to the raw image's bits (points above them stay in search.csv only).
        let imageBits = searchRows.first { $0.system == "raw" }?.bitsPerSample ?? .infinity
        for r in PartitionSearch.bitsFrontier(searched) where r.bitsPerSample <= imageBits { chosen.append((r, "frontier")) }
        var seen = Set<String>()
        for (r, why) in chosen {
            let key = r.split + " " + r.config
            guard seen.insert(key).inserted, let s = grid.values.first(where: { $0.split == r.split && $0.config == r.config }) else { continue }
            log("  [disc-like] \(key) on the test set (\(why))")
            try measure(s, on: test)
            if why == "fewest bits" {
                let z = try DISCLikeSystem(classifier: split, split: s.split, tau: s.tau, bits: s.bits, coding: .zlib,
                                           calibration: Autograd.noGrad { try split.device(cx, to: s.split) })
                try measure(z, on: test)
            }
        }
    }

    func write() throws {
        try CoInferenceReport.write(rows: rows, searchRows: searchRows, config: config, timings: timings, to: out)
    }
}
