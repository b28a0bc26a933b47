import Foundation
import Testing
@testable import CDCEntropy

/// The fixed input of the golden file: a model with one table of each kind (skewed binary
/// support, wide support with an escape-prone tail, uniform) over 32 symbols, and a stream that
/// uses every table, escapes and odd lengths.
enum GoldenInput {
    static func model() throws -> EntropyModel {
        try EntropyModel(origin: .staticHistogram, tables: [
            FrequencyTable(quantizing: [900, 100], supportStart: 15, alphabetSize: 32, precisionBits: 12),
            FrequencyTable(quantizing: [1, 2, 5, 40, 300, 40, 5, 2, 1], escapeCount: 3, supportStart: 11,
                           alphabetSize: 32, precisionBits: 12),
            FrequencyTable(quantizing: [UInt64](repeating: 1, count: 32), alphabetSize: 32, precisionBits: 12),
        ])
    }

    /// 3 channels × 7 symbols × 11 samples, from a fixed formula (no generator involved).
    static let symbols: [UInt16] = (0..<(3 * 7 * 11)).map { i in
        let channel = (i / 7) % 3
        switch channel {
        case 0: return i % 13 == 0 ? 16 : (i % 29 == 0 ? 31 : 15)        // 31 escapes
        case 1: return UInt16(11 + (i * 7 + i / 5) % 9) + (i % 17 == 0 ? 12 : 0)
        default: return UInt16((i * 11 + 3) % 32)
        }
    }
    static let symbolsPerChannel = 7

    /// The golden file: the serialized model, then the code of the stream.
    static func bytes() throws -> [UInt8] {
        let model = try model()
        return model.serialized() + (try EntropyCoder(model: model).encode(symbols, symbolsPerChannel: symbolsPerChannel))
    }

    static let fileName = "rans-golden.bin"
}

@Suite struct GoldenTests {
    /// The coded bytes of the fixed input are those committed in Fixtures/rans-golden.bin.
    /// To regenerate after a deliberate format change:
    /// `CDC_UPDATE_GOLDEN=1 swift test --filter CDCEntropyTests.GoldenTests` (writes the file
    /// next to this source; review the diff and commit it).
    @Test func codedBytesMatchTheCommittedGoldenFile() throws {
        let bytes = try GoldenInput.bytes()
        if ProcessInfo.processInfo.environment["CDC_UPDATE_GOLDEN"] != nil {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/\(GoldenInput.fileName)")
            try Data(bytes).write(to: url)
        }
        let url = try #require(Bundle.module.url(forResource: "Fixtures/\(GoldenInput.fileName)", withExtension: nil))
        let golden = [UInt8](try Data(contentsOf: url))
        #expect(bytes == golden)
        // And the golden bytes decode back to the input under the model they carry.
        let model = try GoldenInput.model()
        let modelLength = model.serialized().count
        #expect(try EntropyModel(serialized: Array(golden.prefix(modelLength))) == model)
        let back = try EntropyCoder(model: model).decode(Array(golden.dropFirst(modelLength)),
                                                         count: GoldenInput.symbols.count,
                                                         symbolsPerChannel: GoldenInput.symbolsPerChannel)
        #expect(back == GoldenInput.symbols)
    }

    @Test func theGoldenInputEscapesAndUsesEveryTable() throws {
        let model = try GoldenInput.model()
        var escapes = 0
        for (i, s) in GoldenInput.symbols.enumerated() {
            if model.tables[(i / 7) % 3].frequency(of: Int(s)) == 0 { escapes += 1 }
        }
        #expect(escapes >= 5)
    }
}

/// Seeded random mutations of valid streams and models, and plain random bytes: the decoder
/// must return the requested symbols or throw an EntropyCodingError, never crash or hang.
@Suite struct FuzzTests {
    @Test func mutatedStreamsNeverCrash() throws {
        var rng = TestRandom(seed: 2024)
        var decoded = 0, rejected = 0
        for round in 0..<120 {
            let a = [2, 4, 8, 16, 32, 300][round % 6]
            let model = try randomModel(alphabetSize: a, channels: rng.int(in: 1...4), rng: &rng)
            let coder = EntropyCoder(model: model)
            let run = rng.int(in: 1...8)
            let s = symbols(for: model, count: rng.int(in: 0...400), symbolsPerChannel: run, escapes: 0.05, rng: &rng)
            let valid = try coder.encode(s, symbolsPerChannel: run)
            for _ in 0..<40 {
                var bytes = valid
                var count = s.count
                switch rng.int(in: 0...6) {
                case 0 where !bytes.isEmpty:                                  // flip bits
                    for _ in 0..<rng.int(in: 1...3) { bytes[rng.int(in: 0...(bytes.count - 1))] ^= UInt8(1 << rng.int(in: 0...7)) }
                case 1:                                                       // truncate
                    bytes = Array(bytes.prefix(rng.int(in: 0...bytes.count)))
                case 2:                                                       // append
                    bytes += (0..<rng.int(in: 1...5)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                case 3:                                                       // random bytes
                    bytes = (0..<rng.int(in: 0...64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                case 4:                                                       // wrong counts, huge ones too
                    count = [0, 1, count + 1, max(0, count - 1), Int(UInt32.max), Int.max / 2][rng.int(in: 0...5)]
                case 5 where !bytes.isEmpty:                                  // overwrite a byte
                    bytes[rng.int(in: 0...(bytes.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
                default:                                                      // states at the edges
                    if bytes.count >= 8 {
                        let edge: [UInt32] = [0, 1 << 23 - 1, 1 << 23, 1 << 31 - 1, 1 << 31, .max]
                        let x = edge[rng.int(in: 0...5)]
                        let lane = rng.int(in: 0...1)
                        for b in 0..<4 { bytes[4 * lane + b] = UInt8(truncatingIfNeeded: x >> UInt32(8 * b)) }
                    }
                }
                do {
                    let out = try coder.decode(bytes, count: count, symbolsPerChannel: run)
                    #expect(out.count == count && out.allSatisfy { Int($0) < a })
                    decoded += 1
                } catch is EntropyCodingError {
                    rejected += 1
                }
            }
        }
        #expect(rejected > decoded)
    }

    @Test func mutatedModelsNeverCrash() throws {
        var rng = TestRandom(seed: 77)
        var accepted = 0
        for round in 0..<150 {
            let model = try randomModel(alphabetSize: [2, 32, 1000][round % 3], channels: rng.int(in: 1...3), rng: &rng)
            let valid = model.serialized()
            for _ in 0..<30 {
                var bytes = valid
                switch rng.int(in: 0...3) {
                case 0: bytes[rng.int(in: 0...(bytes.count - 1))] ^= UInt8(1 << rng.int(in: 0...7))
                case 1: bytes = Array(bytes.prefix(rng.int(in: 0...bytes.count)))
                case 2: bytes[rng.int(in: 0...(bytes.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
                default: bytes = (0..<rng.int(in: 0...40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                }
                do {
                    let m = try EntropyModel(serialized: bytes)
                    accepted += 1
                    // Whatever is accepted is a valid model: it codes and decodes.
                    let coder = EntropyCoder(model: m)
                    let s = (0..<20).map { UInt16($0 * 37 % m.alphabetSize) }
                    #expect(try coder.decode(coder.encode(s, symbolsPerChannel: 3), count: 20, symbolsPerChannel: 3) == s)
                } catch is EntropyCodingError {}
            }
        }
        #expect(accepted > 0)
    }
}
