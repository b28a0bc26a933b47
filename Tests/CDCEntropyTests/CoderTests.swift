import Foundation
import Testing
@testable import CDCEntropy

/// Encodes and decodes `symbols` through every entry point, checking the round trip is exact.
private func roundTrip(_ symbols: [UInt16], _ model: EntropyModel, symbolsPerChannel: Int,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    let coder = EntropyCoder(model: model)
    let bytes = try coder.encode(symbols, symbolsPerChannel: symbolsPerChannel)
    #expect(symbols.count <= coder.maximumSymbols(codedIn: bytes.count), sourceLocation: sourceLocation)
    let back = try coder.decode(bytes, count: symbols.count, symbolsPerChannel: symbolsPerChannel)
    #expect(back == symbols, sourceLocation: sourceLocation)
    #expect(symbols.isEmpty == bytes.isEmpty, sourceLocation: sourceLocation)
    if model.alphabetSize <= 256 {
        let narrow = symbols.map { UInt8($0) }
        var bytes8: [UInt8] = [0xAB]                     // appends after what is there
        try narrow.withUnsafeBufferPointer {
            try coder.encode($0, symbolsPerChannel: symbolsPerChannel, appendingTo: &bytes8)
        }
        #expect(bytes8 == [0xAB] + bytes, "UInt8 and UInt16 symbols code alike", sourceLocation: sourceLocation)
        var out = [UInt8](repeating: 0, count: symbols.count)
        try bytes.withUnsafeBufferPointer { b in
            try out.withUnsafeMutableBufferPointer { try coder.decode(b, into: $0, symbolsPerChannel: symbolsPerChannel) }
        }
        #expect(out == narrow, sourceLocation: sourceLocation)
    }
    return bytes
}

@Suite struct CoderRoundTripTests {
    @Test(arguments: [2, 3, 4, 8, 16, 32, 100, 256, 257, 1000, 4096])
    func randomModelsAndStreams(alphabetSize: Int) throws {
        var rng = TestRandom(seed: UInt64(alphabetSize))
        for trial in 0..<12 {
            let channels = rng.int(in: 1...5)
            let model = try randomModel(alphabetSize: alphabetSize, channels: channels, rng: &rng)
            let run = rng.int(in: 1...9)
            let count = [0, 1, 2, 3, 7, 64, 501, 3000][trial % 8]
            let escapes = [0, 0.01, 0.3, 1][trial % 4]
            let s = symbols(for: model, count: count, symbolsPerChannel: run, escapes: escapes, rng: &rng)
            _ = try roundTrip(s, model, symbolsPerChannel: run)
        }
    }

    @Test func everyPrecisionWithASingleSymbolSupport() throws {
        for p in 1...16 {
            for a in [1, 2, 5, 32] {
                let table = try FrequencyTable(quantizing: [7], supportStart: a - 1, alphabetSize: a, precisionBits: p)
                let model = try EntropyModel(origin: .staticHistogram, tables: [table])
                // All in the support, then all escaping (every other symbol of the alphabet).
                _ = try roundTrip([UInt16](repeating: UInt16(a - 1), count: 1000), model, symbolsPerChannel: 1)
                if a > 1 {
                    _ = try roundTrip((0..<600).map { UInt16($0 % (a - 1)) }, model, symbolsPerChannel: 7)
                }
            }
        }
    }

    @Test func uniformAndSkewedTables() throws {
        var rng = TestRandom(seed: 17)
        for a in [2, 32, 4096] {
            let p = EntropyModel.defaultPrecisionBits(alphabetSize: a)
            let uniform = try FrequencyTable(quantizing: [UInt64](repeating: 1, count: a), alphabetSize: a, precisionBits: p)
            var counts = [UInt64](repeating: 0, count: a)
            counts[a / 2] = 1 << 30
            let skewed = try FrequencyTable(quantizing: counts, alphabetSize: a, precisionBits: p)
            let model = try EntropyModel(origin: .learnedPrior, tables: [uniform, skewed])
            let s = symbols(for: model, count: 5000, symbolsPerChannel: 49, escapes: 0.001, rng: &rng)
            let bytes = try roundTrip(s, model, symbolsPerChannel: 49)
            // The code is close to the model's estimate: within the states and a little precision loss.
            let estimate = try model.estimatedBits(s, symbolsPerChannel: 49)
            #expect(Double(bytes.count * 8) <= estimate * 1.01 + 64)
            #expect(Double(bytes.count * 8) >= estimate * 0.99 - 16)
        }
    }

    @Test func theCodeIsNearTheEntropyOfSkewedBinaryLatents() throws {
        // 1000 samples of 16 channels × 49: the shape of a Fashion-MNIST latent at m = 4.
        var rng = TestRandom(seed: 5)
        let p1 = (0..<16).map { c in [0.001, 0.02, 0.1, 0.3, 0.5][c % 5] }
        var s: [UInt16] = []
        for _ in 0..<1000 {
            for c in 0..<16 { for _ in 0..<49 { s.append(rng.chance(p1[c]) ? 1 : 0) } }
        }
        let model = try EntropyModel.staticHistogram(measuring: s, channels: 16, symbolsPerChannel: 49, alphabetSize: 2)
        let bytes = try roundTrip(s, model, symbolsPerChannel: 49)
        let entropy = p1.map { p in -(p * log2(p) + (1 - p) * log2(1 - p)) * 49 * 1000 }.reduce(0, +)
        #expect(Double(bytes.count * 8) < entropy * 1.03 + 64)
    }

    @Test func theEncoderReciprocalIsExactDivision() {
        var rng = TestRandom(seed: 9)
        for p in UInt32(1)...16 {
            let M = UInt32(1) << p
            for _ in 0..<200 {
                let f = UInt32(rng.int(in: 1...Int(M - 1)))
                let start = UInt32(rng.int(in: 0...Int(M - f)))
                let e = EncodeEntry(start: start, frequency: f, precision: p)
                for x in [UInt32(1), e.xMax / 256 + 1, e.xMax - 1, UInt32(rng.int(in: 1...Int(e.xMax - 1)))] {
                    let q = UInt32(truncatingIfNeeded: (UInt64(x) * UInt64(e.reciprocal)) >> UInt64(e.reciprocalShift))
                    let fast = x &+ e.bias &+ q &* e.complement
                    #expect(fast == (x / f) * M + x % f + start, "p \(p) f \(f) x \(x)")
                }
            }
        }
    }

    @Test func aStreamNearTheRateFloorDecodesAndTheBoundHolds() throws {
        for p in [1, 4, 12, 13, 16] {
            let table = try FrequencyTable(quantizing: [1 << 40], alphabetSize: 2, precisionBits: p)
            let model = try EntropyModel(origin: .staticHistogram, tables: [table])
            let coder = EntropyCoder(model: model)
            let n = 200_000
            let s = [UInt16](repeating: 0, count: n)
            let bytes = try coder.encode(s, symbolsPerChannel: 1)
            let limit = coder.maximumSymbols(codedIn: bytes.count)
            #expect(n <= limit, "p \(p): \(bytes.count) bytes")
            #expect(try coder.decode(bytes, count: n) == s)
            #expect(codingError { _ = try coder.decode(bytes, count: limit + 1) }
                    == .tooManySymbols(requested: limit + 1, bytes: bytes.count, limit: limit))
        }
    }

    @Test func emptyAndMalformedStreams() throws {
        let model = try EntropyModel.staticHistogram(measuring: [0, 1, 1, 2], channels: 1, symbolsPerChannel: 1,
                                                     alphabetSize: 3)
        let coder = EntropyCoder(model: model)
        #expect(try coder.encode([], symbolsPerChannel: 1).isEmpty)
        #expect(try coder.decode([], count: 0).isEmpty)
        #expect(codingError { _ = try coder.decode([1], count: 0) } == .trailingBytes(count: 1))
        #expect(codingError { _ = try coder.decode([], count: 1) } == .tooManySymbols(requested: 1, bytes: 0, limit: 0))
        let bytes = try coder.encode([2, 1, 0, 1, 1], symbolsPerChannel: 1)
        #expect(codingError { _ = try coder.decode(Array(bytes.prefix(7)), count: 5) } != nil)
        #expect(codingError { _ = try coder.decode(bytes + [0], count: 5) } != nil)
        #expect(codingError { _ = try coder.decode(bytes, count: 6) } != nil)
        #expect(codingError { _ = try coder.decode(bytes, count: 4) } != nil)
        #expect(codingError { _ = try coder.decode(bytes, count: 5, symbolsPerChannel: 0) } == .invalidSymbolsPerChannel(0))
        var high = bytes
        high[3] = 0x80                                         // lane 0's state ≥ 2^31
        #expect(codingError { _ = try coder.decode(high, count: 5) } == .invalidInitialState(lane: 0))
        #expect(codingError { _ = try coder.encode([3], symbolsPerChannel: 1) }
                == .symbolOutOfAlphabet(index: 0, value: 3, alphabetSize: 3))
        let wide = try EntropyModel.staticHistogram(measuring: [300], channels: 1, symbolsPerChannel: 1, alphabetSize: 301)
        let code = try EntropyCoder(model: wide).encode([300])
        var out = [UInt8](repeating: 0, count: 1)
        #expect(codingError {
            try code.withUnsafeBufferPointer { b in
                try out.withUnsafeMutableBufferPointer { try EntropyCoder(model: wide).decode(b, into: $0, symbolsPerChannel: 1) }
            }
        } == .alphabetTooLarge(alphabetSize: 301, symbolType: "UInt8"))
    }

    @Test func anEscapeToASupportSymbolIsRejected() throws {
        // Both tables put the escape on slots 8..<16; the encoder's support is {0}, the
        // decoder's {1}: symbol 1 is sent as escape + raw 1, which the decoder's table would
        // have coded directly, so no encoder under it writes that.
        func model(_ start: Int, alphabet: Int = 4) throws -> EntropyModel {
            try EntropyModel(origin: .staticHistogram,
                             tables: [FrequencyTable(frequencies: [8], supportStart: start, alphabetSize: alphabet, precisionBits: 4)])
        }
        let bytes = try EntropyCoder(model: model(0)).encode([1])
        #expect(try EntropyCoder(model: model(0)).decode(bytes, count: 1) == [1])
        #expect(codingError { _ = try EntropyCoder(model: model(1)).decode(bytes, count: 1) }
                == .invalidEscape(symbol: 0, value: 1))
        // An escape to a value outside the alphabet: 7 in 3 raw bits, read under an alphabet of 5.
        let seven = try EntropyCoder(model: model(0, alphabet: 8)).encode([7])
        #expect(codingError { _ = try EntropyCoder(model: model(0, alphabet: 5)).decode(seven, count: 1) }
                == .invalidEscape(symbol: 0, value: 7))
        let one = try EntropyCoder(model: model(0, alphabet: 8)).encode([1])
        #expect(try EntropyCoder(model: model(0, alphabet: 5)).decode(one, count: 1) == [1])
    }
}
