import CDCCodec
import CDCWire
import Foundation

/// Uploads one container and its decoder to the cloud in parts: it announces the upload (the
/// cloud answers with what it already holds, so a restarted edge resumes where it stopped),
/// sends the decoder and every missing part with retries, measures its own throughput and
/// reports it, and returns when the cloud confirms the upload complete.
public struct EdgeUploader: Sendable {
    public let client: CloudClient
    /// Samples per part (each part is a self-contained container).
    public var samplesPerPart: Int
    /// Seconds between bandwidth reports during an upload.
    public var reportInterval: Double

    public init(client: CloudClient, samplesPerPart: Int = 1024, reportInterval: Double = 2) {
        self.client = client; self.samplesPerPart = samplesPerPart; self.reportInterval = reportInterval
    }

    /// What an upload did.
    public struct Result: Sendable {
        public var status: UploadStatus
        /// Bytes this run sent and the cloud acknowledged (parts skipped because the cloud had them are not counted).
        public var bytesSent: Int
        public var partsSent: Int
        public var partsSkipped: Int
        /// Seconds spent in acknowledged transfers.
        public var transferSeconds: Double
        public var retries: Int
        /// The cloud's answer to the last bandwidth report.
        public var maskRequest: MaskRequest?
        public var bytesPerSecond: Double { transferSeconds > 0 ? Double(bytesSent) / transferSeconds : 0 }
    }

    /// Uploads `container` (any coding) and `decoder` (its safetensors bytes, whose hash the
    /// container carries). `progress(sent parts, total parts, bytes sent)` follows along.
    public func upload(_ container: LatentContainer, decoder: [UInt8],
                       progress: (Int, Int, Int) -> Void = { _, _, _ in }) async throws -> Result {
        guard ModelIdentity.hash(decoder) == container.decoderHash else {
            throw WireError("the decoder file is not the one the container was encoded for")
        }
        guard !container.labels.isEmpty else { throw WireError("the container has no labels; the cloud needs them") }
        let spec = UploadSpec(mask: container.mask, decoderHash: container.decoderHash, samples: container.count,
                              samplesPerPart: samplesPerPart, latentShape: container.latentShape, classes: container.classes)
        var status = try await client.createUpload(spec)
        let retriesBefore = client.retryCount
        var result = Result(status: status, bytesSent: 0, partsSent: 0, partsSkipped: status.storedParts.count, transferSeconds: 0,
                            retries: 0, maskRequest: nil)
        var window = (bytes: 0, seconds: 0.0, retries: client.retryCount, start: Date())
        func timed(_ bytes: Int, _ body: () async throws -> PartReceipt) async throws {
            let t0 = Date()
            _ = try await body()
            let dt = Date().timeIntervalSince(t0)
            result.bytesSent += bytes; result.transferSeconds += dt
            window.bytes += bytes; window.seconds += dt
            if Date().timeIntervalSince(window.start) >= reportInterval { try await report() }
        }
        func report() async throws {
            guard window.seconds > 0 else { return }
            let retries = client.retryCount
            result.maskRequest = try await client.reportBandwidth(BandwidthReport(bytes: window.bytes, seconds: window.seconds,
                                                                                  retries: retries - window.retries))
            window = (0, 0, retries, Date())
        }
        if !status.decoderStored {
            try await timed(decoder.count) { try await client.putDecoder(upload: spec.id, bytes: decoder) }
        }
        let missing = status.missingParts
        if !missing.isEmpty {
            let parts = try container.parts(samplesPerPart: samplesPerPart)
            progress(status.storedParts.count, spec.partCount, 0)
            for index in missing {
                let bytes = try parts[index].checkedEncoded()
                try await timed(bytes.count) { try await client.putPart(upload: spec.id, index: index, bytes: bytes) }
                result.partsSent += 1
                progress(status.storedParts.count + result.partsSent, spec.partCount, result.bytesSent)
            }
        }
        try await report()
        status = try await client.upload(id: spec.id)
        guard status.complete else {
            throw WireError("the cloud reports upload \(spec.id) incomplete after sending every part (missing \(status.missingParts))")
        }
        result.status = status
        result.retries = client.retryCount - retriesBefore
        return result
    }
}
