/// A probability model for channel-major latent tensors: one ``FrequencyTable`` per channel,
/// all over the same alphabet and at the same precision. What ``EntropyCoder`` codes with and
/// what a coded container carries in its header.
///
/// A symbol stream is a sequence of *runs* of `symbolsPerChannel` symbols; run r is coded with
/// table `r % channels`. For a batch of latents of shape `[K, h, w]` stored sample-major, then
/// channel-major, that is `symbolsPerChannel = h·w` and `channels = K`: every channel has its
/// own distribution, the same in every sample.
///
/// Two kinds of model share this type, told apart by ``origin``:
/// * a **static histogram** measured on the data it codes
///   (``staticHistogram(measuring:channels:symbolsPerChannel:alphabetSize:precisionBits:)``);
/// * the **learned prior** of a network, whose per-channel tables come already quantized
///   with the network (``init(origin:tables:)`` with ``Origin/learnedPrior``).
///
/// ```swift
/// let model = try EntropyModel.staticHistogram(measuring: symbols, channels: 16,
///                                              symbolsPerChannel: 49, alphabetSize: 2)
/// let bytes = model.serialized()                       // a few bytes per channel
/// let back = try EntropyModel(serialized: bytes)       // validated: corrupt bytes throw
/// let bits = try model.estimatedBits(symbols, symbolsPerChannel: 49)
/// ```
///
/// ## Serialized form
///
/// All integers little-endian; `varint` is LEB128 (7 bits per byte, low groups first, high bit
/// set on every byte but the last), minimal (no redundant final zero byte), at most 3 bytes:
///
/// | size | field |
/// |------|-------|
/// | 1 | origin u8: 1 = static histogram, 2 = learned prior |
/// | 1 | precision p u8, 1...16 |
/// | 2 | alphabet size A u16, 1...4096 |
/// | 2 | table count T u16, ≥ 1, with T·2^p ≤ 2^24 |
/// | per table | varint supportStart, varint support length s ≥ 1, then s varint frequencies, each ≥ 1 |
///
/// The escape frequency of each table is 2^p minus the sum of its frequencies; every rule of
/// ``FrequencyTable`` is checked on reading, and the bytes must end with the last table.
public struct EntropyModel: Sendable, Hashable {
    /// Where a model's tables come from.
    public enum Origin: UInt8, Sendable, Hashable, CustomStringConvertible {
        /// Histograms measured on the data being coded.
        case staticHistogram = 1
        /// A learned (factorized) prior saved with the network.
        case learnedPrior = 2

        /// "static histogram" or "learned prior".
        public var description: String {
            switch self {
            case .staticHistogram: return "static histogram"
            case .learnedPrior: return "learned prior"
            }
        }
    }

    /// The most decoding-table slots (tables × 2^precision) a model may need: bounds the memory
    /// a serialized model can make a decoder allocate (at most 32 MiB of slot tables).
    public static let maxTableSlots = 1 << 24
    /// The most tables a model may have.
    public static let maxTables = Int(UInt16.max)

    /// Where the tables come from.
    public let origin: Origin
    /// One table per channel.
    public let tables: [FrequencyTable]

    /// Number of channels (tables).
    public var channels: Int { tables.count }
    /// The alphabet all tables share.
    public var alphabetSize: Int { tables[0].alphabetSize }
    /// The precision all tables share, in bits.
    public var precisionBits: Int { tables[0].precisionBits }

    /// A model from its tables, e.g. the already quantized CDF tables of a learned prior.
    ///
    /// - Throws: ``EntropyCodingError/invalidModel(_:)`` if there are no tables, more than
    ///   ``maxTables``, tables over different alphabets or precisions, or more than
    ///   ``maxTableSlots`` slots in all.
    public init(origin: Origin, tables: [FrequencyTable]) throws {
        guard let first = tables.first else { throw EntropyCodingError.invalidModel("no tables") }
        guard tables.count <= Self.maxTables else {
            throw EntropyCodingError.invalidModel("\(tables.count) tables (at most \(Self.maxTables))")
        }
        for (i, t) in tables.enumerated() {
            guard t.alphabetSize == first.alphabetSize, t.precisionBits == first.precisionBits else {
                throw EntropyCodingError.invalidModel(
                    "table \(i) is over \(t.alphabetSize) symbols at \(t.precisionBits) bits, table 0 over \(first.alphabetSize) at \(first.precisionBits)")
            }
        }
        guard tables.count <= Self.maxTableSlots >> first.precisionBits else {
            throw EntropyCodingError.invalidModel(
                "\(tables.count) tables of 2^\(first.precisionBits) slots exceed \(Self.maxTableSlots) slots")
        }
        self.origin = origin
        self.tables = tables
    }

    /// The precision measured models use by default: 12 bits, more for alphabets of over 1022
    /// symbols (two bits above what the support and escape need), at most 16.
    public static func defaultPrecisionBits(alphabetSize: Int) -> Int {
        min(16, max(12, FrequencyTable.rawBits(alphabetSize: alphabetSize + 1) + 2))
    }

    // MARK: Measuring

    /// A static histogram measured on `symbols`: each channel's table is quantized from the
    /// counts of its symbols (``FrequencyTable/init(quantizing:escapeCount:supportStart:alphabetSize:precisionBits:)``)
    /// over the support from the smallest to the largest symbol seen; a channel with no symbols
    /// gets a uniform table over the whole alphabet.
    ///
    /// - Throws: ``EntropyCodingError/symbolOutOfAlphabet(index:value:alphabetSize:)``,
    ///   ``EntropyCodingError/invalidSymbolsPerChannel(_:)`` or the errors of the table and
    ///   model initializers.
    public static func staticHistogram(measuring symbols: UnsafeBufferPointer<UInt8>, channels: Int,
                                       symbolsPerChannel: Int, alphabetSize: Int,
                                       precisionBits: Int? = nil) throws -> EntropyModel {
        try measure(symbols, channels: channels, symbolsPerChannel: symbolsPerChannel,
                    alphabetSize: alphabetSize, precisionBits: precisionBits)
    }

    /// ``staticHistogram(measuring:channels:symbolsPerChannel:alphabetSize:precisionBits:)``
    /// for symbols of up to 16 bits.
    public static func staticHistogram(measuring symbols: UnsafeBufferPointer<UInt16>, channels: Int,
                                       symbolsPerChannel: Int, alphabetSize: Int,
                                       precisionBits: Int? = nil) throws -> EntropyModel {
        try measure(symbols, channels: channels, symbolsPerChannel: symbolsPerChannel,
                    alphabetSize: alphabetSize, precisionBits: precisionBits)
    }

    /// ``staticHistogram(measuring:channels:symbolsPerChannel:alphabetSize:precisionBits:)``
    /// for an array.
    public static func staticHistogram(measuring symbols: [UInt16], channels: Int, symbolsPerChannel: Int,
                                       alphabetSize: Int, precisionBits: Int? = nil) throws -> EntropyModel {
        try symbols.withUnsafeBufferPointer {
            try measure($0, channels: channels, symbolsPerChannel: symbolsPerChannel,
                        alphabetSize: alphabetSize, precisionBits: precisionBits)
        }
    }

    private static func measure<Symbol: FixedWidthInteger & UnsignedInteger>(
        _ symbols: UnsafeBufferPointer<Symbol>, channels: Int, symbolsPerChannel: Int, alphabetSize: Int,
        precisionBits: Int?
    ) throws -> EntropyModel {
        guard (1...FrequencyTable.maxAlphabetSize).contains(alphabetSize) else {
            throw EntropyCodingError.invalidTable("alphabet size \(alphabetSize) is not in 1...\(FrequencyTable.maxAlphabetSize)")
        }
        guard (1...maxTables).contains(channels) else {
            throw EntropyCodingError.invalidModel("\(channels) channels is not in 1...\(maxTables)")
        }
        guard symbolsPerChannel >= 1 else { throw EntropyCodingError.invalidSymbolsPerChannel(symbolsPerChannel) }
        let precision = precisionBits ?? defaultPrecisionBits(alphabetSize: alphabetSize)
        guard FrequencyTable.precisionRange.contains(precision) else {
            throw EntropyCodingError.invalidTable("precision \(precision) bits is not in \(FrequencyTable.precisionRange)")
        }
        guard channels <= maxTableSlots >> precision else {
            throw EntropyCodingError.invalidModel("\(channels) tables of 2^\(precision) slots exceed \(maxTableSlots) slots")
        }
        if let bad = firstOutOfAlphabet(symbols, alphabetSize: alphabetSize) {
            throw EntropyCodingError.symbolOutOfAlphabet(index: bad, value: Int(symbols[bad]), alphabetSize: alphabetSize)
        }
        var tables: [FrequencyTable] = []
        tables.reserveCapacity(channels)
        var counts = [UInt64](repeating: 0, count: alphabetSize)
        for channel in 0..<channels {
            for i in counts.indices { counts[i] = 0 }
            counts.withUnsafeMutableBufferPointer { c in
                forEachRun(count: symbols.count, symbolsPerChannel: symbolsPerChannel, channels: channels,
                           channel: channel) { range in
                    for i in range { c[Int(symbols[i])] &+= 1 }
                }
            }
            if let low = counts.firstIndex(where: { $0 > 0 }), let high = counts.lastIndex(where: { $0 > 0 }) {
                tables.append(try FrequencyTable(quantizing: Array(counts[low...high]), supportStart: low,
                                                 alphabetSize: alphabetSize, precisionBits: precision))
            } else {
                tables.append(try FrequencyTable(quantizing: [UInt64](repeating: 1, count: alphabetSize),
                                                 alphabetSize: alphabetSize, precisionBits: precision))
            }
        }
        return try EntropyModel(origin: .staticHistogram, tables: tables)
    }

    // MARK: Estimates

    /// The model's ideal code length of `symbols` in bits, −Σ log2 p (escapes counted with their
    /// raw bits): what an ideal coder would need, for reports. The rANS coder needs a few bytes
    /// more per stream (its final states) plus a tiny fraction for its finite precision.
    ///
    /// - Throws: ``EntropyCodingError/symbolOutOfAlphabet(index:value:alphabetSize:)`` or
    ///   ``EntropyCodingError/invalidSymbolsPerChannel(_:)``.
    public func estimatedBits(_ symbols: UnsafeBufferPointer<UInt8>, symbolsPerChannel: Int) throws -> Double {
        try estimate(symbols, symbolsPerChannel: symbolsPerChannel)
    }

    /// ``estimatedBits(_:symbolsPerChannel:)`` for symbols of up to 16 bits.
    public func estimatedBits(_ symbols: UnsafeBufferPointer<UInt16>, symbolsPerChannel: Int) throws -> Double {
        try estimate(symbols, symbolsPerChannel: symbolsPerChannel)
    }

    /// ``estimatedBits(_:symbolsPerChannel:)`` for an array.
    public func estimatedBits(_ symbols: [UInt16], symbolsPerChannel: Int) throws -> Double {
        try symbols.withUnsafeBufferPointer { try estimate($0, symbolsPerChannel: symbolsPerChannel) }
    }

    private func estimate<Symbol: FixedWidthInteger & UnsignedInteger>(
        _ symbols: UnsafeBufferPointer<Symbol>, symbolsPerChannel: Int
    ) throws -> Double {
        guard symbolsPerChannel >= 1 else { throw EntropyCodingError.invalidSymbolsPerChannel(symbolsPerChannel) }
        let a = alphabetSize
        if let bad = Self.firstOutOfAlphabet(symbols, alphabetSize: a) {
            throw EntropyCodingError.symbolOutOfAlphabet(index: bad, value: Int(symbols[bad]), alphabetSize: a)
        }
        var bits = 0.0
        var counts = [UInt64](repeating: 0, count: a)
        for (channel, table) in tables.enumerated() {
            for i in counts.indices { counts[i] = 0 }
            counts.withUnsafeMutableBufferPointer { c in
                Self.forEachRun(count: symbols.count, symbolsPerChannel: symbolsPerChannel, channels: channels,
                                channel: channel) { range in
                    for i in range { c[Int(symbols[i])] &+= 1 }
                }
            }
            for (symbol, n) in counts.enumerated() where n > 0 {
                bits += Double(n) * table.codeLength(of: symbol)
            }
        }
        return bits
    }

    // MARK: Serialization

    /// The model's bytes (see the type's documentation for the layout).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = [origin.rawValue, UInt8(precisionBits)]
        out.append(UInt8(truncatingIfNeeded: alphabetSize))
        out.append(UInt8(truncatingIfNeeded: alphabetSize >> 8))
        out.append(UInt8(truncatingIfNeeded: channels))
        out.append(UInt8(truncatingIfNeeded: channels >> 8))
        for t in tables {
            appendVarint(UInt32(t.supportStart), to: &out)
            appendVarint(UInt32(t.frequencies.count), to: &out)
            for f in t.frequencies { appendVarint(f, to: &out) }
        }
        return out
    }

    /// Reads a model from ``serialized()`` bytes, checking every rule.
    ///
    /// - Throws: ``EntropyCodingError/invalidModel(_:)`` (malformed or truncated bytes, unknown
    ///   origin, trailing bytes) or ``EntropyCodingError/invalidTable(_:)``, naming table and
    ///   byte offset. Allocates nothing in proportion to a count before checking that the
    ///   bytes can hold it.
    public init(serialized bytes: UnsafeBufferPointer<UInt8>) throws {
        var r = ModelReader(bytes: bytes)
        let originByte = try r.byte("origin")
        guard let origin = Origin(rawValue: originByte) else {
            throw EntropyCodingError.invalidModel("unknown origin \(originByte) at byte 0")
        }
        let precision = Int(try r.byte("precision"))
        let alphabet = Int(try r.byte("alphabet size")) | Int(try r.byte("alphabet size")) << 8
        let count = Int(try r.byte("table count")) | Int(try r.byte("table count")) << 8
        guard FrequencyTable.precisionRange.contains(precision) else {
            throw EntropyCodingError.invalidModel("precision \(precision) bits is not in \(FrequencyTable.precisionRange)")
        }
        guard (1...FrequencyTable.maxAlphabetSize).contains(alphabet) else {
            throw EntropyCodingError.invalidModel("alphabet size \(alphabet) is not in 1...\(FrequencyTable.maxAlphabetSize)")
        }
        guard count >= 1, count <= Self.maxTableSlots >> precision else {
            throw EntropyCodingError.invalidModel("table count \(count) is not in 1...\(Self.maxTableSlots >> precision) at \(precision) bits")
        }
        // Each table takes at least 3 bytes.
        guard r.remaining >= 3 * count else {
            throw EntropyCodingError.invalidModel("\(count) tables cannot fit in the \(r.remaining) bytes left at byte \(r.offset)")
        }
        var tables: [FrequencyTable] = []
        tables.reserveCapacity(count)
        for t in 0..<count {
            let at = r.offset
            let start = Int(try r.varint("table \(t) support start"))
            let length = Int(try r.varint("table \(t) support length"))
            guard length >= 1, length <= alphabet, length <= r.remaining else {
                throw EntropyCodingError.invalidModel(
                    "table \(t) at byte \(at): support length \(length) is not in 1...\(min(alphabet, r.remaining))")
            }
            var frequencies: [UInt32] = []
            frequencies.reserveCapacity(length)
            for _ in 0..<length { frequencies.append(try r.varint("table \(t) frequency")) }
            do {
                tables.append(try FrequencyTable(frequencies: frequencies, supportStart: start, alphabetSize: alphabet,
                                                 precisionBits: precision))
            } catch EntropyCodingError.invalidTable(let reason) {
                throw EntropyCodingError.invalidTable("table \(t) at byte \(at): \(reason)")
            }
        }
        guard r.remaining == 0 else {
            throw EntropyCodingError.invalidModel("\(r.remaining) trailing bytes after the last table, at byte \(r.offset)")
        }
        try self.init(origin: origin, tables: tables)
    }

    /// Reads a model from ``serialized()`` bytes; see ``init(serialized:)-(UnsafeBufferPointer<UInt8>)``.
    public init(serialized bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBufferPointer { try EntropyModel(serialized: $0) }
    }

    // MARK: Helpers

    /// Calls `body` with the index range of every run of `channel` in a stream of `count` symbols.
    @inline(__always)
    static func forEachRun(count: Int, symbolsPerChannel run: Int, channels: Int, channel: Int,
                           _ body: (Range<Int>) -> Void) {
        let stride = run * channels
        var start = channel * run
        while start < count {
            body(start ..< min(start + run, count))
            let (next, overflow) = start.addingReportingOverflow(stride)
            if overflow { break }
            start = next
        }
    }

    /// The index of the first symbol ≥ `alphabetSize`, or nil.
    static func firstOutOfAlphabet<Symbol: FixedWidthInteger & UnsignedInteger>(
        _ symbols: UnsafeBufferPointer<Symbol>, alphabetSize: Int
    ) -> Int? {
        var largest: Symbol = 0
        for s in symbols { largest = max(largest, s) }
        guard !symbols.isEmpty, Int(largest) >= alphabetSize else { return nil }
        return symbols.firstIndex { Int($0) >= alphabetSize }
    }
}

/// Appends `value` as a minimal LEB128 varint.
private func appendVarint(_ value: UInt32, to out: inout [UInt8]) {
    var v = value
    while v >= 0x80 {
        out.append(UInt8(truncatingIfNeeded: v) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
}

/// Sequential reads of a serialized model, with errors that name the field and the offset.
private struct ModelReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func byte(_ what: String) throws -> UInt8 {
        guard offset < bytes.count else {
            throw EntropyCodingError.invalidModel("truncated: \(what) at byte \(offset), the model ends at byte \(bytes.count)")
        }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A minimal LEB128 varint of at most 3 bytes (values below 2^21).
    mutating func varint(_ what: String) throws -> UInt32 {
        let start = offset
        var value: UInt32 = 0
        for k in 0..<3 {
            let b = try byte(what)
            value |= UInt32(b & 0x7F) << UInt32(7 * k)
            if b & 0x80 == 0 {
                guard k == 0 || b != 0 else {
                    throw EntropyCodingError.invalidModel("\(what) at byte \(start): non-minimal varint")
                }
                return value
            }
        }
        throw EntropyCodingError.invalidModel("\(what) at byte \(start): varint longer than 3 bytes")
    }
}
