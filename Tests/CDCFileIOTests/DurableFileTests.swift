@testable import CDCFileIO
import Foundation
import Testing

private func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-fileio-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct DurableFileTests {
    @Test func writesTheBytes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("a.bin")
        let bytes: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try DurableFile.write(bytes, to: url)
        #expect(try Data(contentsOf: url) == Data(bytes))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["a.bin"])
    }

    @Test func writesDataAndEmptyFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("session.json")
        try DurableFile.write(Data("{}".utf8), to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == "{}")
        try DurableFile.write([UInt8](), toPath: url.path)
        #expect(try Data(contentsOf: url).isEmpty)
    }

    @Test func overwritesAndLeavesNoTemporaryFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        try DurableFile.write([UInt8](repeating: 7, count: 4096), to: url)
        try DurableFile.write([1, 2, 3] as [UInt8], to: url)
        #expect(try Data(contentsOf: url) == Data([1, 2, 3]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
    }

    @Test func relativePathsWriteIntoTheCurrentDirectory() throws {
        #expect(DurableFile.split("x.bin") == (".", "x.bin"))
        #expect(DurableFile.split("/x.bin") == ("/", "x.bin"))
        #expect(DurableFile.split("a/b/x.bin") == ("a/b", "x.bin"))
    }

    @Test func missingDirectoryIsAnErrorNamingThePath() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("no-such-dir/x.bin")
        #expect {
            try DurableFile.write([1] as [UInt8], to: url)
        } throws: { error in
            guard let error = error as? FileIOError else { return false }
            return error.path == url.path && error.reason.contains("No such file")
                && error.description.hasPrefix(url.path + ": ")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("no-such-dir").path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func aFailedRenameLeavesTheTargetAndNoTemporaryFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The target is a non-empty directory: the rename over it fails.
        let target = dir.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        try Data([9]).write(to: target.appendingPathComponent("inside"))
        #expect {
            try DurableFile.write([1, 2] as [UInt8], to: target)
        } throws: { error in
            guard let error = error as? FileIOError else { return false }
            return error.path == target.path && error.reason.contains("rename")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["taken"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path) == ["inside"])
    }
}
