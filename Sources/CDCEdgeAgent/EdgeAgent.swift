import CDCCodec
import CDCData
import CDCEdgeClient
import CDCPipeline
import CDCWire
import Foundation

/// How an ``EdgeAgent`` trains, uploads and follows the cloud.
public struct EdgeAgentSettings: Sendable {
    /// The session directory: a trained session is resumed from it; otherwise one is trained
    /// there with ``newSession``. Sessions fine-tuned to another mask go to `m<M>/` inside it.
    public var session: URL
    /// The configuration of a session that does not exist yet.
    public var newSession = EdgeConfig()
    /// When set, a session that does not exist yet is the VAE codec (`vae-cls`) with this
    /// configuration instead of CDC's autoencoder.
    public var newVAESession: VAEClsConfig? = nil
    /// Epochs of fine-tuning when the cloud asks for another mask.
    public var retuneEpochs = 1
    /// How the codes are coded (``Coding/auto``: the smallest the session allows).
    public var coding = Coding.auto
    /// Samples per uploaded part, and parts in flight at once.
    public var samplesPerPart = 1024, parallel = 4
    /// After an upload, how long to wait for the cloud to ask for clearer data (seconds; 0:
    /// stop at once), and the seconds between asks.
    public var wait: Double = 0, poll: Double = 2
    /// Most uploads in one run.
    public var rounds = 5
    /// The dataset's name in the registration.
    public var datasetName = "fashion-mnist"

    /// Settings with the defaults above and the session directory.
    public init(session: URL) { self.session = session }
}

/// One upload of an ``EdgeAgent`` run.
public struct EdgeUpload: Sendable, Codable, Equatable {
    /// The mask m of the codes.
    public var mask: Int
    /// How the codes were coded.
    public var coding: Coding
    /// Bytes of the container (codes, labels, headers) and of the decoder file.
    public var containerBytes: Int, decoderBytes: Int
    /// What crossed the network in this run (parts the cloud already held are not sent again).
    public var bytesSent: Int, partsSent: Int, partsSkipped: Int, retries: Int
    /// Seconds of the transfer, and the rate measured over it (bytes per second).
    public var seconds: Double, bytesPerSecond: Double
}

/// What an ``EdgeAgent`` run did.
public struct EdgeRunReport: Sendable, Codable, Equatable {
    /// Every upload, in order.
    public var uploads: [EdgeUpload]
    /// The cloud's last answer (why the run stopped).
    public var lastRequest: MaskRequest
    /// Samples in the dataset and bytes of the raw dataset (8-bit pixels + one byte per label).
    public var samples: Int, rawBytes: Int
    /// Bytes sent in this run, over all uploads.
    public var bytesSent: Int { uploads.reduce(0) { $0 + $1.bytesSent } }
    /// The mask of the last upload, if any.
    public var lastMask: Int? { uploads.last?.mask }
}

/// The edge's side of CDC as a library: train (or resume) stage 1, compress the dataset into
/// coded latents, upload them in parts with the decoder, and follow the cloud's mask requests by
/// fine-tuning to the asked m and uploading again (paper §3.1).
///
/// Everything it makes is kept in the session directory (weights after every epoch, each
/// upload's container as `upload.cdc`), so a run that is interrupted resumes: training at the
/// next epoch, an upload with the very bytes it began with (parts the cloud holds are skipped).
///
/// ```swift
/// let client = CloudClient(baseURL: "http://cloud:8080", token: token)
/// let agent = EdgeAgent(client: client, data: train, settings: EdgeAgentSettings(session: dir)) { print($0) }
/// let report = try await agent.run()
/// ```
public final class EdgeAgent {
    public let client: CloudClient
    public let data: LabelledDataset
    public let settings: EdgeAgentSettings
    let progress: ProgressHandler

    /// An agent for `data` (the edge's labelled training set) and the cloud behind `client`.
    public init(client: CloudClient, data: LabelledDataset, settings: EdgeAgentSettings, progress: @escaping ProgressHandler = { _ in }) {
        self.client = client; self.data = data; self.settings = settings; self.progress = progress
    }

    func log(_ s: String) { progress(.message(s)) }

    /// The session in the session directory (of either system), or a new one (not trained yet).
    public func loadOrCreateSession() throws -> any EdgeModelSession {
        let dir = settings.session
        if EdgeModelSessions.exists(in: dir) {
            let s = try EdgeModelSessions.resume(from: dir)
            guard s.accepts(data) else {
                throw PipelineError("the session in \(dir.path) was trained on \(s.geometry); the data is \(data.geometry)")
            }
            log("loaded \(s.systemName) session \(dir.path) (m = \(s.uploadMask), \(s.epochsDone) of \(s.plannedEpochs) epochs)")
            return s
        }
        if let vae = settings.newVAESession { return try VAEClsSession(config: vae, for: data) }
        return try EdgeSession(config: settings.newSession, for: data)
    }

    /// Trains `s` to its own epoch count (a new session, or one a crash interrupted), saving
    /// after every epoch and reporting progress to the cloud.
    public func trainStageOne(_ s: any EdgeModelSession) async throws {
        let total = s.plannedEpochs
        guard s.epochsDone < total else { return }
        _ = try await client.reportStatus(EdgeStatus(phase: "training", progress: Double(s.epochsDone) / Double(total),
                                                     message: "stage 1, \(total) epochs"))
        while s.epochsDone < total {
            s.trainOneEpoch(data, task: "edge epoch \(s.epochsDone + 1)/\(total)", progress: progress)
            try s.save(to: settings.session)
            _ = try await client.reportStatus(EdgeStatus(phase: "training", progress: Double(s.epochsDone) / Double(total)))
        }
    }

    /// The whole loop: stage 1, then up to ``EdgeAgentSettings/rounds`` uploads, each at the
    /// mask the cloud asks for (the session's own for the first if the cloud asks for none).
    public func run() async throws -> EdgeRunReport {
        var s = try loadOrCreateSession()
        try await trainStageOne(s)
        let registration = EdgeRegistration(dataset: settings.datasetName, samples: data.count, channels: data.channels,
                                            height: data.height, width: data.width, classes: data.classes)
        var request = try await client.register(registration).maskRequest
        log("cloud at \(client.baseURL): \(request.reason)")
        var uploads: [EdgeUpload] = []
        var sessionDir = settings.session
        for _ in 1...max(1, settings.rounds) {
            let m = request.mask ?? s.uploadMask
            (s, sessionDir) = try await session(for: m, from: s, in: sessionDir)
            let upload = try await compressAndUpload(s, in: sessionDir)
            uploads.append(upload)
            _ = try await client.reportStatus(EdgeStatus(phase: "waiting", progress: 1, message: "m = \(m) uploaded"))
            request = try await waitForClearerRequest(than: m)
            log("cloud: \(request.reason)")
            guard let next = request.mask, next < m else { break }
        }
        _ = try? await client.reportStatus(EdgeStatus(phase: "done", progress: 1))
        return EdgeRunReport(uploads: uploads, lastRequest: request, samples: data.count,
                             rawBytes: data.rawBytes)
    }

    /// The session to upload at mask `m`: `s` itself, the one fine-tuned to `m` by an earlier
    /// run (`m<M>/`, so an interrupted upload resumes with the same decoder), or `s` fine-tuned
    /// now for ``EdgeAgentSettings/retuneEpochs`` at a tenth of its learning rate.
    public func session(for m: Int, from s: any EdgeModelSession, in dir: URL) async throws -> (any EdgeModelSession, URL) {
        guard m != s.uploadMask else { return (s, dir) }
        let retunedDir = settings.session.appendingPathComponent("m\(m)")
        if EdgeModelSessions.exists(in: retunedDir) {
            let r = try EdgeModelSessions.resume(from: retunedDir)
            if r.epochsDone >= r.plannedEpochs && r.systemName == s.systemName {
                log("the cloud asks for m = \(m): loaded the session fine-tuned to it earlier (\(retunedDir.path))")
                return (r, retunedDir)
            }
        }
        let epochs = max(1, settings.retuneEpochs)
        log("the cloud asks for m = \(m): fine-tuning \(s.systemName) from m = \(s.uploadMask) for \(epochs) epoch(s)")
        _ = try await client.reportStatus(EdgeStatus(phase: "retuning", progress: 0, message: "m = \(m)"))
        let r = try s.retuned(mask: m, epochs: epochs)
        for e in 1...epochs { r.trainOneEpoch(data, task: "retune m=\(m) \(e)/\(epochs)", progress: progress) }
        try r.save(to: retunedDir)
        return (r, retunedDir)
    }

    /// Compresses the dataset with `s` (or takes the container kept in `dir` from an earlier,
    /// interrupted run) and uploads it with its decoder.
    public func compressAndUpload(_ s: any EdgeModelSession, in dir: URL) async throws -> EdgeUpload {
        let m = s.uploadMask
        _ = try await client.reportStatus(EdgeStatus(phase: "compressing", progress: 0, message: "m = \(m)"))
        let decoder = try s.uploadFile()
        let container = try uploadContainer(s, in: dir, decoder: decoder)
        let uploader = EdgeUploader(client: client, samplesPerPart: settings.samplesPerPart, concurrency: settings.parallel)
        let parts = max(1, (container.count + settings.samplesPerPart - 1) / settings.samplesPerPart)
        let task = "upload m=\(m)"
        let result = try await uploader.upload(container, decoder: decoder) { done, _, bytes in
            self.progress(.step(task: task, done: done, total: parts, status: String(format: "%.1f kB", Double(bytes) / 1000)))
        }
        log(String(format: "uploaded m = %d: %d parts sent, %d already stored, %d bytes in %.1f s (%.3f Mbit/s), %d retries",
                   m, result.partsSent, result.partsSkipped, result.bytesSent, result.transferSeconds,
                   result.bytesPerSecond * 8 / 1e6, result.retries))
        return EdgeUpload(mask: m, coding: container.codingChoice, containerBytes: container.accounting.total,
                          decoderBytes: decoder.count, bytesSent: result.bytesSent, partsSent: result.partsSent,
                          partsSkipped: result.partsSkipped, retries: result.retries, seconds: result.transferSeconds,
                          bytesPerSecond: result.bytesPerSecond)
    }

    /// The container to upload for session `s` (saved in `dir`): compressed the first time and
    /// kept there as `upload.cdc`, so that a restarted edge resumes with the very bytes it began
    /// with, whatever the thread count it encodes with now.
    public func uploadContainer(_ s: any EdgeModelSession, in dir: URL, decoder: [UInt8]) throws -> LatentContainer {
        let file = dir.appendingPathComponent("upload.cdc")
        let hash = ModelIdentity.hash(decoder)
        if let kept = try? LatentContainer.read(from: file), kept.decoderHash == hash, kept.mask == s.uploadMask,
           kept.labels == data.labels {
            log("m = \(kept.mask): resuming with the \(kept.count) samples encoded earlier (\(file.path))")
            return kept
        }
        let container = try s.compress(data, coding: settings.coding, decoderHash: hash)
        try container.write(to: file)
        log("m = \(container.mask): \(container.count) samples, \(container.accounting.total) bytes of codes (\(container.codingChoice.name)) + \(decoder.count) bytes of \(s.systemName == "cdc" ? "decoder" : "latent file (centres, shapes)")")
        return container
    }

    /// The cloud's mask request after an upload at `m`, asked again every
    /// ``EdgeAgentSettings/poll`` seconds for up to ``EdgeAgentSettings/wait`` seconds until it
    /// asks for a clearer m.
    func waitForClearerRequest(than m: Int) async throws -> MaskRequest {
        var request = try await client.maskRequest()
        guard m > 0 else { return request }   // nothing is clearer than m = 0
        let deadline = Date().addingTimeInterval(settings.wait)
        while !(request.mask.map { $0 < m } ?? false) && Date() < deadline {
            try await Task.sleep(nanoseconds: UInt64(settings.poll * 1e9))
            request = try await client.maskRequest()
        }
        return request
    }
}
