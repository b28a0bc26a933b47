import CDCCodec

/// The messages of the cloud's HTTP API, version 1 (JSON bodies; parts and decoders travel as
/// raw bytes). Every route but `GET /health` needs `Authorization: Bearer <edge token>`.
///
/// | method | path | body → answer |
/// | --- | --- | --- |
/// | GET | /health | → `ok` (no credential) |
/// | POST | /v1/register | ``EdgeRegistration`` → ``EdgeState`` |
/// | POST | /v1/uploads | ``UploadSpec`` → ``UploadStatus`` (idempotent) |
/// | GET | /v1/uploads/{id} | → ``UploadStatus`` |
/// | PUT | /v1/uploads/{id}/decoder | decoder safetensors → ``PartReceipt`` (index −1) |
/// | PUT | /v1/uploads/{id}/parts/{index} | container bytes, header `X-Content-SHA256` → ``PartReceipt`` |
/// | POST | /v1/bandwidth | ``BandwidthReport`` → ``MaskRequest`` |
/// | GET | /v1/mask | → ``MaskRequest`` |
/// | POST | /v1/status | ``EdgeStatus`` → ``EdgeState`` |
/// | GET | /v1/infer | → [``InferenceSystemInfo``] (the co-inference systems served) |
/// | POST | /v1/infer?system={key} | ``InferenceBatch`` bytes → ``InferenceReply`` (the key percent-encoded) |
/// | GET | /metrics | → Prometheus text |
public enum API {
    /// The path prefix of this version.
    public static let version = "v1"
    /// The header that carries a part's SHA-256 (64 hex digits).
    public static let contentHashHeader = "X-Content-SHA256"
    /// Largest part body the cloud accepts by default (bytes).
    public static let defaultMaxPartBytes = 16 << 20
    /// Largest decoder body the cloud accepts by default (bytes).
    public static let defaultMaxDecoderBytes = 64 << 20
    /// Largest co-inference batch body the cloud accepts by default (bytes).
    public static let defaultMaxInferenceBytes = 64 << 20
    /// Largest JSON body the cloud accepts (bytes).
    public static let maxJSONBytes = 64 << 10
}

/// What an edge tells the cloud about itself and its data when it starts.
public struct EdgeRegistration: Codable, Sendable, Equatable {
    public var dataset: String
    public var samples: Int
    public var channels: Int, height: Int, width: Int
    public var classes: Int
    public init(dataset: String, samples: Int, channels: Int, height: Int, width: Int, classes: Int) {
        self.dataset = dataset; self.samples = samples; self.channels = channels; self.height = height
        self.width = width; self.classes = classes
    }

    /// Latents per sample of the spec's autoencoders for this geometry: 16 × H/4 × W/4 for
    /// images, 16 × L/16 = L for audio clips (registered as 1 × 1 × L).
    public var latentsPerSample: Int { height == 1 && channels == 1 ? 16 * (width / 16) : 16 * (height / 4) * (width / 4) }
}

/// The cloud's view of one edge.
public struct EdgeState: Codable, Sendable, Equatable {
    public var name: String
    public var registration: EdgeRegistration?
    /// Uploads the cloud holds from this edge, oldest first.
    public var uploads: [UploadStatus]
    public var maskRequest: MaskRequest
    public init(name: String, registration: EdgeRegistration?, uploads: [UploadStatus], maskRequest: MaskRequest) {
        self.name = name; self.registration = registration; self.uploads = uploads; self.maskRequest = maskRequest
    }
}

/// An upload: one dataset's codes at one mask, cut into parts of `samplesPerPart` samples
/// (the last may be shorter), plus the decoder that restores them. Its id is derived from the
/// decoder's hash, so the same upload announced twice is the same upload.
public struct UploadSpec: Codable, Sendable, Equatable {
    public var mask: Int
    /// ``ModelIdentity`` hash of the decoder file, as 16 hex digits.
    public var decoderHash: String
    public var samples: Int
    public var samplesPerPart: Int
    public var latentShape: [Int]
    public var classes: Int

    public init(mask: Int, decoderHash: UInt64, samples: Int, samplesPerPart: Int, latentShape: [Int], classes: Int) {
        self.mask = mask; self.decoderHash = ModelIdentity.hex(decoderHash); self.samples = samples
        self.samplesPerPart = samplesPerPart; self.latentShape = latentShape; self.classes = classes
    }

    /// The id of the upload: `m<mask>-<decoder hash>`.
    public var id: String { "m\(mask)-\(decoderHash)" }
    /// Number of parts.
    public var partCount: Int { samplesPerPart > 0 ? (samples + samplesPerPart - 1) / samplesPerPart : 0 }
    /// Samples in part `index`.
    public func samples(inPart index: Int) -> Int { max(0, min(samplesPerPart, samples - index * samplesPerPart)) }
    /// The decoder hash as a number, nil if malformed.
    public var decoderHashValue: UInt64? { decoderHash.count == 16 ? UInt64(decoderHash, radix: 16) : nil }

    /// Why the spec cannot be accepted, or nil if it can.
    public var problem: String? {
        if !(0...4).contains(mask) { return "mask must be 0…4, not \(mask)" }
        if decoderHashValue == nil { return "decoderHash must be 16 hex digits" }
        if samples < 1 || samples > 100_000_000 { return "samples must be 1…100000000" }
        if samplesPerPart < 1 || samplesPerPart > 1_000_000 { return "samplesPerPart must be 1…1000000" }
        if latentShape.isEmpty || latentShape.count > LatentContainer.maxRank || latentShape.contains(where: { $0 < 1 || $0 > 4096 }) {
            return "latentShape must have 1…\(LatentContainer.maxRank) dimensions of 1…4096"
        }
        if classes < 1 || classes > 65_536 { return "classes must be 1…65536" }
        return nil
    }
}

/// How far an upload has come.
public struct UploadStatus: Codable, Sendable, Equatable {
    public var id: String
    public var spec: UploadSpec
    /// Indices of the parts stored, ascending.
    public var storedParts: [Int]
    public var storedBytes: Int
    public var decoderStored: Bool
    public var complete: Bool { decoderStored && storedParts.count == spec.partCount }
    public init(id: String, spec: UploadSpec, storedParts: [Int], storedBytes: Int, decoderStored: Bool) {
        self.id = id; self.spec = spec; self.storedParts = storedParts; self.storedBytes = storedBytes
        self.decoderStored = decoderStored
    }
    /// Parts still to send.
    public var missingParts: [Int] {
        let have = Set(storedParts)
        return (0..<spec.partCount).filter { !have.contains($0) }
    }

    private enum CodingKeys: String, CodingKey { case id, spec, storedParts, storedBytes, decoderStored, complete }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), spec: try c.decode(UploadSpec.self, forKey: .spec),
                  storedParts: try c.decode([Int].self, forKey: .storedParts), storedBytes: try c.decode(Int.self, forKey: .storedBytes),
                  decoderStored: try c.decode(Bool.self, forKey: .decoderStored))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(spec, forKey: .spec); try c.encode(storedParts, forKey: .storedParts)
        try c.encode(storedBytes, forKey: .storedBytes); try c.encode(decoderStored, forKey: .decoderStored)
        try c.encode(complete, forKey: .complete)
    }
}

/// The cloud's answer to a part or decoder upload.
public struct PartReceipt: Codable, Sendable, Equatable {
    /// Part index; −1 for the decoder.
    public var index: Int
    public var sha256: String
    /// False when the same bytes were already stored (a retry): acknowledged, not stored twice.
    public var stored: Bool
    public init(index: Int, sha256: String, stored: Bool) { self.index = index; self.sha256 = sha256; self.stored = stored }
}

/// Throughput the edge measured from its own transfers.
public struct BandwidthReport: Codable, Sendable, Equatable {
    /// Bytes of request bodies that were acknowledged in the window.
    public var bytes: Int
    /// Wall time of those transfers (seconds).
    public var seconds: Double
    /// Attempts that failed and were retried in the window.
    public var retries: Int
    public var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }
    public init(bytes: Int, seconds: Double, retries: Int) { self.bytes = bytes; self.seconds = seconds; self.retries = retries }
}

/// What the cloud asks of an edge: upload at `mask`, or nothing new (`mask == nil`).
public struct MaskRequest: Codable, Sendable, Equatable {
    public var mask: Int?
    /// Why, in words (for logs and the operator).
    public var reason: String
    /// The clearest mask whose upload fits the time budget at the measured bandwidth, whether
    /// or not it is asked for now (nil before a bandwidth is measured).
    public var fittingMask: Int?
    public init(mask: Int?, reason: String, fittingMask: Int? = nil) {
        self.mask = mask; self.reason = reason; self.fittingMask = fittingMask
    }
}

/// What the edge is doing, for the operator and `/metrics`.
public struct EdgeStatus: Codable, Sendable, Equatable {
    /// training, compressing, uploading, waiting, done …
    public var phase: String
    /// 0…1 within the phase.
    public var progress: Double
    public var message: String
    public init(phase: String, progress: Double, message: String = "") {
        self.phase = phase; self.progress = progress; self.message = message
    }
}

/// An error body: `{"error": "..."}`.
public struct APIError: Codable, Sendable, Equatable, Error {
    public var error: String
    public init(_ error: String) { self.error = error }
}
