import Foundation
import Testing
@testable import CDCEntropy

/// rANS with a distribution per symbol: exact round trips, code length near the ideal, valid
/// tables from any probabilities, and corrupt streams refused without crashing.
@Suite struct AdaptiveRANSTests {
    func table(_ p: [Double]) -> [UInt32] {
        var f = [UInt32](repeating: 0, count: p.count)
        p.withUnsafeBufferPointer { pp in f.withUnsafeMutableBufferPointer { AdaptiveRANS.frequencies(probabilities: pp, into: $0) } }
        return f
    }

    @Test func tablesSumToTheTotalWithNoZeroEntry() {
        for p in [[1.0], [0.5, 0.5], [1, 0, 0], [1e-30, 1, 1e-300], [0, 0, 0], [3, 1, 2, 7, 0.001, 9],
                  [Double.infinity, 1], [.nan, 1]] {
            let f = table(p)
            #expect(f.reduce(0, +) == AdaptiveRANS.total, "\(p) → \(f)")
            #expect(f.allSatisfy { $0 >= 1 })
        }
        // Proportional away from the floor.
        let f = table([1, 3])
        #expect(abs(Double(f[1]) / Double(f[0]) - 3) < 0.01)
    }

    @Test func roundTripsEveryStreamExactlyNearItsIdealLength() throws {
        var rng = TestRandom(seed: 41)
        for trial in 0..<40 {
            let a = rng.int(in: 1...8), n = rng.int(in: 0...600)
            var symbols: [UInt8] = [], tables: [UInt32] = [], ideal = 0.0
            for _ in 0..<n {
                let skew = rng.chance(0.5)
                let p = (0..<a).map { i in skew && i == 0 ? 50.0 : Double(rng.int(in: 0...100)) }
                let t = table(p)
                // Draw from the table itself, as a well-fitted model would.
                var u = UInt32(rng.next() % UInt64(AdaptiveRANS.total)), s = 0
                while u >= t[s] { u -= t[s]; s += 1 }
                symbols.append(UInt8(s)); tables += t
                ideal -= log2(Double(t[s]) / Double(AdaptiveRANS.total))
            }
            let bytes = try symbols.withUnsafeBufferPointer { s in try tables.withUnsafeBufferPointer { try AdaptiveRANS.encode(s, tables: $0, alphabetSize: a) } }
            #expect(Double(bytes.count * 8) <= ideal + 40, "trial \(trial): \(bytes.count * 8) bits for \(ideal)")
            var d = try AdaptiveRANSDecoder(bytes)
            let back = try tables.withUnsafeBufferPointer { tp in
                try (0..<n).map { i in UInt8(try d.decode(UnsafeBufferPointer(rebasing: tp[(i * a)..<((i + 1) * a)]))) }
            }
            try d.finish()
            #expect(back == symbols)
        }
    }

    @Test func corruptStreamsThrowAndNeverCrash() throws {
        let t = table([1, 2, 5]), n = 200
        let symbols = (0..<n).map { UInt8($0 % 3) }, tables = Array([[UInt32]](repeating: t, count: n).joined())
        let bytes = try symbols.withUnsafeBufferPointer { s in try tables.withUnsafeBufferPointer { try AdaptiveRANS.encode(s, tables: $0, alphabetSize: 3) } }
        func decode(_ b: [UInt8]) throws -> [Int] {
            var d = try AdaptiveRANSDecoder(b)
            let out = try t.withUnsafeBufferPointer { tp in try (0..<n).map { _ in try d.decode(tp) } }
            try d.finish()
            return out
        }
        #expect(try decode(bytes) == symbols.map(Int.init))
        #expect(throws: EntropyCodingError.self) { try decode(Array(bytes.dropLast())) }
        #expect(throws: EntropyCodingError.self) { try decode(bytes + [7]) }
        #expect(throws: EntropyCodingError.self) { try decode([0, 0, 0, 0]) }
        #expect(throws: EntropyCodingError.self) {
            try [UInt8(3)].withUnsafeBufferPointer { s in try t.withUnsafeBufferPointer { try AdaptiveRANS.encode(s, tables: $0, alphabetSize: 3) } }
        }
        var rng = TestRandom(seed: 9)
        for _ in 0..<200 {
            var b = bytes
            b[rng.int(in: 0...(b.count - 1))] ^= UInt8(rng.int(in: 1...255))
            if let s = try? decode(b) { #expect(s.allSatisfy { $0 < 3 }) }
        }
    }
}
