import Foundation

/// The identity of a decoder: a 64-bit hash of its weights file, stored in every
/// ``LatentContainer`` so the cloud restores symbols with the decoder that matches the encoder
/// which produced them.
///
/// ```swift
/// let weights = [UInt8](try Data(contentsOf: decoderURL))  // the decoder's safetensors file
/// let container = try LatentContainer(mask: 2, latentShape: [16, 7, 7], symbols: q,
///                                     labels: y, classes: 10,
///                                     decoderHash: ModelIdentity.hash(weights))
/// ```
///
/// The hash is 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over the
/// bytes exactly as given — the whole safetensors file, header and data. It is deterministic
/// across platforms and runs, but it is not cryptographic: it tells decoders apart, it does not
/// authenticate them.
public enum ModelIdentity {
    /// FNV-1a 64-bit offset basis.
    static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    /// FNV-1a 64-bit prime.
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// 64-bit FNV-1a of `bytes` (the decoder's safetensors file).
    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBufferPointer { buffer in
            var h = offsetBasis
            for byte in buffer {
                h ^= UInt64(byte)
                h = h &* prime
            }
            return h
        }
    }

    /// 64-bit FNV-1a of the file at `url` (the decoder's safetensors file).
    ///
    /// - Throws: ``ContainerError/io(path:reason:)`` if it cannot be read.
    public static func hash(fileAt url: URL) throws -> UInt64 {
        hash(try LatentContainer.readFile(url.path))
    }

    /// The hash as 16 lowercase hex digits, as ``LatentContainer/report(path:)`` prints it.
    public static func hex(_ hash: UInt64) -> String {
        let s = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
