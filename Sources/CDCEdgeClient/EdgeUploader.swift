import CDCCodec
import CDCWire
import Foundation

/// Uploads one container and its decoder to the cloud in parts: it announces the upload (the
/// cloud answers with what it already holds, so a restarted edge resumes where it stopped),
/// sends the decoder and then the missing parts, several at a time so that a link with a long
/// round trip stays busy, each with retries; it measures its own throughput (bytes acknowledged
/// per second of wall time while sending) and reports it, and returns when the cloud confirms
/// the upload complete.
public struct EdgeUploader: Sendable {
    public let client: CloudClient
    /// Samples per part (each part is a self-contained container).
    public var samplesPerPart: Int
    /// Parts in flight at once.
    public var concurrency: Int
    /// Seconds between bandwidth reports during an upload (the last report, at the end, covers
    /// the whole upload).
    public var reportInterval: Double

    public init(client: CloudClient, samplesPerPart: Int = 1024, concurrency: Int = 4, reportInterval: Double = 2) {
        self.client = client; self.samplesPerPart = samplesPerPart; self.concurrency = max(1, concurrency)
        self.reportInterval = reportInterval
    }

    /// What an upload did.
    public struct Result: Sendable {
        public var status: UploadStatus
        /// Bytes this run sent and the cloud acknowledged (parts skipped because the cloud had them are not counted).
        public var bytesSent: Int
        public var partsSent: Int
        public var partsSkipped: Int
        /// Wall-clock seconds spent sending (decoder and parts).
        public var transferSeconds: Double
        public var retries: Int
        /// The cloud's answer to the last bandwidth report.
        public var maskRequest: MaskRequest?
        public var bytesPerSecond: Double { transferSeconds > 0 ? Double(bytesSent) / transferSeconds : 0 }
    }

    /// Uploads `container` (any coding) and `decoder` (its safetensors bytes, whose hash the
    /// container carries). `progress(stored parts, total parts, bytes sent)` follows along.
    public func upload(_ container: LatentContainer, decoder: [UInt8],
                       progress: (Int, Int, Int) -> Void = { _, _, _ in }) async throws -> Result {
        guard ModelIdentity.hash(decoder) == container.decoderHash else {
            throw WireError("the decoder file is not the one the container was encoded for")
        }
        guard !container.labels.isEmpty else { throw WireError("the container has no labels; the cloud needs them") }
        var spec = UploadSpec(mask: container.mask, decoderHash: container.decoderHash, samples: container.count,
                              samplesPerPart: samplesPerPart, latentShape: container.latentShape, classes: container.classes)
        let client = self.client
        // Resuming with another part size: the cloud's upload keeps the part size it was started with.
        if let existing = try? await client.upload(id: spec.id), existing.spec.samplesPerPart != spec.samplesPerPart {
            var adopted = spec
            adopted.samplesPerPart = existing.spec.samplesPerPart
            if adopted == existing.spec { spec = adopted }
        }
        let samplesPerPart = spec.samplesPerPart
        var status = try await client.createUpload(spec)
        let retriesBefore = client.retryCount
        var result = Result(status: status, bytesSent: 0, partsSent: 0, partsSkipped: status.storedParts.count, transferSeconds: 0,
                            retries: 0, maskRequest: nil)
        // The current reporting window: bytes acknowledged since `start` (wall clock while sending).
        var window = (bytes: 0, start: Date(), retries: client.retryCount)
        func acknowledged(_ bytes: Int) async throws {
            result.bytesSent += bytes
            window.bytes += bytes
            if Date().timeIntervalSince(window.start) >= reportInterval { try await report() }
        }
        func report() async throws {
            let seconds = Date().timeIntervalSince(window.start)
            guard window.bytes > 0, seconds > 0 else { return }
            let retries = client.retryCount
            result.maskRequest = try await client.reportBandwidth(BandwidthReport(bytes: window.bytes, seconds: seconds,
                                                                                  retries: retries - window.retries))
            window = (0, Date(), retries)
        }
        // Encoded before the clock starts: the measured rate is the link's, not the encoder's.
        let missing = status.missingParts
        var encoded: [Int: [UInt8]] = [:]
        if !missing.isEmpty {
            let parts = try container.parts(samplesPerPart: samplesPerPart)
            for index in missing { encoded[index] = try parts[index].checkedEncoded() }
        }
        let sendingStarted = Date()
        window.start = sendingStarted
        let sendDecoder = !status.decoderStored
        if sendDecoder || !missing.isEmpty {
            progress(status.storedParts.count, spec.partCount, 0)
            let spec = spec
            // The decoder travels in one of the lanes, beside the parts (the cloud checks parts
            // against the upload's decoder hash, not against a stored decoder), so a long round
            // trip is not paid once for the decoder alone before the parts start.
            try await withThrowingTaskGroup(of: (part: Bool, bytes: Int).self) { group in
                var next = missing.makeIterator()
                var decoderPending = sendDecoder
                func launch() {
                    if decoderPending {
                        decoderPending = false
                        group.addTask {
                            _ = try await client.putDecoder(upload: spec.id, bytes: decoder)
                            return (false, decoder.count)
                        }
                        return
                    }
                    guard let index = next.next(), let bytes = encoded.removeValue(forKey: index) else { return }
                    group.addTask {
                        _ = try await client.putPart(upload: spec.id, index: index, bytes: bytes)
                        return (true, bytes.count)
                    }
                }
                for _ in 0..<concurrency { launch() }
                while let sent = try await group.next() {
                    launch()   // before the report below, so that the lanes stay busy while it waits for the cloud
                    if sent.part { result.partsSent += 1 }
                    try await acknowledged(sent.bytes)
                    progress(status.storedParts.count + result.partsSent, spec.partCount, result.bytesSent)
                }
            }
        }
        result.transferSeconds = Date().timeIntervalSince(sendingStarted)
        // The last report covers the whole upload: a tail window of a few parts acknowledged
        // together would overstate the rate.
        if result.bytesSent > 0 {
            result.maskRequest = try await client.reportBandwidth(BandwidthReport(bytes: result.bytesSent, seconds: result.transferSeconds,
                                                                                  retries: client.retryCount - window.retries))
        }
        status = try await client.upload(id: spec.id)
        guard status.complete else {
            throw WireError("the cloud reports upload \(spec.id) incomplete after sending every part (missing \(status.missingParts))")
        }
        result.status = status
        result.retries = client.retryCount - retriesBefore
        return result
    }
}
