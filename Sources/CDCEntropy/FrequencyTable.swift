#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One quantized probability distribution over the symbols `0..<alphabetSize`, in integers:
/// what the rANS coder codes with.
///
/// The symbols of a contiguous *support* `supportStart ..< supportStart + frequencies.count` each
/// have a frequency ≥ 1; every other symbol of the alphabet is coded through the *escape*: an
/// escape entry of frequency ``escapeFrequency`` ≥ 1, followed by the symbol's value in
/// ``rawBits`` bits with a uniform distribution. The frequencies and the escape sum to exactly
/// 2^``precisionBits``, so the probability of a support symbol s is `frequency(of: s) / total`.
///
/// ```swift
/// // Measured counts of the symbols 3, 4, 5 of a 32-symbol alphabet; the rest escape.
/// let table = try FrequencyTable(quantizing: [10, 200, 30], supportStart: 3,
///                                alphabetSize: 32, precisionBits: 12)
/// table.frequency(of: 4)    // 3411 of 4096
/// table.escapeFrequency     // 1
/// ```
///
/// Rules (checked by every initializer, so a table from corrupt bytes is an error, never a
/// crash): the alphabet has 1...4096 symbols; the precision is 1...16 bits; the support is
/// non-empty and inside the alphabet; the frequencies and the escape are ≥ 1 and sum to
/// 2^precision; and no entry is so probable that the rest has less than
/// ``minimumRest(precisionBits:)`` (2^(precision − 12), at least 1) — so every coded symbol costs
/// at least about 2^−12 bit, which bounds how many symbols a decoder can be asked to produce
/// from a given number of bytes.
public struct FrequencyTable: Sendable, Hashable {
    /// The largest alphabet a table can describe.
    public static let maxAlphabetSize = 4096
    /// The precisions a table can have, in bits.
    public static let precisionRange = 1...16

    /// Number of symbols in the alphabet, 1...4096.
    public let alphabetSize: Int
    /// The frequencies sum to 2^precisionBits, 1...16.
    public let precisionBits: Int
    /// The first symbol of the support.
    public let supportStart: Int
    /// The frequency of each support symbol, each ≥ 1, from ``supportStart`` on.
    public let frequencies: [UInt32]
    /// The frequency of the escape entry, ≥ 1: `total − frequencies.sum`.
    public let escapeFrequency: UInt32

    /// 2^precisionBits: the sum of all frequencies.
    public var total: UInt32 { 1 << UInt32(precisionBits) }

    /// The symbols coded directly; the others escape.
    public var support: Range<Int> { supportStart ..< supportStart + frequencies.count }

    /// Bits of the raw value after an escape: ⌈log2 alphabetSize⌉.
    public var rawBits: Int { Self.rawBits(alphabetSize: alphabetSize) }

    /// ⌈log2 alphabetSize⌉ (0 for a one-symbol alphabet).
    public static func rawBits(alphabetSize: Int) -> Int {
        var k = 0
        while (1 << k) < alphabetSize { k += 1 }
        return k
    }

    /// The least total frequency every entry but the most probable one must leave:
    /// max(1, 2^(precisionBits − 12)).
    public static func minimumRest(precisionBits: Int) -> UInt32 {
        max(1, UInt32(1) << UInt32(max(0, precisionBits - 12)))
    }

    /// A table from explicit frequencies (e.g. the CDF table of a learned prior, already
    /// quantized); the escape gets what the frequencies leave of 2^precisionBits.
    ///
    /// - Throws: ``EntropyCodingError/invalidTable(_:)`` naming the broken rule.
    public init(frequencies: [UInt32], supportStart: Int, alphabetSize: Int, precisionBits: Int) throws {
        guard (1...Self.maxAlphabetSize).contains(alphabetSize) else {
            throw EntropyCodingError.invalidTable("alphabet size \(alphabetSize) is not in 1...\(Self.maxAlphabetSize)")
        }
        guard Self.precisionRange.contains(precisionBits) else {
            throw EntropyCodingError.invalidTable("precision \(precisionBits) bits is not in \(Self.precisionRange)")
        }
        guard !frequencies.isEmpty else { throw EntropyCodingError.invalidTable("the support is empty") }
        guard supportStart >= 0, supportStart <= alphabetSize - frequencies.count else {
            throw EntropyCodingError.invalidTable(
                "support \(supportStart)..<\(supportStart + frequencies.count) is not inside the alphabet 0..<\(alphabetSize)")
        }
        let total = UInt64(1) << UInt64(precisionBits)
        var sum: UInt64 = 0
        var largest: UInt32 = 0
        for (i, f) in frequencies.enumerated() {
            guard f >= 1 else {
                throw EntropyCodingError.invalidTable("symbol \(supportStart + i) of the support has frequency 0")
            }
            sum += UInt64(f)
            largest = max(largest, f)
        }
        guard sum < total else {
            throw EntropyCodingError.invalidTable("the frequencies sum to \(sum), leaving no escape below the total \(total)")
        }
        let escape = UInt32(total - sum)
        largest = max(largest, escape)
        let rest = UInt32(total) - largest
        guard rest >= Self.minimumRest(precisionBits: precisionBits) else {
            throw EntropyCodingError.invalidTable(
                "an entry of frequency \(largest) leaves \(rest) of \(total), less than the minimum \(Self.minimumRest(precisionBits: precisionBits))")
        }
        self.alphabetSize = alphabetSize
        self.precisionBits = precisionBits
        self.supportStart = supportStart
        self.frequencies = frequencies
        self.escapeFrequency = escape
    }

    /// A table quantized from integer counts, deterministically and without floating point.
    ///
    /// Each support symbol and the escape get 1, and the rest of 2^precisionBits is shared in
    /// proportion to the counts (`count · rest / Σcounts`, rounded down); the units left over go,
    /// one each, to the entries with the largest remainders (lower symbols first on ties, the
    /// escape last). If all counts are 0, the support symbols count 1 each. Finally an entry
    /// that would leave less than ``minimumRest(precisionBits:)`` to the others gives the excess
    /// to the escape.
    ///
    /// - Parameters:
    ///   - counts: one count per support symbol, from `supportStart` on.
    ///   - escapeCount: how often the escape is expected (0: as rarely as the rules allow).
    /// - Throws: ``EntropyCodingError/invalidTable(_:)`` if the alphabet, precision or support
    ///   is invalid, the support plus escape have more entries than 2^precisionBits, or the
    ///   counts sum beyond `UInt64.max`.
    public init(quantizing counts: [UInt64], escapeCount: UInt64 = 0, supportStart: Int = 0,
                alphabetSize: Int, precisionBits: Int) throws {
        guard Self.precisionRange.contains(precisionBits) else {
            throw EntropyCodingError.invalidTable("precision \(precisionBits) bits is not in \(Self.precisionRange)")
        }
        let total = UInt64(1) << UInt64(precisionBits)
        let entries = counts.count + 1
        guard UInt64(entries) <= total else {
            throw EntropyCodingError.invalidTable("\(counts.count) symbols and the escape do not fit a total of \(total)")
        }
        var weights = counts + [escapeCount]
        var sum: UInt64 = 0
        for w in weights {
            let (s, overflow) = sum.addingReportingOverflow(w)
            guard !overflow else { throw EntropyCodingError.invalidTable("the counts sum to more than \(UInt64.max)") }
            sum = s
        }
        if sum == 0 {
            for i in 0..<counts.count { weights[i] = 1 }
            sum = UInt64(counts.count)
        }
        let budget = total - UInt64(entries)
        var frequencies = [UInt64](repeating: 1, count: entries)
        var remainders = [UInt64](repeating: 0, count: entries)
        var given: UInt64 = 0
        for i in 0..<entries {
            let product = weights[i].multipliedFullWidth(by: budget)
            let (q, r) = sum.dividingFullWidth(product)   // q ≤ budget, as weights[i] ≤ sum
            frequencies[i] += q
            remainders[i] = r
            given += q
        }
        var leftover = Int(budget - given)                  // < entries
        if leftover > 0 {
            let order = (0..<entries).sorted { a, b in
                remainders[a] != remainders[b] ? remainders[a] > remainders[b] : a < b
            }
            for i in order where leftover > 0 {
                frequencies[i] += 1
                leftover -= 1
            }
        }
        let cap = total - UInt64(Self.minimumRest(precisionBits: precisionBits))
        if let top = frequencies.indices.max(by: { frequencies[$0] < frequencies[$1] || (frequencies[$0] == frequencies[$1] && $0 > $1) }),
           frequencies[top] > cap {
            let excess = frequencies[top] - cap
            frequencies[top] -= excess
            frequencies[entries - 1] += excess
        }
        try self.init(frequencies: frequencies.dropLast().map { UInt32($0) }, supportStart: supportStart,
                      alphabetSize: alphabetSize, precisionBits: precisionBits)
    }

    /// The frequency of `symbol`, or 0 if it is outside the support (it escapes).
    public func frequency(of symbol: Int) -> UInt32 {
        support.contains(symbol) ? frequencies[symbol - supportStart] : 0
    }

    /// The ideal code length of `symbol` in bits: −log2 of its probability, or for a symbol
    /// outside the support, −log2 of the escape's probability plus ``rawBits``.
    public func codeLength(of symbol: Int) -> Double {
        let f = frequency(of: symbol)
        if f > 0 { return Double(precisionBits) - log2(Double(f)) }
        return Double(precisionBits) - log2(Double(escapeFrequency)) + Double(rawBits)
    }
}
