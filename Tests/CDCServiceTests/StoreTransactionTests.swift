@testable import CDCStore
import Foundation
import Testing

@Suite struct StoreTransactionTests {
    /// A connection left inside a transaction (as a failed ROLLBACK would leave it) must not
    /// refuse every later write: the next write ends it and commits durably.
    @Test func aTransactionLeftOpenDoesNotBlockLaterWrites() async throws {
        try await withTemporaryDirectory("cdc-store") { dir in
            let path = dir.appendingPathComponent("cloud.db").path
            let store = try await SQLiteUploadStore.open(path: path)
            try await store.addEdge(name: "before", tokenSHA256: "aa")
            _ = try await store.connection.query("BEGIN")
            _ = try await store.connection.query("INSERT INTO edges (name, token_sha256, created) VALUES ('never-acknowledged', 'bb', 0)")
            try await store.addEdge(name: "after", tokenSHA256: "cc")
            try await store.close()

            let reopened = try await SQLiteUploadStore.open(path: path)
            let names = try await reopened.edgeNames()
            try await reopened.close()
            #expect(names.sorted() == ["after", "before"])
        }
    }
}
