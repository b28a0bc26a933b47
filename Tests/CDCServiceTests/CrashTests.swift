import CDCCodec
import CDCEdgeClient
import CDCStore
import CDCWire
import Foundation
import Testing

/// The `cdc` executable built next to the tests.
func cdcExecutable() throws -> URL {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cdc"),
        URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/cdc"),
    ]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw WireError("the cdc executable is not built (looked in \(candidates.map(\.path)))")
    }
    return found
}

/// Runs `cdc` with `arguments` to the end; returns its standard output.
func runCDC(_ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = try cdcExecutable()
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw WireError("cdc \(arguments) exited with \(p.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}

/// A `cdc cloud serve` process on a free port, and that port (read from its first line).
func startServer(store: String) async throws -> (Process, Int) {
    let p = Process()
    p.executableURL = try cdcExecutable()
    p.arguments = ["cloud", "serve", "--store", store, "--port", "0"]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let handle = out.fileHandleForReading
    let line: String = try await Task.detached {
        var text = ""
        while !text.contains("\n") {
            let chunk = handle.availableData
            if chunk.isEmpty { throw WireError("the server exited before listening") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        return text
    }.value
    guard let portText = line.split(separator: "\n")[0].split(separator: ":").last?.split(separator: " ").first,
          let port = Int(portText) else { throw WireError("no port in '\(line)'") }
    return (p, port)
}

/// Acknowledged part indices, shared by the uploading tasks.
actor Acknowledged {
    var indices: Set<Int> = []
    func add(_ i: Int) { indices.insert(i) }
}

@Suite struct CrashTests {
    /// A server killed with SIGKILL in the middle of concurrent uploads, then restarted on the
    /// same store: every part it acknowledged is there, every stored part is whole (byte-exact),
    /// and the upload then completes with every sample exactly once.
    @Test func killedServerKeepsEveryAcknowledgedPartAndNoPartialOne() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = dir.appendingPathComponent("cloud.db").path
        let token = try runCDC(["cloud", "add-edge", "--store", store, "--name", "edge-1"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let (container, decoder) = try toyUpload(count: 2400, mask: 3, seed: 9)
        let parts = try container.parts(samplesPerPart: 6).map { try $0.checkedEncoded() }   // 400 parts
        let spec = UploadSpec(mask: 3, decoderHash: container.decoderHash, samples: 2400, samplesPerPart: 6,
                              latentShape: [4, 2, 2], classes: 10)

        let (server, port) = try await startServer(store: store)
        let client = CloudClient(baseURL: "http://127.0.0.1:\(port)", token: token, retry: RetryPolicy(attempts: 1), timeout: 5)
        _ = try await client.createUpload(spec)
        let acknowledged = Acknowledged()
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<4 {
                group.addTask {
                    for i in stride(from: lane, to: parts.count, by: 4) {
                        do {
                            _ = try await client.putPart(upload: spec.id, index: i, bytes: parts[i])
                            await acknowledged.add(i)
                        } catch { return }   // the server is gone
                    }
                }
            }
            group.addTask {
                while await acknowledged.indices.count < 80 { try? await Task.sleep(nanoseconds: 2_000_000) }
                kill(server.processIdentifier, SIGKILL)
            }
        }
        server.waitUntilExit()
        #expect(server.terminationReason == .uncaughtSignal)
        let acked = await acknowledged.indices
        #expect(acked.count >= 80 && acked.count < parts.count)

        let (restarted, port2) = try await startServer(store: store)
        let client2 = CloudClient(baseURL: "http://127.0.0.1:\(port2)", token: token, timeout: 5)
        let status = try await client2.upload(id: spec.id)
        #expect(acked.isSubset(of: Set(status.storedParts)), "acknowledged but lost: \(acked.subtracting(status.storedParts).sorted())")
        #expect(status.storedBytes == status.storedParts.map { parts[$0].count }.reduce(0, +))   // no partial part
        // Finishing the upload sends only what is missing; the store then holds every sample once.
        let result = try await EdgeUploader(client: client2, samplesPerPart: 6).upload(container, decoder: decoder)
        #expect(result.partsSkipped == status.storedParts.count)
        #expect(result.status.complete && result.status.storedParts == Array(0..<400))
        #expect(result.status.storedBytes == parts.map(\.count).reduce(0, +))
        restarted.terminate()   // SIGTERM: a graceful stop
        restarted.waitUntilExit()
        #expect(restarted.terminationStatus == 0)
        let db = try await SQLiteUploadStore.open(path: store)
        let stored = try await storedContainer(db, result.status)
        try await db.close()
        #expect(stored.symbols == container.symbols && stored.labels == container.labels)
    }
}
