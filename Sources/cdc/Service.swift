import ArgumentParser
import CDCCloudService
import CDCCodec
import CDCData
import CDCEdgeClient
import CDCModels
import CDCPipeline
import CDCStore
import CDCWire
import Foundation

/// `cdc cloud add-edge`: a new edge and its credential.
struct CloudAddEdge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-edge",
        abstract: "Register an edge in the cloud's store and print its token (shown once; only its hash is stored).")

    @Option(help: "The cloud's store (SQLite file; created if missing).") var store = "cloud.db"
    @Option(help: "The edge's name (letters, digits, '-', '_', '.').") var name: String

    mutating func run() async throws {
        let s = try await SQLiteUploadStore.open(path: store)
        do {
            let token = try await CloudService.addEdge(name: name, to: s)
            try await s.close()
            print(token)
        } catch {
            try? await s.close()
            throw PipelineError("\(error)")
        }
    }
}

/// `cdc cloud serve`: the cloud's HTTP service.
struct CloudServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the cloud's HTTP API (uploads into the store, bandwidth reports, mask requests, /metrics) until SIGINT/SIGTERM.")

    @Option(help: "The cloud's store (SQLite file; created if missing).") var store = "cloud.db"
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the chosen one is printed).") var port = 8080
    @Option(help: "Seconds the operator allows for one upload of an edge's dataset: the mask policy picks the clearest m that fits.")
    var timeBudget: Double = 600
    @Option(help: "Largest part body accepted (bytes).") var maxPartBytes = API.defaultMaxPartBytes
    @Option(help: "The operator's credential for /metrics with every edge's series (for Prometheus); default: the environment variable CDC_METRICS_TOKEN. An edge's own token reads only its own series.")
    var metricsToken: String?

    mutating func run() async throws {
        guard timeBudget > 0, maxPartBytes > 0 else { throw ValidationError("--time-budget and --max-part-bytes must be positive") }
        let operatorToken = (metricsToken ?? ProcessInfo.processInfo.environment["CDC_METRICS_TOKEN"]).flatMap { $0.isEmpty ? nil : $0 }
        if let t = operatorToken, t.count < 16 {
            throw ValidationError("the metrics credential must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        }
        let s = try await SQLiteUploadStore.open(path: store)
        let service = CloudService(store: s, policy: MaskPolicy(timeBudget: timeBudget), maxPartBytes: maxPartBytes,
                                   metricsToken: operatorToken)
        let path = store
        let app = service.application(host: host, port: port) { channel in
            // One line on stdout that scripts wait for.
            FileHandle.standardOutput.write(Data("cdc cloud: listening on \(channel.localAddress?.description ?? "?") (store \(path))\n".utf8))
        }
        do { try await app.runService() } catch {
            try? await s.close()
            throw error
        }
        try await s.close()
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
    @Option(help: "Guidance weight α of a new session (see `cdc edge train`).") var alpha: Float = 8
    @Option(help: "Rate weight λ of a new session's learned prior (0: none; see `cdc edge train`).") var rateWeight: Float = 0
    @Option(help: "Autoencoder of a new session: cdc-ae (the spec's, default) or cdc-ae-wide (see `cdc edge train`).")
    var autoencoder: ImageAutoencoder = .spec
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

    mutating func run() async throws {
        try engine.apply()
        guard let token = token ?? ProcessInfo.processInfo.environment["CDC_EDGE_TOKEN"], !token.isEmpty else {
            throw ValidationError("an edge token is required: --token or CDC_EDGE_TOKEN (from `cdc cloud add-edge`)")
        }
        guard samplesPerPart >= 1, rounds >= 1, attempts >= 1, epochs >= 1, retuneEpochs >= 1, parallel >= 1 else {
            throw ValidationError("--samples-per-part, --parallel, --rounds, --attempts, --epochs and --retune-epochs must be ≥ 1")
        }
        guard alpha > 0, rateWeight >= 0 else { throw ValidationError("--alpha must be > 0 and --rate-weight ≥ 0") }
        let rateLimit: UplinkRateLimit?
        do { rateLimit = try maxRate.map { try UplinkRateLimit(bitsPerSecond: $0 * 1e6) } } catch { throw ValidationError("--max-rate: \(error)") }
        let data = try dataOptions.load(train: true)
        let client = CloudClient(baseURL: cloud, token: token, retry: RetryPolicy(attempts: attempts), rateLimit: rateLimit)
        let dir = URL(fileURLWithPath: session)
        var s: EdgeSession
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("session.json").path) {
            s = try EdgeSession.resume(from: dir)
            log("loaded session \(session) (m = \(s.config.mask), \(s.epochsDone) of \(s.config.epochs) epochs)")
        } else {
            var c = EdgeConfig()
            c.epochs = epochs; c.alpha = alpha; c.autoencoder = autoencoder
            c.learnedPrior = rateWeight > 0; c.rateWeight = rateWeight
            s = EdgeSession(config: c, channels: data.channels, height: data.height, width: data.width, classes: data.classes)
        }
        // Stage 1 to the session's own epoch count: a new session, or one a crash interrupted.
        if s.epochsDone < s.config.epochs {
            let total = s.config.epochs
            _ = try await client.reportStatus(EdgeStatus(phase: "training", progress: Double(s.epochsDone) / Double(total),
                                                         message: "stage 1, \(total) epochs"))
            while s.epochsDone < total {
                s.trainEpochWithProgressBar(data, label: "edge epoch \(s.epochsDone + 1)/\(total)")
                try s.save(to: dir)
                _ = try await client.reportStatus(EdgeStatus(phase: "training", progress: Double(s.epochsDone) / Double(total)))
            }
        }
        let registration = EdgeRegistration(dataset: dataOptions.data ?? "fashion-mnist", samples: data.count, channels: data.channels,
                                            height: data.height, width: data.width, classes: data.classes)
        var request = try await client.register(registration).maskRequest
        log("cloud at \(cloud): \(request.reason)")
        var totalSent = 0, lastMask: Int? = nil
        var sessionDir = dir
        for round in 1...rounds {
            let m = request.mask ?? s.config.mask
            let retunedDir = dir.appendingPathComponent("m\(m)")
            if m != s.config.mask, FileManager.default.fileExists(atPath: retunedDir.appendingPathComponent("session.json").path) {
                // Fine-tuned to this m by an earlier run: the same decoder, so an interrupted upload resumes.
                s = try EdgeSession.resume(from: retunedDir)
                sessionDir = retunedDir
                log("the cloud asks for m = \(m): loaded the session fine-tuned to it earlier (\(retunedDir.path))")
            }
            if m != s.config.mask {
                log("the cloud asks for m = \(m): fine-tuning from m = \(s.config.mask) for \(retuneEpochs) epoch(s)")
                _ = try await client.reportStatus(EdgeStatus(phase: "retuning", progress: 0, message: "m = \(m)"))
                s = try Retune.session(from: s, mask: m, learningRate: s.config.learningRate / 10, epochs: retuneEpochs)
                for e in 1...retuneEpochs { s.trainEpochWithProgressBar(data, label: "retune m=\(m) \(e)/\(retuneEpochs)") }
                try s.save(to: retunedDir)
                sessionDir = retunedDir
            }
            _ = try await client.reportStatus(EdgeStatus(phase: "compressing", progress: 0, message: "m = \(m)"))
            let decoder = try EdgeCodec.decoderFile(s.autoencoder, channels: data.channels)
            let container = try uploadContainer(session: s, in: sessionDir, decoder: decoder, data: data, round: round)
            let uploader = EdgeUploader(client: client, samplesPerPart: samplesPerPart, concurrency: parallel)
            let bar = ProgressBar(total: max(1, (container.count + samplesPerPart - 1) / samplesPerPart), label: "upload m=\(m)")
            let result = try await uploader.upload(container, decoder: decoder) { done, _, bytes in
                bar.update(done, String(format: "%.1f kB", Double(bytes) / 1000))
            }
            bar.finish()
            totalSent += result.bytesSent
            lastMask = m
            log(String(format: "uploaded m = %d: %d parts sent, %d already stored, %d bytes in %.1f s (%.3f Mbit/s), %d retries",
                       m, result.partsSent, result.partsSkipped, result.bytesSent, result.transferSeconds,
                       result.bytesPerSecond * 8 / 1e6, result.retries))
            _ = try await client.reportStatus(EdgeStatus(phase: "waiting", progress: 1, message: "m = \(m) uploaded"))
            // Wait for the cloud to ask for clearer data.
            if let last = result.maskRequest { request = last } else { request = try await client.maskRequest() }
            let deadline = Date().addingTimeInterval(wait)
            while !(request.mask.map { $0 < m } ?? false) && Date() < deadline {
                try await Task.sleep(nanoseconds: UInt64(poll * 1e9))
                request = try await client.maskRequest()
            }
            guard let next = request.mask, next < m else {
                log("cloud: \(request.reason)")
                break
            }
            log("cloud: \(request.reason)")
        }
        let raw = data.count * (data.channels * data.height * data.width + 1)
        print(String(format: "edge: sent %d bytes in this run (last upload m = %@); the raw dataset is %d bytes", totalSent,
                     lastMask.map(String.init) ?? "-", raw))
        _ = try? await client.reportStatus(EdgeStatus(phase: "done", progress: 1))
    }

    /// The container to upload for session `s` (saved in `sessionDir`): compressed the first time
    /// and kept there as `upload.cdc`, so that a restarted edge resumes with the very bytes it
    /// began with, whatever the thread count it encodes with now.
    func uploadContainer(session s: EdgeSession, in sessionDir: URL, decoder: [UInt8], data: ImageDataset, round: Int) throws -> LatentContainer {
        let file = sessionDir.appendingPathComponent("upload.cdc")
        let hash = ModelIdentity.hash(decoder)
        if let kept = try? LatentContainer.read(from: file), kept.decoderHash == hash, kept.mask == s.config.mask, kept.labels == data.labels {
            log("round \(round): m = \(kept.mask), resuming with the \(kept.count) samples encoded earlier (\(file.path))")
            return kept
        }
        let fixed = try EdgeCodec.compress(s.autoencoder, data, decoderHash: hash)
        let (container, coding) = try RateControl.smallestCoding(of: fixed, session: s)
        let bytes = container.encoded()
        // Written whole or not at all (a temporary file renamed): a crash leaves the old file or the new one.
        try Data(bytes).write(to: file, options: .atomic)
        log("round \(round): m = \(container.mask), \(container.count) samples, \(bytes.count) bytes of codes (\(coding.name)) + \(decoder.count) bytes of decoder")
        return container
    }
}
