import Foundation

/// A 64-byte aligned, uninitialised buffer of `Float`s owned by one tensor (or shared by views
/// that never write). Large buffers come from ``BufferPool`` and go back to it when freed.
public final class Storage: @unchecked Sendable {
    /// Base address of the buffer (never nil; a zero-size buffer still owns one element).
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of `Float`s in the buffer.
    public let count: Int
    private let pooledBytes: Int

    /// Allocates `count` floats, uninitialised.
    public init(count: Int) {
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let (raw, pooled) = BufferPool.shared.allocate(bytes)
        pooledBytes = pooled
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Allocates `count` floats set to `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(count: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit { BufferPool.shared.release(UnsafeMutableRawPointer(pointer), pooledBytes: pooledBytes) }

    /// The buffer as a mutable buffer pointer.
    @inlinable public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}

/// A caching allocator for large buffers (like PyTorch's CUDA caching allocator): a freed
/// buffer of ≥ 256 KiB is kept and handed out again for the next request of the same size
/// class, so a training loop stops paying for page faults and zeroing of fresh memory every
/// step. The cache is bounded (``limitBytes``) and can be emptied (``trim()``).
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cached = 0
    /// Most bytes kept in the cache (default 4 GiB).
    public var limitBytes = 4 << 30
    static let minimumPooled = 256 << 10

    /// Size class of a request: rounded up to a multiple of 1/16 of its power of two (≤ 12.5 % waste).
    static func sizeClass(_ bytes: Int) -> Int {
        let p = 1 << (Int.bitWidth - (bytes - 1).leadingZeroBitCount)
        let step = max(p / 16, 4096)
        return (bytes + step - 1) / step * step
    }

    func allocate(_ bytes: Int) -> (UnsafeMutableRawPointer, Int) {
        if bytes < Self.minimumPooled { return (Self.systemAllocate(bytes), 0) }
        let cls = Self.sizeClass(bytes)
        lock.lock()
        if var list = free[cls], let p = list.popLast() {
            free[cls] = list
            cached -= cls
            lock.unlock()
            return (p, cls)
        }
        lock.unlock()
        return (Self.systemAllocate(cls), cls)
    }

    func release(_ p: UnsafeMutableRawPointer, pooledBytes: Int) {
        guard pooledBytes > 0 else { Foundation.free(p); return }
        lock.lock()
        if cached + pooledBytes <= limitBytes {
            free[pooledBytes, default: []].append(p)
            cached += pooledBytes
            lock.unlock()
        } else {
            lock.unlock()
            Foundation.free(p)
        }
    }

    /// Returns every cached buffer to the system.
    public func trim() {
        lock.lock()
        let all = free.values.flatMap { $0 }
        free = [:]; cached = 0
        lock.unlock()
        for p in all { Foundation.free(p) }
    }

    /// Bytes currently held in the cache.
    public var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return cached }

    private static func systemAllocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        return raw
    }
}
