import CDCFileIO

/// G.711 μ-law: 8 bits per sample (64 kbit/s at 8 kHz), the telephone baseline.
///
/// The standard G.711 segment coding of 14-bit linear samples (sign, 3-bit segment, 4-bit
/// mantissa, all bits inverted on the wire), as in the ITU reference and Sun's `g711.c`:
/// 16-bit input is shifted to 14 bits, clipped at 8159, biased by 33, and coded in 8 segments;
/// decoding returns the midpoint of the code's interval, scaled back to 16 bits (codes decode to
/// at most ±32124). 0 codes to 0xFF, the largest positive samples to 0x80, the largest negative
/// to 0x00. The 16 → 14-bit shift truncates (an arithmetic shift), as the reference code does;
/// SoX rounds instead, and the two agree on every multiple of 4.
///
/// Float samples in [−1, 1] are mapped to 16 bits by `round(x · 32768)`, clamped to the Int16
/// range, and decoded back by `/ 32768`.
///
/// Byte accounting: the payload is one byte per sample; the framing is a 4-byte clip header
/// (the sample count, UInt32 LE) that a stream of clips needs (``pack(_:)``).
public enum MuLaw {
    /// Bytes of the per-clip header of ``pack(_:)``.
    public static let clipHeaderBytes = 4

    /// The G.711 μ-law code of a 16-bit linear sample.
    public static func encode(_ sample: Int16) -> UInt8 {
        var value = Int(sample) >> 2          // 14-bit
        let mask: Int
        if value < 0 {
            value = -value
            mask = 0x7F
        } else {
            mask = 0xFF
        }
        value = min(value, clip) + bias
        var segment = 0
        while segment < 8, value > segmentEnds[segment] { segment += 1 }
        if segment >= 8 { return UInt8(0x7F ^ mask) }
        let code = (segment << 4) | ((value >> (segment + 1)) & 0x0F)
        return UInt8(code ^ mask)
    }

    /// The 16-bit linear value of a G.711 μ-law code (the midpoint of its interval).
    public static func decode(_ code: UInt8) -> Int16 {
        let u = Int(~code)
        var t = ((u & 0x0F) << 3) + 0x84
        t <<= (u & 0x70) >> 4
        return Int16((u & 0x80) != 0 ? 0x84 - t : t - 0x84)
    }

    /// The μ-law codes of Float samples in [−1, 1] (outside values are clipped). Throws for a
    /// non-finite sample.
    public static func encode(_ samples: [Float]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: samples.count)
        for (i, x) in samples.enumerated() {
            guard x.isFinite else { throw AudioCodecError.invalidArgument("sample \(i) is not finite") }
            let scaled = (x * 32768).rounded()
            out[i] = encode(Int16(max(-32768, min(32767, scaled))))
        }
        return out
    }

    /// Float samples (the decoded 16-bit values / 32768) of μ-law codes.
    public static func decode(_ codes: [UInt8]) -> [Float] {
        codes.map { Float(decode($0)) / 32768 }
    }

    /// The bytes a clip of `sampleCount` samples costs: `sampleCount` payload, the 4-byte clip header as framing.
    public static func byteCount(sampleCount: Int) -> AudioByteCount {
        AudioByteCount(payloadBytes: sampleCount, framingBytes: clipHeaderBytes)
    }

    /// The codes in the minimal container whose size ``byteCount(sampleCount:)`` counts: the
    /// sample count (UInt32 LE), then one code per sample.
    public static func pack(_ codes: [UInt8]) throws -> [UInt8] {
        guard codes.count <= Int(UInt32.max) else {
            throw AudioCodecError.invalidArgument("a clip has at most \(UInt32.max) samples")
        }
        var out: [UInt8] = []
        out.reserveCapacity(clipHeaderBytes + codes.count)
        LittleEndian.append(UInt32(codes.count), to: &out)
        out.append(contentsOf: codes)
        return out
    }

    /// Reads the codes of a clip written by ``pack(_:)``; throws if the length disagrees with the header.
    public static func unpack(_ bytes: [UInt8]) throws -> [UInt8] {
        guard bytes.count >= clipHeaderBytes else {
            throw AudioCodecError.corruptData("μ-law clip of \(bytes.count) bytes is shorter than its header")
        }
        let count = Int(LittleEndian.load(UInt32.self, from: bytes, at: 0))
        guard bytes.count - clipHeaderBytes == count else {
            throw AudioCodecError.corruptData("μ-law clip header says \(count) samples, the clip holds \(bytes.count - clipHeaderBytes)")
        }
        return Array(bytes[clipHeaderBytes...])
    }

    /// Encodes, packs, unpacks and decodes `samples`: the restored clip and the bytes it cost.
    /// The sample rate does not change the coding (G.711 is defined at 8 kHz, 64 kbit/s).
    public static func decodeRoundTrip(samples: [Float]) throws -> (restored: [Float], bytes: AudioByteCount) {
        let packed = try pack(try encode(samples))
        let restored = decode(try unpack(packed))
        let bytes = byteCount(sampleCount: samples.count)
        precondition(bytes.total == packed.count, "μ-law byte accounting disagrees with the container")
        return (restored, bytes)
    }

    // MARK: - Internals

    /// Largest 14-bit magnitude before biasing.
    static let clip = 8159
    /// The bias (33 in 14-bit units: 0x84 >> 2).
    static let bias = 0x84 >> 2
    /// Largest biased magnitude of each segment.
    static let segmentEnds = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]
}
