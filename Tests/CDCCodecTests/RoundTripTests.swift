import CDCEntropy
import Foundation
import Testing
@testable import CDCCodec

/// Walks an encoded file with the layout rules of FORMAT.md, independently of the decoder:
/// checks each chunk's sample count, symbol section size ⌈n·P·b/8⌉ and CRC, and returns the
/// summed sizes of the sections.
private func walk(_ bytes: [UInt8], _ c: LatentContainer,
                  sourceLocation: SourceLocation = #_sourceLocation) -> (labels: Int, symbols: Int, framing: Int) {
    let header = 36 + 4 * c.latentShape.count
    let P = c.latentShape.reduce(1, *), b = 5 - c.mask
    let w = c.labels.isEmpty ? 0 : (c.classes <= 256 ? 1 : 2)
    var offset = header, labels = 0, symbols = 0, framing = 0, first = 0
    while first < c.count {
        let n = min(c.samplesPerChunk, c.count - first)
        let declared = u32(bytes, at: offset)
        #expect(declared == n, "chunk sample count", sourceLocation: sourceLocation)
        let symbolBytes = (n * P * b + 7) / 8
        let end = offset + 4 + n * w + symbolBytes + 4
        #expect(end <= bytes.count, sourceLocation: sourceLocation)
        guard end <= bytes.count else { break }
        let stored = UInt32(u32(bytes, at: end - 4))
        #expect(stored == crc(bytes[offset..<(end - 4)]), "chunk CRC", sourceLocation: sourceLocation)
        labels += n * w
        symbols += symbolBytes
        framing += 8
        offset = end
        first += n
    }
    #expect(offset == bytes.count, "nothing after the last chunk", sourceLocation: sourceLocation)
    return (labels, symbols, framing)
}

/// Round trip of `c` with every check on the bytes and the accounting.
private func checkRoundTrip(_ c: LatentContainer, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = c.encoded()
    let back = try LatentContainer.decode(bytes)
    #expect(back == c, sourceLocation: sourceLocation)
    #expect(back.symbols == c.symbols, sourceLocation: sourceLocation)
    #expect(back.encoded() == bytes, "encoding is canonical", sourceLocation: sourceLocation)
    let a = c.accounting
    #expect(a.total == bytes.count, sourceLocation: sourceLocation)
    #expect(a.header + a.labels + a.symbols + a.chunkFraming == a.total, sourceLocation: sourceLocation)
    #expect(a.header == 36 + 4 * c.latentShape.count, sourceLocation: sourceLocation)
    let sections = walk(bytes, c, sourceLocation: sourceLocation)
    #expect(sections.labels == a.labels, sourceLocation: sourceLocation)
    #expect(sections.symbols == a.symbols, sourceLocation: sourceLocation)
    #expect(sections.framing == a.chunkFraming, sourceLocation: sourceLocation)
}

@Suite struct RoundTripTests {
    static let shapes: [[Int]] = [[16, 7, 7], [3], [2, 5], [1, 2, 3, 4], [16, 8], [7], [1]]

    @Test(arguments: 0...4)
    func everyMaskShapeAndCount(mask: Int) throws {
        var seed: UInt64 = UInt64(mask) << 32
        for shape in Self.shapes {
            for (count, perChunk) in [(0, 1024), (1, 1024), (5, 2), (37, 8), (16, 8), (9, 1)] {
                for (labelled, classes) in [(false, 10), (true, 10), (true, 256), (true, 257), (true, 65536)] {
                    seed += 1
                    let c = try randomContainer(mask: mask, shape: shape, count: count, labelled: labelled,
                                                classes: classes, samplesPerChunk: perChunk, seed: seed)
                    #expect(c.count == count)
                    try checkRoundTrip(c)
                }
            }
        }
    }

    @Test(arguments: 0...4)
    func imageLatentsOverSeveralDefaultChunks(mask: Int) throws {
        // 2500 samples of 16×7×7 at the default 1024 per chunk: two full chunks and a partial one.
        let c = try randomContainer(mask: mask, shape: [16, 7, 7], count: 2500, labelled: true, classes: 10,
                                    seed: 99 + UInt64(mask))
        #expect(c.samplesPerChunk == 1024)
        try checkRoundTrip(c)
        let a = c.accounting
        let b = 5 - mask
        #expect(a.symbols == 2 * ((1024 * 784 * b + 7) / 8) + (452 * 784 * b + 7) / 8)
        #expect(a.chunkFraming == 3 * 8)
        #expect(a.labels == 2500)
    }

    @Test func emptyContainerIsTheHeaderAlone() throws {
        let c = try LatentContainer(mask: 1, latentShape: [16, 8, 8], symbols: [], labels: [], classes: 10,
                                    decoderHash: 42)
        #expect(c.count == 0)
        let bytes = c.encoded()
        #expect(bytes.count == 36 + 12)
        #expect(c.accounting == ByteAccounting(header: 48, labels: 0, symbols: 0, chunkFraming: 0))
        #expect(try LatentContainer.decode(bytes) == c)
    }

    @Test func twoByteLabelsUpToTheLastClass() throws {
        let c = try LatentContainer(mask: 4, latentShape: [2], symbols: [0, 1, 1, 0, 1, 1],
                                    labels: [0, 65535, 256], classes: 65536, decoderHash: 7)
        #expect(c.labelWidth == 2)
        let bytes = c.encoded()
        try checkRoundTrip(c)
        // The labels of the single chunk follow its sample count: 00 00, ff ff, 00 01.
        let h = 36 + 4
        #expect(Array(bytes[(h + 4)..<(h + 10)]) == [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x01])
    }

    @Test func oneByteLabelsUpTo256Classes() throws {
        let c = try LatentContainer(mask: 4, latentShape: [1], symbols: [0, 1],
                                    labels: [255, 0], classes: 256, decoderHash: 0)
        #expect(c.labelWidth == 1)
        try checkRoundTrip(c)
    }

    /// The kernels against a plain bit-string reference, for every tail length.
    @Test(arguments: 0...4)
    func packingMatchesABitStringReference(mask: Int) {
        let L = 1 << (4 - mask), b = 5 - mask
        var rng = SplitMix64(seed: 5 + UInt64(mask))
        for n in 0...41 {
            let symbols = (0..<n).map { _ in Int8(rng.int(in: (1 - L)...L)) }
            var bits: [UInt8] = []
            for q in symbols {
                let u = Int(q) + L - 1
                for k in (0..<b).reversed() { bits.append(UInt8((u >> k) & 1)) }
            }
            while bits.count % 8 != 0 { bits.append(0) }
            let expected = stride(from: 0, to: bits.count, by: 8).map { i in
                bits[i..<(i + 8)].reduce(UInt8(0)) { $0 << 1 | $1 }
            }
            let size = BitPacking.packedByteCount(symbols: n, bits: b)
            #expect(size == expected.count)
            var packed = [UInt8](repeating: 0xAA, count: size + 1)
            let bad = symbols.withUnsafeBufferPointer { s in
                packed.withUnsafeMutableBufferPointer { p in
                    BitPacking.pack(s.baseAddress ?? UnsafePointer(bitPattern: 1)!, count: n, mask: mask,
                                    into: p.baseAddress!)
                }
            }
            #expect(bad == 0)
            #expect(Array(packed[0..<size]) == expected, "mask \(mask), \(n) symbols")
            #expect(packed[size] == 0xAA, "no write past the end")
            var unpacked = [Int8](repeating: 99, count: n + 1)
            let ok = packed.withUnsafeBufferPointer { p in
                unpacked.withUnsafeMutableBufferPointer { u in
                    BitPacking.unpack(p.baseAddress!, count: n, mask: mask, into: u.baseAddress!)
                }
            }
            #expect(ok)
            #expect(Array(unpacked[0..<n]) == symbols)
            #expect(unpacked[n] == 99, "no write past the end")
        }
    }

    @Test func packingFlagsOutOfRangeSymbols() {
        for mask in 0...4 {
            let L = 1 << (4 - mask)
            for bad in [Int8(-L), Int8(L + 1), Int8.min, Int8.max] {
                for position in [0, 5, 8, 12] {
                    var s = [Int8](repeating: 0, count: 13)
                    s[position] = bad
                    var out = [UInt8](repeating: 0, count: 16)
                    let flag = s.withUnsafeBufferPointer { sp in
                        out.withUnsafeMutableBufferPointer { BitPacking.pack(sp.baseAddress!, count: 13, mask: mask, into: $0.baseAddress!) }
                    }
                    #expect(flag != 0, "mask \(mask), symbol \(bad) at \(position)")
                }
            }
        }
    }

    @Test func fileRoundTripIsAtomicAndLeavesNoTemporaryFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("upload.cdcl")
        let c = try randomContainer(mask: 2, shape: [16, 7, 7], count: 50, labelled: true, classes: 10,
                                    samplesPerChunk: 16, seed: 1)
        try c.write(to: url)
        #expect(try LatentContainer.read(from: url) == c)
        #expect(try Data(contentsOf: url) == Data(c.encoded()))
        // Overwrite in place with a different container.
        let d = try randomContainer(mask: 0, shape: [4], count: 3, labelled: false, classes: 2, seed: 2)
        try d.write(to: url)
        #expect(try LatentContainer.read(from: url) == d)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["upload.cdcl"])
    }

    @Test func fileErrorsAreIOErrors() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.cdcl")
        guard case .io(let path, let reason)? = thrownError({ _ = try LatentContainer.read(from: missing) }) else {
            Issue.record("expected an io error"); return
        }
        #expect(path == missing.path)
        #expect(reason.contains("No such file"))
        let c = try randomContainer(mask: 2, shape: [3], count: 2, labelled: false, classes: 2, seed: 3)
        let nowhere = dir.appendingPathComponent("no-such-dir/upload.cdcl")
        guard case .io? = thrownError({ try c.write(to: nowhere) }) else {
            Issue.record("expected an io error"); return
        }
        guard case .io(_, let reason2)? = thrownError({ _ = try LatentContainer.read(from: dir) }) else {
            Issue.record("expected an io error"); return
        }
        #expect(reason2.contains("not a regular file"))
    }

    @Test func writeRefusesAnInvalidContainer() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = try randomContainer(mask: 3, shape: [3], count: 2, labelled: true, classes: 4, seed: 4)
        c.symbols[4] = 3          // L = 2
        let url = dir.appendingPathComponent("bad.cdcl")
        #expect(thrownError({ try c.write(to: url) }) == .symbolOutOfRange(index: 4, value: 3, mask: 3))
        #expect(!FileManager.default.fileExists(atPath: url.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
