import CDCAudioCodecs
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
    /// The defaults are the README's full run: 10 000 training images, all 10 000 test images, three
    /// seeds, sized to finish in about two hours on 2 cores.
    public var trainSubset = 10000, testSubset = 0
    /// Images held out for choosing α: training images after the subset (or the subset's last ones
    /// when it covers the whole training set). Never the test set.
    public var validation = 2000
    public var edge = EdgeConfig()
    public var classifier = ClassifierConfig()
    /// Masks m of the CDC and plain-AE rows.
    public var masks = [0, 1, 2, 3, 4]
    /// α values trained at `alphaSweepMask` with the first seed (the paper's Fig. 4), besides `edge.alpha`.
    public var alphaSweep: [Float] = [2, 8, 24, 48, 200]
    public var alphaSweepMask = 4
    /// Choose the α of every CDC row from the sweep, by validation accuracy (else `edge.alpha`).
    public var autoAlpha = true
    /// Bits per pixel (shared-header accounting) the JPEG / WebP qualities are chosen to hit.
    public var codecTargets: [Double] = [1, 2]
    /// Audio: the Opus bitrates of the baseline rows, kbit/s (μ-law, 8 bits per sample, is
    /// always a row beside them). Optional so that configurations written before it still read.
    public var opusBitrates: [Int]? = nil
    /// The Opus bitrates of the audio rows (kbit/s): ``opusBitrates`` or 6, 8, 12, 16.
    public var audioBitrates: [Int] { opusBitrates ?? [6, 8, 12, 16] }
    /// Rate weights λ of extra CDC rows trained with the learned prior and coded under it, at
    /// every mask of `rateMasks`.
    public var rateWeights: [Float] = []
    public var rateMasks = [4]
    /// Add an entropy-coded row (`cdc-coded`, `ae-coded`: same codes, rANS under measured
    /// histograms) beside every CDC and AE row.
    public var codedRows = true
    /// Train the plain-AE rows (the paper's baseline without guidance).
    public var includeAE = true
    /// Seeds: the raw, CDC and AE rows are trained once per seed.
    public var seeds: [UInt64] = [0, 1, 2]
    public var includeBaselines = true
    /// False skips the raw-data classifiers: for rows to be merged into the `results.csv` of a
    /// run with the same settings that has them (`cdc experiment report` then measures the
    /// losses). Optional so that configurations written before it existed still read.
    public var includeRaw: Bool? = nil
    /// Masks m of the vae-cls rows (each the rate point ``VAERatePoint/forMask(_:)``, trained once
    /// per seed; nil or empty: no vae-cls rows), and their training epochs (nil: `edge.epochs`).
    public var vaeMasks: [Int]? = nil
    public var vaeEpochs: Int? = nil
    /// The rate models the vae-cls rows are trained with, each its own rows (nil: the factorized
    /// prior only): `vae-cls`/`vae-cls-coded` for the prior, `vae-cls-ctx3d`/`vae-cls-ctx3d-coded`
    /// for the 3-D masked context model, whose coded row is coded under the context model itself.
    public var vaeRateModels: [VAERateModel]? = nil
    /// Samples per second of the data when it is audio (set by the run; nil for images): the
    /// report then speaks of bits per audio sample and checks the audio claims.
    public var sampleRate: Int? = nil
    /// The engine's arithmetic during the run (set by the run; nil in files written before it
    /// was recorded, which ran in fp32).
    public var precision: ComputePrecision? = nil
    public init() {
        edge.epochs = 10
        classifier.epochs = 6
    }

    /// A configuration that finishes in minutes on 2 cores (a smoke version of the full run).
    public static var quick: ExperimentConfig {
        var c = ExperimentConfig()
        c.trainSubset = 5000; c.testSubset = 2000; c.validation = 1000
        c.edge.epochs = 3; c.classifier.epochs = 3
        c.alphaSweep = [8]
        c.codecTargets = [1, 2]
        c.seeds = [0]
        return c
    }

    /// The audio settings where this configuration still has the image defaults: α 16 (the
    /// paper's for audio) with a sweep over 4, 16 and 48, a tenth of the training clips held out
    /// for choosing α (audio sets are small), batches of 64, and longer edge training (40 epochs:
    /// an edge epoch over 1 000 clips takes seconds, and the elementary classifier on raw
    /// waveforms learns slowly) with 12 classifier epochs. What the user gave is kept.
    public mutating func adaptForAudio(trainClips: Int, given: AudioSettingsGiven) {
        if !given.alpha { edge.alpha = EdgeConfig.defaultAudioAlpha }
        if !given.sweep { alphaSweep = [4, 16, 48] }
        if !given.validation { validation = max(1, trainClips / 10) }
        if !given.edgeEpochs { edge.epochs = 40 }
        if !given.classifierEpochs { classifier.epochs = 12 }
        edge.batchSize = min(edge.batchSize, 64)
        classifier.batchSize = min(classifier.batchSize, 64)
    }

    /// Which settings of an audio run the user chose (``adaptForAudio(trainClips:given:)`` keeps them).
    public struct AudioSettingsGiven: Sendable {
        public var alpha = false, sweep = false, validation = false, edgeEpochs = false, classifierEpochs = false
        public init() {}
    }

    enum CodingKeys: String, CodingKey {
        case trainSubset, testSubset, validation, edge, classifier, masks, alphaSweep, alphaSweepMask, autoAlpha, codecTargets
        case opusBitrates, rateWeights, rateMasks, codedRows, includeAE, seeds, includeBaselines, includeRaw, vaeMasks, vaeEpochs
        case vaeRateModels, sampleRate, precision
    }

    /// Reads configurations written by earlier versions too (the `timings.json` of older result
    /// directories, for `cdc experiment report`): a missing key keeps its default.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, into value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try read(.trainSubset, into: &trainSubset); try read(.testSubset, into: &testSubset)
        try read(.validation, into: &validation); try read(.edge, into: &edge); try read(.classifier, into: &classifier)
        try read(.masks, into: &masks); try read(.alphaSweep, into: &alphaSweep); try read(.alphaSweepMask, into: &alphaSweepMask)
        try read(.autoAlpha, into: &autoAlpha); try read(.codecTargets, into: &codecTargets)
        try read(.rateWeights, into: &rateWeights); try read(.rateMasks, into: &rateMasks); try read(.codedRows, into: &codedRows)
        try read(.includeAE, into: &includeAE); try read(.seeds, into: &seeds); try read(.includeBaselines, into: &includeBaselines)
        opusBitrates = try c.decodeIfPresent([Int].self, forKey: .opusBitrates)
        includeRaw = try c.decodeIfPresent(Bool.self, forKey: .includeRaw)
        vaeMasks = try c.decodeIfPresent([Int].self, forKey: .vaeMasks)
        vaeEpochs = try c.decodeIfPresent(Int.self, forKey: .vaeEpochs)
        vaeRateModels = try c.decodeIfPresent([VAERateModel].self, forKey: .vaeRateModels)
        sampleRate = try c.decodeIfPresent(Int.self, forKey: .sampleRate)
        precision = try c.decodeIfPresent(ComputePrecision.self, forKey: .precision)
    }

    /// The α candidates of the sweep, ascending, `edge.alpha` included.
    public var sweepAlphas: [Float] { Array(Set(alphaSweep + [edge.alpha])).sorted() }
}

/// One row of `results.csv`.
public struct ExperimentRow: Codable, Sendable {
    public var method: String              // raw, cdc, ae, jpeg, webp, opus, mulaw
    /// Mask of CDC/AE rows, α of CDC rows, quality of JPEG/WebP rows, bitrate (kbit/s) of Opus rows.
    public var mask: Int?, alpha: Float?, quality: Int?, seed: UInt64
    /// Total uplink bits per pixel position, or per audio sample (codes + labels + decoder +
    /// headers; JPEG/WebP: per-image parts plus the shared header once; Opus: packets and framing).
    public var bpp: Double
    /// Bits per pixel (audio sample) of the payload alone: CDC codes (5 − m), JPEG/WebP whole
    /// files, Opus packets and framing, μ-law bytes.
    public var bppPayload: Double
    public var uplinkBytes: Int, rawBytes: Int
    /// Test accuracy through the same codec (the deployment case), and on raw test images.
    public var accuracy: Float, accuracyRawTest: Float
    /// Against the mean accuracy of the raw-data classifiers over the seeds.
    public var accuracyLoss: Float
    /// Accuracy on the held-out validation images through the same codec (what α is chosen by).
    public var accuracyValidation: Float?
    /// Rate weight λ of the learned prior's rate term (coded rows trained with one).
    public var rateWeight: Float? = nil
    /// Whether this row belongs to the α sweep only (its α is not the one chosen for the table).
    public var sweep: Bool = false
    public var seconds: Double
    /// The edge autoencoder of CDC / AE rows (`cdc-ae`, `cdc-ae-wide`); nil for the others.
    public var autoencoder: String? = nil
}

/// Runs the rate–accuracy experiment and writes `results.csv`, `results.md`, `plot.svg`
/// and `timings.json` into a directory.
public final class RateAccuracyExperiment {
    public private(set) var config: ExperimentConfig
    public let out: URL
    let log: (String) -> Void
    var timings: [String: Double] = [:]
    public private(set) var rows: [ExperimentRow] = []
    /// The α of the CDC rows (chosen from the sweep when `autoAlpha`).
    public private(set) var chosenAlpha: Float
    /// Rows an earlier, interrupted run of the same settings left in `out`: each is taken over
    /// instead of being trained again.
    var kept: [ExperimentRow] = []

    public init(config: ExperimentConfig, out: URL, log: @escaping (String) -> Void) {
        self.config = config; self.out = out; self.log = log
        chosenAlpha = config.edge.alpha
    }

    func timed<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        let t0 = Date()
        defer { timings[phase, default: 0] += Date().timeIntervalSince(t0) }
        return try body()
    }

    /// Training, validation and test images of a run.
    struct Data3 { var train: LabelledDataset, validation: LabelledDataset, test: LabelledDataset }

    /// Runs every phase on `train` / `test` and writes the results.
    public func run(train fullTrain: LabelledDataset, test fullTest: LabelledDataset) throws {
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        config.sampleRate = fullTrain.sampleRate
        config.precision = Engine.precision
        try takeOverEarlierRun()
        let n = config.trainSubset > 0 ? min(config.trainSubset, fullTrain.count) : fullTrain.count
        let v = max(0, config.validation)
        let data: Data3
        if n + v <= fullTrain.count {
            data = Data3(train: fullTrain.prefix(n), validation: fullTrain.subset(n..<(n + v)),
                         test: config.testSubset > 0 ? fullTest.prefix(config.testSubset) : fullTest)
        } else {
            guard v < n else { throw PipelineError("validation (\(v)) must be smaller than the training set (\(n))") }
            data = Data3(train: fullTrain.prefix(n - v), validation: fullTrain.subset((n - v)..<n),
                         test: config.testSubset > 0 ? fullTest.prefix(config.testSubset) : fullTest)
        }
        let train = data.train, test = data.test
        let pixelsPerImage = train.positionsPerSample
        let rawBytes = train.rawBytes   // 8-bit pixels or 16-bit PCM, + 1-byte labels
        log("rate–accuracy: \(train.count) training / \(data.validation.count) validation / \(test.count) test samples "
            + "(\(train.geometry)), seeds \(config.seeds.map(String.init).joined(separator: ","))")

        // Raw baseline, once per seed: the accuracy every loss is measured against (their mean).
        for seed in config.seeds where config.includeRaw ?? true {
            let earlier = takeKept { $0.method == "raw" && $0.seed == seed }
            if !earlier.isEmpty { earlier.forEach(add); continue }
            let t0 = Date()
            let (acc, accVal) = try timed("classifier:raw") { () throws -> (Float, Float) in
                let m = try trainClassifier(train, label: "raw seed \(seed)", seed: seed, validation: data.validation)
                return (CloudClassifier.accuracy(m, on: test),
                        data.validation.count > 0 ? CloudClassifier.accuracy(m, on: data.validation) : .nan)
            }
            let row = ExperimentRow(method: "raw", mask: nil, alpha: nil, quality: nil, seed: seed,
                                    bpp: Double(rawBytes * 8) / Double(train.count * pixelsPerImage), bppPayload: Double(train.rawBitsPerValue * train.channels),
                                    uplinkBytes: rawBytes, rawBytes: rawBytes, accuracy: acc, accuracyRawTest: acc,
                                    accuracyLoss: 0, accuracyValidation: accVal, seconds: Date().timeIntervalSince(t0))
            add(row)
        }

        // The α sweep at one mask with the first seed; α of the CDC rows chosen by validation accuracy.
        let seed0 = config.seeds[0]
        var sweepRows: [Float: ExperimentRow] = [:]
        let candidates = config.sweepAlphas
        if candidates.count > 1 && config.masks.contains(config.alphaSweepMask) {
            for a in candidates {
                let rows = try edgeRows(method: "cdc", mask: config.alphaSweepMask, alpha: a, seed: seed0, data: data,
                                        rawBytes: rawBytes, coded: false)
                sweepRows[a] = rows[0]
                rows.forEach(add)
            }
            if config.autoAlpha {
                if data.validation.count > 0, let best = candidates.max(by: {
                    (sweepRows[$0]?.accuracyValidation ?? 0, -$0) < (sweepRows[$1]?.accuracyValidation ?? 0, -$1) }) {
                    chosenAlpha = best
                    log(String(format: "α chosen by validation accuracy at m=%d: %g (%@)", config.alphaSweepMask, best,
                               candidates.map { String(format: "α %g: %.2f%%", $0, 100 * (sweepRows[$0]?.accuracyValidation ?? 0)) }
                                   .joined(separator: ", ")))
                } else {
                    log("no validation images: α stays \(config.edge.alpha)")
                }
            }
            for i in rows.indices where rows[i].method == "cdc" && rows[i].alpha != chosenAlpha { rows[i].sweep = true }
            // The coded twin of the sweep row that the table keeps.
            if config.codedRows, let twin = pendingCoded.removeValue(forKey: chosenAlpha) { add(twin) }
            pendingCoded.removeAll()
        }

        // CDC and the plain AE at every m, once per seed.
        for seed in config.seeds {
            for m in config.masks {
                if !(seed == seed0 && m == config.alphaSweepMask && sweepRows[chosenAlpha] != nil) {
                    try edgeRows(method: "cdc", mask: m, alpha: chosenAlpha, seed: seed, data: data, rawBytes: rawBytes).forEach(add)
                }
                if config.includeAE {
                    try edgeRows(method: "ae", mask: m, alpha: nil, seed: seed, data: data, rawBytes: rawBytes).forEach(add)
                }
            }
        }

        // vae-cls in CDC's setting: the edge trains it jointly, uploads coded latents, the cloud
        // trains a fresh classifier on the latents.
        if let vaeMasks = config.vaeMasks, !vaeMasks.isEmpty {
            guard !train.isAudio else { throw PipelineError("vae-cls rows need images (its 1-D variant is not built)") }
            for seed in config.seeds {
                for rateModel in config.vaeRateModels ?? [.factorized] {
                    for m in vaeMasks {
                        try vaeRows(mask: m, rateModel: rateModel, seed: seed, data: data, rawBytes: rawBytes).forEach(add)
                    }
                }
            }
        }

        // CDC with the learned prior and a rate term (the entropy-coding rate–accuracy points).
        for m in config.rateMasks {
            for lambda in config.rateWeights {
                try edgeRows(method: "cdc", mask: m, alpha: chosenAlpha, seed: seed0, data: data, rawBytes: rawBytes,
                             rateWeight: lambda).forEach(add)
            }
        }

        // Audio: Opus at its bitrates and μ-law (first seed).
        if config.includeBaselines && train.isAudio {
            let earlier = takeKept { ($0.method == "opus" || $0.method == "mulaw") && $0.seed == seed0 }
            for row in earlier.isEmpty ? try audioBaselineRows(data: data, rawBytes: rawBytes, seed: seed0) : earlier { add(row) }
        }
        // JPEG and WebP at qualities whose measured rates bracket the targets (first seed).
        if config.includeBaselines && !train.isAudio {
            let train8 = train.rawImages(), test8 = test.rawImages()
            for kind in ImageCodecKind.allCases {
                let qualities = try timed("codec-search") {
                    try BaselineCodec.qualities(bracketing: config.codecTargets, kind: kind, sample: Array(train8.prefix(500)),
                                                counting: \.bitsPerPixelSharedHeaders)
                }
                for q in Array(Set(qualities)).sorted() {
                    let earlier = takeKept { $0.method == kind.rawValue && $0.quality == q && $0.seed == seed0 }
                    if !earlier.isEmpty { earlier.forEach(add); continue }
                    let t0 = Date()
                    let (mTrain, mTest) = try timed("codec") {
                        (try BaselineCodec.measure(train8, kind: kind, quality: q), try BaselineCodec.measure(test8, kind: kind, quality: q))
                    }
                    let decTrain = try LabelledDataset.fromRawImages(mTrain.decoded, labels: train.labels, classes: train.classes)
                    let decTest = try LabelledDataset.fromRawImages(mTest.decoded, labels: test.labels, classes: test.classes)
                    // Validation images through the same codec, when the classifier trains until they stop improving.
                    var decVal: LabelledDataset? = nil
                    if config.classifier.plateauPatience != nil && data.validation.count > 0 {
                        let mVal = try timed("codec") { try BaselineCodec.measure(data.validation.rawImages(), kind: kind, quality: q) }
                        decVal = try LabelledDataset.fromRawImages(mVal.decoded, labels: data.validation.labels,
                                                                  classes: data.validation.classes)
                    }
                    let model = try timed("classifier:\(kind.rawValue)") {
                        try trainClassifier(decTrain, label: "\(kind.rawValue) q=\(q)", seed: seed0, validation: decVal)
                    }
                    let acc = CloudClassifier.accuracy(model, on: decTest)
                    let accRaw = CloudClassifier.accuracy(model, on: test)
                    let uplink = mTrain.perImageBytes + mTrain.sharedHeaderBytes + train.count
                    add(ExperimentRow(method: kind.rawValue, mask: nil, alpha: nil, quality: q, seed: seed0,
                                      bpp: Double(uplink * 8) / Double(train.count * pixelsPerImage),
                                      bppPayload: mTrain.bitsPerPixelWholeFiles, uplinkBytes: uplink, rawBytes: rawBytes,
                                      accuracy: acc, accuracyRawTest: accRaw, accuracyLoss: 0, accuracyValidation: nil,
                                      seconds: Date().timeIntervalSince(t0)))
                }
            }
        }
        try write()
        log("wrote \(out.path)/results.csv, results.md, plot.svg, timings.json")
    }

    /// The audio baselines people use, each a row: Opus at every bitrate of
    /// ``ExperimentConfig/audioBitrates`` and G.711 μ-law. Every clip of the training, validation
    /// and test sets is encoded and decoded; the uplink counts the training clips' bytes
    /// (packets + framing, as ``AudioByteCount`` states) and one label byte each. The classifier
    /// is trained on the decoded training clips and tested on the decoded test clips.
    func audioBaselineRows(data: Data3, rawBytes: Int, seed: UInt64) throws -> [ExperimentRow] {
        let train = data.train, test = data.test
        guard let rate = train.sampleRate else { return [] }
        let positions = Double(train.count * train.positionsPerSample)
        /// Every clip of `d` through `codec`: the decoded clips and the bytes of all of them.
        func coded(_ d: LabelledDataset, _ codec: ([Float]) throws -> (restored: [Float], bytes: AudioByteCount))
            throws -> (LabelledDataset, AudioByteCount) {
            let n = d.sampleSize
            var out = [Float](repeating: 0, count: d.count * n)
            var bytes = AudioByteCount(payloadBytes: 0, framingBytes: 0)
            for i in 0..<d.count {
                let (restored, b) = try codec(Array(d.pixels[(i * n)..<((i + 1) * n)]))
                guard restored.count == n else { throw PipelineError("a codec returned \(restored.count) samples for \(n)") }
                for j in 0..<n { out[i * n + j] = min(max(restored[j], -1), 1) }
                bytes = bytes + b
            }
            return (LabelledDataset(audio: out, labels: d.labels, length: n, sampleRate: rate, classes: d.classes,
                                    classNames: d.classNames), bytes)
        }
        var codecs: [(method: String, bitrate: Int?, codec: ([Float]) throws -> (restored: [Float], bytes: AudioByteCount))] =
            config.audioBitrates.map { kbps in
                ("opus", kbps, { try Opus.decodeRoundTrip(samples: $0, sampleRate: rate, bitrate: kbps * 1000) })
            }
        codecs.append(("mulaw", nil, { try MuLaw.decodeRoundTrip(samples: $0) }))
        var rows: [ExperimentRow] = []
        for c in codecs {
            let t0 = Date()
            let label = c.bitrate.map { "\(c.method) \($0) kbit/s" } ?? c.method
            let ((decTrain, trainBytes), (decTest, _)) = try timed("codec") { (try coded(train, c.codec), try coded(test, c.codec)) }
            let decVal = data.validation.count > 0 ? try timed("codec") { try coded(data.validation, c.codec).0 } : nil
            let model = try timed("classifier:\(c.method)") { try trainClassifier(decTrain, label: label, seed: seed, validation: decVal) }
            let uplink = trainBytes.total + train.count
            rows.append(ExperimentRow(method: c.method, mask: nil, alpha: nil, quality: c.bitrate, seed: seed,
                                      bpp: Double(uplink * 8) / positions, bppPayload: Double(trainBytes.total * 8) / positions,
                                      uplinkBytes: uplink, rawBytes: rawBytes, accuracy: CloudClassifier.accuracy(model, on: decTest),
                                      accuracyRawTest: CloudClassifier.accuracy(model, on: test), accuracyLoss: 0,
                                      accuracyValidation: decVal.map { CloudClassifier.accuracy(model, on: $0) },
                                      seconds: Date().timeIntervalSince(t0)))
        }
        return rows
    }

    /// Coded twins of sweep rows, added only for the α that the table keeps.
    var pendingCoded: [Float: ExperimentRow] = [:]

    /// Trains the edge (CDC with guidance 1/α, or the plain AE; with `rateWeight`, the learned
    /// prior and its rate term), compresses and restores the training, validation and test
    /// images, trains the cloud classifier and measures it. Returns the fixed-length row and,
    /// when `codedRows`, its entropy-coded twin (same codes and accuracy, fewer bytes); with a
    /// rate weight only the row coded under the learned prior.
    func edgeRows(method: String, mask m: Int, alpha: Float?, seed: UInt64, data: Data3, rawBytes: Int,
                  rateWeight: Float? = nil, coded: Bool = true) throws -> [ExperimentRow] {
        let train = data.train, test = data.test
        let t0 = Date()
        var ec = config.edge
        ec.mask = m; ec.alpha = alpha ?? ec.alpha; ec.guidance = method == "cdc"; ec.seed = seed
        if let rateWeight { ec.learnedPrior = true; ec.rateWeight = rateWeight }
        // Rows of an earlier run of the same settings are taken over.
        let rowAlpha: Float? = method == "cdc" ? ec.alpha : nil
        let earlier = takeKept { r in
            r.mask == m && r.alpha == rowAlpha && r.seed == seed && r.rateWeight == rateWeight
                && (rateWeight != nil ? r.method == method + "-coded" : (r.method == method || r.method == method + "-coded"))
        }.map { r -> ExperimentRow in var r = r; r.sweep = false; return r }
        let complete = rateWeight != nil || !config.codedRows ? earlier.count == 1 : earlier.count == 2
        if complete {
            if !coded, let twin = earlier.first(where: { $0.method == method + "-coded" }) {
                pendingCoded[ec.alpha] = twin
                return earlier.filter { $0.method == method }
            }
            return earlier
        }
        var session = try EdgeSession(config: ec, for: train)
        ec = session.config
        let label = "\(method)\(ec.autoencoder == .wide ? " (\(ec.autoencoder.rawValue))" : "") m=\(m)\(method == "cdc" ? String(format: " α=%g", ec.alpha) : "")"
            + (rateWeight.map { String(format: " λ=%g", $0) } ?? "") + " seed \(seed)"
        // The trained edge is kept until its rows are written, so that a restarted run goes on from it.
        let edgeCheckpoint = checkpointDirectory(label).appendingPathComponent("edge")
        if FileManager.default.fileExists(atPath: edgeCheckpoint.appendingPathComponent("session.json").path) {
            session = try EdgeSession.resume(from: edgeCheckpoint)
            log("  [\(label)] edge trained by an earlier run: \(edgeCheckpoint.path)")
        } else {
            timed("edge-train") {
                for e in 1...ec.epochs {
                    let s = session.trainEpoch(train)
                    log(String(format: "  [%@] edge epoch %d: L_A %.4f  L_C %.3f  EC acc %.1f%%", label, e,
                               s.reconstruction, s.classification, 100 * s.ecAccuracy) + (s.rate.map { String(format: "  R %.3f bpp", $0) } ?? ""))
                }
            }
            try session.save(to: edgeCheckpoint)
        }
        // Removed once the rows are made (not on an error: the classifier's checkpoint is beside it).
        var made = false
        defer { if made { try? FileManager.default.removeItem(at: edgeCheckpoint.deletingLastPathComponent()) } }
        let decoder = try EdgeCodec.decoderFile(session)
        let hash = ModelIdentity.hash(decoder)
        func roundTrip(_ d: LabelledDataset) throws -> (LatentContainer, LabelledDataset) {
            let c = try timed("compress") { try EdgeCodec.compress(session.autoencoder, d, decoderHash: hash) }
            let cloudAE = try EdgeCodec.loadDecoder(decoder)
            let r = try timed("restore") {
                try EdgeCodec.restore(c, decoder: cloudAE, like: d)
            }
            return (c, r)
        }
        let (trainC, restoredTrain) = try roundTrip(train)
        let restoredTest = try roundTrip(test).1
        let restoredVal = data.validation.count > 0 ? try roundTrip(data.validation).1 : nil
        let model = try timed("classifier:\(method)") {
            try trainClassifier(restoredTrain, label: label, seed: seed, validation: restoredVal)
        }
        let pixels = Double(train.count * train.positionsPerSample)
        let fixedUplink = trainC.encoded().count + decoder.count
        var row = ExperimentRow(method: method, mask: m, alpha: method == "cdc" ? ec.alpha : nil, quality: nil, seed: seed,
                                bpp: Double(fixedUplink * 8) / pixels, bppPayload: Double(5 - m),
                                uplinkBytes: fixedUplink, rawBytes: rawBytes, accuracy: CloudClassifier.accuracy(model, on: restoredTest),
                                accuracyRawTest: CloudClassifier.accuracy(model, on: test), accuracyLoss: 0,
                                accuracyValidation: restoredVal.map { CloudClassifier.accuracy(model, on: $0) },
                                seconds: Date().timeIntervalSince(t0))
        row.autoencoder = ec.autoencoder.rawValue
        made = true
        guard config.codedRows || rateWeight != nil else { return [row] }
        // The same codes entropy-coded: measured histograms, or the learned prior's tables if it
        // has one and they code smaller.
        let codedC = try timed("entropy-coding") { try EdgeCodec.code(trainC, .auto, priorTables: session.priorTables) }
        let codedUplink = codedC.encoded().count + decoder.count
        var twin = row
        twin.method = method + "-coded"
        twin.rateWeight = rateWeight
        twin.bpp = Double(codedUplink * 8) / pixels
        twin.bppPayload = Double(codedC.accounting.symbols * 8) / pixels
        twin.uplinkBytes = codedUplink
        if rateWeight != nil { return [twin] }
        if !coded { pendingCoded[ec.alpha] = twin; return [row] }
        return [row, twin]
    }

    /// vae-cls at mask `m` (``VAERatePoint/forMask(_:)``) in the edge–cloud setting: the edge
    /// trains encoder, quantizer, prior and classifier jointly; it uploads the training set's
    /// centre indices in a container with the latent file (centres and shapes; no decoder); the
    /// cloud turns them into latents and trains a fresh latent classifier, tested on the test
    /// images the edge encodes. Returns the fixed-length row and its histogram-coded twin
    /// (`vae-cls-coded`). `accuracy_raw_test` holds the jointly trained classifier's accuracy on
    /// the test images (the co-inference use, the model the edge trained). With the context rate
    /// model the rows are `vae-cls-ctx3d` and `vae-cls-ctx3d-coded`, the latter's upload the
    /// container with context-coded chunks (``VAEClsCodec/contextCoded(_:model:)``) plus the
    /// latent file and the context model's weights.
    func vaeRows(mask m: Int, rateModel: VAERateModel = .factorized, seed: UInt64, data: Data3,
                 rawBytes: Int) throws -> [ExperimentRow] {
        let train = data.train, test = data.test
        let t0 = Date()
        let earlier = takeKept { r in
            (r.method == rateModel.systemName || r.method == rateModel.systemName + "-coded") && r.mask == m && r.seed == seed
        }
        if earlier.count == 2 { return earlier }
        var vc = VAEClsConfig()
        vc.mask = m; vc.seed = seed; vc.epochs = config.vaeEpochs ?? config.edge.epochs
        vc.batchSize = config.edge.batchSize
        vc.rateModel = rateModel
        let session = try VAEClsSession(config: vc, for: train)
        let method = rateModel.systemName
        let label = "\(method) m=\(m) \(vc.ratePoint) seed \(seed)"
        timed("edge-train:vae-cls") {
            for e in 1...vc.epochs {
                let s = session.trainEpoch(train)
                log(String(format: "  [%@] edge epoch %d: CE %.3f  R %.3f bpp  acc %.1f%%", label, e, s.classification, s.rate, 100 * s.accuracy))
            }
        }
        let file = try session.latentFile()
        let hash = ModelIdentity.hash(file)
        func latents(_ d: LabelledDataset) throws -> (LatentContainer, LabelledDataset) {
            let c = try timed("compress") { try VAEClsCodec.compress(session.model, d, mask: m, fileHash: hash) }
            return (c, try VAEClsCodec.latents(c, latentFile: file))
        }
        let (trainC, trainLatents) = try latents(train)
        let testLatents = try latents(test).1
        let valLatents = data.validation.count > 0 ? try latents(data.validation).1 : nil
        let model = try timed("classifier:vae-cls") {
            try trainClassifier(trainLatents, label: label, seed: seed, validation: valLatents)
        }
        let pixels = Double(train.count * train.positionsPerSample)
        let fixedUplink = trainC.encoded().count + file.count
        let row = ExperimentRow(method: method, mask: m, alpha: nil, quality: nil, seed: seed,
                                bpp: Double(fixedUplink * 8) / pixels, bppPayload: Double(5 - m) * Double(trainC.latentShape.reduce(1, *))
                                    / Double(train.positionsPerSample),
                                uplinkBytes: fixedUplink, rawBytes: rawBytes, accuracy: CloudClassifier.accuracy(model, on: testLatents),
                                accuracyRawTest: session.accuracy(test), accuracyLoss: 0,
                                accuracyValidation: valLatents.map { CloudClassifier.accuracy(model, on: $0) },
                                seconds: Date().timeIntervalSince(t0))
        var twin = row
        twin.method = method + "-coded"
        if rateModel == .context3d {
            let coded = try timed("entropy-coding") { try VAEClsCodec.contextCoded(trainC, model: session.model) }
            twin.uplinkBytes = coded.containerBytes + file.count + coded.modelFileBytes
            twin.bppPayload = Double(coded.payloadBytes * 8) / pixels
        } else {
            let coded = try timed("entropy-coding") { try EdgeCodec.code(trainC, .histogram) }
            twin.uplinkBytes = coded.encoded().count + file.count
            twin.bppPayload = Double(coded.accounting.symbols * 8) / pixels
        }
        twin.bpp = Double(twin.uplinkBytes * 8) / pixels
        return [row, twin]
    }

    /// Trains the cloud classifier of one row, with a checkpoint after every epoch in
    /// `out/checkpoints/` (a restarted run resumes from it; removed once trained).
    func trainClassifier(_ data: LabelledDataset, label: String, seed: UInt64, validation: LabelledDataset? = nil) throws -> Module {
        var cc = config.classifier
        cc.seed = seed
        var lastEpoch = 0
        let dir = checkpointDirectory(label).appendingPathComponent("classifier")
        let epochs = cc.plateauPatience == nil ? "\(cc.epochs)" : "≤ \(cc.epochs)"
        let model = try CloudClassifier.train(data, config: cc, validation: validation, checkpoint: dir) { epoch, batch, batches, status in
            if batches == 0 {
                self.log("  [\(label)] \(status)")
            } else if batch == batches && epoch != lastEpoch {
                lastEpoch = epoch
                self.log("  [\(label)] classifier epoch \(epoch)/\(epochs): \(status)")
            }
        }
        let fm = FileManager.default
        try? fm.removeItem(at: dir)
        let parent = dir.deletingLastPathComponent()
        if (try? fm.contentsOfDirectory(atPath: parent.path))?.isEmpty == true { try? fm.removeItem(at: parent) }
        return model
    }

    /// Where the checkpoints of the row `label` live while it trains.
    func checkpointDirectory(_ label: String) -> URL {
        let slug = String(label.lowercased().map { $0.isLetter || $0.isNumber || $0 == "." ? $0 : "-" })
        return out.appendingPathComponent("checkpoints").appendingPathComponent(slug)
    }

    /// Reads the rows of an earlier run in `out` (its `results.csv`) when its settings are these
    /// (seeds aside: a later run may add seeds), to take them over; another run's directory is
    /// refused rather than mixed in.
    func takeOverEarlierRun() throws {
        let csv = out.appendingPathComponent("results.csv"), meta = out.appendingPathComponent("timings.json")
        guard FileManager.default.fileExists(atPath: csv.path) else { return }
        struct Meta: Decodable { var config: ExperimentConfig; var phaseSeconds: [String: Double]? }
        guard let m = try? JSONDecoder().decode(Meta.self, from: Data(contentsOf: meta)) else {
            throw PipelineError("\(out.path) holds results.csv but no readable timings.json: use another --out, or delete it to start over")
        }
        func comparable(_ c: ExperimentConfig) -> Data {
            var c = c
            c.seeds = []; c.sampleRate = nil
            c.precision = c.precision ?? .fp32
            let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
            return (try? enc.encode(c)) ?? Data()
        }
        guard comparable(m.config) == comparable(config) else {
            throw PipelineError("\(out.path) holds a run with other settings: use another --out, or delete it to start over")
        }
        kept = try ExperimentReport.rows(fromCSV: String(decoding: try Data(contentsOf: csv), as: UTF8.self))
        for (k, v) in m.phaseSeconds ?? [:] { timings[k, default: 0] += v }
        if !kept.isEmpty { log("taking over \(kept.count) rows of an earlier run in \(out.path)") }
    }

    /// Removes and returns the kept rows that `match`.
    func takeKept(_ match: (ExperimentRow) -> Bool) -> [ExperimentRow] {
        let taken = kept.filter(match)
        kept.removeAll(where: match)
        return taken
    }

    /// The mean test accuracy of the raw-data classifiers (what losses are measured against).
    var rawMean: Float? {
        let raw = rows.filter { $0.method == "raw" }
        return raw.isEmpty ? nil : raw.map(\.accuracy).reduce(0, +) / Float(raw.count)
    }

    func add(_ row: ExperimentRow) {
        rows.append(row)
        log(String(format: "→ %@%@%@: %.3f %@, accuracy %.2f%% (raw test %.2f%%)%@", row.method,
                   ExperimentReport.nonSpecAutoencoder(row).map { " (\($0))" } ?? "",
                   row.mask.map { " m=\($0)" } ?? row.quality.map { config.sampleRate == nil ? " q=\($0)" : " \($0) kbit/s" } ?? "", row.bpp,
                   config.sampleRate == nil ? "bpp" : "bits/sample",
                   100 * row.accuracy, 100 * row.accuracyRawTest,
                   row.accuracyValidation.map { $0.isNaN ? "" : String(format: ", validation %.2f%%", 100 * $0) } ?? ""))
        try? write()   // partial results survive a crash
    }

    func write() throws {
        if let base = rawMean { for i in rows.indices { rows[i].accuracyLoss = base - rows[i].accuracy } }
        try ExperimentReport.write(rows: rows, config: config, chosenAlpha: chosenAlpha, timings: timings, to: out)
    }
}
