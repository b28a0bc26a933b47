/// Fixed-width bit packing of quantizer symbols, MSB first.
///
/// A symbol q of mask m (L = 2^(4−m), q ∈ −L+1...L) is stored as `u = q + L − 1` in exactly
/// `b = 5 − m` bits. Symbols are written one after the other, the first in the most significant
/// bits of the first byte; the last byte is zero-padded. So `n` symbols take `⌈n·b/8⌉` bytes.
///
/// Eight symbols of b bits fill exactly b bytes, which is how both loops run: they gather eight
/// symbols into one `UInt64` and write (or read) its low `8·b` bits as b big-endian bytes. The
/// bit width is a literal in each `switch` arm, so the inlined kernels unroll for it.
enum BitPacking {
    /// Bytes that `count` symbols of `bits` bits take: ⌈count·bits/8⌉.
    @inline(__always)
    static func packedByteCount(symbols count: Int, bits: Int) -> Int {
        (count * bits + 7) / 8
    }

    /// Packs `count` symbols of mask `mask` from `source` into the
    /// `packedByteCount(symbols: count, bits: 5 − mask)` bytes at `destination`.
    ///
    /// Returns 0 when every symbol is in range; otherwise a nonzero value (the OR of the bits
    /// above the field width of all offset symbols), and the bytes written are meaningless.
    static func pack(_ source: UnsafePointer<Int8>, count: Int, mask: Int,
                     into destination: UnsafeMutablePointer<UInt8>) -> UInt8 {
        switch mask {
        case 0: return packKernel(source, count, destination, bits: 5, offset: 15)
        case 1: return packKernel(source, count, destination, bits: 4, offset: 7)
        case 2: return packKernel(source, count, destination, bits: 3, offset: 3)
        case 3: return packKernel(source, count, destination, bits: 2, offset: 1)
        case 4: return packKernel(source, count, destination, bits: 1, offset: 0)
        default: preconditionFailure("mask \(mask) is not in 0...4")
        }
    }

    /// Unpacks `count` symbols of mask `mask` from `source` into `destination`.
    ///
    /// Every bit pattern is a valid symbol, so this cannot fail; it returns false when the
    /// padding bits after the last symbol (in the last byte) are not zero.
    static func unpack(_ source: UnsafePointer<UInt8>, count: Int, mask: Int,
                       into destination: UnsafeMutablePointer<Int8>) -> Bool {
        switch mask {
        case 0: return unpackKernel(source, count, destination, bits: 5, offset: 15)
        case 1: return unpackKernel(source, count, destination, bits: 4, offset: 7)
        case 2: return unpackKernel(source, count, destination, bits: 3, offset: 3)
        case 3: return unpackKernel(source, count, destination, bits: 2, offset: 1)
        case 4: return unpackKernel(source, count, destination, bits: 1, offset: 0)
        default: preconditionFailure("mask \(mask) is not in 0...4")
        }
    }

    @inline(__always)
    private static func packKernel(_ src: UnsafePointer<Int8>, _ n: Int, _ dst: UnsafeMutablePointer<UInt8>,
                                   bits b: Int, offset: Int8) -> UInt8 {
        let outside = ~UInt8(truncatingIfNeeded: (1 << b) - 1)
        var bad: UInt8 = 0
        var i = 0, o = 0
        let whole = n & ~7
        while i < whole {
            var v: UInt64 = 0
            for k in 0..<8 {
                let u = UInt8(bitPattern: src[i &+ k] &+ offset)
                bad |= u & outside
                v = (v &<< UInt64(b)) | UInt64(u)
            }
            for j in 0..<b {
                dst[o &+ j] = UInt8(truncatingIfNeeded: v &>> UInt64(8 &* (b &- 1 &- j)))
            }
            i &+= 8
            o &+= b
        }
        let r = n &- whole
        if r > 0 {
            // The missing symbols count as 0, which zero-pads the last byte.
            var v: UInt64 = 0
            for k in 0..<8 {
                var u: UInt8 = 0
                if k < r {
                    u = UInt8(bitPattern: src[i &+ k] &+ offset)
                    bad |= u & outside
                }
                v = (v &<< UInt64(b)) | UInt64(u)
            }
            let bytes = (r &* b &+ 7) &>> 3
            for j in 0..<bytes {
                dst[o &+ j] = UInt8(truncatingIfNeeded: v &>> UInt64(8 &* (b &- 1 &- j)))
            }
        }
        return bad
    }

    @inline(__always)
    private static func unpackKernel(_ src: UnsafePointer<UInt8>, _ n: Int, _ dst: UnsafeMutablePointer<Int8>,
                                     bits b: Int, offset: Int8) -> Bool {
        let field = UInt64((1 << b) - 1)
        var i = 0, o = 0
        let whole = n & ~7
        while i < whole {
            var v: UInt64 = 0
            for j in 0..<b { v = (v &<< 8) | UInt64(src[o &+ j]) }
            for k in 0..<8 {
                let u = UInt8(truncatingIfNeeded: (v &>> UInt64((7 &- k) &* b)) & field)
                dst[i &+ k] = Int8(bitPattern: u) &- offset
            }
            i &+= 8
            o &+= b
        }
        let r = n &- whole
        if r > 0 {
            let bytes = (r &* b &+ 7) &>> 3
            var v: UInt64 = 0
            for j in 0..<b { v = (v &<< 8) | (j < bytes ? UInt64(src[o &+ j]) : 0) }
            for k in 0..<r {
                let u = UInt8(truncatingIfNeeded: (v &>> UInt64((7 &- k) &* b)) & field)
                dst[i &+ k] = Int8(bitPattern: u) &- offset
            }
            // Bits after the r-th symbol: the padding of the last byte (and zeros beyond it).
            let padding = (UInt64(1) &<< UInt64((8 &- r) &* b)) &- 1
            return v & padding == 0
        }
        return true
    }
}
