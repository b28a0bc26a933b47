import CDCWire
import Foundation
import NIOCore
import SQLiteNIO

/// ``UploadStore`` on an SQLite file (through sqlite-nio), in WAL mode with `synchronous =
/// FULL`: a commit is on disk before the method returns, so whatever the service acknowledged
/// survives a crash of the process or the machine, and a crash mid-write leaves the previous
/// state (SQLite's atomic commit).
///
/// Writes are serialized (one transaction at a time, `BEGIN IMMEDIATE`); a part's check for an
/// existing copy and its insert are one transaction.
public actor SQLiteUploadStore: UploadStore {
    /// The schema version this code writes.
    public static let schemaVersion = 1

    /// The schema, portable to PostgreSQL with BLOB → BYTEA and REAL → DOUBLE PRECISION.
    static let schema = [
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        """
        CREATE TABLE IF NOT EXISTS edges (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE,
            registration TEXT, status TEXT, created REAL NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS uploads (edge TEXT NOT NULL REFERENCES edges(name), id TEXT NOT NULL,
            spec TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (edge, id))
        """,
        """
        CREATE TABLE IF NOT EXISTS parts (edge TEXT NOT NULL, upload TEXT NOT NULL, idx INTEGER NOT NULL,
            sha256 TEXT NOT NULL, samples INTEGER NOT NULL, size INTEGER NOT NULL, bytes BLOB NOT NULL, received REAL NOT NULL,
            PRIMARY KEY (edge, upload, idx), FOREIGN KEY (edge, upload) REFERENCES uploads(edge, id))
        """,
        """
        CREATE TABLE IF NOT EXISTS decoders (edge TEXT NOT NULL, upload TEXT NOT NULL, sha256 TEXT NOT NULL,
            bytes BLOB NOT NULL, received REAL NOT NULL, PRIMARY KEY (edge, upload),
            FOREIGN KEY (edge, upload) REFERENCES uploads(edge, id))
        """,
        """
        CREATE TABLE IF NOT EXISTS bandwidth (edge TEXT NOT NULL REFERENCES edges(name), bytes INTEGER NOT NULL,
            seconds REAL NOT NULL, retries INTEGER NOT NULL, at REAL NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS training (edge TEXT PRIMARY KEY REFERENCES edges(name), progress TEXT NOT NULL,
            at REAL NOT NULL)
        """,
    ]

    let connection: SQLiteConnection
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Opens (creating if needed) the store at `path`.
    public static func open(path: String) async throws -> SQLiteUploadStore {
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path))
        } catch {
            throw StoreError.database("cannot open \(path): \(error)")
        }
        let store = SQLiteUploadStore(connection: connection)
        try await store.migrate()
        return store
    }

    init(connection: SQLiteConnection) { self.connection = connection }

    /// Closes the database.
    public func close() async throws { try await connection.close() }

    private func migrate() async throws {
        try await serialized {
            _ = try await self.connection.query("PRAGMA journal_mode=WAL")
            _ = try await self.connection.query("PRAGMA synchronous=FULL")
            _ = try await self.connection.query("PRAGMA foreign_keys=ON")
            _ = try await self.connection.query("PRAGMA busy_timeout=5000")
            for statement in Self.schema { _ = try await self.connection.query(statement) }
            let rows = try await self.connection.query("SELECT version FROM schema_version")
            if let v = rows.first?.column("version")?.integer {
                guard v == Self.schemaVersion else {
                    throw StoreError.database("the store has schema version \(v); this cdc reads version \(Self.schemaVersion)")
                }
            } else {
                _ = try await self.connection.query("INSERT INTO schema_version (version) VALUES (?)", [.integer(Self.schemaVersion)])
            }
        }
    }

    // MARK: Serialization

    /// Runs `body` alone (no other store call interleaves at its awaits).
    private func serialized<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        while busy { await withCheckedContinuation { waiters.append($0) } }
        busy = true
        defer {
            busy = false
            if !waiters.isEmpty { waiters.removeFirst().resume() }
        }
        return try await body()
    }

    /// Runs `body` in one write transaction: committed if it returns, rolled back if it throws.
    private func transaction<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await serialized {
            do {
                _ = try await connection.query("BEGIN IMMEDIATE")
            } catch {
                // A connection left inside a transaction (a ROLLBACK below that failed) would
                // refuse every later write. What that transaction held was never acknowledged
                // (its caller got an error), so it is rolled back and BEGIN tried once more.
                _ = try? await connection.query("ROLLBACK")
                _ = try await connection.query("BEGIN IMMEDIATE")
            }
            do {
                let result = try await body()
                _ = try await connection.query("COMMIT")
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    private func query(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        try await connection.query(sql, binds)
    }

    private func read(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        try await serialized { try await connection.query(sql, binds) }
    }

    private static func json<T: Encodable>(_ value: T) throws -> SQLiteData {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return .text(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ data: SQLiteData?) throws -> T? {
        guard let text = data?.string else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    private static var now: SQLiteData { .float(Date().timeIntervalSince1970) }

    private static func bytes(_ data: SQLiteData?) -> [UInt8]? {
        guard var buffer = data?.blob else { return nil }
        return buffer.readBytes(length: buffer.readableBytes)
    }

    // MARK: Edges

    public func addEdge(name: String, tokenSHA256: String) async throws {
        try await transaction {
            if try await query("SELECT name FROM edges WHERE name = ?", [.text(name)]).first != nil {
                throw StoreError.conflict("an edge named '\(name)' exists")
            }
            _ = try await query("INSERT INTO edges (name, token_sha256, created) VALUES (?, ?, ?)",
                                [.text(name), .text(tokenSHA256), Self.now])
        }
    }

    public func edge(tokenSHA256: String) async throws -> String? {
        try await read("SELECT name FROM edges WHERE token_sha256 = ?", [.text(tokenSHA256)]).first?.column("name")?.string
    }

    public func edgeNames() async throws -> [String] {
        try await read("SELECT name FROM edges ORDER BY name").compactMap { $0.column("name")?.string }
    }

    public func register(edge: String, _ registration: EdgeRegistration) async throws {
        try await transaction {
            _ = try await query("UPDATE edges SET registration = ? WHERE name = ?", [try Self.json(registration), .text(edge)])
        }
    }

    public func registration(edge: String) async throws -> EdgeRegistration? {
        try Self.decode(EdgeRegistration.self, try await read("SELECT registration FROM edges WHERE name = ?", [.text(edge)]).first?.column("registration"))
    }

    public func setStatus(edge: String, _ status: EdgeStatus) async throws {
        try await transaction {
            _ = try await query("UPDATE edges SET status = ? WHERE name = ?", [try Self.json(status), .text(edge)])
        }
    }

    public func status(edge: String) async throws -> EdgeStatus? {
        try Self.decode(EdgeStatus.self, try await read("SELECT status FROM edges WHERE name = ?", [.text(edge)]).first?.column("status"))
    }

    // MARK: Uploads

    public func createUpload(edge: String, spec: UploadSpec) async throws -> UploadStatus {
        try await transaction {
            let existing = try await query("SELECT spec FROM uploads WHERE edge = ? AND id = ?", [.text(edge), .text(spec.id)])
            if let row = existing.first {
                guard try Self.decode(UploadSpec.self, row.column("spec")) == spec else {
                    throw StoreError.conflict("upload \(spec.id) exists with a different spec")
                }
            } else {
                _ = try await query("INSERT INTO uploads (edge, id, spec, created) VALUES (?, ?, ?, ?)",
                                    [.text(edge), .text(spec.id), try Self.json(spec), Self.now])
            }
            return try await statusLocked(edge: edge, id: spec.id)!
        }
    }

    public func upload(edge: String, id: String) async throws -> UploadStatus? {
        try await serialized { try await statusLocked(edge: edge, id: id) }
    }

    public func uploads(edge: String) async throws -> [UploadStatus] {
        try await serialized {
            var out: [UploadStatus] = []
            for row in try await query("SELECT id FROM uploads WHERE edge = ? ORDER BY created, id", [.text(edge)]) {
                if let id = row.column("id")?.string, let s = try await statusLocked(edge: edge, id: id) { out.append(s) }
            }
            return out
        }
    }

    /// The status of an upload; the caller holds the serialization.
    private func statusLocked(edge: String, id: String) async throws -> UploadStatus? {
        guard let row = try await query("SELECT spec FROM uploads WHERE edge = ? AND id = ?", [.text(edge), .text(id)]).first,
              let spec = try Self.decode(UploadSpec.self, row.column("spec")) else { return nil }
        let parts = try await query("SELECT idx, size FROM parts WHERE edge = ? AND upload = ? ORDER BY idx", [.text(edge), .text(id)])
        let decoder = try await query("SELECT length(bytes) AS n FROM decoders WHERE edge = ? AND upload = ?", [.text(edge), .text(id)])
        let indices: [Int] = parts.compactMap { row in row.column("idx")?.integer.map { Int($0) } }
        let sizes: [Int] = parts.compactMap { row in row.column("size")?.integer.map { Int($0) } }
        return UploadStatus(id: id, spec: spec, storedParts: indices, storedBytes: sizes.reduce(0, +),
                            decoderStored: !decoder.isEmpty)
    }

    public func storePart(edge: String, upload: String, index: Int, sha256: String, samples: Int, bytes: [UInt8]) async throws -> Bool {
        try await transaction {
            guard try await query("SELECT id FROM uploads WHERE edge = ? AND id = ?", [.text(edge), .text(upload)]).first != nil else {
                throw StoreError.notFound("upload \(upload)")
            }
            let key: [SQLiteData] = [.text(edge), .text(upload), .integer(index)]
            if let existing = try await query("SELECT sha256 FROM parts WHERE edge = ? AND upload = ? AND idx = ?", key).first {
                guard existing.column("sha256")?.string == sha256 else {
                    throw StoreError.conflict("part \(index) of \(upload) is stored with other bytes")
                }
                return false
            }
            _ = try await query("INSERT INTO parts (edge, upload, idx, sha256, samples, size, bytes, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [.text(edge), .text(upload), .integer(index), .text(sha256), .integer(samples),
                                 .integer(bytes.count), .blob(ByteBuffer(bytes: bytes)), Self.now])
            return true
        }
    }

    public func part(edge: String, upload: String, index: Int) async throws -> [UInt8]? {
        Self.bytes(try await read("SELECT bytes FROM parts WHERE edge = ? AND upload = ? AND idx = ?",
                                  [.text(edge), .text(upload), .integer(index)]).first?.column("bytes"))
    }

    public func storeDecoder(edge: String, upload: String, sha256: String, bytes: [UInt8]) async throws -> Bool {
        try await transaction {
            guard try await query("SELECT id FROM uploads WHERE edge = ? AND id = ?", [.text(edge), .text(upload)]).first != nil else {
                throw StoreError.notFound("upload \(upload)")
            }
            if let existing = try await query("SELECT sha256 FROM decoders WHERE edge = ? AND upload = ?", [.text(edge), .text(upload)]).first {
                guard existing.column("sha256")?.string == sha256 else {
                    throw StoreError.conflict("the decoder of \(upload) is stored with other bytes")
                }
                return false
            }
            _ = try await query("INSERT INTO decoders (edge, upload, sha256, bytes, received) VALUES (?, ?, ?, ?, ?)",
                                [.text(edge), .text(upload), .text(sha256), .blob(ByteBuffer(bytes: bytes)), Self.now])
            return true
        }
    }

    public func decoder(edge: String, upload: String) async throws -> [UInt8]? {
        Self.bytes(try await read("SELECT bytes FROM decoders WHERE edge = ? AND upload = ?", [.text(edge), .text(upload)]).first?.column("bytes"))
    }

    // MARK: Bandwidth and training

    public func recordBandwidth(edge: String, _ report: BandwidthReport) async throws {
        try await transaction {
            _ = try await query("INSERT INTO bandwidth (edge, bytes, seconds, retries, at) VALUES (?, ?, ?, ?, ?)",
                                [.text(edge), .integer(report.bytes), .float(report.seconds), .integer(report.retries), Self.now])
        }
    }

    public func latestBandwidth(edge: String, minimumBytes: Int) async throws -> BandwidthReport? {
        guard let row = try await read("SELECT bytes, seconds, retries FROM bandwidth WHERE edge = ? ORDER BY bytes >= ? DESC, rowid DESC LIMIT 1",
                                       [.text(edge), .integer(minimumBytes)]).first else { return nil }
        return BandwidthReport(bytes: Int(row.column("bytes")?.integer ?? 0), seconds: row.column("seconds")?.double ?? 0,
                               retries: Int(row.column("retries")?.integer ?? 0))
    }

    public func setTraining(edge: String, _ progress: TrainingProgress) async throws {
        try await transaction {
            _ = try await query("INSERT INTO training (edge, progress, at) VALUES (?, ?, ?) ON CONFLICT (edge) DO UPDATE SET progress = excluded.progress, at = excluded.at",
                                [.text(edge), try Self.json(progress), Self.now])
        }
    }

    public func training(edge: String) async throws -> TrainingProgress? {
        try Self.decode(TrainingProgress.self, try await read("SELECT progress FROM training WHERE edge = ?", [.text(edge)]).first?.column("progress"))
    }
}
