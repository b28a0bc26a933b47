// Latent containers in files: durable atomic writes (CDCFileIO's DurableFile) and whole-file
// reads with errors that name the path.

import CDCFileIO
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension LatentContainer {
    /// Writes the container to `url` durably and atomically (CDCFileIO's `DurableFile`): into a temporary
    /// file in the same directory, flushed to disk, then renamed over `url`. Readers see the old
    /// file or the new one, never a part.
    ///
    /// - Throws: ``ContainerError`` if the container is invalid or ``ContainerError/io(path:reason:)``.
    public func write(to url: URL) throws {
        let bytes = try checkedEncoded()
        do {
            try DurableFile.write(bytes, to: url)
        } catch {
            throw ContainerError.io(path: error.path, reason: error.reason)
        }
    }

    /// Reads and decodes the container at `url` (see ``decode(_:)``).
    ///
    /// - Throws: ``ContainerError/io(path:reason:)`` if the file cannot be read, else what
    ///   ``decode(_:)`` throws.
    public static func read(from url: URL) throws -> LatentContainer {
        try decode(readFile(url.path))
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        func fail(_ what: String) -> ContainerError {
            ContainerError.io(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail("cannot stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ContainerError.io(path: path, reason: "not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        bytes.reserveCapacity(Int(info.st_size))
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("cannot read")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}

@inline(__always)
private func posixRead(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int {
    read(fd, p, n)
}
