/// An rANS coder for one ``EntropyModel``: encodes symbol streams to bytes and decodes them
/// back, in integer arithmetic only, so that every machine produces and accepts the same bytes.
///
/// ```swift
/// let coder = EntropyCoder(model: model)         // builds the coding tables once
/// let bytes = try coder.encode(symbols, symbolsPerChannel: 49)
/// let back = try coder.decode(bytes, count: symbols.count, symbolsPerChannel: 49)
/// ```
///
/// Symbol i of a stream is coded with table `(i / symbolsPerChannel) % model.channels` (see
/// ``EntropyModel``); a symbol outside its table's support is coded as the escape followed by
/// its value in ``FrequencyTable/rawBits`` bits with a uniform distribution, so every symbol of
/// the alphabet can be coded under every model.
///
/// ## The coder
///
/// Byte-wise rANS (Duda's range variant of asymmetric numeral systems, after Giesen's
/// `rans_byte`) with two interleaved 32-bit states: symbol i goes to lane `i % 2`. Each state
/// lives in [2^23, 2^31); coding symbol s of frequency f and cumulative frequency c at
/// precision p first emits the state's low bytes while it is ≥ 2^(31−p)·f, then sets
/// `x ← ⌊x/f⌋·2^p + (x mod f) + c`; the raw value v of an escape, in k bits, is coded the same
/// way with f = 1, c = v at precision k (before the escape entry, so that the decoder reads the
/// escape first). The encoder runs over the symbols backwards from the initial states 2^23 and
/// writes bytes from the end of the stream towards its start; it then writes lane 1's and
/// lane 0's final state, each as a little-endian u32, before them. So the stream is:
///
/// | bytes | content |
/// |-------|---------|
/// | 0..<4 | lane 0's state u32, in [2^23, 2^31) |
/// | 4..<8 | lane 1's state u32, in [2^23, 2^31) |
/// | 8..<  | the renormalization bytes, in the order the decoder reads them |
///
/// An empty stream of symbols is coded as no bytes at all. The decoder mirrors the encoder:
/// `slot = x mod 2^p`, the entry whose range [c, c+f) holds the slot, `x ← f·⌊x/2^p⌋ + slot − c`,
/// then reads bytes while `x < 2^23`. It accepts a stream only if it yields exactly the
/// requested number of symbols, reads every byte and leaves both lanes in state 2^23.
///
/// ## Robustness
///
/// Decoding arbitrary bytes either returns the requested number of symbols or throws an
/// ``EntropyCodingError``; it never crashes and reads no byte outside the stream. Every coded
/// symbol costs at least about `(2^p − f_max)/2^p` bit (see
/// ``FrequencyTable/minimumRest(precisionBits:)``), so ``maximumSymbols(codedIn:)`` bounds the
/// number of symbols a stream of a given length can hold; the decoder rejects a larger request
/// before decoding anything, which bounds its time and the memory its callers allocate.
public struct EntropyCoder: Sendable {
    /// The model the coder codes with.
    public let model: EntropyModel
    let tables: CodingTables

    /// The number of interleaved rANS states.
    public static let lanes = 2
    /// Bytes of a non-empty stream taken by the final states.
    public static let stateBytes = 4 * lanes

    /// Builds the coding tables of `model` (encoder reciprocals and the decoder's slot tables).
    public init(model: EntropyModel) {
        self.model = model
        self.tables = CodingTables(model)
    }

    /// The most symbols a stream of `byteCount` bytes can decode to under this model; the
    /// decoder rejects any larger request. Every stream the encoder writes satisfies it.
    ///
    /// Each decoded symbol lowers log2 of its lane's state by at least
    /// δ = (R/2^p)·(127/128) with R = 2^p − f_max (the most probable entry's frequency), each
    /// byte read raises it by at most 8 + 1/64, and a lane starts below 2^31 and ends at 2^23; so
    /// n·δ ≤ 8·lanes + (8 + 1/64)·(byteCount − 4·lanes).
    public func maximumSymbols(codedIn byteCount: Int) -> Int {
        guard byteCount >= Self.stateBytes else { return 0 }
        let M = Int(1) << tables.precision
        let R = Int(tables.minimumRest)
        let (a, o1) = (byteCount - Self.stateBytes).multipliedReportingOverflow(by: 513)
        let (b, o2) = a.addingReportingOverflow(512 * Self.lanes)
        let (c, o3) = b.multipliedReportingOverflow(by: 2 * M)
        guard !o1, !o2, !o3 else { return Int.max }
        return c / (127 * R)
    }

    // MARK: Encoding

    /// Appends the code of `symbols` to `output`.
    ///
    /// - Throws: ``EntropyCodingError/symbolOutOfAlphabet(index:value:alphabetSize:)`` or
    ///   ``EntropyCodingError/invalidSymbolsPerChannel(_:)``; `output` is then unchanged.
    public func encode(_ symbols: UnsafeBufferPointer<UInt8>, symbolsPerChannel: Int,
                       appendingTo output: inout [UInt8]) throws {
        try tables.encode(symbols, run: symbolsPerChannel, into: &output)
    }

    /// Appends the code of `symbols` (up to 16 bits each) to `output`; see
    /// ``encode(_:symbolsPerChannel:appendingTo:)-(UnsafeBufferPointer<UInt8>,_,_)``.
    public func encode(_ symbols: UnsafeBufferPointer<UInt16>, symbolsPerChannel: Int,
                       appendingTo output: inout [UInt8]) throws {
        try tables.encode(symbols, run: symbolsPerChannel, into: &output)
    }

    /// The code of `symbols`.
    public func encode(_ symbols: [UInt16], symbolsPerChannel: Int = 1) throws -> [UInt8] {
        var out: [UInt8] = []
        try symbols.withUnsafeBufferPointer { try tables.encode($0, run: symbolsPerChannel, into: &out) }
        return out
    }

    // MARK: Decoding

    /// Decodes `bytes` into exactly `symbols.count` symbols.
    ///
    /// - Throws: an ``EntropyCodingError`` if the stream is not exactly the code of that many
    ///   symbols (the contents of `symbols` are then unspecified), or
    ///   ``EntropyCodingError/alphabetTooLarge(alphabetSize:symbolType:)`` if the alphabet has
    ///   more than 256 symbols.
    public func decode(_ bytes: UnsafeBufferPointer<UInt8>, into symbols: UnsafeMutableBufferPointer<UInt8>,
                       symbolsPerChannel: Int) throws {
        try tables.decode(bytes, into: symbols, run: symbolsPerChannel, limit: maximumSymbols(codedIn: bytes.count))
    }

    /// Decodes `bytes` into exactly `symbols.count` symbols of up to 16 bits; see
    /// ``decode(_:into:symbolsPerChannel:)-(_,UnsafeMutableBufferPointer<UInt8>,_)``.
    public func decode(_ bytes: UnsafeBufferPointer<UInt8>, into symbols: UnsafeMutableBufferPointer<UInt16>,
                       symbolsPerChannel: Int) throws {
        try tables.decode(bytes, into: symbols, run: symbolsPerChannel, limit: maximumSymbols(codedIn: bytes.count))
    }

    /// Decodes `bytes` into exactly `count` symbols.
    ///
    /// - Throws: as ``decode(_:into:symbolsPerChannel:)-(_,UnsafeMutableBufferPointer<UInt16>,_)``;
    ///   ``EntropyCodingError/tooManySymbols(requested:bytes:limit:)`` (before allocating) if
    ///   `count` exceeds ``maximumSymbols(codedIn:)``.
    public func decode(_ bytes: [UInt8], count: Int, symbolsPerChannel: Int = 1) throws -> [UInt16] {
        let limit = maximumSymbols(codedIn: bytes.count)
        guard count >= 0, count <= limit || count == 0 else {
            throw EntropyCodingError.tooManySymbols(requested: count, bytes: bytes.count, limit: limit)
        }
        return try [UInt16](unsafeUninitializedCapacity: count) { out, initialized in
            out.initialize(repeating: 0)
            initialized = count
            try bytes.withUnsafeBufferPointer {
                try tables.decode($0, into: out, run: symbolsPerChannel, limit: limit)
            }
        }
    }
}

// MARK: - Coding tables

/// The per-entry constants of the encoder: Giesen's reciprocal form of
/// `x ← ⌊x/f⌋·2^p + (x mod f) + c`, exact for every state below 2^31.
struct EncodeEntry {
    /// Emit bytes while the state is ≥ this: 2^(31−p)·f.
    var xMax: UInt32
    /// ⌈2^(shift+31)/f⌉ with shift = ⌈log2 f⌉ (2^32 − 1 for f = 1).
    var reciprocal: UInt32
    /// c, or c + 2^p − 1 for f = 1.
    var bias: UInt32
    /// 2^p − f.
    var complement: UInt32
    /// 32 + shift − 1 (32 for f = 1): the quotient is `(x · reciprocal) >> reciprocalShift`.
    var reciprocalShift: UInt32

    init(start: UInt32, frequency f: UInt32, precision p: UInt32) {
        let M = UInt32(1) << p
        xMax = ((EntropyCoderConstants.lowerBound >> p) << 8) * f
        complement = M - f
        if f < 2 {
            reciprocal = UInt32.max
            reciprocalShift = 32
            bias = start + M - 1
        } else {
            var shift: UInt32 = 0
            while f > (UInt32(1) << shift) { shift += 1 }
            reciprocal = UInt32(((UInt64(1) << UInt64(shift + 31)) + UInt64(f) - 1) / UInt64(f))
            reciprocalShift = 32 + shift - 1
            bias = start
        }
    }
}

enum EntropyCoderConstants {
    /// The lower end of a state's normalization interval [2^23, 2^31), and the initial state.
    static let lowerBound: UInt32 = 1 << 23
    /// States at or above this are never written by the encoder.
    static let upperBound: UInt32 = 1 << 31
    /// `entrySymbol` of the escape entry.
    static let escapeMarker: UInt16 = 0xFFFF
}

/// The encoder's and the decoder's lookup tables for a model, built once. Immutable after `init`.
final class CodingTables: @unchecked Sendable {
    let tableCount: Int
    let alphabetSize: Int
    let precision: UInt32
    let rawBits: UInt32
    /// 2^p − the largest frequency of any entry of any table.
    let minimumRest: UInt32

    /// Per table: first support symbol, support length, index of its first entry.
    let supportStart: UnsafeMutableBufferPointer<UInt32>
    let supportLength: UnsafeMutableBufferPointer<UInt32>
    let entryBase: UnsafeMutableBufferPointer<UInt32>
    /// Per entry (support symbols in order, then the escape, table after table).
    let encodeEntries: UnsafeMutableBufferPointer<EncodeEntry>
    /// Per entry: `frequency << 16 | cumulative frequency`.
    let decodeInfo: UnsafeMutableBufferPointer<UInt32>
    /// Per entry: the symbol, or `escapeMarker`.
    let entrySymbol: UnsafeMutableBufferPointer<UInt16>
    /// Per table, 2^p slots: the entry (relative to the table's first) whose range holds the slot.
    let slotEntry: UnsafeMutableBufferPointer<UInt16>

    init(_ model: EntropyModel) {
        tableCount = model.channels
        alphabetSize = model.alphabetSize
        precision = UInt32(model.precisionBits)
        rawBits = UInt32(FrequencyTable.rawBits(alphabetSize: model.alphabetSize))
        let p = precision
        let M = Int(1) << Int(p)
        let entries = model.tables.reduce(0) { $0 + $1.frequencies.count + 1 }
        let supportStart = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: tableCount)
        let supportLength = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: tableCount)
        let entryBase = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: tableCount)
        let encodeEntries = UnsafeMutableBufferPointer<EncodeEntry>.allocate(capacity: entries)
        let decodeInfo = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: entries)
        let entrySymbol = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: entries)
        let slotEntry = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: tableCount * M)
        var largest: UInt32 = 0
        var e = 0
        for (t, table) in model.tables.enumerated() {
            supportStart[t] = UInt32(table.supportStart)
            supportLength[t] = UInt32(table.frequencies.count)
            entryBase[t] = UInt32(e)
            var cumulative: UInt32 = 0
            let slots = slotEntry.baseAddress! + t * M
            func add(_ frequency: UInt32, symbol: UInt16, local: Int) {
                encodeEntries.initializeElement(at: e, to: EncodeEntry(start: cumulative, frequency: frequency, precision: p))
                decodeInfo.initializeElement(at: e, to: frequency << 16 | cumulative)
                entrySymbol.initializeElement(at: e, to: symbol)
                (slots + Int(cumulative)).initialize(repeating: UInt16(local), count: Int(frequency))
                cumulative += frequency
                largest = max(largest, frequency)
                e += 1
            }
            for (j, f) in table.frequencies.enumerated() {
                add(f, symbol: UInt16(table.supportStart + j), local: j)
            }
            add(table.escapeFrequency, symbol: EntropyCoderConstants.escapeMarker, local: table.frequencies.count)
            precondition(cumulative == UInt32(M), "a validated table sums to 2^p")
        }
        self.supportStart = supportStart
        self.supportLength = supportLength
        self.entryBase = entryBase
        self.encodeEntries = encodeEntries
        self.decodeInfo = decodeInfo
        self.entrySymbol = entrySymbol
        self.slotEntry = slotEntry
        minimumRest = UInt32(M) - largest
    }

    deinit {
        supportStart.deallocate()
        supportLength.deallocate()
        entryBase.deallocate()
        encodeEntries.deallocate()
        decodeInfo.deallocate()
        entrySymbol.deallocate()
        slotEntry.deallocate()
    }

    // MARK: Encoder

    func encode<Symbol: FixedWidthInteger & UnsignedInteger>(
        _ symbols: UnsafeBufferPointer<Symbol>, run: Int, into output: inout [UInt8]
    ) throws {
        guard run >= 1 else { throw EntropyCodingError.invalidSymbolsPerChannel(run) }
        let n = symbols.count
        guard n > 0 else { return }
        if let bad = EntropyModel.firstOutOfAlphabet(symbols, alphabetSize: alphabetSize) {
            throw EntropyCodingError.symbolOutOfAlphabet(index: bad, value: Int(symbols[bad]), alphabetSize: alphabetSize)
        }
        // At most 2 bytes per entry and 2 per raw value (precision and raw bits ≤ 16), plus the states.
        let (body, overflow) = n.multipliedReportingOverflow(by: 4)
        precondition(!overflow && body <= Int.max - EntropyCoder.stateBytes, "stream too long")
        let capacity = body + EntropyCoder.stateBytes
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        let end = buffer + capacity

        var cursor = EncodeCursor(tables: self, symbols: symbols.baseAddress!, count: n, run: run, output: end)
        var x0 = EntropyCoderConstants.lowerBound, x1 = x0
        // Backwards from the last symbol; symbol i goes to lane i % 2. The lanes are separate
        // variables so that their dependency chains overlap.
        var i = n - 1
        if i & 1 == 0 {
            cursor.put(&x0, i)
            i -= 1
        }
        while i >= 1 {
            cursor.put(&x1, i)
            cursor.put(&x0, i - 1)
            i -= 2
        }
        var ptr = cursor.output
        for x in [x1, x0] {
            ptr -= 4
            for b in 0..<4 { ptr[b] = UInt8(truncatingIfNeeded: x >> UInt32(8 * b)) }
        }
        output.append(contentsOf: UnsafeBufferPointer(start: ptr, count: end - ptr))
    }

    // MARK: Decoder

    func decode<Symbol: FixedWidthInteger & UnsignedInteger>(
        _ bytes: UnsafeBufferPointer<UInt8>, into symbols: UnsafeMutableBufferPointer<Symbol>, run: Int, limit: Int
    ) throws {
        guard run >= 1 else { throw EntropyCodingError.invalidSymbolsPerChannel(run) }
        guard UInt64(alphabetSize - 1) <= UInt64(Symbol.max) else {
            throw EntropyCodingError.alphabetTooLarge(alphabetSize: alphabetSize, symbolType: "\(Symbol.self)")
        }
        let n = symbols.count
        let count = bytes.count
        guard n > 0 else {
            guard count == 0 else { throw EntropyCodingError.trailingBytes(count: count) }
            return
        }
        guard count >= EntropyCoder.stateBytes else { throw EntropyCodingError.invalidStreamLength(count) }
        guard n <= limit else { throw EntropyCodingError.tooManySymbols(requested: n, bytes: count, limit: limit) }

        let src = bytes.baseAddress!
        func state(_ lane: Int) throws -> UInt32 {
            var x: UInt32 = 0
            for b in 0..<4 { x |= UInt32(src[4 * lane + b]) << UInt32(8 * b) }
            guard x >= EntropyCoderConstants.lowerBound, x < EntropyCoderConstants.upperBound else {
                throw EntropyCodingError.invalidInitialState(lane: lane)
            }
            return x
        }
        var x0 = try state(0), x1 = try state(1)
        var cursor = DecodeCursor(tables: self, input: src, count: count, run: run)
        let out = symbols.baseAddress!
        var i = 0
        while i + 1 < n {
            out[i] = Symbol(truncatingIfNeeded: try cursor.get(&x0, i))
            out[i + 1] = Symbol(truncatingIfNeeded: try cursor.get(&x1, i + 1))
            i += 2
        }
        if i < n { out[i] = Symbol(truncatingIfNeeded: try cursor.get(&x0, i)) }
        let L = EntropyCoderConstants.lowerBound
        guard cursor.position == count else { throw EntropyCodingError.trailingBytes(count: count - cursor.position) }
        guard x0 == L else { throw EntropyCodingError.invalidFinalState(lane: 0) }
        guard x1 == L else { throw EntropyCodingError.invalidFinalState(lane: 1) }
    }
}

/// The encoder's position: the next symbol's table (walking backwards) and the output pointer,
/// which moves towards the start of the buffer.
private struct EncodeCursor<Symbol: FixedWidthInteger & UnsignedInteger> {
    let symbols: UnsafePointer<Symbol>
    let entries: UnsafeMutablePointer<EncodeEntry>
    let tables: CodingTables
    let run: Int
    let rawBits: UInt32
    let rawXMax: UInt32
    var output: UnsafeMutablePointer<UInt8>
    var table: Int
    var left: Int
    var start: UInt32
    var length: UInt32
    var base: Int

    init(tables: CodingTables, symbols: UnsafePointer<Symbol>, count n: Int, run: Int, output: UnsafeMutablePointer<UInt8>) {
        self.symbols = symbols
        self.entries = tables.encodeEntries.baseAddress!
        self.tables = tables
        self.run = run
        self.rawBits = tables.rawBits
        self.rawXMax = (EntropyCoderConstants.lowerBound >> tables.rawBits) << 8
        self.output = output
        table = ((n - 1) / run) % tables.tableCount
        left = (n - 1) % run + 1
        start = tables.supportStart[table]
        length = tables.supportLength[table]
        base = Int(tables.entryBase[table])
    }

    /// Codes symbol `i` onto state `x`, then steps to symbol i − 1's table.
    @inline(__always)
    mutating func put(_ x: inout UInt32, _ i: Int) {
        let u = UInt32(truncatingIfNeeded: symbols[i])
        let d = u &- start
        let entry: UnsafeMutablePointer<EncodeEntry>
        if d < length {
            entry = entries + (base &+ Int(d))
        } else {
            // The raw value first: the decoder reads the escape, then the value.
            while x >= rawXMax {
                output -= 1
                output.pointee = UInt8(truncatingIfNeeded: x)
                x &>>= 8
            }
            x = x &<< rawBits | u
            entry = entries + (base &+ Int(length))
        }
        let xMax = entry.pointee.xMax
        while x >= xMax {
            output -= 1
            output.pointee = UInt8(truncatingIfNeeded: x)
            x &>>= 8
        }
        let q = UInt32(truncatingIfNeeded: (UInt64(x) &* UInt64(entry.pointee.reciprocal)) &>> UInt64(entry.pointee.reciprocalShift))
        x = x &+ entry.pointee.bias &+ q &* entry.pointee.complement
        left -= 1
        if left == 0 {
            left = run
            table = table == 0 ? tables.tableCount - 1 : table - 1
            start = tables.supportStart[table]
            length = tables.supportLength[table]
            base = Int(tables.entryBase[table])
        }
    }
}

/// The decoder's position: the next symbol's table and the next input byte.
private struct DecodeCursor {
    let input: UnsafePointer<UInt8>
    let count: Int
    let tables: CodingTables
    let info: UnsafeMutablePointer<UInt32>
    let symbolOf: UnsafeMutablePointer<UInt16>
    let run: Int
    let shift: UInt32
    let slotMask: UInt32
    let rawBits: UInt32
    let rawMask: UInt32
    let alphabetSize: UInt32
    let slotsPerTable: Int
    var position: Int
    var table = 0
    var left: Int
    var slots: UnsafeMutablePointer<UInt16>
    var base: Int
    var start: UInt32
    var length: UInt32

    init(tables: CodingTables, input: UnsafePointer<UInt8>, count: Int, run: Int) {
        self.input = input
        self.count = count
        self.tables = tables
        self.info = tables.decodeInfo.baseAddress!
        self.symbolOf = tables.entrySymbol.baseAddress!
        self.run = run
        self.shift = tables.precision
        self.slotMask = (UInt32(1) << tables.precision) - 1
        self.rawBits = tables.rawBits
        self.rawMask = (UInt32(1) << tables.rawBits) - 1
        self.alphabetSize = UInt32(tables.alphabetSize)
        self.slotsPerTable = 1 << Int(tables.precision)
        position = EntropyCoder.stateBytes
        left = run
        slots = tables.slotEntry.baseAddress!
        base = Int(tables.entryBase[0])
        start = tables.supportStart[0]
        length = tables.supportLength[0]
    }

    /// Reads bytes into `x` until it is back in [2^23, 2^31).
    @inline(__always)
    mutating func renormalize(_ x: inout UInt32, _ i: Int) throws {
        while x < EntropyCoderConstants.lowerBound {
            guard position < count else { throw EntropyCodingError.truncatedStream(symbol: i) }
            x = x &<< 8 | UInt32(input[position])
            position &+= 1
        }
    }

    /// Decodes symbol `i` from state `x`, then steps to symbol i + 1's table.
    @inline(__always)
    mutating func get(_ x: inout UInt32, _ i: Int) throws -> UInt32 {
        let slot = x & slotMask
        let e = base &+ Int(slots[Int(slot)])
        let entry = info[e]
        x = (entry &>> 16) &* (x &>> shift) &+ slot &- (entry & 0xFFFF)
        try renormalize(&x, i)
        var s = UInt32(symbolOf[e])
        if s == UInt32(EntropyCoderConstants.escapeMarker) {
            s = x & rawMask
            x &>>= rawBits
            guard s < alphabetSize, s &- start >= length else { throw EntropyCodingError.invalidEscape(symbol: i, value: Int(s)) }
            try renormalize(&x, i)
        }
        left -= 1
        if left == 0 {
            left = run
            table += 1
            if table == tables.tableCount { table = 0 }
            slots = tables.slotEntry.baseAddress! + table * slotsPerTable
            base = Int(tables.entryBase[table])
            start = tables.supportStart[table]
            length = tables.supportLength[table]
        }
        return s
    }
}
