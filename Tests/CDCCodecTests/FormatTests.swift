import Foundation
import Testing
@testable import CDCCodec

/// The containers whose bytes were checked by hand (FORMAT.md shows the first one annotated).
/// The CRCs were computed independently with Python's `zlib.crc32`.
enum Golden {
    /// Mask 3 (2 bits, L = 2), shape [3], 3 samples, 1-byte labels, 2 samples per chunk.
    static func small() throws -> LatentContainer {
        try LatentContainer(mask: 3, latentShape: [3], symbols: [-1, 0, 1, 2, -1, 2, 0, 1, 2],
                            labels: [0, 2, 1], classes: 3, decoderHash: 0x0123_4567_89AB_CDEF,
                            samplesPerChunk: 2)
    }

    static let smallBytes: [UInt8] = [
        0x43, 0x44, 0x43, 0x4C,             // magic "CDCL"
        0x01, 0x00,                         // version 1
        0x00, 0x00,                         // flags 0
        0x03,                               // mask 3
        0x02,                               // 2 bits per symbol
        0x01,                               // rank 1
        0x03, 0x00, 0x00, 0x00,             // dims [3]
        0x03, 0x00, 0x00, 0x00,             // count 3
        0x03, 0x00, 0x00, 0x00,             // classes 3
        0x01,                               // label width 1
        0x02, 0x00, 0x00, 0x00,             // samplesPerChunk 2
        0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01,   // decoderHash
        0x07, 0xDA, 0xD0, 0x08,             // header CRC32 of bytes 0..<36
        // chunk 0 (offset 40): 2 samples
        0x02, 0x00, 0x00, 0x00,             // sample count
        0x00, 0x02,                         // labels 0, 2
        0x1B, 0x30,                         // u = q+1: 00 01 10 | 11 00 11 | 0000 padding
        0x4C, 0xF7, 0x6C, 0xAB,             // CRC32 of bytes 40..<48
        // chunk 1 (offset 52): 1 sample
        0x01, 0x00, 0x00, 0x00,             // sample count
        0x01,                               // label 1
        0x6C,                               // 01 10 11 | 00 padding
        0x34, 0x6E, 0x81, 0x27,             // CRC32 of bytes 52..<58
    ]

    /// Mask 0 (5 bits, L = 16), shape [2, 2], one sample with both extremes, a 2-byte label.
    static func wide() throws -> LatentContainer {
        try LatentContainer(mask: 0, latentShape: [2, 2], symbols: [-15, 16, 0, 1], labels: [300],
                            classes: 1000, decoderHash: 0)
    }

    static let wideBytes: [UInt8] = [
        0x43, 0x44, 0x43, 0x4C, 0x01, 0x00, 0x00, 0x00,
        0x00,                               // mask 0
        0x05,                               // 5 bits per symbol
        0x02,                               // rank 2
        0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,   // dims [2, 2]
        0x01, 0x00, 0x00, 0x00,             // count 1
        0xE8, 0x03, 0x00, 0x00,             // classes 1000
        0x02,                               // label width 2
        0x00, 0x04, 0x00, 0x00,             // samplesPerChunk 1024
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   // decoderHash 0
        0x42, 0xBD, 0x2A, 0x59,             // header CRC32
        0x01, 0x00, 0x00, 0x00,             // chunk 0: 1 sample
        0x2C, 0x01,                         // label 300
        0x07, 0xDF, 0x00,                   // u = q+15: 00000 11111 01111 10000 | 0000 padding
        0xD8, 0x6A, 0x10, 0x4E,             // CRC32
    ]

    /// A small unlabelled container with several chunks and odd symbol counts.
    static func unlabelled() throws -> LatentContainer {
        try randomContainer(mask: 1, shape: [3, 3], count: 5, labelled: false, classes: 10,
                            samplesPerChunk: 2, seed: 11)
    }
}

@Suite struct GoldenTests {
    @Test func smallContainerEncodesToTheHandCheckedBytes() throws {
        let c = try Golden.small()
        #expect(c.encoded() == Golden.smallBytes)
        #expect(try LatentContainer.decode(Golden.smallBytes) == c)
        #expect(c.accounting == ByteAccounting(header: 40, labels: 3, symbols: 3, chunkFraming: 16))
        #expect(c.accounting.total == 62)
    }

    @Test func wideContainerEncodesToTheHandCheckedBytes() throws {
        let c = try Golden.wide()
        #expect(c.encoded() == Golden.wideBytes)
        #expect(try LatentContainer.decode(Golden.wideBytes) == c)
        #expect(c.accounting == ByteAccounting(header: 44, labels: 2, symbols: 3, chunkFraming: 8))
    }

    @Test func headerCRCIsZlibCRC32() throws {
        // The CRC32 check value of "123456789".
        #expect(crc(Array("123456789".utf8)[...]) == 0xCBF4_3926)
    }

    @Test func modelIdentityIsFNV1a64() {
        #expect(ModelIdentity.hash([]) == 0xCBF2_9CE4_8422_2325)
        #expect(ModelIdentity.hash(Array("a".utf8)) == 0xAF63_DC4C_8601_EC8C)
        #expect(ModelIdentity.hash(Array("foobar".utf8)) == 0x8594_4171_F739_67E8)
        #expect(ModelIdentity.hex(0x0123_4567_89AB_CDEF) == "0123456789abcdef")
        #expect(ModelIdentity.hex(0) == "0000000000000000")
    }

    @Test func modelIdentityOfAFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("decoder.safetensors")
        try Data("foobar".utf8).write(to: url)
        #expect(try ModelIdentity.hash(fileAt: url) == 0x8594_4171_F739_67E8)
        guard case .io? = thrownError({ _ = try ModelIdentity.hash(fileAt: dir.appendingPathComponent("none")) }) else {
            Issue.record("expected an io error"); return
        }
    }
}

@Suite struct CorruptionTests {
    static func smallFiles() throws -> [[UInt8]] {
        [Golden.smallBytes, Golden.wideBytes, try Golden.unlabelled().encoded(),
         try LatentContainer(mask: 4, latentShape: [5], symbols: [], labels: [], classes: 2,
                             decoderHash: 1).encoded()]
    }

    /// Every byte of every small file, replaced by each of the other 255 values, is rejected.
    @Test func everySingleByteChangeIsDetected() throws {
        for file in try Self.smallFiles() {
            var kinds: Set<String> = []
            for offset in file.indices {
                for delta in 1...255 {
                    var bytes = file
                    bytes[offset] ^= UInt8(delta)
                    do {
                        let c = try LatentContainer.decode(bytes)
                        Issue.record("byte \(offset) ^ \(delta) decoded to \(c.count) samples")
                    } catch let error as ContainerError {
                        kinds.insert(String(describing: error).prefix(while: { $0 != ":" }).description)
                    }
                }
            }
            #expect(!kinds.isEmpty)
        }
    }

    @Test func singleBitFlipsNameTheChunk() throws {
        let file = Golden.smallBytes
        for offset in 40..<52 {
            for bit in 0..<8 {
                var bytes = file
                bytes[offset] ^= 1 << bit
                guard case .chunkCRCMismatch(let chunk, let at, _, _)? = decodeError(bytes) else {
                    Issue.record("byte \(offset) bit \(bit): expected a chunk CRC mismatch"); continue
                }
                #expect(chunk == 0 && at == 40)
            }
        }
        for offset in 52..<62 {
            var bytes = file
            bytes[offset] ^= 0x10
            guard case .chunkCRCMismatch(1, 52, _, _)? = decodeError(bytes) else {
                Issue.record("byte \(offset): expected chunk 1's CRC mismatch"); continue
            }
        }
        for offset in 11..<40 {
            var bytes = file
            bytes[offset] ^= 0x01
            guard case .headerCRCMismatch? = decodeError(bytes) else {
                Issue.record("byte \(offset): expected a header CRC mismatch"); continue
            }
        }
    }

    @Test func everyTruncationIsRejected() throws {
        for file in try Self.smallFiles() {
            for length in 0..<file.count {
                let error = decodeError(Array(file[0..<length]))
                if length == 0 {
                    #expect(error == .badMagic(found: []))
                    continue
                }
                guard case .truncated(_, let offset, let needed, let fileLength)? = error else {
                    Issue.record("length \(length): expected truncated, got \(String(describing: error))"); continue
                }
                #expect(fileLength == length)
                #expect(offset <= length && offset + needed > length, "names the cut part (\(offset)..<\(offset + needed))")
            }
        }
        let error = decodeError(Array(Golden.smallBytes[0..<57]))
        #expect(error == .truncated(what: "chunk 1 of 2", offset: 52, needed: 10, fileLength: 57))
        #expect(error?.description == "truncated: chunk 1 of 2 needs bytes 52..<62, but the file ends at byte 57")
        #expect(decodeError(Array(Golden.smallBytes[0..<20]))
                == .truncated(what: "header field 'classes'", offset: 19, needed: 4, fileLength: 20))
    }

    @Test func trailingBytesAreRejected() throws {
        for file in try Self.smallFiles() {
            for extra in [[UInt8(0)], [1, 2, 3], Array(file[36...])] {
                #expect(decodeError(file + extra) == .trailingBytes(offset: file.count, count: extra.count))
            }
        }
    }

    @Test func badMagicAndVersion() {
        var bytes = Golden.smallBytes
        bytes[3] = 0x58
        #expect(decodeError(bytes) == .badMagic(found: [0x43, 0x44, 0x43, 0x58]))
        #expect(decodeError([0x50, 0x4B]) == .badMagic(found: [0x50, 0x4B]))
        #expect(decodeError([0x43, 0x44]) == .truncated(what: "magic", offset: 0, needed: 4, fileLength: 2))
        bytes = Golden.smallBytes
        bytes[4] = 3
        #expect(decodeError(bytes) == .unsupportedVersion(3))
        // Version 2 is the entropy-coded format: a version-1 body relabelled fails the header CRC.
        bytes[4] = 2
        guard case .headerCRCMismatch? = decodeError(bytes) else { Issue.record("expected a header CRC mismatch"); return }
    }

    /// Files whose CRCs are right but whose content breaks a rule: still rejected, by name.
    @Test func craftedHeadersWithValidCRCs() {
        func crafted(_ offset: Int, _ value: UInt64, width: Int, _ more: [(Int, UInt64, Int)] = []) -> [UInt8] {
            var bytes = Golden.smallBytes
            patch(&bytes, at: offset, value, width: width)
            for (o, v, w) in more { patch(&bytes, at: o, v, width: w) }
            fixHeaderCRC(&bytes)
            return bytes
        }
        #expect(decodeError(crafted(6, 1, width: 2)) == .unsupportedFlags(1))
        #expect(decodeError(crafted(8, 5, width: 1, [(9, 0, 1)])) == .invalidMask(5))
        #expect(decodeError(crafted(9, 3, width: 1)) == .bitsPerSymbolMismatch(mask: 3, bits: 3))
        #expect(decodeError(crafted(11, 0, width: 4))
                == .invalidShape([0], reason: "dimension 0 is 0, not in 1...4294967295"))
        #expect(decodeError(crafted(19, 0, width: 4)) == .invalidClasses(0))
        #expect(decodeError(crafted(19, 65537, width: 4)) == .invalidClasses(65537))
        #expect(decodeError(crafted(23, 2, width: 1)) == .invalidLabelWidth(width: 2, classes: 3))
        #expect(decodeError(crafted(23, 3, width: 1)) == .invalidLabelWidth(width: 3, classes: 3))
        #expect(decodeError(crafted(24, 0, width: 4)) == .invalidSamplesPerChunk(0))
        // The rank sets the header length, so it is checked before the CRC.
        var bytes = Golden.smallBytes
        bytes[10] = 0
        #expect(decodeError(bytes) == .invalidShape([], reason: "rank 0 is not in 1...4"))
        bytes[10] = 5
        #expect(decodeError(bytes) == .invalidShape([], reason: "rank 5 is not in 1...4"))
    }

    /// A header that promises billions of samples fails on the file length, without allocating.
    @Test func hostileHeadersDoNotAllocate() {
        var bytes = Golden.smallBytes
        patch(&bytes, at: 15, UInt64(UInt32.max), width: 4)                 // count
        fixHeaderCRC(&bytes)
        // Chunks of 2 samples take 12 bytes: the 62-byte file ends inside the second one.
        #expect(decodeError(bytes) == .truncated(what: "chunk 1 of \(Int(UInt32.max) / 2 + 1)", offset: 52,
                                                 needed: 12, fileLength: 62))

        patch(&bytes, at: 11, UInt64(UInt32.max), width: 4)                 // dims
        patch(&bytes, at: 24, UInt64(UInt32.max), width: 4)                 // samples per chunk
        fixHeaderCRC(&bytes)
        guard case .tooLarge? = decodeError(bytes) else { Issue.record("expected tooLarge"); return }

        // Largest shape: four dims of UInt32.max overflow the latent count.
        var four = LatentContainer.magic + le(UInt16(1)) + le(UInt16(0)) + [0, 5, 4]
        for _ in 0..<4 { four += le(UInt32.max) }
        four += le(UInt32(1)) + le(UInt32(10)) + [0] + le(UInt32(1)) + le(UInt64(0)) + le(UInt32(0))
        fixHeaderCRC(&four)
        guard case .invalidShape? = decodeError(four) else { Issue.record("expected invalidShape"); return }
    }

    @Test func craftedChunksWithValidCRCs() {
        var bytes = Golden.smallBytes
        bytes[45] = 3                                                        // label of sample 1 := 3
        fixChunkCRC(&bytes, chunk: 40..<52)
        #expect(decodeError(bytes) == .labelOutOfRange(sample: 1, value: 3, classes: 3))

        bytes = Golden.smallBytes
        bytes[57] |= 0x01                                                    // a padding bit
        fixChunkCRC(&bytes, chunk: 52..<62)
        #expect(decodeError(bytes) == .nonZeroPadding(chunk: 1, offset: 57))

        bytes = Golden.smallBytes
        bytes[40] = 3                                                        // sample count 2 → 3
        fixChunkCRC(&bytes, chunk: 40..<52)
        #expect(decodeError(bytes) == .chunkSampleCountMismatch(chunk: 0, offset: 40, stored: 3, expected: 2))
    }

    @Test func errorDescriptionsNameWhatAndWhere() {
        var bytes = Golden.smallBytes
        bytes[47] ^= 0xFF
        let error = decodeError(bytes)
        #expect(error?.description.hasPrefix("chunk 0 at byte 40: CRC mismatch") == true)
        bytes = Golden.smallBytes
        bytes[30] ^= 0xFF
        #expect(decodeError(bytes)?.description.hasPrefix("header CRC mismatch") == true)
        #expect(ContainerError.badMagic(found: [0x50, 0x4B]).description.contains("50 4b"))
        #expect(ContainerError.symbolOutOfRange(index: 7, value: 9, mask: 1).description
                == "symbol 7 is 9, outside -7...8 for mask 1")
    }
}

@Suite struct ValidationTests {
    private func make(mask: Int = 2, shape: [Int] = [2, 2], symbols: [Int8] = [0, 1, 2, 3, -3, 4, 0, 0],
                      labels: [Int] = [0, 1], classes: Int = 10, perChunk: Int = 1024) -> ContainerError? {
        thrownError {
            _ = try LatentContainer(mask: mask, latentShape: shape, symbols: symbols, labels: labels,
                                    classes: classes, decoderHash: 0, samplesPerChunk: perChunk)
        }
    }

    @Test func validArgumentsAreAccepted() throws {
        let c = try LatentContainer(mask: 2, latentShape: [2, 2], symbols: [0, 1, 2, 3, -3, 4, 0, 0],
                                    labels: [0, 1], classes: 10, decoderHash: 0)
        #expect(c.count == 2 && c.levels == 4 && c.bitsPerSymbol == 3 && c.symbolsPerSample == 4)
    }

    @Test func maskOutsideZeroToFour() {
        #expect(make(mask: 5) == .invalidMask(5))
        #expect(make(mask: -1) == .invalidMask(-1))
    }

    @Test(arguments: 0...4)
    func symbolOutOfRangeForTheMask(mask: Int) {
        let L = 1 << (4 - mask)
        for bad in [L + 1, -L, Int(Int8.max), Int(Int8.min)] {
            var symbols: [Int8] = [0, 1, 0, 1, 0, 0, 1, 1]
            symbols[5] = Int8(bad)
            #expect(make(mask: mask, symbols: symbols) == .symbolOutOfRange(index: 5, value: bad, mask: mask))
        }
    }

    @Test func labelsOutOfRangeOrMiscounted() {
        #expect(make(labels: [0, 10]) == .labelOutOfRange(sample: 1, value: 10, classes: 10))
        #expect(make(labels: [-1, 0]) == .labelOutOfRange(sample: 0, value: -1, classes: 10))
        #expect(make(labels: [0, 1, 2]) == .labelCountMismatch(labels: 3, count: 2))
        #expect(make(labels: [0]) == .labelCountMismatch(labels: 1, count: 2))
        #expect(make(classes: 0) == .invalidClasses(0))
        #expect(make(classes: 65537) == .invalidClasses(65537))
    }

    @Test func shapeAndCountInconsistent() {
        #expect(make(symbols: [0, 1, 2, 3, 4, 0, 0]) == .symbolCountMismatch(symbols: 7, perSample: 4))
        #expect(make(shape: [3], symbols: [0, 1, 2, 3, 4, 0, 0, 1])
                == .symbolCountMismatch(symbols: 8, perSample: 3))
        guard case .invalidShape? = make(shape: []) else { Issue.record("rank 0"); return }
        guard case .invalidShape? = make(shape: [1, 1, 1, 1, 8]) else { Issue.record("rank 5"); return }
        guard case .invalidShape? = make(shape: [2, 0, 2]) else { Issue.record("zero dim"); return }
        guard case .invalidShape? = make(shape: [Int(UInt32.max) + 1], symbols: [], labels: []) else {
            Issue.record("dim too large"); return
        }
        guard case .invalidShape? = make(shape: [1 << 31, 1 << 31, 1 << 31], symbols: [], labels: []) else {
            Issue.record("product overflow"); return
        }
    }

    @Test func samplesPerChunkInRange() {
        #expect(make(perChunk: 0) == .invalidSamplesPerChunk(0))
        #expect(make(perChunk: Int(UInt32.max) + 1) == .invalidSamplesPerChunk(Int(UInt32.max) + 1))
    }

    @Test func validateCatchesMutations() throws {
        var c = try Golden.small()
        c.labels.append(0)
        #expect(thrownError { try c.validate() } == .labelCountMismatch(labels: 4, count: 3))
        c = try Golden.small()
        c.mask = 4
        #expect(thrownError { try c.validate() } == .symbolOutOfRange(index: 0, value: -1, mask: 4))
        #expect(thrownError { _ = try c.checkedEncoded() } == .symbolOutOfRange(index: 0, value: -1, mask: 4))
        c = try Golden.small()
        c.symbols.removeLast()
        #expect(thrownError { try c.validate() } == .symbolCountMismatch(symbols: 8, perSample: 3))
    }
}

@Suite struct ReportTests {
    /// The number on the line of the "bytes" section that starts with `name`.
    private func row(_ text: String, _ name: String) -> String? {
        let section = text.split(separator: "\n").drop { $0 != "bytes" }
        for line in section where line.hasPrefix("  " + name + " ") {
            return line.dropFirst(2 + name.count).split(separator: " ").first.map(String.init)
        }
        return nil
    }

    @Test func reportNamesMaskShapeCountAndBytes() throws {
        let c = try randomContainer(mask: 2, shape: [16, 7, 7], count: 50, labelled: true, classes: 10,
                                    samplesPerChunk: 16, seed: 8)
        let text = c.report(path: "upload.cdcl")
        let a = c.accounting
        #expect(text.hasPrefix("CDC latent container upload.cdcl\n"))
        #expect(text.contains("m = 2"))
        #expect(text.contains("L = 4 levels per sign, symbols -3...4, 3 bits each"))
        #expect(text.contains("[16, 7, 7] per sample = 784 latents"))
        #expect(text.contains("50 in 4 chunks of up to 16"))
        #expect(text.contains("1 byte each, 10 classes"))
        #expect(text.contains(ModelIdentity.hex(c.decoderHash)))
        #expect(text.contains("bytes\n"))
        #expect(row(text, "total") == "\(a.total)")
        #expect(row(text, "header") == "48")
        #expect(row(text, "labels") == "50")
        #expect(row(text, "symbols") == "\(a.symbols)")
        #expect(row(text, "chunk framing") == "\(a.chunkFraming)")
        // 50·784·3 = 117600 bits exactly fill the symbol bytes of the 4 chunks (16·784·3 and 2·784·3
        // are multiples of 8), so there is no padding.
        #expect(a.symbols == 14700)
        #expect(text.contains("117600 bits of symbols + 0 padding bits"))
        let perLatent = Double(a.total * 8) / Double(50 * 784)
        #expect(text.contains("bits per latent    " + String(format: "%.4f", perLatent)))
        #expect(text.contains("bits per sample    "))
        #expect(c.report(path: nil).hasPrefix("CDC latent container (in memory)\n"))
    }

    @Test func reportOfAnEmptyUnlabelledContainer() throws {
        let c = try LatentContainer(mask: 4, latentShape: [16, 300], symbols: [], labels: [], classes: 2,
                                    decoderHash: 0)
        let text = c.report(path: "empty.cdcl")
        #expect(text.contains("none (unlabelled)"))
        #expect(text.contains("0 in 0 chunks"))
        #expect(text.contains("n/a (no samples)"))
        #expect(c.accounting.total == 44)
        #expect(row(text, "total") == "44")
    }
}

/// Release-mode timing of the packing and of the entropy-coded mode, run by hand:
/// `CDC_CODEC_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter CDCCodecTests.Benchmark`.
@Suite struct Benchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CDC_CODEC_BENCH"] != nil))
    func encodeAndDecode60000ImageLatents() throws {
        for mask in 0...4 {
            let c = try randomContainer(mask: mask, shape: [16, 7, 7], count: 60000, labelled: true,
                                        classes: 10, seed: 1)
            let clock = ContinuousClock()
            var bytes: [UInt8] = []
            let encode = clock.measure { bytes = c.encoded() }
            var back: LatentContainer?
            let decode = try clock.measure { back = try LatentContainer.decode(bytes) }
            #expect(back == c)
            // The bit packing alone, without CRCs, headers or allocation.
            let n = c.symbols.count
            var packed = [UInt8](repeating: 0, count: BitPacking.packedByteCount(symbols: n, bits: 5 - mask))
            var unpacked = [Int8](repeating: 0, count: n)
            let pack = c.symbols.withUnsafeBufferPointer { s in
                packed.withUnsafeMutableBufferPointer { p in
                    clock.measure { _ = BitPacking.pack(s.baseAddress!, count: n, mask: mask, into: p.baseAddress!) }
                }
            }
            let unpack = packed.withUnsafeBufferPointer { p in
                unpacked.withUnsafeMutableBufferPointer { u in
                    clock.measure { _ = BitPacking.unpack(p.baseAddress!, count: n, mask: mask, into: u.baseAddress!) }
                }
            }
            #expect(unpacked == c.symbols)
            print("mask \(mask): \(bytes.count) bytes, encode \(encode), decode \(decode); pack alone \(pack), unpack alone \(unpack)")
            // Entropy-coded (uniform random symbols: no gain, the coder's worst case for speed).
            let measured = try clock.measure { _ = try c.entropyCoded() }
            let coded = try c.entropyCoded()
            var codedBytes: [UInt8] = []
            let codedEncode = clock.measure { codedBytes = coded.encoded() }
            var codedBack: LatentContainer?
            let codedDecode = try clock.measure { codedBack = try LatentContainer.decode(codedBytes) }
            #expect(codedBack?.symbols == c.symbols)
            print("  coded: \(codedBytes.count) bytes, measure model \(measured), encode \(codedEncode), decode \(codedDecode)")
        }
    }
}
