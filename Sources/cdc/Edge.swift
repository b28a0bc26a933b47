import ArgumentParser
import CDCCodec
import CDCData
import CDCEdgeAgent
import CDCEdgeClient
import CDCFileIO
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation

extension AutoencoderArchitecture: ExpressibleByArgument {}

/// `cdc edge …`: stage 1 on the edge server.
struct Edge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The edge: train the autoencoder and the elementary classifier, compress a dataset, retune to another m, run the upload loop, classify by co-inference.",
        subcommands: [EdgeTrain.self, EdgeCompress.self, EdgeRetune.self, EdgeRun.self, EdgeInfer.self])
}

extension DatasetFormat: ExpressibleByArgument {}
extension Coding: ExpressibleByArgument {}
extension VAERateModel: ExpressibleByArgument {}

/// How audio datasets are read (ignored for images): rate, clip length, UrbanSound8K folds.
struct AudioReadingOptions: ParsableArguments {
    @Option(help: "Audio: the rate clips are resampled to, in Hz (libsoxr).") var sampleRate = 8000
    @Option(help: "Audio: samples per clip; longer clips are cropped to a window centred on their loudest second, shorter ones zero-padded at the end.")
    var length = 8000
    @Option(help: "UrbanSound8K: the training folds, e.g. 1-8 or 1,3,5 (default 1-8, or the folds --test-folds leaves).")
    var folds: String?
    @Option(help: "UrbanSound8K: the test folds (default 9-10, or the folds --folds leaves).") var testFolds: String?

    /// The options as the dataset reader takes them.
    func options() throws -> DatasetSource.AudioOptions {
        guard sampleRate >= 1000, length >= 16 else { throw ValidationError("--sample-rate must be ≥ 1000 and --length ≥ 16") }
        return DatasetSource.AudioOptions(sampleRate: sampleRate, length: length, trainFolds: try folds.map(Self.parseFolds),
                                          testFolds: try testFolds.map(Self.parseFolds))
    }

    /// `1-8`, `9,10` or `1-3,5` as fold numbers in 1…10.
    static func parseFolds(_ text: String) throws -> [Int] {
        var out: [Int] = []
        for part in text.split(separator: ",") {
            let ends = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let a = ends.first ?? nil, let b = ends.last ?? nil, ends.count <= 2, a <= b, (1...10).contains(a), (1...10).contains(b) else {
                throw ValidationError("bad folds '\(text)' (e.g. 1-8 or 9,10; folds are 1…10)")
            }
            out += Array(a...b)
        }
        return out
    }
}

/// Where the samples come from: any dataset format, detected or named.
struct DataOptions: ParsableArguments {
    @Option(help: """
        Dataset directory: MNIST-style IDX files, CIFAR-10/100 binary batches, an image folder \
        (root/<class>/*.png|jpg, or root/train/<class>/* + root/test/<class>/*; a single folder is split \
        80/20, stratified and seeded), or audio: FSDD ({digit}_{speaker}_{index}.wav), UrbanSound8K \
        (audio/fold*/ + metadata/UrbanSound8K.csv) or class folders of WAV/FLAC/Ogg files. \
        Default: Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist).
        """)
    var data: String?
    @Option(help: "The dataset's format: idx, cifar10, cifar100, imagefolder, fsdd, urbansound8k or audiofolder (default: detected from the directory).")
    var format: DatasetFormat?
    @Option(help: "Use only the first N training samples (0 = all).") var subset = 0
    @OptionGroup var audio: AudioReadingOptions

    /// The dataset named by --data and --format.
    func source() throws -> DatasetSource {
        guard let data else {
            if let format, format != .idx { throw ValidationError("--format \(format.rawValue) needs --data DIR") }
            return .fashionMNIST
        }
        var source = try DatasetSource(path: URL(fileURLWithPath: data), format: format)
        source.audio = try audio.options()
        return source
    }

    /// The training split (its first `subset` images) or the whole test split.
    func load(train: Bool) throws -> LabelledDataset {
        let d = try source().load(train ? .train : .test)
        return train && subset > 0 ? d.prefix(subset) : d
    }
}

/// `cdc edge train`: joint training of cdc-ae and cdc-ec (paper eq. 4–6), resumable.
struct EdgeTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train cdc-ae + cdc-ec jointly (the AE's loss is L_A + L_C/α); checkpoints every epoch, resumable.")

    @OptionGroup var engine: EngineOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "Epochs (in total, counting those of a resumed session).") var epochs = 1
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Quantizer mask m (0…4): 5−m bits per latent.") var mask = 4
    @Option(help: "Guidance weight α (the AE's loss is L_A + L_C/α). Default: 8 for images (what the rate–accuracy experiment's sweep chose on Fashion-MNIST; the paper used 48), 16 for audio (the paper's).")
    var alpha: Float?
    @Flag(help: "Train the plain autoencoder (no classification guidance).") var noGuidance = false
    @Option(help: "Adam learning rate.") var lr: Float = 1e-3
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Session directory: checkpoints (safetensors) and progress are saved here after every epoch.")
    var out: String?
    @Flag(help: "Continue the session saved in --out.") var resume = false
    @Flag(help: "Train a learned factorized prior with the AE; its integer tables then entropy-code the uploads.")
    var learnedPrior = false
    @Option(help: "Weight λ of the rate term (bits per pixel under the learned prior) in the AE's loss; implies --learned-prior.")
    var rateWeight: Float = 0
    @Option(help: "Target coded bits per pixel: pick m (and λ of the learned prior if m = 4 is not enough) by short calibration trainings; overrides --mask and --rate-weight.")
    var targetBpp: Double?
    @Option(help: "Images of the calibration subset of --target-bpp.") var calibrationSubset = 2000
    @Option(help: "Epochs of each calibration training.") var calibrationEpochs = 2
    @Option(help: "Autoencoder for images: cdc-ae (the spec's, default) or cdc-ae-wide (wider and deeper, same latent; for high rates). Audio always uses cdc-ae-1d.")
    var autoencoder: AutoencoderArchitecture = .spec

    mutating func run() throws {
        try engine.apply()
        guard (0...4).contains(mask) else { throw ValidationError("--mask must be in 0…4") }
        guard rateWeight >= 0 else { throw ValidationError("--rate-weight must be ≥ 0") }
        guard epochs >= 1, batch >= 2, (alpha ?? 1) > 0 else { throw ValidationError("--epochs ≥ 1, --batch ≥ 2 and --alpha > 0 are required") }
        if resume && out == nil { throw ValidationError("--resume needs --out DIR") }
        let train = try dataOptions.load(train: true)
        let test = try dataOptions.load(train: false)
        let session: EdgeSession
        if resume, let out {
            session = try EdgeSession.resume(from: URL(fileURLWithPath: out))
            log("resumed \(out) after epoch \(session.epochsDone) (m=\(session.config.mask), α=\(session.config.alpha))")
        } else {
            var c = EdgeConfig()
            c.mask = mask; c.alpha = alpha ?? EdgeConfig.defaultAlpha(audio: train.isAudio); c.guidance = !noGuidance; c.epochs = epochs; c.batchSize = batch
            c.learningRate = lr; c.seed = seed; c.autoencoder = autoencoder
            c.learnedPrior = learnedPrior || rateWeight > 0; c.rateWeight = rateWeight
            if let target = targetBpp {
                log(String(format: "rate control: calibrating for %.3f bits per position on %d samples, %d epochs per trial", target,
                           min(calibrationSubset, train.count), calibrationEpochs))
                let (chosen, _) = try RateControl.calibrate(target: target, base: c, calibration: train.prefix(calibrationSubset),
                                                             epochs: calibrationEpochs) { log($0) }
                c = chosen
                c.epochs = epochs
                log("rate control chose m=\(c.mask)\(c.rateWeight > 0 ? ", learned prior with λ=\(c.rateWeight)" : "")")
            }
            session = try EdgeSession(config: c, for: train)
        }
        let c = session.config
        log("training \(c.autoencoder.rawValue) (m=\(c.mask), \(5 - c.mask) bits/latent) + \(train.isAudio ? "cdc-ec-1d" : "cdc-ec") on \(train.count) samples "
            + "(\(train.geometry)), batch \(c.batchSize), α=\(c.alpha)\(c.guidance ? "" : ", no guidance"), "
            + (c.learnedPrior ? "learned prior (λ = \(c.rateWeight)), " : "")
            + "\(Engine.threads) threads")
        let start = Date()
        while session.epochsDone < epochs {
            session.trainEpochWithProgressBar(train, label: "epoch \(session.epochsDone + 1)/\(epochs)")
            if let out { try session.save(to: URL(fileURLWithPath: out)) }
        }
        let last = session.history.last!
        let (mse, acc) = session.evaluate(test)
        print(String(format: "final training loss: L_A %.4f  L_C %.4f  (EC train accuracy %.2f%%)",
                     last.reconstruction, last.classification, 100 * last.ecAccuracy))
        print(String(format: "test set (%d samples, through the codec at %d bits/latent): reconstruction MSE %.4f, EC accuracy %.2f%%",
                     test.count, 5 - c.mask, mse, 100 * acc))
        print(String(format: "time: %.1f s", Date().timeIntervalSince(start)))
        if let out { print("session saved in \(out)") }
        let rate = try RateControl.measure(session, on: test)
        print(String(format: "coded rate on the test set (%@): %.3f bits per %@, %.1f bytes per sample (fixed length: %d)",
                     rate.coding.name, rate.bitsPerPixel, test.positionName, rate.bytesPerSample, 5 - c.mask))
    }
}

/// `cdc edge compress`: the upload files of a dataset.
struct EdgeCompress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Encode a dataset with a trained session's encoder into a container, and export its decoder (a vae-cls session: its latent file).")

    @OptionGroup var engine: EngineOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "Session directory of `cdc edge train`.") var session: String
    @Option(help: "Which split to encode: train or test.") var split = "train"
    @Option(help: "Container file to write.") var out: String
    @Option(help: "Decoder file to write (safetensors; for a vae-cls session the latent file: centres and shapes).") var decoderOut: String
    @Option(help: """
        How the symbols are coded: auto (the smaller of histogram and, if the session has one, prior), \
        fixed (5 − m bits each, the paper's scheme), histogram (rANS under per-channel histograms of this data), \
        prior (rANS under the learned prior's tables).
        """) var coding = Coding.auto
    @Option(help: "Precision of the decoder file's weights: float16 (half the bytes; the default) or float32.")
    var decoderPrecision = "float16"

    mutating func run() throws {
        try engine.apply()
        guard split == "train" || split == "test" else { throw ValidationError("--split must be train or test") }
        guard let precision = EdgeCodec.DecoderPrecision(rawValue: decoderPrecision) else {
            throw ValidationError("--decoder-precision must be float16 or float32")
        }
        let s = try EdgeModelSessions.resume(from: URL(fileURLWithPath: session))
        if coding == .prior && (s as? EdgeSession)?.prior == nil {
            throw ValidationError("the session has no learned prior (train it with --learned-prior)")
        }
        let data = try dataOptions.load(train: split == "train")
        guard s.accepts(data) else {
            throw ValidationError("the session was trained on \(s.geometry); these are \(data.geometry)")
        }
        // A vae-cls session writes its latent file (centres and shapes) in place of a decoder.
        let decoder = try (s as? EdgeSession).map { try EdgeCodec.decoderFile($0, precision: precision) } ?? s.uploadFile()
        let t0 = Date()
        let container = try s.compress(data, coding: coding, decoderHash: ModelIdentity.hash(decoder))
        let seconds = Date().timeIntervalSince(t0)
        try DurableFile.write(decoder, to: URL(fileURLWithPath: decoderOut))
        try container.write(to: URL(fileURLWithPath: out))
        let raw = data.rawBytes
        let total = container.accounting.total, bytes = total + decoder.count
        print(String(format: "encoded %d samples in %.2f s (%@): container %d bytes + decoder %d bytes = %d bytes uplink, raw %d bytes (%.1f× less)",
                     data.count, seconds, container.codingChoice.name, total, decoder.count, bytes, raw, Double(raw) / Double(bytes)))
        if container.codingChoice != .fixed {
            let fixedSymbols = (data.count * container.symbolsPerSample * (5 - s.uploadMask) + 7) / 8
            let positions = Double(data.count * data.positionsPerSample)
            print(String(format: "codes: %.3f bits per %@ coded, %d fixed-length (%.1f%% smaller)",
                         Double(container.accounting.symbols * 8) / positions, data.positionName, 5 - s.uploadMask,
                         100 * (1 - Double(container.accounting.symbols) / Double(fixedSymbols))))
        }
    }
}

/// `cdc edge retune`: fine-tune a trained session to another mask (paper §4.4).
struct EdgeRetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retune",
        abstract: "Fine-tune a trained autoencoder to another mask m with a low learning rate (paper §4.4).")

    @OptionGroup var engine: EngineOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "Session directory of `cdc edge train`.") var session: String
    @Option(help: "The new mask m (0…4).") var mask: Int
    @Option(help: "Epochs of fine-tuning.") var epochs = 1
    @Option(help: "Adam learning rate (low: the weights start trained).") var lr: Float = 1e-4
    @Option(help: "Session directory for the retuned models.") var out: String

    mutating func run() throws {
        try engine.apply()
        guard (0...4).contains(mask) else { throw ValidationError("--mask must be in 0…4") }
        let old = try EdgeSession.resume(from: URL(fileURLWithPath: session))
        let train = try dataOptions.load(train: true)
        let test = try dataOptions.load(train: false)
        let retuned = try Retune.session(from: old, mask: mask, learningRate: lr, epochs: epochs)
        log("retuning m=\(old.config.mask) → m=\(mask), lr \(lr)")
        let before = retuned.evaluate(test)
        print(String(format: "before: reconstruction MSE %.5f at m=%d", before.mse, mask))
        for e in 1...epochs {
            retuned.trainEpochWithProgressBar(train, label: "retune \(e)/\(epochs)")
            let r = retuned.evaluate(test)
            print(String(format: "epoch %d: reconstruction MSE %.5f, EC accuracy %.2f%%", e, r.mse, 100 * r.ecAccuracy))
        }
        try retuned.save(to: URL(fileURLWithPath: out))
        print("retuned session saved in \(out)")
    }
}

extension EdgeSession {
    /// One epoch with a progress bar on standard error.
    func trainEpochWithProgressBar(_ data: LabelledDataset, label: String) {
        let bar = ProgressBar(total: data.count / config.batchSize, label: label)
        trainEpoch(data) { done, _, status in bar.update(done, status) }
        bar.finish()
    }
}

/// `cdc edge run`: the edge's side of the loop, against a cloud service.
struct EdgeRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Train (or load) the edge's session, upload the codes to the cloud in parts, and follow its mask requests.")

    @OptionGroup var engine: EngineOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "The cloud's URL, e.g. http://10.0.0.1:8080.") var cloud: String
    @Option(help: "The edge's token (`cdc cloud add-edge`); default: the environment variable CDC_EDGE_TOKEN.") var token: String?
    @Option(help: "Session directory: a trained session (`cdc edge train --out`), or where to train one if it does not exist.")
    var session: String
    @Option(help: "Epochs of stage-1 training when the session does not exist yet.") var epochs = 5
    @Option(help: "Guidance weight α of a new session (see `cdc edge train`; default 8 for images, 16 for audio).") var alpha: Float?
    @Option(help: "Rate weight λ of a new session's learned prior (0: none; see `cdc edge train`).") var rateWeight: Float = 0
    @Option(help: "Autoencoder of a new image session: cdc-ae (the spec's, default) or cdc-ae-wide (see `cdc edge train`); audio uses cdc-ae-1d.")
    var autoencoder: AutoencoderArchitecture = .spec
    @Option(help: "How the codes are coded: auto, fixed, histogram or prior (see `cdc edge compress`).") var coding = Coding.auto
    @Option(help: ArgumentHelp("The system of a new session: cdc (the autoencoder guided by the elementary classifier; uploads codes and a decoder) or vae-cls (the VAE codec trained jointly with a classifier on its latents under a rate constraint; uploads codes and a small latent file, no decoder, and the cloud trains on the latents; m = 4, 3, 2 are L = 2, 3, 6 centres). Images only.",
                               valueName: "system"))
    var system = "cdc"
    @Option(help: "The rate model of a new vae-cls session: factorized (a per-channel prior, the default) or context3d (the anchor's 3-D masked context model; the upload itself is histogram-coded, as the container has no context-coded version).")
    var vaeRateModel: VAERateModel = .factorized
    @Option(help: "Epochs of fine-tuning when the cloud asks for another mask.") var retuneEpochs = 1
    @Option(help: "Samples per uploaded part.") var samplesPerPart = 1024
    @Option(help: "Parts in flight at once (keeps a long-latency link busy).") var parallel = 4
    @Option(help: "After an upload, how long to wait for the cloud to ask for clearer data (seconds; 0: stop at once).")
    var wait: Double = 0
    @Option(help: "Seconds between asks while waiting.") var poll: Double = 2
    @Option(help: "Most uploads in one run.") var rounds = 5
    @Option(help: "Attempts per request before giving up (with exponential back-off).") var attempts = 10
    @Option(help: ArgumentHelp("Cap the upload rate at this many Mbit/s (like rsync's --bwlimit): for an uplink shared with other traffic, or to try the mask loop against a slow link on one machine.",
                               valueName: "mbit/s"))
    var maxRate: Double?
    @Option(help: "Write what the run did (uploads, bytes, the cloud's last answer) to this JSON file.") var report: String?

    mutating func run() async throws {
        try engine.apply()
        guard let token = token ?? ProcessInfo.processInfo.environment["CDC_EDGE_TOKEN"], !token.isEmpty else {
            throw ValidationError("an edge token is required: --token or CDC_EDGE_TOKEN (from `cdc cloud add-edge`)")
        }
        guard samplesPerPart >= 1, rounds >= 1, attempts >= 1, epochs >= 1, retuneEpochs >= 1, parallel >= 1 else {
            throw ValidationError("--samples-per-part, --parallel, --rounds, --attempts, --epochs and --retune-epochs must be ≥ 1")
        }
        guard (alpha ?? 1) > 0, rateWeight >= 0 else { throw ValidationError("--alpha must be > 0 and --rate-weight ≥ 0") }
        let rateLimit: UplinkRateLimit?
        do { rateLimit = try maxRate.map { try UplinkRateLimit(bitsPerSecond: $0 * 1e6) } } catch { throw ValidationError("--max-rate: \(error)") }
        let data = try dataOptions.load(train: true)
        var settings = EdgeAgentSettings(session: URL(fileURLWithPath: session))
        settings.newSession.epochs = epochs; settings.newSession.alpha = alpha ?? EdgeConfig.defaultAlpha(audio: data.isAudio); settings.newSession.autoencoder = autoencoder
        settings.newSession.learnedPrior = rateWeight > 0; settings.newSession.rateWeight = rateWeight
        switch system {
        case "cdc": break
        case "vae-cls":
            guard !data.isAudio else { throw ValidationError("--system vae-cls takes images (its 1-D variant is not built)") }
            var vae = VAEClsConfig()
            vae.epochs = epochs
            vae.rateModel = vaeRateModel
            settings.newVAESession = vae
            if coding == .prior { throw ValidationError("vae-cls uploads are coded with measured histograms: --coding auto, histogram or fixed") }
        default: throw ValidationError("--system must be cdc or vae-cls, not '\(system)'")
        }
        settings.coding = coding; settings.retuneEpochs = retuneEpochs
        settings.samplesPerPart = samplesPerPart; settings.parallel = parallel
        settings.wait = wait; settings.poll = poll; settings.rounds = rounds
        settings.datasetName = dataOptions.data ?? "fashion-mnist"
        let client = CloudClient(baseURL: cloud, token: token, retry: RetryPolicy(attempts: attempts), rateLimit: rateLimit)
        let agent = EdgeAgent(client: client, data: data, settings: settings, progress: ProgressPrinter().handler)
        let result = try await agent.run()
        if let report {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try DurableFile.write(try enc.encode(result), to: URL(fileURLWithPath: report))
        }
        print(String(format: "edge: sent %d bytes in this run (last upload m = %@); the raw dataset is %d bytes", result.bytesSent,
                     result.lastMask.map(String.init) ?? "-", result.rawBytes))
    }
}
