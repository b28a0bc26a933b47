import Foundation
import Testing
@testable import CDCEntropy

/// The tests' generator: CDCEntropy's SplitMix64, so every run tests the same data.
typealias TestRandom = SplitMix64

extension SplitMix64 {
    /// Uniform in `range`.
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
}

/// A random valid table over `alphabetSize` symbols: random support, precision and counts,
/// sometimes very skewed.
func randomTable(alphabetSize: Int, precisionBits: Int? = nil, rng: inout TestRandom) throws -> FrequencyTable {
    let a = alphabetSize
    let length = rng.int(in: 1...a)
    let start = rng.int(in: 0...(a - length))
    let needed = FrequencyTable.rawBits(alphabetSize: length + 1)
    let p = precisionBits ?? rng.int(in: max(1, needed)...16)
    var counts: [UInt64] = []
    switch rng.int(in: 0...3) {
    case 0: counts = (0..<length).map { _ in UInt64(rng.int(in: 0...1000)) }                   // random
    case 1: counts = (0..<length).map { _ in 1 }                                               // uniform
    case 2: counts = (0..<length).map { i in i == 0 ? 1_000_000 : UInt64(rng.int(in: 0...3)) } // skewed
    default: counts = (0..<length).map { i in UInt64(1) << UInt64(min(40, i * 3 % 41)) }       // geometric
    }
    return try FrequencyTable(quantizing: counts, escapeCount: UInt64(rng.int(in: 0...50)), supportStart: start,
                              alphabetSize: a, precisionBits: p)
}

/// A random valid model of `channels` tables over `alphabetSize` symbols.
func randomModel(alphabetSize: Int, channels: Int, rng: inout TestRandom) throws -> EntropyModel {
    let needed = FrequencyTable.rawBits(alphabetSize: alphabetSize + 1)
    var p = rng.int(in: max(1, needed)...16)
    while channels << p > EntropyModel.maxTableSlots { p -= 1 }
    let tables = try (0..<channels).map { _ in try randomTable(alphabetSize: alphabetSize, precisionBits: p, rng: &rng) }
    return try EntropyModel(origin: rng.chance(0.5) ? .staticHistogram : .learnedPrior, tables: tables)
}

/// `count` symbols drawn mostly from each run's table (so that the stream looks like the data
/// the model was made for), with a fraction `escapes` drawn uniformly from the whole alphabet.
func symbols(for model: EntropyModel, count: Int, symbolsPerChannel: Int, escapes: Double,
             rng: inout TestRandom) -> [UInt16] {
    (0..<count).map { i in
        let table = model.tables[(i / symbolsPerChannel) % model.channels]
        if rng.chance(escapes) { return UInt16(rng.int(in: 0...(model.alphabetSize - 1))) }
        // Draw by frequency: a slot in 0..<total minus the escape's share.
        let total = Int(table.total - table.escapeFrequency)
        var slot = rng.int(in: 0...(total - 1))
        for (j, f) in table.frequencies.enumerated() {
            if slot < Int(f) { return UInt16(table.supportStart + j) }
            slot -= Int(f)
        }
        return UInt16(table.supportStart)
    }
}

/// The EntropyCodingError `body` throws (records an issue if it throws none or another error).
func codingError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> EntropyCodingError? {
    do {
        try body()
        Issue.record("expected an EntropyCodingError", sourceLocation: sourceLocation)
    } catch let error as EntropyCodingError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
