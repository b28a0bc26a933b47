import CDCCodec
import CDCData
import CDCImageCodecs
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// Settings of `cdc experiment rate-accuracy` (the paper's Tables 1–2 and Fig. 4 on one dataset).
public struct ExperimentConfig: Codable, Sendable {
    /// Use only the first N training / test images (0 = all).
    public var trainSubset = 0, testSubset = 0
    public var edge = EdgeConfig()
    public var classifier = ClassifierConfig()
    /// Masks m of the CDC and plain-AE rows.
    public var masks = [0, 1, 2, 3, 4]
    /// Extra α values trained at `alphaSweepMask` (the paper's Fig. 4); the default α is `edge.alpha`.
    public var alphaSweep: [Float] = [1, 8, 48, 200]
    public var alphaSweepMask = 4
    /// Bits per pixel (shared-header accounting) the JPEG / WebP qualities are chosen to hit.
    public var codecTargets: [Double] = [1, 2, 3, 4, 5]
    /// Seeds: each CDC/AE row is trained once per seed.
    public var seeds: [UInt64] = [0]
    public var includeBaselines = true
    public init() {}

    /// A configuration that finishes in minutes on 2 cores (a smoke version of the full run).
    public static var quick: ExperimentConfig {
        var c = ExperimentConfig()
        c.trainSubset = 6000; c.testSubset = 2000
        c.edge.epochs = 3; c.classifier.epochs = 3
        c.alphaSweep = [1, 200]
        c.codecTargets = [1, 2.5, 5]
        return c
    }
}

/// One row of `results.csv`.
public struct ExperimentRow: Codable, Sendable {
    public var method: String              // raw, cdc, ae, jpeg, webp
    public var mask: Int?, alpha: Float?, quality: Int?, seed: UInt64
    /// Total uplink bits per pixel position (codes + labels + decoder + headers; JPEG/WebP:
    /// per-image parts plus the shared header once).
    public var bpp: Double
    /// Bits per pixel of the payload alone: CDC codes (5 − m), or JPEG/WebP whole files.
    public var bppPayload: Double
    public var uplinkBytes: Int, rawBytes: Int
    /// Test accuracy through the same codec (the deployment case), and on raw test images.
    public var accuracy: Float, accuracyRawTest: Float
    public var accuracyLoss: Float
    public var seconds: Double
}

/// Runs the rate–accuracy experiment and writes `results.csv`, `results.md`, `plot.svg`
/// and `timings.json` into a directory.
public final class RateAccuracyExperiment {
    public let config: ExperimentConfig
    public let out: URL
    let log: (String) -> Void
    var timings: [String: Double] = [:]
    public private(set) var rows: [ExperimentRow] = []

    public init(config: ExperimentConfig, out: URL, log: @escaping (String) -> Void) {
        self.config = config; self.out = out; self.log = log
    }

    func timed<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        let t0 = Date()
        defer { timings[phase, default: 0] += Date().timeIntervalSince(t0) }
        return try body()
    }

    /// Runs every phase on `train` / `test` and writes the results.
    public func run(train fullTrain: ImageDataset, test fullTest: ImageDataset) throws {
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let train = config.trainSubset > 0 ? fullTrain.prefix(config.trainSubset) : fullTrain
        let test = config.testSubset > 0 ? fullTest.prefix(config.testSubset) : fullTest
        let pixelsPerImage = train.height * train.width
        let rawBytes = train.count * train.channels * pixelsPerImage + train.count   // 8-bit pixels + 1-byte labels
        log("rate–accuracy: \(train.count) training / \(test.count) test images \(train.channels)×\(train.height)×\(train.width)")

        // Raw baseline: the accuracy every loss is measured against.
        let rawAcc = try timed("classifier:raw") { () throws -> Float in
            let m = try trainClassifier(train, label: "raw", seed: config.seeds[0])
            return CloudClassifier.accuracy(m, on: test)
        }
        add(ExperimentRow(method: "raw", mask: nil, alpha: nil, quality: nil, seed: config.seeds[0],
                          bpp: Double(rawBytes * 8) / Double(train.count * pixelsPerImage), bppPayload: Double(8 * train.channels),
                          uplinkBytes: rawBytes, rawBytes: rawBytes, accuracy: rawAcc, accuracyRawTest: rawAcc,
                          accuracyLoss: 0, seconds: timings["classifier:raw"] ?? 0))

        // CDC and the plain AE at every m, then the α sweep.
        var runs: [(String, Int, Float)] = []
        for m in config.masks { runs.append(("cdc", m, config.edge.alpha)); runs.append(("ae", m, config.edge.alpha)) }
        for a in config.alphaSweep where a != config.edge.alpha { runs.append(("cdc", config.alphaSweepMask, a)) }
        for seed in config.seeds {
            for (method, m, alpha) in runs {
                let t0 = Date()
                var ec = config.edge
                ec.mask = m; ec.alpha = alpha; ec.guidance = method == "cdc"; ec.seed = seed
                let label = "\(method) m=\(m)\(method == "cdc" ? " α=\(alpha)" : "") seed \(seed)"
                let session = EdgeSession(config: ec, channels: train.channels, height: train.height, width: train.width,
                                          classes: train.classes)
                try timed("edge-train") {
                    for e in 1...ec.epochs {
                        let s = session.trainEpoch(train)
                        log(String(format: "  [%@] edge epoch %d: L_A %.4f  L_C %.3f  EC acc %.1f%%", label, e,
                                   s.reconstruction, s.classification, 100 * s.ecAccuracy))
                    }
                }
                let decoder = try EdgeCodec.decoderFile(session.autoencoder, channels: train.channels)
                let hash = ModelIdentity.hash(decoder)
                let (trainC, testC) = try timed("compress") {
                    (try EdgeCodec.compress(session.autoencoder, train, decoderHash: hash),
                     try EdgeCodec.compress(session.autoencoder, test, decoderHash: hash))
                }
                let uplink = trainC.encoded().count + decoder.count
                let cloudAE = try EdgeCodec.loadDecoder(decoder)
                let (restoredTrain, restoredTest) = try timed("restore") {
                    (try EdgeCodec.restore(trainC, decoder: cloudAE, channels: train.channels, height: train.height, width: train.width),
                     try EdgeCodec.restore(testC, decoder: cloudAE, channels: test.channels, height: test.height, width: test.width))
                }
                let model = try timed("classifier:\(method)") { try trainClassifier(restoredTrain, label: label, seed: seed) }
                let acc = CloudClassifier.accuracy(model, on: restoredTest)
                let accRaw = CloudClassifier.accuracy(model, on: test)
                add(ExperimentRow(method: method, mask: m, alpha: method == "cdc" ? alpha : nil, quality: nil, seed: seed,
                                  bpp: Double(uplink * 8) / Double(train.count * pixelsPerImage), bppPayload: Double(5 - m),
                                  uplinkBytes: uplink, rawBytes: rawBytes, accuracy: acc, accuracyRawTest: accRaw,
                                  accuracyLoss: rawAcc - acc, seconds: Date().timeIntervalSince(t0)))
            }
        }

        // JPEG and WebP at qualities whose measured rates bracket the targets.
        if config.includeBaselines {
            let train8 = train.rawImages(), test8 = test.rawImages()
            for kind in ImageCodecKind.allCases {
                let qualities = try timed("codec-search") {
                    try BaselineCodec.qualities(bracketing: config.codecTargets, kind: kind, sample: Array(train8.prefix(500)),
                                                counting: \.bitsPerPixelSharedHeaders)
                }
                for q in Array(Set(qualities)).sorted() {
                    let t0 = Date()
                    let (mTrain, mTest) = try timed("codec") {
                        (try BaselineCodec.measure(train8, kind: kind, quality: q), try BaselineCodec.measure(test8, kind: kind, quality: q))
                    }
                    let decTrain = try ImageDataset.fromRawImages(mTrain.decoded, labels: train.labels, classes: train.classes)
                    let decTest = try ImageDataset.fromRawImages(mTest.decoded, labels: test.labels, classes: test.classes)
                    let model = try timed("classifier:\(kind.rawValue)") {
                        try trainClassifier(decTrain, label: "\(kind.rawValue) q=\(q)", seed: config.seeds[0])
                    }
                    let acc = CloudClassifier.accuracy(model, on: decTest)
                    let accRaw = CloudClassifier.accuracy(model, on: test)
                    let uplink = mTrain.perImageBytes + mTrain.sharedHeaderBytes + train.count
                    add(ExperimentRow(method: kind.rawValue, mask: nil, alpha: nil, quality: q, seed: config.seeds[0],
                                      bpp: Double(uplink * 8) / Double(train.count * pixelsPerImage),
                                      bppPayload: mTrain.bitsPerPixelWholeFiles, uplinkBytes: uplink, rawBytes: rawBytes,
                                      accuracy: acc, accuracyRawTest: accRaw, accuracyLoss: rawAcc - acc,
                                      seconds: Date().timeIntervalSince(t0)))
                }
            }
        }
        try ExperimentReport.write(rows: rows, config: config, timings: timings, to: out)
        log("wrote \(out.path)/results.csv, results.md, plot.svg, timings.json")
    }

    func trainClassifier(_ data: ImageDataset, label: String, seed: UInt64) throws -> Module {
        var cc = config.classifier
        cc.seed = seed
        var lastEpoch = 0
        return try CloudClassifier.train(data, config: cc) { epoch, batch, batches, status in
            if batch == batches && epoch != lastEpoch {
                lastEpoch = epoch
                self.log("  [\(label)] classifier epoch \(epoch)/\(cc.epochs): \(status)")
            }
        }
    }

    func add(_ row: ExperimentRow) {
        rows.append(row)
        log(String(format: "→ %@%@: %.3f bpp, accuracy %.2f%% (raw test %.2f%%), loss %.2f pp", row.method,
                   row.mask.map { " m=\($0)" } ?? row.quality.map { " q=\($0)" } ?? "", row.bpp,
                   100 * row.accuracy, 100 * row.accuracyRawTest, 100 * row.accuracyLoss))
        try? ExperimentReport.write(rows: rows, config: config, timings: timings, to: out)   // partial results survive a crash
    }
}
