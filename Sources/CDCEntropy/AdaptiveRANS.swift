/// rANS for streams in which every symbol has its own distribution — what a context model that
/// predicts each symbol from the ones before it needs, where ``EntropyCoder`` codes whole runs
/// under one table per channel.
///
/// The encoder knows every symbol and so every distribution at once; it codes them backwards.
/// The decoder reads them forwards, one at a time, asking the model for the next symbol's
/// distribution after each decoded symbol (``AdaptiveRANSDecoder``).
///
/// Distributions are frequency tables over a small alphabet that sum to exactly 2^``precisionBits``
/// with every entry ≥ 1 (``frequencies(probabilities:)`` makes them from probabilities), so
/// every symbol stays codable. One 32-bit state in [2^23, 2^31), byte-wise renormalization
/// (Giesen's `rans_byte`, the same arithmetic as ``EntropyCoder`` with one lane):
///
/// | bytes | content |
/// |-------|---------|
/// | 0..<4 | the final state, u32 little-endian, in [2^23, 2^31) |
/// | 4..<  | the renormalization bytes, in the order the decoder reads them |
///
/// The decoder accepts a stream only if it reads every byte and ends in the initial state 2^23.
public enum AdaptiveRANS {
    /// Every distribution sums to 2^15.
    public static let precisionBits = 15
    /// The sum of every frequency table.
    public static let total = UInt32(1) << UInt32(precisionBits)
    static let lower: UInt32 = 1 << 23

    /// The frequency table of `probabilities` (any non-negative weights, not all zero; at most
    /// 2^15 entries): entry i gets `1 + ⌊pᵢ/Σp · (2^15 − n)⌋` and the most probable entry (the
    /// first of equals) the remainder, so the table sums to exactly 2^15 and no entry is 0. Only
    /// IEEE additions, multiplications and one division, so equal inputs give equal tables on
    /// every machine.
    public static func frequencies(probabilities p: UnsafeBufferPointer<Double>, into f: UnsafeMutableBufferPointer<UInt32>) {
        let n = p.count
        precondition(n >= 1 && n <= Int(total) && f.count == n, "adaptive rANS: \(n) probabilities for \(f.count) frequencies")
        var sum = 0.0, best = 0
        for i in 0..<n {
            sum += p[i]
            if p[i] > p[best] { best = i }
        }
        let scale = sum > 0 ? Double(total - UInt32(n)) / sum : 0
        var used: UInt32 = 0
        for i in 0..<n {
            let share = (p[i] * scale).rounded(.down)
            f[i] = 1 + (share.isFinite && share > 0 ? UInt32(Swift.min(share, Double(total - UInt32(n)))) : 0)
            used &+= f[i]
        }
        // Rounding down leaves 0 ≤ rest < n; clamps can only lower the sum.
        f[best] += total &- used
    }

    /// Codes `symbols`, symbol i under the table `tables[i·A ..< (i+1)·A]` (A = `alphabetSize`,
    /// each table summing to 2^15).
    public static func encode(_ symbols: UnsafeBufferPointer<UInt8>, tables: UnsafeBufferPointer<UInt32>,
                              alphabetSize a: Int) throws -> [UInt8] {
        guard a >= 1, tables.count == symbols.count * a else {
            throw EntropyCodingError.invalidModel("adaptive rANS: \(tables.count) table entries for \(symbols.count) symbols of an alphabet of \(a)")
        }
        var reversed: [UInt8] = []
        reversed.reserveCapacity(symbols.count / 4 + 8)
        var x = lower
        for i in stride(from: symbols.count - 1, through: 0, by: -1) {
            let s = Int(symbols[i])
            guard s < a else { throw EntropyCodingError.symbolOutOfAlphabet(index: i, value: s, alphabetSize: a) }
            let table = tables.baseAddress! + i * a
            var start: UInt32 = 0
            for j in 0..<s { start += table[j] }
            let f = table[s]
            guard f >= 1, start + f <= total else {
                throw EntropyCodingError.invalidModel("adaptive rANS: table \(i) does not sum to 2^\(precisionBits) with entries ≥ 1")
            }
            let xMax = ((lower >> UInt32(precisionBits)) << 8) * f
            while x >= xMax {
                reversed.append(UInt8(truncatingIfNeeded: x))
                x >>= 8
            }
            x = ((x / f) << UInt32(precisionBits)) + (x % f) + start
        }
        var out: [UInt8] = [UInt8(truncatingIfNeeded: x), UInt8(truncatingIfNeeded: x >> 8),
                            UInt8(truncatingIfNeeded: x >> 16), UInt8(truncatingIfNeeded: x >> 24)]
        out.append(contentsOf: reversed.reversed())
        return out
    }
}

/// Reads an ``AdaptiveRANS`` stream symbol by symbol, each under the table the caller gives.
///
/// ```swift
/// var d = try AdaptiveRANSDecoder(bytes)
/// for i in 0..<n { symbols[i] = try d.decode(table(i)) }
/// try d.finish()          // every byte read, final state reached
/// ```
/// Arbitrary bytes never crash it or make it read outside the stream: every slot falls in
/// some entry of a valid table, so each call yields a symbol or throws.
public struct AdaptiveRANSDecoder {
    let bytes: [UInt8]
    var position: Int
    var x: UInt32
    /// Symbols decoded so far.
    public private(set) var decoded = 0

    /// Starts reading `bytes`; fewer than 4 bytes or an out-of-range state throw.
    public init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 4 else { throw EntropyCodingError.invalidStreamLength(bytes.count) }
        x = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        guard x >= AdaptiveRANS.lower, x < 1 << 31 else { throw EntropyCodingError.invalidInitialState(lane: 0) }
        self.bytes = bytes
        position = 4
    }

    /// The next symbol under `table` (entries ≥ 1 summing to 2^15).
    public mutating func decode(_ table: UnsafeBufferPointer<UInt32>) throws -> Int {
        let p = UInt32(AdaptiveRANS.precisionBits)
        let slot = x & (AdaptiveRANS.total - 1)
        var start: UInt32 = 0, s = 0
        while s < table.count, slot >= start + table[s] { start += table[s]; s += 1 }
        guard s < table.count, table[s] >= 1 else {
            throw EntropyCodingError.invalidModel("adaptive rANS: a table that does not sum to 2^\(p) with entries ≥ 1")
        }
        x = table[s] * (x >> p) + slot - start
        while x < AdaptiveRANS.lower {
            guard position < bytes.count else { throw EntropyCodingError.truncatedStream(symbol: decoded) }
            x = x << 8 | UInt32(bytes[position])
            position += 1
        }
        decoded += 1
        return s
    }

    /// Checks that the stream is exactly what was decoded: every byte read, the initial state reached.
    public func finish() throws {
        guard position == bytes.count else { throw EntropyCodingError.trailingBytes(count: bytes.count - position) }
        guard x == AdaptiveRANS.lower else { throw EntropyCodingError.invalidFinalState(lane: 0) }
    }
}
