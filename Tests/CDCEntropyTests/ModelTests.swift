import Foundation
import Testing
@testable import CDCEntropy

@Suite struct ModelTests {
    @Test func aStaticHistogramMeasuresEachChannelOverItsObservedRange() throws {
        // 2 channels, runs of 3: channel 0 sees 1, 2, 2, 1 ..., channel 1 sees only 5.
        let s: [UInt16] = [1, 2, 2, 5, 5, 5, 1, 2, 1, 5, 5, 5, 2]
        let m = try EntropyModel.staticHistogram(measuring: s, channels: 2, symbolsPerChannel: 3, alphabetSize: 8)
        #expect(m.origin == .staticHistogram && m.channels == 2 && m.alphabetSize == 8 && m.precisionBits == 12)
        #expect(m.tables[0].support == 1..<3)
        #expect(m.tables[1].support == 5..<6)
        // Counts 3 and 4 of 7: 1 + ⌊3·4093/7⌋ = 1755 and 1 + ⌊4·4093/7⌋ = 2339, + 1 for the larger remainder.
        #expect(m.tables[0].frequencies == [1755, 2340])
        #expect(m.tables[1].frequencies == [4095])
        // A channel that sees nothing is uniform over the whole alphabet.
        let empty = try EntropyModel.staticHistogram(measuring: [UInt16](), channels: 3, symbolsPerChannel: 4, alphabetSize: 4)
        #expect(empty.tables.allSatisfy { $0.support == 0..<4 && $0.frequencies == [1024, 1024, 1024, 1023] })
        #expect(codingError {
            _ = try EntropyModel.staticHistogram(measuring: [0, 9], channels: 1, symbolsPerChannel: 1, alphabetSize: 8)
        } == .symbolOutOfAlphabet(index: 1, value: 9, alphabetSize: 8))
    }

    @Test func estimatedBitsAreTheIdealCodeLength() throws {
        let s: [UInt16] = [0, 0, 1, 3, 3, 3]
        let t0 = try FrequencyTable(frequencies: [6, 1], supportStart: 0, alphabetSize: 4, precisionBits: 3)
        let t1 = try FrequencyTable(frequencies: [7], supportStart: 3, alphabetSize: 4, precisionBits: 3)
        let m = try EntropyModel(origin: .learnedPrior, tables: [t0, t1])
        // Runs of 2: [0 0] t0, [1 3] t1, [3 3] t0. Symbol 1 escapes under t1 (escape 1/8 + 2 raw
        // bits), symbol 3 escapes under t0 (escape 1/8 + 2 raw bits).
        let expected = 2 * -log2(6.0 / 8) + (3 + 2) + -log2(7.0 / 8) + 2 * (3 + 2)
        #expect(abs(try m.estimatedBits(s, symbolsPerChannel: 2) - expected) < 1e-9)
    }

    @Test func serializationRoundTripsAndIsCompact() throws {
        var rng = TestRandom(seed: 21)
        for a in [1, 2, 7, 32, 300, 4096] {
            for channels in [1, 3, 16] {
                let m = try randomModel(alphabetSize: a, channels: channels, rng: &rng)
                let bytes = m.serialized()
                #expect(try EntropyModel(serialized: bytes) == m)
                #expect(bytes.count <= 6 + channels * (6 + 3 * a))
            }
        }
        // 16 binary tables at 12 bits: 6 + 16 · (1 + 1 + 2 + 2) bytes at most.
        let binary = try EntropyModel.staticHistogram(measuring: (0..<784).map { UInt16($0 % 3 == 0 ? 1 : 0) },
                                                      channels: 16, symbolsPerChannel: 49, alphabetSize: 2)
        #expect(binary.serialized().count <= 6 + 16 * 6)
    }

    @Test func aSerializedModelIsValidatedOnReading() throws {
        let m = try EntropyModel(origin: .staticHistogram, tables: [
            FrequencyTable(frequencies: [100, 3000], supportStart: 1, alphabetSize: 4, precisionBits: 12),
        ])
        let bytes = m.serialized()
        #expect(bytes == [1, 12, 4, 0, 1, 0, 1, 2, 100, 0xB8, 0x17])
        func error(_ b: [UInt8]) -> EntropyCodingError? { codingError { _ = try EntropyModel(serialized: b) } }
        #expect(error([]) == .invalidModel("truncated: origin at byte 0, the model ends at byte 0"))
        #expect(error([3] + bytes.dropFirst()) == .invalidModel("unknown origin 3 at byte 0"))
        #expect(error([1, 0] + bytes.dropFirst(2)) == .invalidModel("precision 0 bits is not in 1...16"))
        #expect(error([1, 12, 0, 0] + bytes.dropFirst(4)) == .invalidModel("alphabet size 0 is not in 1...4096"))
        #expect(error([1, 12, 4, 0, 0, 0] + bytes.dropFirst(6)) == .invalidModel("table count 0 is not in 1...4096 at 12 bits"))
        #expect(error([1, 12, 4, 0, 0xFF, 0xFF] + bytes.dropFirst(6))
                == .invalidModel("table count 65535 is not in 1...4096 at 12 bits"))
        #expect(error([1, 12, 4, 0, 2, 0] + bytes.dropFirst(6))
                == .invalidModel("2 tables cannot fit in the 5 bytes left at byte 6"))
        #expect(error(bytes + [0]) == .invalidModel("1 trailing bytes after the last table, at byte 11"))
        var b = bytes
        b[7] = 0                                                     // support length 0
        #expect(error(b) == .invalidModel("table 0 at byte 6: support length 0 is not in 1...3"))
        b = bytes
        b[6] = 3                                                     // support 3..<5 in an alphabet of 4
        #expect(error(b) == .invalidTable("table 0 at byte 6: support 3..<5 is not inside the alphabet 0..<4"))
        b = bytes
        b[10] = 0x1F                                                 // 100 + 3000 + ... ≥ 4096
        #expect(error(b) == .invalidTable("table 0 at byte 6: the frequencies sum to 4124, leaving no escape below the total 4096"))
        b = bytes
        b[9] = 0x80; b[10] = 0x00                                   // non-minimal varint
        #expect(error(b) == .invalidModel("table 0 frequency at byte 9: non-minimal varint"))
        b = [1, 12, 4, 0, 1, 0, 1, 1, 0xFF, 0xFF, 0xFF, 0x01]        // 4-byte varint
        #expect(error(b) == .invalidModel("table 0 frequency at byte 8: varint longer than 3 bytes"))
        // Every truncation throws.
        for n in 0..<bytes.count { #expect(error(Array(bytes.prefix(n))) != nil) }
    }
}
