// The checksum of every section of a latent container (FORMAT.md: "Layout (version 1)").

import CZlib

/// zlib's CRC32 of `n` bytes at `p`.
@inline(__always)
func crc32(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
    UInt32(truncatingIfNeeded: crc32_z(0, p, n))
}
