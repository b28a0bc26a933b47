import CDCEntropy
import Foundation
import Testing
@testable import CDCCodec

/// Walks a coded (version 2) file with the layout rules of FORMAT.md, independently of the
/// decoder: the model section's length and CRC, then each chunk's sample count, code length
/// and CRC. Returns the summed sizes of the sections.
private func walkCoded(_ bytes: [UInt8], _ c: LatentContainer, sourceLocation: SourceLocation = #_sourceLocation)
    -> (model: Int, labels: Int, codes: Int, framing: Int) {
    let header = 36 + 4 * c.latentShape.count
    #expect(bytes[4] == 2 && bytes[6] == 1, "version 2, flags 1", sourceLocation: sourceLocation)
    let w = c.labels.isEmpty ? 0 : (c.classes <= 256 ? 1 : 2)
    let m = u32(bytes, at: header)
    #expect(UInt32(u32(bytes, at: header + 4 + m)) == crc(bytes[header..<(header + 4 + m)]), "model CRC",
            sourceLocation: sourceLocation)
    var offset = header + 8 + m, labels = 0, codes = 0, framing = 0, first = 0
    while first < c.count {
        let n = min(c.samplesPerChunk, c.count - first)
        #expect(u32(bytes, at: offset) == n, "chunk sample count", sourceLocation: sourceLocation)
        let codeLength = u32(bytes, at: offset + 4 + n * w)
        let end = offset + 4 + n * w + 4 + codeLength + 4
        guard end <= bytes.count else { Issue.record("chunk past the end", sourceLocation: sourceLocation); break }
        #expect(UInt32(u32(bytes, at: end - 4)) == crc(bytes[offset..<(end - 4)]), "chunk CRC", sourceLocation: sourceLocation)
        labels += n * w
        codes += codeLength
        framing += 12
        offset = end
        first += n
    }
    #expect(offset == bytes.count, "nothing after the last chunk", sourceLocation: sourceLocation)
    return (m + 8, labels, codes, framing)
}

/// Coded round trip of `c` with every check: the same symbols as the fixed-length file, exact
/// accounting, canonical bytes, the layout walked independently.
@discardableResult
private func checkCodedRoundTrip(_ c: LatentContainer, model: EntropyModel? = nil,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    let coded = try c.entropyCoded(model: model)
    let bytes = coded.encoded()
    let back = try LatentContainer.decode(bytes)
    #expect(back == coded, sourceLocation: sourceLocation)
    #expect(back.symbols == (try LatentContainer.decode(c.encoded(coding: .fixedLength))).symbols,
            "the same symbols as the fixed-length file", sourceLocation: sourceLocation)
    #expect(back.labels == c.labels, sourceLocation: sourceLocation)
    #expect(back.encoded() == bytes, "encoding is canonical", sourceLocation: sourceLocation)
    #expect(c.encoded(coding: coded.coding) == bytes, sourceLocation: sourceLocation)
    let a = coded.accounting
    #expect(a.total == bytes.count, sourceLocation: sourceLocation)
    #expect(a.header + a.model + a.labels + a.symbols + a.chunkFraming == a.total, sourceLocation: sourceLocation)
    let sections = walkCoded(bytes, c, sourceLocation: sourceLocation)
    #expect(sections.model == a.model && sections.labels == a.labels, sourceLocation: sourceLocation)
    #expect(sections.codes == a.symbols && sections.framing == a.chunkFraming, sourceLocation: sourceLocation)
    return bytes
}

/// Rewrites every CRC of a coded file that its structure lets one find (header, model, chunks),
/// so that mutated bytes reach the model parser and the rANS decoder.
private func fixCodedCRCs(_ bytes: inout [UInt8]) {
    guard bytes.count >= 11, (1...4).contains(Int(bytes[10])) else { return }
    let h = headerLength(bytes)
    guard bytes.count >= h else { return }
    fixHeaderCRC(&bytes)
    guard bytes.count >= h + 4 else { return }
    let m = u32(bytes, at: h)
    guard bytes.count - h - 8 >= m else { return }
    patch(&bytes, at: h + 4 + m, UInt64(crc(bytes[h..<(h + 4 + m)])), width: 4)
    let rank = Int(bytes[10])
    let count = u32(bytes, at: 11 + 4 * rank), perChunk = max(1, u32(bytes, at: 20 + 4 * rank))
    let w = Int(bytes[19 + 4 * rank])
    var o = h + 8 + m, first = 0
    while first < count, bytes.count - o >= 4 {
        let n = min(perChunk, count - first)
        guard bytes.count - o >= 8 + n * w else { return }
        let codeLength = u32(bytes, at: o + 4 + n * w)
        let end = o + 8 + n * w + codeLength + 4
        guard end <= bytes.count else { return }
        fixChunkCRC(&bytes, chunk: o..<end)
        o = end
        first += n
    }
}

enum CodedGolden {
    /// Mask 3 (L = 2, u in 0..<4), shape [2, 3] (2 channels of 3 latents), 5 labelled samples,
    /// 2 samples per chunk, coded under the static histogram of its own symbols.
    static func small() throws -> LatentContainer {
        try LatentContainer(mask: 3, latentShape: [2, 3],
                            symbols: [0, 0, 1, 2, 2, 2,   0, 1, 0, 2, 1, 2,   -1, 0, 0, 2, 2, 2,
                                      0, 0, 0, 2, 2, 1,   1, 0, 0, 2, -1, 2],
                            labels: [0, 2, 1, 1, 0], classes: 3, decoderHash: 0x0123_4567_89AB_CDEF,
                            samplesPerChunk: 2).entropyCoded()
    }

    static let fileName = "coded-small.cdcl"

    /// A container whose symbols partly escape: its model is measured on other data.
    static func escaping() throws -> LatentContainer {
        let data = try randomContainer(mask: 1, shape: [4, 5], count: 9, labelled: false, classes: 10,
                                       samplesPerChunk: 4, seed: 31)
        let narrow = try LatentContainer(mask: 1, latentShape: [4, 5], symbols: [Int8](repeating: 0, count: 20),
                                         labels: [], classes: 10, decoderHash: 0)
        return try data.entropyCoded(model: narrow.measuredEntropyModel())
    }

    static func smallFiles() throws -> [[UInt8]] {
        [try small().encoded(), try escaping().encoded(),
         try LatentContainer(mask: 4, latentShape: [3, 2, 2], symbols: [], labels: [], classes: 2,
                             decoderHash: 1).entropyCoded().encoded()]
    }
}

@Suite struct CodedRoundTripTests {
    @Test(arguments: 0...4)
    func everyMaskShapeAndCount(mask: Int) throws {
        var seed: UInt64 = 1000 + UInt64(mask) << 32
        for shape in [[16, 7, 7], [3], [2, 5], [1, 2, 3, 4], [16, 8]] {
            for (count, perChunk) in [(0, 1024), (1, 1024), (5, 2), (37, 8), (9, 1)] {
                for (labelled, classes) in [(false, 10), (true, 10), (true, 300)] {
                    seed += 1
                    let c = try randomContainer(mask: mask, shape: shape, count: count, labelled: labelled,
                                                classes: classes, samplesPerChunk: perChunk, seed: seed)
                    try checkCodedRoundTrip(c)
                }
            }
        }
    }

    @Test(arguments: 0...4)
    func foreignModelsWithEscapes(mask: Int) throws {
        let c = try randomContainer(mask: mask, shape: [4, 3, 3], count: 40, labelled: true, classes: 10,
                                    samplesPerChunk: 16, seed: 5 + UInt64(mask))
        // Measured on a single all-zero sample: every other value escapes.
        let zero = try LatentContainer(mask: mask, latentShape: [4, 3, 3], symbols: [Int8](repeating: 0, count: 36),
                                       labels: [], classes: 10, decoderHash: 0)
        try checkCodedRoundTrip(c, model: try zero.measuredEntropyModel())
        // A learned-prior style model: explicit tables, one per channel, at 14 bits.
        let a = 2 << (4 - mask)
        let tables = try (0..<4).map { k in
            try FrequencyTable(quantizing: (0..<a).map { UInt64(1 + ($0 * 7 + k) % 5) }, alphabetSize: a, precisionBits: 14)
        }
        try checkCodedRoundTrip(c, model: try EntropyModel(origin: .learnedPrior, tables: tables))
    }

    @Test func skewedLatentsCodeSmallerThanFixedLength() throws {
        // Binary latents (m = 4) where most channels are nearly constant, as in a trained AE.
        var rng = SplitMix64(seed: 12)
        var symbols: [Int8] = []
        for _ in 0..<300 {
            for k in 0..<16 { for _ in 0..<49 { symbols.append(rng.int(in: 0...99) < [2, 10, 30, 50][k % 4] ? 1 : 0) } }
        }
        let c = try LatentContainer(mask: 4, latentShape: [16, 7, 7], symbols: symbols, labels: [], classes: 10,
                                    decoderHash: 0)
        let coded = try c.entropyCoded()
        let fixedSize = c.accounting.total, codedSize = coded.accounting.total
        #expect(Double(codedSize) < 0.7 * Double(fixedSize))
        let estimate = try #require(coded.estimatedCodedBits)
        #expect(abs(Double(coded.accounting.symbols * 8) - estimate) < 0.01 * estimate + 64)
        #expect(c.estimatedCodedBits == nil)
    }

    @Test func theReaderDetectsTheMode() throws {
        let c = try randomContainer(mask: 2, shape: [2, 3], count: 4, labelled: true, classes: 5, seed: 3)
        #expect(try LatentContainer.decode(c.encoded()).coding == .fixedLength)
        let coded = try c.entropyCoded()
        guard case .entropy(let model) = try LatentContainer.decode(coded.encoded()).coding else {
            Issue.record("expected an entropy-coded container"); return
        }
        #expect(model == (try c.measuredEntropyModel()))
        #expect(model.origin == .staticHistogram && model.channels == 2 && model.alphabetSize == 8)
    }

    @Test func aModelThatDoesNotFitIsRejected() throws {
        let c = try randomContainer(mask: 2, shape: [2, 3], count: 4, labelled: false, classes: 5, seed: 4)
        let other = try randomContainer(mask: 3, shape: [2, 3], count: 4, labelled: false, classes: 5, seed: 4)
        let wrongAlphabet = try other.measuredEntropyModel()
        let wrongChannels = try randomContainer(mask: 2, shape: [3, 2], count: 4, labelled: false, classes: 5, seed: 4)
            .measuredEntropyModel()
        #expect(thrownError { _ = try c.entropyCoded(model: wrongAlphabet) }
                == .modelMismatch("the model has 2 tables over 4 symbols; mask 2 and shape [2, 3] need 2 over 8"))
        #expect(thrownError { _ = try c.entropyCoded(model: wrongChannels) }
                == .modelMismatch("the model has 3 tables over 8 symbols; mask 2 and shape [2, 3] need 2 over 8"))
        var mutated = try c.entropyCoded()
        mutated.mask = 3
        mutated.symbols = other.symbols
        guard case .modelMismatch? = thrownError({ try mutated.validate() }) else { Issue.record("validate"); return }
        guard case .modelMismatch? = thrownError({ _ = try mutated.checkedEncoded() }) else { Issue.record("encode"); return }
    }

    @Test func fileRoundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("upload.cdcl")
        let c = try randomContainer(mask: 1, shape: [16, 7, 7], count: 30, labelled: true, classes: 10,
                                    samplesPerChunk: 8, seed: 6).entropyCoded()
        try c.write(to: url)
        #expect(try LatentContainer.read(from: url) == c)
        #expect(try Data(contentsOf: url).count == c.accounting.total)
    }
}

@Suite struct CodedFormatTests {
    /// The bytes of a small coded container are those committed in Fixtures/coded-small.cdcl.
    /// To regenerate after a deliberate format change:
    /// `CDC_UPDATE_GOLDEN=1 swift test --filter CDCCodecTests.CodedFormatTests` (writes the file
    /// next to this source; review the diff and commit it).
    @Test func smallCodedContainerMatchesTheGoldenFile() throws {
        let c = try CodedGolden.small()
        let bytes = c.encoded()
        if ProcessInfo.processInfo.environment["CDC_UPDATE_GOLDEN"] != nil {
            try Data(bytes).write(to: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/\(CodedGolden.fileName)"))
        }
        let url = try #require(Bundle.module.url(forResource: "Fixtures/\(CodedGolden.fileName)", withExtension: nil))
        let golden = [UInt8](try Data(contentsOf: url))
        #expect(bytes == golden)
        #expect(try LatentContainer.decode(golden) == c)
        // The header is version 1's but for version 2 and flags 1.
        var v1 = try LatentContainer.decode(golden)
        v1.coding = .fixedLength
        let fixedHeader = Array(v1.encoded().prefix(44))
        #expect(Array(golden.prefix(4)) == Array(fixedHeader.prefix(4)))
        #expect(golden[4] == 2 && golden[5] == 0 && golden[6] == 1 && golden[7] == 0)
        #expect(Array(golden[8..<40]) == Array(fixedHeader[8..<40]))
    }

    /// Every byte of every small coded file, replaced by each of the other 255 values, is rejected.
    @Test func everySingleByteChangeIsDetected() throws {
        for file in try CodedGolden.smallFiles() {
            for offset in file.indices {
                for delta in 1...255 {
                    var bytes = file
                    bytes[offset] ^= UInt8(delta)
                    do {
                        let c = try LatentContainer.decode(bytes)
                        Issue.record("byte \(offset) ^ \(delta) decoded to \(c.count) samples")
                    } catch is ContainerError {}
                }
            }
        }
    }

    @Test func singleBitFlipsNameTheSection() throws {
        let file = try CodedGolden.small().encoded()
        let h = 44, m = u32(file, at: h)
        for offset in 11..<h {
            var bytes = file
            bytes[offset] ^= 0x04
            guard case .headerCRCMismatch? = decodeError(bytes) else { Issue.record("header byte \(offset)"); continue }
        }
        for offset in (h + 4)..<(h + 8 + m) {
            var bytes = file
            bytes[offset] ^= 0x40
            guard case .modelCRCMismatch(h, _, _)? = decodeError(bytes) else { Issue.record("model byte \(offset)"); continue }
        }
        let chunk0 = h + 8 + m
        for offset in chunk0..<(chunk0 + 6) {
            var bytes = file
            bytes[offset] ^= 0x01
            guard case .chunkCRCMismatch(0, chunk0, _, _)? = decodeError(bytes) else { Issue.record("chunk byte \(offset)"); continue }
        }
    }

    @Test func everyTruncationAndTrailingBytesAreRejected() throws {
        for file in try CodedGolden.smallFiles() {
            for length in 0..<file.count {
                guard let error = decodeError(Array(file.prefix(length))) else { continue }
                if length >= 44 {
                    guard case .truncated(_, let offset, let needed, let fileLength) = error else {
                        Issue.record("length \(length): expected truncated, got \(error)"); continue
                    }
                    #expect(fileLength == length && offset <= length && offset + needed > length)
                }
            }
            for extra in [[UInt8(0)], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]] {
                #expect(decodeError(file + extra) == .trailingBytes(offset: file.count, count: extra.count))
            }
        }
    }

    /// Files whose CRCs are right but whose content breaks a rule: still rejected, by name.
    @Test func craftedFilesWithValidCRCs() throws {
        let file = try CodedGolden.small().encoded()
        let h = 44, m = u32(file, at: h)
        func crafted(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var bytes = file
            edit(&bytes)
            fixCodedCRCs(&bytes)
            return bytes
        }
        // Mask 2 (and 3 bits) with the model's 4-value alphabet.
        #expect(decodeError(crafted { $0[8] = 2; $0[9] = 3 })
                == .modelMismatch("the model has 2 tables over 4 symbols; mask 2 and shape [2, 3] need 2 over 8"))
        #expect(decodeError(crafted { $0[6] = 0 }) == .unsupportedFlags(0))
        #expect(decodeError(crafted { $0[6] = 3 }) == .unsupportedFlags(3))
        #expect(decodeError(crafted { $0[h + 4] = 9 })
                == .invalidModel(offset: h + 4, .invalidModel("unknown origin 9 at byte 0")))
        // Model length 0: the CRC is then looked for right after the length field.
        var empty = file
        patch(&empty, at: h, 0, width: 4)
        guard case .modelCRCMismatch? = decodeError(empty) else { Issue.record("empty model"); return }
        // Lane 0's initial state ≥ 2^31 in chunk 0's code.
        let chunk0 = h + 8 + m
        let code0 = chunk0 + 4 + 2 + 4
        guard case .invalidCodedChunk(0, chunk0, .invalidInitialState(lane: 0))? = decodeError(crafted { $0[code0 + 3] = 0xFF }) else {
            Issue.record("expected a bad initial state"); return
        }
        // A label out of range.
        #expect(decodeError(crafted { $0[chunk0 + 5] = 3 }) == .labelOutOfRange(sample: 1, value: 3, classes: 3))
        // A code length beyond the file.
        guard case .truncated(what: "chunk 0 of 3", offset: chunk0, _, _)? = decodeError(crafted {
            patch(&$0, at: chunk0 + 6, UInt64(UInt32.max), width: 4)
        }) else { Issue.record("expected truncated"); return }
    }

    /// Headers that promise huge data fail on the bytes that are there, without allocating.
    @Test func hostileHeadersDoNotAllocate() throws {
        let file = try CodedGolden.small().encoded()
        var bytes = file
        patch(&bytes, at: 19, UInt64(UInt32.max), width: 4)                 // count: 2^32 − 1 samples
        fixHeaderCRC(&bytes)
        // Chunk 2 now should hold 2 samples: its fields shift and it no longer fits or checks.
        switch decodeError(bytes) {
        case .truncated(let what, _, _, _)?: #expect(what.hasSuffix(" of \(Int(UInt32.max) / 2 + 1)"))
        case .chunkCRCMismatch(2, _, _, _)?: break
        case let other: Issue.record("expected chunk 2 to fail, got \(String(describing: other))")
        }
        // 3 million latents per channel: each chunk's code is far too short for them.
        bytes = file
        patch(&bytes, at: 15, 3_000_000, width: 4)                          // dims[1]
        fixHeaderCRC(&bytes)
        let h = 44, m = u32(file, at: h)
        guard case .invalidCodedChunk(0, h + 8 + m, .tooManySymbols(requested: 12_000_000, _, _))? = decodeError(bytes) else {
            Issue.record("expected too many symbols"); return
        }
    }

    /// Seeded random mutations of coded files, with and without repaired CRCs: every result is
    /// a container or a ContainerError.
    @Test func mutationFuzzing() throws {
        var rng = SplitMix64(seed: 99)
        let files = try CodedGolden.smallFiles() + [
            try randomContainer(mask: 0, shape: [3, 4], count: 7, labelled: true, classes: 300, samplesPerChunk: 3,
                                seed: 8).entropyCoded().encoded(),
        ]
        var decoded = 0, rejected = 0
        for i in 0..<6000 {
            var bytes = files[i % files.count]
            for _ in 0..<rng.int(in: 1...3) {
                switch rng.int(in: 0...5) {
                case 0: bytes[rng.int(in: 0...(bytes.count - 1))] ^= UInt8(1 << rng.int(in: 0...7))
                case 1: bytes[rng.int(in: 0...(bytes.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes = Array(bytes.prefix(rng.int(in: 1...bytes.count)))
                case 3: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.int(in: 0...bytes.count))
                case 4 where bytes.count >= 4:                               // a huge u32 somewhere
                    patch(&bytes, at: rng.int(in: 0...(bytes.count - 4)), [UInt64(UInt32.max), 1 << 31, 1 << 24][rng.int(in: 0...2)], width: 4)
                default: bytes = (0..<rng.int(in: 0...120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    if bytes.count >= 4 && rng.int(in: 0...1) == 0 { bytes.replaceSubrange(0..<4, with: LatentContainer.magic) }
                }
                if bytes.isEmpty { bytes = [0] }
            }
            if rng.int(in: 0...1) == 0 { fixCodedCRCs(&bytes) }
            do {
                let c = try LatentContainer.decode(bytes)
                try c.validate()
                decoded += 1
            } catch is ContainerError {
                rejected += 1
            }
        }
        #expect(decoded + rejected == 6000)
        #expect(rejected > 3000)
    }
}

@Suite struct CodedReportTests {
    /// The number on the line of the "bytes" section that starts with `name`.
    private func row(_ text: String, _ name: String) -> Int? {
        let section = text.split(separator: "\n").drop { $0 != "bytes" }
        for line in section where line.hasPrefix("  " + name + " ") {
            return line.dropFirst(2 + name.count).split(separator: " ").first.flatMap { Int($0) }
        }
        return nil
    }

    @Test func reportShowsTheModelTheEstimateAndBytesSummingToTheFileSize() throws {
        let c = try randomContainer(mask: 2, shape: [16, 7, 7], count: 50, labelled: true, classes: 10,
                                    samplesPerChunk: 16, seed: 8).entropyCoded()
        let text = c.report(path: "upload.cdcl")
        let size = c.encoded().count
        #expect(text.contains("version 2, flags 0x0001 (entropy-coded symbols: rANS, one table per channel)"))
        #expect(text.contains("model         static histogram: 16 tables over 8 values at 12-bit precision"))
        #expect(text.contains("symbols -3...4 (3 bits each at fixed length)"))
        let parts = ["header", "model", "labels", "symbols", "chunk framing"].map { row(text, $0) }
        #expect(parts.allSatisfy { $0 != nil })
        #expect(parts.compactMap { $0 }.reduce(0, +) == size)
        #expect(row(text, "total") == size)
        #expect(row(text, "header") == 48 && row(text, "labels") == 50 && row(text, "chunk framing") == 4 * 12)
        #expect(text.contains("model estimate "))
        #expect(text.contains("fixed length 3)") && text.contains("fixed length 2352)"))
        let perPixel = Double(size * 8) / Double(50 * 28 * 28)
        #expect(text.contains("bits per pixel     " + String(format: "%.4f", perPixel)))
        #expect(text.contains("28 × 28 pixels per sample"))
        let estimate = try #require(c.estimatedCodedBits)
        #expect(text.contains("model estimate " + String(format: "%.2f", estimate / 50)))
    }

    @Test func reportOfAnEmptyCodedContainer() throws {
        let c = try LatentContainer(mask: 4, latentShape: [16, 300], symbols: [], labels: [], classes: 2,
                                    decoderHash: 0).entropyCoded()
        let text = c.report(path: "empty.cdcl")
        #expect(text.contains("n/a (no samples)"))
        #expect(row(text, "total") == c.encoded().count)
        #expect(c.accounting.total == 44 + c.accounting.model && c.accounting.chunkFraming == 0)
    }
}
