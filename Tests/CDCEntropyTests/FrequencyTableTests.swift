import Foundation
import Testing
@testable import CDCEntropy

@Suite struct FrequencyTableTests {
    @Test func quantizingCountsIsProportionalWithLargestRemaindersFirst() throws {
        let t = try FrequencyTable(quantizing: [10, 200, 30], supportStart: 3, alphabetSize: 32, precisionBits: 12)
        // 1 each, then 4092 shared: 170.5 → 170, 3410, 511.5 → 511, escape 0; the leftover unit
        // goes to the first of the two remainders of 120 (symbol 3).
        #expect(t.frequencies == [172, 3411, 512])
        #expect(t.escapeFrequency == 1)
        #expect(t.support == 3..<6)
        #expect(t.frequency(of: 4) == 3411 && t.frequency(of: 2) == 0 && t.frequency(of: 6) == 0)
        #expect(t.rawBits == 5)
        #expect(abs(t.codeLength(of: 4) - (12 - log2(3411.0))) < 1e-12)
        #expect(abs(t.codeLength(of: 31) - (12 + 5)) < 1e-12)
    }

    @Test func zeroCountsAndEmptyDataGetTheMinimumFrequency() throws {
        let t = try FrequencyTable(quantizing: [0, 5, 0], alphabetSize: 3, precisionBits: 4)
        #expect(t.frequencies == [1, 13, 1] && t.escapeFrequency == 1)
        let uniform = try FrequencyTable(quantizing: [0, 0, 0, 0], alphabetSize: 4, precisionBits: 3)
        #expect(uniform.frequencies == [2, 2, 2, 1] && uniform.escapeFrequency == 1)
    }

    @Test func aDominantSymbolLeavesTheMinimumRest() throws {
        for p in 1...16 {
            let t = try FrequencyTable(quantizing: [1 << 40], alphabetSize: 2, precisionBits: p)
            let rest = FrequencyTable.minimumRest(precisionBits: p)
            #expect(t.frequencies == [t.total - rest])
            #expect(t.escapeFrequency == rest)
        }
        #expect(FrequencyTable.minimumRest(precisionBits: 12) == 1)
        #expect(FrequencyTable.minimumRest(precisionBits: 16) == 16)
    }

    @Test func quantizingIsDeterministicAndSumsToTheTotal() throws {
        var rng = TestRandom(seed: 3)
        for _ in 0..<300 {
            let a = rng.int(in: 1...300)
            let t = try randomTable(alphabetSize: a, rng: &rng)
            #expect(UInt64(t.frequencies.reduce(0, +)) + UInt64(t.escapeFrequency) == UInt64(t.total))
            #expect(t.frequencies.allSatisfy { $0 >= 1 } && t.escapeFrequency >= 1)
            let again = try FrequencyTable(frequencies: t.frequencies, supportStart: t.supportStart,
                                           alphabetSize: t.alphabetSize, precisionBits: t.precisionBits)
            #expect(again == t)
        }
    }

    @Test func everyRuleIsChecked() throws {
        func error(_ f: [UInt32], start: Int = 0, a: Int = 4, p: Int = 4) -> EntropyCodingError? {
            codingError { _ = try FrequencyTable(frequencies: f, supportStart: start, alphabetSize: a, precisionBits: p) }
        }
        #expect(error([1], a: 0) == .invalidTable("alphabet size 0 is not in 1...4096"))
        #expect(error([1], a: 4097) == .invalidTable("alphabet size 4097 is not in 1...4096"))
        #expect(error([1], p: 0) == .invalidTable("precision 0 bits is not in 1...16"))
        #expect(error([1], p: 17) == .invalidTable("precision 17 bits is not in 1...16"))
        #expect(error([]) == .invalidTable("the support is empty"))
        #expect(error([1, 1], start: 3) == .invalidTable("support 3..<5 is not inside the alphabet 0..<4"))
        #expect(error([1], start: -1) == .invalidTable("support -1..<0 is not inside the alphabet 0..<4"))
        #expect(error([1, 0, 1]) == .invalidTable("symbol 1 of the support has frequency 0"))
        #expect(error([8, 8]) == .invalidTable("the frequencies sum to 16, leaving no escape below the total 16"))
        #expect(error([15, 1]) == .invalidTable("the frequencies sum to 16, leaving no escape below the total 16"))
        #expect(error([UInt32.max, UInt32.max]) != nil)
        // At 14 bits the rest must be at least 4.
        #expect(error([16381], p: 14) == .invalidTable("an entry of frequency 16381 leaves 3 of 16384, less than the minimum 4"))
        #expect(try FrequencyTable(frequencies: [16380], supportStart: 0, alphabetSize: 4, precisionBits: 14)
                .escapeFrequency == 4)
        #expect(throws: EntropyCodingError.self) {
            try FrequencyTable(quantizing: [1, 1, 1, 1], alphabetSize: 4, precisionBits: 2)  // 5 entries > 4
        }
        #expect(throws: EntropyCodingError.self) {
            try FrequencyTable(quantizing: [UInt64.max, 1], alphabetSize: 4, precisionBits: 8)
        }
    }
}
