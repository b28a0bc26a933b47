// Decoding and checking a latent container of either format version: the header and format
// version 1 here, version 2's model and coded chunks in CodedContainer.swift. What is checked,
// in which order, is FORMAT.md's "Reading rules".

import CDCFileIO

extension LatentContainer {
    /// Decodes a container from its bytes, checking everything: magic, version, header CRC,
    /// header fields, that the file length is exactly what the header implies (before
    /// allocating anything in proportion to the header's counts), each chunk's CRC and sample
    /// count, labels in range and zero padding bits. A version-2 (entropy-coded) file is
    /// recognised by its version and flags; its model's CRC and every chunk's CRC and lengths
    /// are checked before anything is decoded, and its ``coding`` is ``SymbolCoding/entropy(_:)``
    /// with the model read from the file.
    ///
    /// - Throws: a ``ContainerError`` naming the problem and where it is; never returns a
    ///   container built from corrupt bytes.
    public static func decode(_ bytes: [UInt8]) throws -> LatentContainer {
        try bytes.withUnsafeBufferPointer { try decode(buffer: $0) }
    }

    /// Decodes a container from the bytes in `buffer`; see ``decode(_:)``.
    public static func decode(buffer: UnsafeBufferPointer<UInt8>) throws -> LatentContainer {
        let length = buffer.count
        let found = Array(buffer.prefix(4))
        guard found.elementsEqual(magic.prefix(found.count)), !found.isEmpty else {
            throw ContainerError.badMagic(found: found)
        }
        var r = LittleEndianReader(buffer)
        try r.skip(4, "magic")
        let version = try r.field(UInt16.self, "header field 'version'")
        guard version == formatVersion || version == codedFormatVersion else {
            throw ContainerError.unsupportedVersion(version)
        }
        let flags = try r.field(UInt16.self, "header field 'flags'")
        let mask = Int(try r.field(UInt8.self, "header field 'mask'"))
        let bits = Int(try r.field(UInt8.self, "header field 'bits per symbol'"))
        let rank = Int(try r.field(UInt8.self, "header field 'rank'"))
        // The rank sets the header's length, so it is checked before the CRC can be.
        guard (1...maxRank).contains(rank) else {
            throw ContainerError.invalidShape([], reason: "rank \(rank) is not in 1...\(maxRank)")
        }
        var shape: [Int] = []
        for i in 0..<rank { shape.append(Int(try r.field(UInt32.self, "header field 'dims[\(i)]'"))) }
        let count = Int(try r.field(UInt32.self, "header field 'count'"))
        let classes = Int(try r.field(UInt32.self, "header field 'classes'"))
        let labelWidth = Int(try r.field(UInt8.self, "header field 'label width'"))
        let samplesPerChunk = Int(try r.field(UInt32.self, "header field 'samplesPerChunk'"))
        let decoderHash = try r.field(UInt64.self, "header field 'decoderHash'")
        let crcEnd = r.offset
        let storedCRC = try r.field(UInt32.self, "header CRC")
        let computedCRC = crc32(buffer.baseAddress!, crcEnd)
        guard storedCRC == computedCRC else {
            throw ContainerError.headerCRCMismatch(stored: storedCRC, computed: computedCRC)
        }

        guard flags == (version == formatVersion ? 0 : entropyCodedFlags) else {
            throw ContainerError.unsupportedFlags(flags)
        }
        guard (0...4).contains(mask) else { throw ContainerError.invalidMask(mask) }
        guard bits == 5 - mask else { throw ContainerError.bitsPerSymbolMismatch(mask: mask, bits: bits) }
        guard (1...65536).contains(classes) else { throw ContainerError.invalidClasses(classes) }
        guard labelWidth == 0 || labelWidth == Layout.labelWidth(classes: classes) else {
            throw ContainerError.invalidLabelWidth(width: labelWidth, classes: classes)
        }
        guard samplesPerChunk >= 1 else { throw ContainerError.invalidSamplesPerChunk(samplesPerChunk) }
        let layout = try Layout(mask: mask, shape: shape, count: count, labelWidth: labelWidth,
                                samplesPerChunk: samplesPerChunk)
        precondition(layout.headerSize == r.offset)
        if version == codedFormatVersion {
            return try decodeCoded(buffer, layout, shape: shape, classes: classes, decoderHash: decoderHash)
        }

        // The exact length is known from the header: check it before allocating.
        if length < layout.total {
            let c = layout.chunk(containing: length)
            let n = layout.samples(inChunk: c)
            throw ContainerError.truncated(what: "chunk \(c) of \(layout.chunkCount)", offset: layout.chunkOffset(c),
                                           needed: layout.chunkSize(samples: n), fileLength: length)
        }
        guard length == layout.total else {
            throw ContainerError.trailingBytes(offset: layout.total, count: length - layout.total)
        }

        // Allocation is now bounded by the file's length: at most 8 symbols per byte, one
        // label per byte.
        let labelCount = labelWidth == 0 ? 0 : count
        let symbolCount = count * layout.perSample
        var labels: [Int] = []
        let symbols = try [Int8](unsafeUninitializedCapacity: symbolCount) { sb, sn in
            labels = try [Int](unsafeUninitializedCapacity: labelCount) { lb, ln in
                try decodeChunks(layout, classes: classes, buffer: buffer.baseAddress!,
                                 labels: lb.baseAddress, symbols: sb.baseAddress)
                ln = labelCount
            }
            sn = symbolCount
        }
        return LatentContainer(unchecked: mask, latentShape: shape, symbols: symbols, labels: labels,
                               classes: classes, decoderHash: decoderHash, samplesPerChunk: samplesPerChunk)
    }

    private static func decodeChunks(_ layout: Layout, classes: Int, buffer: UnsafePointer<UInt8>,
                                     labels: UnsafeMutablePointer<Int>?, symbols: UnsafeMutablePointer<Int8>?) throws {
        let w = layout.labelWidth
        for c in 0..<layout.chunkCount {
            let start = layout.chunkOffset(c)
            let n = layout.samples(inChunk: c)
            let size = layout.chunkSize(samples: n)
            try verifyChunk(buffer, offset: start, size: size, chunk: c, samples: n)
            let first = c * layout.samplesPerChunk
            var o = start + 4
            if w > 0, let labels {
                for j in 0..<n {
                    let label = Int(LittleEndian.load(byteCount: w, from: buffer + o))
                    guard label < classes else {
                        throw ContainerError.labelOutOfRange(sample: first + j, value: label, classes: classes)
                    }
                    labels[first + j] = label
                    o += w
                }
            }
            let symbolCount = n * layout.perSample
            let ok = BitPacking.unpack(buffer + o, count: symbolCount, mask: layout.mask,
                                       into: symbols! + first * layout.perSample)
            o += BitPacking.packedByteCount(symbols: symbolCount, bits: layout.bits)
            guard ok else { throw ContainerError.nonZeroPadding(chunk: c, offset: o - 1) }
        }
    }
}

/// Checks a chunk of either format version: its trailing CRC32 over everything before it, then
/// its leading sample count against the `samples` the header implies.
func verifyChunk(_ base: UnsafePointer<UInt8>, offset o: Int, size: Int, chunk c: Int, samples n: Int) throws {
    let stored = LittleEndian.load(UInt32.self, from: base + o + size - 4)
    let computed = crc32(base + o, size - 4)
    guard stored == computed else {
        throw ContainerError.chunkCRCMismatch(chunk: c, offset: o, stored: stored, computed: computed)
    }
    let declared = Int(LittleEndian.load(UInt32.self, from: base + o))
    guard declared == n else {
        throw ContainerError.chunkSampleCountMismatch(chunk: c, offset: o, stored: declared, expected: n)
    }
}

extension LittleEndianReader {
    /// Moves past the `count` bytes of field `what`; a truncated file is
    /// ``ContainerError/truncated(what:offset:needed:fileLength:)`` naming it.
    @discardableResult
    mutating func skip(_ count: Int, _ what: String) throws(ContainerError) -> Int {
        do { return try skip(count) } catch { throw truncated(error, what) }
    }

    /// Reads field `what`; see ``skip(_:_:)``.
    mutating func field<T: FixedWidthInteger>(_: T.Type, _ what: String) throws(ContainerError) -> T {
        do { return try read(T.self) } catch { throw truncated(error, what) }
    }

    private func truncated(_ error: TruncatedRead, _ what: String) -> ContainerError {
        .truncated(what: what, offset: error.offset, needed: error.needed, fileLength: error.length)
    }
}
