// Little-endian integers in byte buffers: the one reader and writer of the binary formats
// (latent containers, safetensors, WebP's RIFF chunks, checkpoints, prior files).

/// Loads, stores and appends of little-endian integers.
///
/// ```swift
/// let n = LittleEndian.load(UInt32.self, from: bytes, at: 4)        // [UInt8] or a raw buffer
/// let x: UInt64 = LittleEndian.load(from: pointer)                  // unchecked, for hot loops
/// var out: [UInt8] = []
/// LittleEndian.append(UInt16(1), to: &out)                          // 01 00
/// LittleEndian.append(UInt64(label), byteCount: 2, to: &out)        // the low 2 bytes
/// ```
///
/// Nothing needs to be aligned. Reads that may run past the end of the bytes go through
/// ``LittleEndianReader``, which throws ``TruncatedRead`` instead.
public enum LittleEndian {
    // MARK: Loading

    /// The `T` whose little-endian bytes start at `pointer`; no alignment needed and no bounds
    /// checked (for hot loops whose bounds are known).
    @inlinable @inline(__always)
    public static func load<T: FixedWidthInteger>(_: T.Type = T.self, from pointer: UnsafeRawPointer) -> T {
        T(littleEndian: pointer.loadUnaligned(as: T.self))
    }

    /// The `T` whose little-endian bytes start at byte `offset` of `bytes`.
    ///
    /// - Precondition: the `T` lies within `bytes`.
    @inlinable @inline(__always)
    public static func load<T: FixedWidthInteger>(_: T.Type = T.self, from bytes: UnsafeRawBufferPointer,
                                                  at offset: Int) -> T {
        precondition(offset >= 0 && offset <= bytes.count - MemoryLayout<T>.size,
                     "LittleEndian.load: \(MemoryLayout<T>.size) bytes at offset \(offset) of \(bytes.count)")
        return load(T.self, from: bytes.baseAddress! + offset)
    }

    /// The `T` whose little-endian bytes start at byte `offset` of `bytes`.
    ///
    /// - Precondition: the `T` lies within `bytes`.
    @inlinable @inline(__always)
    public static func load<T: FixedWidthInteger>(_: T.Type = T.self, from bytes: [UInt8], at offset: Int) -> T {
        bytes.withUnsafeBytes { load(T.self, from: $0, at: offset) }
    }

    /// The unsigned integer of `byteCount` (0...8) little-endian bytes at `pointer`, unchecked
    /// like the load from a pointer above: for fields whose width the data decides (a label of
    /// 1 or 2 bytes).
    @inlinable @inline(__always)
    public static func load(byteCount: Int, from pointer: UnsafeRawPointer) -> UInt64 {
        switch byteCount {
        case 1: return UInt64(pointer.load(as: UInt8.self))
        case 2: return UInt64(load(UInt16.self, from: pointer))
        case 4: return UInt64(load(UInt32.self, from: pointer))
        case 8: return load(UInt64.self, from: pointer)
        default:
            precondition((0...8).contains(byteCount), "LittleEndian.load: byteCount \(byteCount) is not in 0...8")
            var v: UInt64 = 0
            for k in 0..<byteCount { v |= UInt64(pointer.load(fromByteOffset: k, as: UInt8.self)) << (8 * k) }
            return v
        }
    }

    // MARK: Storing

    /// Writes `value`'s little-endian bytes at `pointer`; no alignment needed, unchecked.
    @inlinable @inline(__always)
    public static func store<T: FixedWidthInteger>(_ value: T, to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Writes the low `byteCount` (0...8) bytes of `value`, little-endian, at `pointer`; unchecked.
    @inlinable @inline(__always)
    public static func store(_ value: UInt64, byteCount: Int, to pointer: UnsafeMutableRawPointer) {
        switch byteCount {
        case 1: pointer.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 2: store(UInt16(truncatingIfNeeded: value), to: pointer)
        case 4: store(UInt32(truncatingIfNeeded: value), to: pointer)
        case 8: store(value, to: pointer)
        default:
            precondition((0...8).contains(byteCount), "LittleEndian.store: byteCount \(byteCount) is not in 0...8")
            for k in 0..<byteCount {
                pointer.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * k)), toByteOffset: k, as: UInt8.self)
            }
        }
    }

    /// Overwrites the bytes of `bytes` from `offset` on with `value`'s little-endian bytes (to
    /// patch a length written before it was known).
    ///
    /// - Precondition: the `T` lies within `bytes`.
    @inlinable
    public static func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
        precondition(offset >= 0 && offset <= bytes.count - MemoryLayout<T>.size,
                     "LittleEndian.store: \(MemoryLayout<T>.size) bytes at offset \(offset) of \(bytes.count)")
        bytes.withUnsafeMutableBytes { store(value, to: $0.baseAddress! + offset) }
    }

    // MARK: Appending

    /// Appends `value`'s little-endian bytes to `bytes`.
    @inlinable @inline(__always)
    public static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends the low `byteCount` (0...8) bytes of `value`, little-endian, to `bytes`.
    @inlinable @inline(__always)
    public static func append(_ value: UInt64, byteCount: Int, to bytes: inout [UInt8]) {
        precondition((0...8).contains(byteCount), "LittleEndian.append: byteCount \(byteCount) is not in 0...8")
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0.prefix(byteCount)) }
    }

    /// `value`'s little-endian bytes.
    @inlinable
    public static func bytes<T: FixedWidthInteger>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

/// A read that needs more bytes than remain: ``needed`` bytes at ``offset`` of bytes that end at
/// ``length``.
public struct TruncatedRead: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the read starts.
    public var offset: Int
    /// How many bytes it needs.
    public var needed: Int
    /// How many bytes there are in all.
    public var length: Int

    /// Creates the error of a read of `needed` bytes at `offset` of `length` bytes.
    @inlinable
    public init(offset: Int, needed: Int, length: Int) {
        self.offset = offset
        self.needed = needed
        self.length = length
    }

    /// "needs N bytes at offset O, but the bytes end at L".
    public var description: String {
        "needs \(needed) byte\(needed == 1 ? "" : "s") at offset \(offset), but the bytes end at \(length)"
    }
}

/// Sequential little-endian reads from a byte buffer that throw ``TruncatedRead`` rather than
/// read past its end.
///
/// ```swift
/// try bytes.withUnsafeBytes { raw in
///     var r = LittleEndianReader(raw)
///     let magic = try r.take(4)           // the next 4 bytes
///     let version = try r.u16()
///     let count = try r.read(UInt32.self)
///     let label = try r.read(byteCount: width)
/// }
/// ```
///
/// The reader borrows the buffer: use it only while the buffer is valid (inside the
/// `withUnsafeBytes` that made it). A read that throws leaves ``offset`` where it was.
public struct LittleEndianReader {
    /// The bytes read from.
    public let buffer: UnsafeRawBufferPointer
    /// The position of the next read, from the start of ``buffer``.
    public var offset: Int

    /// A reader of `buffer` starting at `offset`.
    @inlinable
    public init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0) {
        precondition(offset >= 0 && offset <= buffer.count, "LittleEndianReader: offset \(offset) outside 0...\(buffer.count)")
        self.buffer = buffer
        self.offset = offset
    }

    /// A reader of `buffer` starting at `offset`.
    @inlinable
    public init(_ buffer: UnsafeBufferPointer<UInt8>, offset: Int = 0) {
        self.init(UnsafeRawBufferPointer(buffer), offset: offset)
    }

    /// Bytes left after ``offset``.
    @inlinable
    public var remaining: Int { buffer.count - offset }

    /// Whether every byte has been read.
    @inlinable
    public var isAtEnd: Bool { offset == buffer.count }

    /// Moves past `count` bytes; returns the offset they start at.
    @inlinable @inline(__always) @discardableResult
    public mutating func skip(_ count: Int) throws(TruncatedRead) -> Int {
        guard count >= 0, remaining >= count else {
            throw TruncatedRead(offset: offset, needed: count, length: buffer.count)
        }
        defer { offset += count }
        return offset
    }

    /// The next `count` bytes (a slice of ``buffer``).
    @inlinable @inline(__always)
    public mutating func take(_ count: Int) throws(TruncatedRead) -> UnsafeRawBufferPointer {
        let start = try skip(count)
        return UnsafeRawBufferPointer(rebasing: buffer[start ..< start + count])
    }

    /// The next `T`.
    @inlinable @inline(__always)
    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws(TruncatedRead) -> T {
        let start = try skip(MemoryLayout<T>.size)
        return LittleEndian.load(T.self, from: buffer.baseAddress! + start)
    }

    /// The next unsigned integer of `byteCount` (0...8) bytes.
    @inlinable @inline(__always)
    public mutating func read(byteCount: Int) throws(TruncatedRead) -> UInt64 {
        precondition((0...8).contains(byteCount), "LittleEndianReader: byteCount \(byteCount) is not in 0...8")
        let start = try skip(byteCount)
        guard byteCount > 0 else { return 0 }
        return LittleEndian.load(byteCount: byteCount, from: buffer.baseAddress! + start)
    }

    /// The next byte.
    @inlinable public mutating func u8() throws(TruncatedRead) -> UInt8 { try read(UInt8.self) }
    /// The next `UInt16`.
    @inlinable public mutating func u16() throws(TruncatedRead) -> UInt16 { try read(UInt16.self) }
    /// The next `UInt32`.
    @inlinable public mutating func u32() throws(TruncatedRead) -> UInt32 { try read(UInt32.self) }
    /// The next `UInt64`.
    @inlinable public mutating func u64() throws(TruncatedRead) -> UInt64 { try read(UInt64.self) }
    /// The next `Int32`.
    @inlinable public mutating func i32() throws(TruncatedRead) -> Int32 { try read(Int32.self) }
    /// The next `Int64`.
    @inlinable public mutating func i64() throws(TruncatedRead) -> Int64 { try read(Int64.self) }
}
