import Foundation

/// A 64-byte aligned, uninitialised buffer of `Float`s owned by one tensor (or shared by views
/// that never write). Freed when the last reference goes away.
public final class Storage: @unchecked Sendable {
    /// Base address of the buffer (never nil; a zero-size buffer still owns one element).
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of `Float`s in the buffer.
    public let count: Int

    /// Allocates `count` floats, uninitialised.
    public init(count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Allocates `count` floats set to `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(count: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit { free(pointer) }

    /// The buffer as a mutable buffer pointer.
    @inlinable public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}
