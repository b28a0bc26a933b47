// Writing a whole file so that a crash or power loss leaves either the old file or the new one.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file operation that failed: the path it was about and what went wrong (with the system's
/// message, e.g. "cannot create temporary file …: No such file or directory").
public struct FileIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file the operation was about (the target, not a temporary file).
    public var path: String
    /// What failed, and why.
    public var reason: String

    /// Creates an error about `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// "path: reason".
    public var description: String { "\(path): \(reason)" }
}

/// Durable, atomic replacement of a whole file.
///
/// ```swift
/// try DurableFile.write(container.encoded(), to: url)    // [UInt8], Data, a raw buffer, …
/// ```
///
/// ``write(_:to:)`` writes the bytes into a new temporary file in the target's directory
/// (`.<name>.<UUID>.tmp`), flushes it to disk (`fsync`), renames it over the target and then
/// flushes the directory, so that the rename itself survives a crash. Readers see the old file
/// or the new one, never a part of either; after a crash at most a temporary file is left.
/// On failure the temporary file is removed and the target is untouched.
public enum DurableFile {
    /// Replaces the file at `url` with `bytes`, durably and atomically (see ``DurableFile``).
    ///
    /// The new file gets mode 0644 (less the process's umask). The directory must exist.
    ///
    /// - Throws: ``FileIOError`` naming `url`'s path and the step that failed (creating,
    ///   writing, flushing or closing the temporary file, or renaming it into place). A failure
    ///   to flush the directory after the rename is not reported: the file is complete by then,
    ///   and some file systems cannot flush a directory.
    public static func write(_ bytes: some ContiguousBytes, to url: URL) throws(FileIOError) {
        try write(bytes, toPath: url.path)
    }

    /// Replaces the file at `path` with `bytes`; see ``write(_:to:)``.
    public static func write(_ bytes: some ContiguousBytes, toPath path: String) throws(FileIOError) {
        let result: Result<Void, FileIOError> = bytes.withUnsafeBytes { raw in
            Result { () throws(FileIOError) in try write(raw, path: path) }
        }
        try result.get()
    }

    private static func write(_ raw: UnsafeRawBufferPointer, path: String) throws(FileIOError) {
        guard !path.isEmpty else { throw FileIOError(path: path, reason: "empty path") }
        let (directory, name) = split(path)
        let temporary = directory + "/." + name + "." + UUID().uuidString + ".tmp"
        func fail(_ what: String, _ code: Int32 = errno) -> FileIOError {
            FileIOError(path: path, reason: "\(what): \(String(cString: strerror(code)))")
        }

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create temporary file \(temporary)") }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { close(fd) }
            if !renamed { unlink(temporary) }
        }
        var done = 0
        while done < raw.count {
            let n = systemWrite(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("cannot write temporary file \(temporary)")
            }
            done += n
        }
        guard fsync(fd) == 0 else { throw fail("cannot flush temporary file \(temporary) to disk") }
        isOpen = false
        guard close(fd) == 0 else { throw fail("cannot close temporary file \(temporary)") }
        guard rename(temporary, path) == 0 else { throw fail("cannot rename temporary file \(temporary) into place") }
        renamed = true

        // Make the rename durable. The file is complete whatever happens here, so a directory
        // that cannot be opened or flushed is not an error.
        let dirfd = openDirectory(directory)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    /// The directory part of `path` ("." for a bare name, "/" for a file in the root) and the
    /// last component.
    static func split(_ path: String) -> (directory: String, name: String) {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return (".", String(trimmed)) }
        let directory = trimmed[..<slash]
        return (directory.isEmpty ? "/" : String(directory), String(trimmed[trimmed.index(after: slash)...]))
    }
}

@inline(__always)
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}

@inline(__always)
private func openDirectory(_ directory: String) -> Int32 {
    open(directory, O_RDONLY | O_CLOEXEC)
}
