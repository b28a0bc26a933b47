import CDCWire

/// The cloud's durable store: edges and their credentials, uploads, their parts and decoders,
/// bandwidth reports, edge status and the cloud trainer's progress.
///
/// Every write that the service acknowledges is committed (durably) before the method returns,
/// and is atomic: a part or a decoder is either stored whole or not at all. Storing the same
/// part twice is idempotent. ``SQLiteUploadStore`` is the embedded implementation; a server
/// database (PostgreSQL through postgres-nio) is a second implementation of this protocol with
/// the same schema (see the README).
public protocol UploadStore: Sendable {
    /// Adds an edge with the SHA-256 (hex) of its token. Throws ``StoreError/conflict(_:)`` if the name is taken.
    func addEdge(name: String, tokenSHA256: String) async throws
    /// The edge whose token has this SHA-256, if any.
    func edge(tokenSHA256: String) async throws -> String?
    /// All edge names, sorted.
    func edgeNames() async throws -> [String]

    func register(edge: String, _ registration: EdgeRegistration) async throws
    func registration(edge: String) async throws -> EdgeRegistration?
    func setStatus(edge: String, _ status: EdgeStatus) async throws
    func status(edge: String) async throws -> EdgeStatus?

    /// Creates the upload, or returns it if the same spec exists; a different spec under the same
    /// id throws ``StoreError/conflict(_:)``.
    func createUpload(edge: String, spec: UploadSpec) async throws -> UploadStatus
    func upload(edge: String, id: String) async throws -> UploadStatus?
    /// The edge's uploads, oldest first.
    func uploads(edge: String) async throws -> [UploadStatus]

    /// Stores part `index` of an upload. Returns false (stores nothing) if the same bytes (by
    /// SHA-256) are already there; throws ``StoreError/conflict(_:)`` if different bytes are.
    func storePart(edge: String, upload: String, index: Int, sha256: String, samples: Int, bytes: [UInt8]) async throws -> Bool
    func part(edge: String, upload: String, index: Int) async throws -> [UInt8]?
    /// Stores the decoder of an upload, with the same rules as parts.
    func storeDecoder(edge: String, upload: String, sha256: String, bytes: [UInt8]) async throws -> Bool
    func decoder(edge: String, upload: String) async throws -> [UInt8]?

    func recordBandwidth(edge: String, _ report: BandwidthReport) async throws
    /// The most recent bandwidth report of at least `minimumBytes` (a report of a few kB is mostly
    /// round trips and slow start, not the link's rate); the most recent of any size if none is.
    func latestBandwidth(edge: String, minimumBytes: Int) async throws -> BandwidthReport?

    func setTraining(edge: String, _ progress: TrainingProgress) async throws
    func training(edge: String) async throws -> TrainingProgress?
}

/// The cloud trainer's progress on one edge's data, as it reports it to the store.
public struct TrainingProgress: Codable, Sendable, Equatable {
    public var mask: Int
    public var epoch: Int
    public var epochs: Int
    /// Accuracy on the held-out restored data after `epoch` (0…1).
    public var accuracy: Double
    public var converged: Bool
    public init(mask: Int, epoch: Int, epochs: Int, accuracy: Double, converged: Bool) {
        self.mask = mask; self.epoch = epoch; self.epochs = epochs; self.accuracy = accuracy; self.converged = converged
    }
}

/// What the store refuses.
public enum StoreError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The write disagrees with what is stored (a different part under the same index, a
    /// different upload under the same id, a taken edge name).
    case conflict(String)
    /// The edge, upload or part does not exist.
    case notFound(String)
    /// The database said no.
    case database(String)

    public var description: String {
        switch self {
        case .conflict(let s): return "conflict: \(s)"
        case .notFound(let s): return "not found: \(s)"
        case .database(let s): return "database: \(s)"
        }
    }
}
