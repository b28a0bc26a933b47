import ArgumentParser
import CDCCloudTrainer
import CDCCoInference
import CDCData
import CDCEdgeAgent
import CDCImageCodecs
import CDCModels
import CDCPipeline
import CDCFileIO
import Foundation

/// `cdc experiment …`.
struct Experiment: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Experiments that reproduce the paper's tables and figures.",
                                                    subcommands: [RateAccuracy.self, CoInference.self, CompareUplink.self, Report.self])
}

/// `cdc experiment report DIR`: re-render an experiment's table, claims and plot.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write results.md and plot.svg of an experiment directory again from its results.csv and timings.json.")
    @Argument(help: "The experiment's output directory.") var directory: String

    mutating func run() throws {
        try ExperimentReport.rerender(URL(fileURLWithPath: directory))
        print(try String(contentsOfFile: directory + "/results.md", encoding: .utf8))
    }
}

/// `cdc experiment rate-accuracy`: raw, CDC and plain AE at every m, an α sweep, JPEG and WebP.
struct RateAccuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rate-accuracy",
        abstract: "Train and evaluate every method; write results.csv, results.md, plot.svg and timings.json.")

    @OptionGroup var engine: EngineOptions
    @Option(help: "Dataset directory in any format `cdc edge train --data` reads (default: Debian's Fashion-MNIST).") var data: String?
    @Option(help: "The format of --data: idx, cifar10, cifar100, imagefolder, fsdd, urbansound8k or audiofolder (default: detected).") var format: DatasetFormat?
    @OptionGroup var audio: AudioReadingOptions
    @Option(help: "Output directory.") var out = "results"
    @Flag(help: "A short version (images: 5000/2000 images, one seed, 3+3 epochs, the default α, JPEG/WebP at 1 and 2 bpp; audio: see docs/audio.md): minutes, not hours.") var quick = false
    @Option(help: "Training images (0 = all).") var trainSubset: Int?
    @Option(help: "Test images (0 = all).") var testSubset: Int?
    @Option(help: "Edge training epochs.") var edgeEpochs: Int?
    @Option(help: "Classifier training epochs (with --classifier-patience: the most).") var classifierEpochs: Int?
    @Option(help: "Train every classifier until its validation accuracy stops improving: the learning rate drops ×0.1 after this many epochs without a better validation accuracy, training stops after this many more at the third rate (at most --classifier-epochs), and the best epoch's weights are kept.")
    var classifierPatience: Int?
    @Option(help: "Seeds, comma-separated (each CDC/AE row once per seed).") var seeds: String?
    @Option(help: "Masks, comma-separated.") var masks: String?
    @Option(help: "α of the CDC rows: a number, or 'auto' to choose it from the sweep by validation accuracy (default).") var alpha: String?
    @Option(help: "Training images held out for choosing α (never the test set).") var validation: Int?
    @Option(help: "α values of the sweep, comma-separated (empty: none).") var alphaSweep: String?
    @Option(help: "Bits per pixel the JPEG/WebP qualities are chosen to hit, comma-separated.") var codecTargets: String?
    @Option(help: "Audio: the Opus bitrates of the baseline rows in kbit/s, comma-separated (default 6,8,12,16; μ-law is always a row).")
    var opusBitrates: String?
    @Flag(help: "Skip the baseline codecs (JPEG and WebP; for audio Opus and μ-law).") var noBaselines = false
    @Option(help: "Rate weights λ of extra CDC rows trained with the learned prior and coded under it, comma-separated.")
    var rateWeights: String?
    @Option(help: "Masks of the --rate-weights rows, comma-separated (default 4).") var rateMasks: String?
    @Flag(help: "Leave out the entropy-coded twin (histogram rANS) of every CDC and AE row.") var noCodedRows = false
    @Flag(help: "Leave out the plain-AE rows.") var noAe = false
    @Flag(help: "Skip the raw-data classifiers: for rows to be appended to the results.csv of a run with the same settings that has them, then `cdc experiment report DIR`.")
    var noRaw = false
    @Option(help: "Autoencoder of every CDC and AE row: cdc-ae (the spec's, default) or cdc-ae-wide (swift-cdc's wider one, marked in the table; the paper's claims are checked on cdc-ae rows only).")
    var autoencoder: AutoencoderArchitecture = .spec
    @Option(help: "Masks of vae-cls rows, comma-separated (m = 4, 3, 2: L = 2, 3, 6 centres; default: none). With --masks '' --no-ae --no-baselines --no-raw --alpha-sweep '' only vae-cls runs.")
    var vaeMasks: String?
    @Option(help: "vae-cls training epochs (default: --edge-epochs).") var vaeEpochs: Int?
    @Option(help: "Rate models of the vae-cls rows, comma-separated: factorized (a per-channel prior; rows vae-cls, vae-cls-coded) and context3d (the anchor's 3-D masked context model; rows vae-cls-ctx3d, vae-cls-ctx3d-coded coded under it). Default: factorized.")
    var vaeRateModels: String?

    mutating func run() throws {
        try engine.apply()
        var c = quick ? ExperimentConfig.quick : ExperimentConfig()
        if let v = trainSubset { c.trainSubset = v }
        if let v = testSubset { c.testSubset = v }
        if let v = edgeEpochs { c.edge.epochs = v }
        if let v = classifierEpochs { c.classifier.epochs = v }
        if let v = classifierPatience {
            guard v >= 1 else { throw ValidationError("--classifier-patience must be at least 1") }
            c.classifier.plateauPatience = v
        }
        if let v = alpha, v != "auto" {
            guard let a = Float(v), a > 0 else { throw ValidationError("bad α '\(v)' (a positive number or 'auto')") }
            c.edge.alpha = a; c.autoAlpha = false
        }
        if let v = validation { guard v >= 0 else { throw ValidationError("--validation must be ≥ 0") }; c.validation = v }
        if let v = seeds { c.seeds = try v.split(separator: ",").map { guard let s = UInt64($0) else { throw ValidationError("bad seed '\($0)'") }; return s } }
        if let v = masks { c.masks = try v.split(separator: ",").map { guard let m = Int($0), (0...4).contains(m) else { throw ValidationError("bad mask '\($0)'") }; return m } }
        if let v = alphaSweep { c.alphaSweep = try v.split(separator: ",").map { guard let a = Float($0), a > 0 else { throw ValidationError("bad α '\($0)'") }; return a } }
        if let v = codecTargets { c.codecTargets = try v.split(separator: ",").map { guard let b = Double($0), b > 0 else { throw ValidationError("bad bpp '\($0)'") }; return b } }
        if noBaselines { c.includeBaselines = false }
        if noCodedRows { c.codedRows = false }
        if noAe { c.includeAE = false }
        if noRaw { c.includeRaw = false }
        c.edge.autoencoder = autoencoder
        if let v = vaeMasks { c.vaeMasks = try v.split(separator: ",").map { guard let m = Int($0), (0...4).contains(m) else { throw ValidationError("bad mask '\($0)'") }; return m } }
        if let v = vaeEpochs { guard v >= 1 else { throw ValidationError("--vae-epochs must be ≥ 1") }; c.vaeEpochs = v }
        if let v = vaeRateModels {
            c.vaeRateModels = try v.split(separator: ",").map {
                guard let r = VAERateModel(rawValue: String($0)) else { throw ValidationError("bad rate model '\($0)': factorized or context3d") }
                return r
            }
        }
        if let v = rateMasks { c.rateMasks = try v.split(separator: ",").map { guard let m = Int($0), (0...4).contains(m) else { throw ValidationError("bad mask '\($0)'") }; return m } }
        if let v = rateWeights { c.rateWeights = try v.split(separator: ",").map { guard let a = Float($0), a > 0 else { throw ValidationError("bad λ '\($0)'") }; return a } }
        guard !c.seeds.isEmpty, c.edge.epochs >= 1, c.classifier.epochs >= 1 else { throw ValidationError("need a seed and ≥ 1 epoch") }
        if let v = opusBitrates { c.opusBitrates = try v.split(separator: ",").map { guard let b = Int($0), (6...510).contains(b) else { throw ValidationError("bad Opus bitrate '\($0)' (6…510 kbit/s)") }; return b } }
        var source = try data.map { try DatasetSource(path: URL(fileURLWithPath: $0), format: format) } ?? .fashionMNIST
        source.audio = try audio.options()
        let train = try source.load(.train), test = try source.load(.test)
        if train.isAudio {
            var given = ExperimentConfig.AudioSettingsGiven()
            given.alpha = alpha != nil && alpha != "auto"; given.sweep = alphaSweep != nil; given.validation = validation != nil
            given.edgeEpochs = edgeEpochs != nil; given.classifierEpochs = classifierEpochs != nil
            c.adaptForAudio(trainClips: train.count, given: given)
            if quick {
                // The audio smoke run: every clip, one seed, m = 4, α 16 only, short trainings.
                if masks == nil { c.masks = [4] }
                if alphaSweep == nil { c.alphaSweep = [] }
                if edgeEpochs == nil { c.edge.epochs = 20 }
                if classifierEpochs == nil { c.classifier.epochs = 6 }
                if trainSubset == nil { c.trainSubset = 0 }
                if testSubset == nil { c.testSubset = 0 }
                if opusBitrates == nil { c.opusBitrates = [6, 12] }
            }
        }
        let t0 = Date()
        let exp = RateAccuracyExperiment(config: c, out: URL(fileURLWithPath: out)) { log($0) }
        try exp.run(train: train, test: test)
        print(try String(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("results.md"), encoding: .utf8))
        print(String(format: "total time: %.1f min", Date().timeIntervalSince(t0) / 60))
    }
}

extension ImageCodecKind: ExpressibleByArgument {}

/// `cdc experiment compare-uplink`: the images sent raw and as JPEG/WebP at CDC's bytes, trained on the same way.
struct CompareUplink: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-uplink",
        abstract: "Train the cloud's classifier on the edge's images sent raw and as JPEG/WebP at about the bytes of a CDC upload, the way the cloud trained on CDC's; print the rows side by side.",
        discussion: """
            The CDC row comes from `cdc cloud train --report` (its upload's bytes set the codecs' qualities; its \
            accuracy through the codec is compared); --data, --subset and --test-subset must name the images that \
            run used. Each `cdc edge run --report` given adds a row with the bytes of the whole loop.
            """)

    @OptionGroup var engine: EngineOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "The JSON of `cdc cloud train --report` for the CDC upload to compare with.") var cdc: String
    @Option(help: "The JSON of `cdc edge run --report`, once per run of the loop (their bytes are summed).") var edgeReport: [String] = []
    @Option(help: "Codecs to compare, comma-separated: jpeg, webp.") var codecs = "jpeg,webp"
    @Option(help: "Classifier training epochs (default: those of the CDC run).") var epochs: Int?
    @Option(help: "Peak learning rate (SGD, cosine).") var lr: Float = 0.05
    @Option(help: "Random seed (the cloud trainer's: the same images are held out).") var seed: UInt64 = 0
    @Option(help: "Write the table here too (Markdown).") var out: String?

    mutating func run() throws {
        try engine.apply()
        let summary = try JSONDecoder().decode(CloudTrainingSummary.self, from: Data(contentsOf: URL(fileURLWithPath: cdc)))
        let kinds = try codecs.split(separator: ",").map {
            guard let k = ImageCodecKind(rawValue: String($0)) else { throw ValidationError("unknown codec '\($0)' (jpeg, webp)") }
            return k
        }
        let train = try dataOptions.load(train: true)
        guard train.count == summary.samples else {
            throw ValidationError("\(cdc) was trained on an upload of \(summary.samples) images; --data/--subset give \(train.count)")
        }
        var test = try dataOptions.load(train: false)
        if let n = summary.testImages { test = test.prefix(n) }
        guard let cdcAccuracy = summary.accuracyThroughCodec else {
            throw ValidationError("\(cdc) has no accuracy through the codec (run `cdc cloud train` with --test-container)")
        }
        var config = ClassifierConfig()
        // A classifier of vae-cls latents compares with images classified by the cloud's image default.
        let latent = summary.model == "vae-cls-head"
        config.model = latent ? "resnext-11" : summary.model; config.epochs = epochs ?? summary.epochs; config.learningRate = lr; config.seed = seed
        let baselines = try UplinkComparison.run(train: train, test: test, classifier: config, validationFraction: 0.1,
                                                 matchBytes: summary.uplinkBytes, codecs: kinds, progress: ProgressPrinter().handler)
        let pixels = Double(train.count * train.height * train.width)
        func cdcRow(bytes: Int) -> UplinkComparison.Row {
            UplinkComparison.Row(method: "cdc", quality: nil, uplinkBytes: bytes, bitsPerPixel: Double(bytes * 8) / pixels,
                                 accuracy: cdcAccuracy, accuracyRawTest: summary.accuracyRawTest ?? .nan, trainImages: summary.trainImages)
        }
        var rows: [(String, UplinkComparison.Row)] = [("raw 8-bit pixels + labels", baselines[0])]
        let name = latent ? "vae-cls" : "CDC"
        rows.append((latent ? "vae-cls m = \(summary.mask), entropy-coded latents + labels + latent file (the upload trained on; classified as latents)"
                            : "CDC m = \(summary.mask), entropy-coded codes + labels + decoder (the upload trained on)", cdcRow(bytes: summary.uplinkBytes)))
        let reports = try edgeReport.map { try JSONDecoder().decode(EdgeRunReport.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
        if !reports.isEmpty {
            let masks = reports.flatMap { $0.uploads.map { "m = \($0.mask)" } }.joined(separator: ", then ")
            rows.append(("\(name), every upload of the loop (\(masks))", cdcRow(bytes: reports.reduce(0) { $0 + $1.bytesSent })))
        }
        for b in baselines.dropFirst() { rows.append(("\(b.method.uppercased()) quality \(b.quality ?? 0) + labels", b)) }
        let table = UplinkComparison.markdown(rows)
            + "\n\(train.count) training images (\(summary.trainImages) trained on, the rest held out), \(test.count) test images, "
            + "\(config.model) for \(config.epochs) epochs\(latent ? " (vae-cls: vae-cls-head on its latents)" : ""), one seed; "
            + "every row trained the same way on the same images.\n"
        print(table)
        if let out { try DurableFile.write(Array(table.utf8), to: URL(fileURLWithPath: out)) }
    }
}

/// Parses a comma-separated list, each item checked by `parse` (nil: refused, naming `what`).
func commaList<T>(_ text: String, _ what: String, _ parse: (String) -> T?) throws -> [T] {
    try text.split(separator: ",").map {
        guard let v = parse(String($0)) else { throw ValidationError("bad \(what) '\($0)'") }
        return v
    }
}

/// `cdc experiment co-inference`: every co-inference system on the same test set and real coded bytes.
struct CoInference: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "co-inference",
        abstract: "Raw, JPEG, WebP, CDC, DISC-like (with its partition search) and BottleNet++ on real coded bytes; write results.csv, search.csv, results.md, plot.svg, channel-awgn.svg, channel-bec.svg.",
        discussion: """
            Trained models are kept in OUT/models and finished rows in OUT/results.csv: a rerun with the same \
            --out resumes where the last one stopped. See docs/co-inference.md.
            """)

    @OptionGroup var engine: EngineOptions
    @Option(help: "Image dataset directory in any format `cdc edge train --data` reads (default: Debian's Fashion-MNIST).") var data: String?
    @Option(help: "The format of --data: idx, cifar10, cifar100 or imagefolder (default: detected).") var format: DatasetFormat?
    @Option(help: "Output directory.") var out = "results-co-inference"
    @Flag(help: "A short version (3000 training / 1000 test images, 4 classifier epochs, a reduced grid, one BottleNet++ configuration): minutes.") var quick = false
    @Option(help: "Training images (0 = all).") var trainSubset: Int?
    @Option(help: "Test images (0 = all).") var testSubset: Int?
    @Option(help: "Training images after the training subset held out for the partition search.") var validation: Int?
    @Option(help: "Classifier training epochs.") var classifierEpochs: Int?
    @Option(help: "Random seed.") var seed: UInt64?
    @Option(help: "CDC masks, comma-separated (empty: no CDC rows).") var masks: String?
    @Option(help: "DISC-like splits, comma-separated (S0, S1, S2, S3, G).") var splits: String?
    @Option(help: "DISC-like thresholds τ (fractions of the sample's maximum), comma-separated.") var taus: String?
    @Option(help: "DISC-like bits b (1…8), comma-separated.") var bits: String?
    @Option(help: "The search's accuracy-loss bound in percentage points.") var maxLoss: Float?
    @Option(help: "Uplink bandwidths in Mbit/s for the lowest-latency choice, comma-separated.") var bandwidths: String?
    @Option(help: "BottleNet++ configurations, comma-separated SPLIT:C':CHANNEL with CHANNEL none, awgn=σmax or bec=pmax (e.g. S2:4:bec=0.01); empty: none.")
    var bottlenet: String?
    @Option(help: "System families to run, comma-separated: jpeg, webp, cdc, vae-cls, vae-cls-ctx3d (vae-cls with the anchor's 3-D masked context model as rate model and coder), disc-like, bottlenet++ (default: all; raw always runs).")
    var systems: String?
    @Option(help: "vae-cls rate points, comma-separated L:R_TARGET (centres, bits per pixel), e.g. 2:0.5,3:1,6:2 (the default).")
    var vaeRates: String?
    @Option(help: "vae-cls training epochs (default 10; --quick 4).") var vaeEpochs: Int?

    mutating func run() throws {
        try engine.apply()
        var c = quick ? CoInferenceConfig.quick : CoInferenceConfig()
        if let v = systems { c.systems = try commaList(v, "system") { CoInferenceConfig.families.contains($0) ? $0 : nil } }
        if let v = vaeRates { c.vaeRates = try parseVAERates(v) }
        if let v = vaeEpochs { guard v >= 1 else { throw ValidationError("--vae-epochs must be ≥ 1") }; c.vaeEpochs = v }
        if let v = trainSubset { c.trainSubset = v }
        if let v = testSubset { c.testSubset = v }
        if let v = validation { c.validation = v }
        if let v = classifierEpochs { guard v >= 1 else { throw ValidationError("--classifier-epochs must be ≥ 1") }; c.classifier.epochs = v }
        if let v = seed { c.seed = v }
        if let v = masks { c.cdcMasks = try commaList(v, "mask") { Int($0).flatMap { (0...4).contains($0) ? $0 : nil } } }
        if let v = splits { c.discSplits = try commaList(v, "split") { ["S0", "S1", "S2", "S3", "G"].contains($0) ? $0 : nil } }
        if let v = taus { c.discTaus = try commaList(v, "τ") { Float($0).flatMap { (0..<1).contains($0) ? $0 : nil } } }
        if let v = bits { c.discBits = try commaList(v, "bit count") { Int($0).flatMap { (1...8).contains($0) ? $0 : nil } } }
        if let v = maxLoss { c.maxLoss = v / 100 }
        if let v = bandwidths { c.bandwidths = try commaList(v, "bandwidth") { Double($0).flatMap { $0 > 0 ? $0 * 1e6 : nil } } }
        if let v = bottlenet {
            c.bottlenet = try commaList(v, "BottleNet++ configuration") { item -> BottleNetSpec? in
                let f = item.split(separator: ":").map(String.init)
                guard f.count == 3, let k = Int(f[1]), k > 0, BottleNetSpec.channelIsValid(f[2]) else { return nil }
                return BottleNetSpec(split: f[0], codeChannels: k, channel: f[2])
            }
        }
        let source = try data.map { try DatasetSource(path: URL(fileURLWithPath: $0), format: format) } ?? .fashionMNIST
        let train = try source.load(.train), test = try source.load(.test)
        let t0 = Date()
        let exp = CoInferenceExperiment(config: c, out: URL(fileURLWithPath: out)) { log($0) }
        try exp.run(train: train, test: test)
        print(try String(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("results.md"), encoding: .utf8))
        print(String(format: "total time: %.1f min", Date().timeIntervalSince(t0) / 60))
    }
}

/// `2:0.5,3:1` → vae-cls rate points (L = 2…32 centres, R_target > 0 bits per pixel).
func parseVAERates(_ text: String) throws -> [VAERatePoint] {
    try commaList(text, "vae-cls rate point (L:R_TARGET)") { item -> VAERatePoint? in
        let f = item.split(separator: ":")
        guard f.count == 2, let l = Int(f[0]), (2...32).contains(l), let r = Float(f[1]), r > 0 else { return nil }
        return VAERatePoint(levels: l, target: r)
    }
}
