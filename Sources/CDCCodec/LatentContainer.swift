// The upload container of the CDC pipeline: quantized latent symbols of a dataset, its labels
// and the identity of the decoder that restores them, in a versioned, checksummed binary file.
// The file layout is documented on `LatentContainer` below and in FORMAT.md next to this file.

import CDCEntropy
import CZlib
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The quantized latent symbols of a dataset, its labels and the identity of the decoder that
/// restores them: what an edge uploads in CDC.
///
/// ```swift
/// let q = quantizer.symbols(encoder(images))               // [Int8], count × 16 × 7 × 7
/// let container = try LatentContainer(mask: 2, latentShape: [16, 7, 7], symbols: q,
///                                     labels: labels, classes: 10,
///                                     decoderHash: ModelIdentity.hash(decoderBytes))
/// try container.write(to: URL(fileURLWithPath: "upload.cdcl"))
/// let back = try LatentContainer.read(from: URL(fileURLWithPath: "upload.cdcl"))
/// print(back.report(path: "upload.cdcl"))                  // what `cdc inspect` prints
///
/// // Entropy-coded under per-channel histograms measured on the symbols themselves:
/// try container.entropyCoded().write(to: URL(fileURLWithPath: "upload-coded.cdcl"))
/// ```
///
/// The mask m gives L = 2^(4−m) levels per sign: symbols are integers in −L+1...L and take
/// exactly b = 5 − m bits each in a fixed-length file (format version 1, the default), or are
/// entropy-coded (format version 2, ``coding`` = ``SymbolCoding/entropy(_:)``). The reader
/// tells the two apart by the version, and decodes both to the same symbols.
///
/// ## File layout, format version 1
///
/// All integers little-endian; r is the rank of the per-sample latent shape, and the header
/// takes H = 36 + 4·r bytes:
///
/// | offset | size | field |
/// |--------|------|-------|
/// | 0      | 4    | magic "CDCL" (`43 44 43 4c`) |
/// | 4      | 2    | version u16 = 1 |
/// | 6      | 2    | flags u16 = 0 (version 2 has 1: entropy-coded symbols; a version-1 file with other flags is rejected) |
/// | 8      | 1    | mask m u8, 0...4 |
/// | 9      | 1    | bits per symbol b u8, must equal 5 − m |
/// | 10     | 1    | rank r u8, 1...4 |
/// | 11     | 4·r  | dims u32 × r, each ≥ 1: the per-sample latent shape |
/// | 11+4r  | 4    | count u32: number of samples |
/// | 15+4r  | 4    | classes u32, 1...65536 |
/// | 19+4r  | 1    | label width w u8: 0 = no labels, else 1 (classes ≤ 256) or 2 (classes > 256) |
/// | 20+4r  | 4    | samplesPerChunk S u32 ≥ 1 |
/// | 24+4r  | 8    | decoderHash u64 (``ModelIdentity/hash(_:)`` of the decoder's safetensors bytes) |
/// | 32+4r  | 4    | header CRC32 u32 (zlib `crc32`) of bytes 0 ..< 32+4r |
///
/// Then ⌈count/S⌉ chunks back to back; chunk i holds the nᵢ = min(S, count − i·S) samples
/// from i·S on. With P the number of latents per sample (the product of the dims), a chunk is:
///
/// | size           | field |
/// |----------------|-------|
/// | 4              | sample count u32 = nᵢ |
/// | nᵢ·w           | the labels of those samples, w bytes each, little-endian |
/// | ⌈nᵢ·P·b / 8⌉   | the symbols, sample-major then row-major, each stored as u = q + L − 1 in exactly b bits, MSB first; the last byte zero-padded |
/// | 4              | CRC32 u32 (zlib) of the chunk's preceding bytes (sample count, labels, symbols) |
///
/// Nothing follows the last chunk; a container with count 0 is the header alone. The header
/// alone fixes the file's length, which the decoder checks before allocating.
///
/// ## Format version 2: entropy-coded symbols
///
/// With ``coding`` set to ``SymbolCoding/entropy(_:)`` the container is written in format
/// version 2: the same header with version 2 and flags = 1 (bit 0: entropy-coded symbols),
/// then the entropy model (per-channel frequency tables, `EntropyModel` of CDCEntropy) with
/// its own CRC, then chunks whose symbols are coded with rANS (`EntropyCoder`):
///
/// | size | field |
/// |------|-------|
/// | 4    | model length M u32 |
/// | M    | the model, `EntropyModel.serialized()`: one table per channel (K = dims[0]) over the 2L values of u |
/// | 4    | CRC32 u32 (zlib) of the model length and the model |
///
/// then ⌈count/S⌉ chunks back to back, chunk i holding the same nᵢ samples as in version 1:
///
/// | size   | field |
/// |--------|-------|
/// | 4      | sample count u32 = nᵢ |
/// | nᵢ·w   | the labels of those samples, w bytes each, little-endian |
/// | 4      | code length C u32 |
/// | C      | the rANS code (`EntropyCoder`) of the nᵢ·P values u = q + L − 1, sample-major then row-major; run j of P/K values uses table j mod K |
/// | 4      | CRC32 u32 (zlib) of the chunk's preceding bytes (sample count, labels, code length, code) |
///
/// Nothing follows the last chunk. Each chunk decodes on its own (the coder restarts per
/// chunk). The decoder checks every CRC and every length against the bytes that are there
/// before decoding anything, and allocates the symbols only once each chunk's code is known
/// to be long enough for them. FORMAT.md describes the model and the code byte by byte.
///
/// ``init(mask:latentShape:symbols:labels:classes:decoderHash:samplesPerChunk:coding:)``
/// validates everything. The properties stay mutable for convenience; after changing them, call
/// ``validate()`` — ``encoded()``, ``accounting`` and ``report(path:)`` trap on a container
/// that breaks the rules, ``write(to:)`` throws.
public struct LatentContainer: Sendable, Equatable {
    /// The format version of fixed-length containers (``SymbolCoding/fixedLength``).
    public static let formatVersion: UInt16 = 1
    /// The format version of entropy-coded containers (``SymbolCoding/entropy(_:)``).
    public static let codedFormatVersion: UInt16 = 2
    /// The flags of a version-2 file: bit 0, entropy-coded symbols.
    public static let entropyCodedFlags: UInt16 = 1
    /// The first four bytes of every container: "CDCL".
    public static let magic: [UInt8] = [0x43, 0x44, 0x43, 0x4C]
    /// The default number of samples per chunk.
    public static let defaultSamplesPerChunk = 1024
    /// The largest rank of a per-sample latent shape.
    public static let maxRank = 4

    /// Mask number m, 0...4: L = 2^(4−m) levels per sign, 5 − m bits per symbol.
    public var mask: Int
    /// The shape of one sample's latent, 1...4 dimensions, each ≥ 1: `[K, h, w]` for images
    /// (K = 16, h = H/4, w = W/4), `[K, l]` for audio.
    public var latentShape: [Int]
    /// All samples' symbols, sample-major, then row-major in ``latentShape``;
    /// `count × latentShape.product` of them, each in −L+1...L.
    public var symbols: [Int8]
    /// One label per sample, each in `0..<classes`; empty for an unlabelled set.
    public var labels: [Int]
    /// The number of classes, 1...65536 (also recorded when there are no labels).
    public var classes: Int
    /// The identity of the decoder weights that restore these symbols (``ModelIdentity``).
    public var decoderHash: UInt64
    /// Samples per chunk: the unit of the per-chunk CRC, 1...UInt32.max (default 1024).
    public var samplesPerChunk: Int
    /// How the symbols are written: fixed-length (format version 1, the default) or
    /// entropy-coded under a model carried in the file (format version 2).
    public var coding: SymbolCoding

    /// Creates a container, checking every argument.
    ///
    /// - Throws: ``ContainerError`` naming the first problem: ``ContainerError/invalidMask(_:)``,
    ///   ``ContainerError/invalidShape(_:reason:)``, ``ContainerError/invalidClasses(_:)``,
    ///   ``ContainerError/invalidSamplesPerChunk(_:)``,
    ///   ``ContainerError/symbolCountMismatch(symbols:perSample:)`` (not a whole number of
    ///   samples), ``ContainerError/labelCountMismatch(labels:count:)``,
    ///   ``ContainerError/tooLarge(_:)``, ``ContainerError/symbolOutOfRange(index:value:mask:)``,
    ///   ``ContainerError/labelOutOfRange(sample:value:classes:)`` or
    ///   ``ContainerError/modelMismatch(_:)`` (an entropy model that does not fit the mask and shape).
    public init(mask: Int, latentShape: [Int], symbols: [Int8], labels: [Int], classes: Int,
                decoderHash: UInt64, samplesPerChunk: Int = LatentContainer.defaultSamplesPerChunk,
                coding: SymbolCoding = .fixedLength) throws {
        self.init(unchecked: mask, latentShape: latentShape, symbols: symbols, labels: labels, classes: classes,
                  decoderHash: decoderHash, samplesPerChunk: samplesPerChunk, coding: coding)
        try validate()
    }

    /// Memberwise, unchecked: for the decoder, which has checked everything already.
    init(unchecked mask: Int, latentShape: [Int], symbols: [Int8], labels: [Int], classes: Int,
         decoderHash: UInt64, samplesPerChunk: Int, coding: SymbolCoding = .fixedLength) {
        self.mask = mask
        self.latentShape = latentShape
        self.symbols = symbols
        self.labels = labels
        self.classes = classes
        self.decoderHash = decoderHash
        self.samplesPerChunk = samplesPerChunk
        self.coding = coding
    }

    // MARK: Derived values

    /// Number of samples: `symbols.count / latentShape.product`.
    public var count: Int {
        guard let p = Layout.elementCount(latentShape), p > 0 else { return 0 }
        return symbols.count / p
    }

    /// Latents per sample: the product of ``latentShape`` (0 if it overflows).
    public var symbolsPerSample: Int { Layout.elementCount(latentShape) ?? 0 }

    /// Levels per sign, L = 2^(4−m) (0 for a mask outside 0...4).
    public var levels: Int { (0...4).contains(mask) ? 1 << (4 - mask) : 0 }

    /// Bits per symbol in the file, 5 − m.
    public var bitsPerSymbol: Int { 5 - mask }

    /// Bytes per label in the file: 0 without labels, 1 up to 256 classes, 2 above.
    public var labelWidth: Int { labels.isEmpty ? 0 : Layout.labelWidth(classes: classes) }

    // MARK: Validation

    /// Checks every rule ``init(mask:latentShape:symbols:labels:classes:decoderHash:samplesPerChunk:coding:)``
    /// checks; use it after mutating the properties.
    public func validate() throws {
        _ = try layout()
        try checkSymbolRange()
        try checkLabelRange()
        try checkCoding()
    }

    /// The file layout of this container, checking everything but the symbol and label values.
    func layout() throws -> Layout {
        guard (0...4).contains(mask) else { throw ContainerError.invalidMask(mask) }
        let perSample = try Layout.checkShape(latentShape)
        guard (1...65536).contains(classes) else { throw ContainerError.invalidClasses(classes) }
        guard samplesPerChunk >= 1, samplesPerChunk <= Int(UInt32.max) else {
            throw ContainerError.invalidSamplesPerChunk(samplesPerChunk)
        }
        guard symbols.count % perSample == 0 else {
            throw ContainerError.symbolCountMismatch(symbols: symbols.count, perSample: perSample)
        }
        let count = symbols.count / perSample
        guard count <= Int(UInt32.max) else {
            throw ContainerError.tooLarge("\(count) samples (the format holds at most \(UInt32.max))")
        }
        guard labels.isEmpty || labels.count == count else {
            throw ContainerError.labelCountMismatch(labels: labels.count, count: count)
        }
        return try Layout(mask: mask, shape: latentShape, count: count,
                          labelWidth: labelWidth, samplesPerChunk: samplesPerChunk)
    }

    func checkSymbolRange() throws {
        guard let i = firstSymbolOutOfRange() else { return }
        throw ContainerError.symbolOutOfRange(index: i, value: Int(symbols[i]), mask: mask)
    }

    /// Index of the first symbol outside −L+1...L, or nil.
    private func firstSymbolOutOfRange() -> Int? {
        let L = levels
        let offset = Int8(L - 1)
        let outside = ~UInt8(2 * L - 1)
        return symbols.withUnsafeBufferPointer { s -> Int? in
            // Branch-free pass first (it vectorizes), then find the culprit only if there is one.
            var bad: UInt8 = 0
            for v in s { bad |= UInt8(bitPattern: v &+ offset) & outside }
            guard bad != 0 else { return nil }
            return s.firstIndex { Int($0) < 1 - L || Int($0) > L }
        }
    }

    func checkLabelRange() throws {
        for (i, label) in labels.enumerated() where label < 0 || label >= classes {
            throw ContainerError.labelOutOfRange(sample: i, value: label, classes: classes)
        }
    }

    // MARK: Encoding

    /// The container's bytes: format version 1 for ``SymbolCoding/fixedLength``, version 2 for
    /// ``SymbolCoding/entropy(_:)``.
    ///
    /// - Precondition: the container is valid (``validate()`` passes), as every container made
    ///   by the initializer or ``decode(_:)`` is until its properties are changed.
    public func encoded() -> [UInt8] {
        do {
            return try checkedEncoded()
        } catch {
            preconditionFailure("LatentContainer.encoded() on an invalid container: \(error)")
        }
    }

    /// The container's bytes with its symbols written as `coding` says, whatever ``coding`` is.
    ///
    /// - Precondition: the container is valid and `coding` fits it (``validate()`` passes
    ///   with ``coding`` set to it).
    public func encoded(coding: SymbolCoding) -> [UInt8] {
        var copy = self
        copy.coding = coding
        return copy.encoded()
    }

    /// The container's bytes, or the ``ContainerError`` that makes it invalid.
    public func checkedEncoded() throws -> [UInt8] {
        if case .entropy(let model) = coding { return try codedEncoding(model).bytes }
        return try fixedLengthEncoding()
    }

    /// The bytes of format version 1.
    private func fixedLengthEncoding() throws -> [UInt8] {
        let layout = try self.layout()
        try checkLabelRange()
        var bad: UInt8 = 0
        let bytes = symbols.withUnsafeBufferPointer { s in
            labels.withUnsafeBufferPointer { l in
                [UInt8](unsafeUninitializedCapacity: layout.total) { out, initialized in
                    bad = fill(out.baseAddress!, layout, symbols: s, labels: l)
                    initialized = layout.total
                }
            }
        }
        if bad != 0 { try checkSymbolRange() }
        return bytes
    }

    /// Writes the whole file into `out` (exactly `layout.total` bytes); returns nonzero if
    /// some symbol was out of range (and the bytes are then meaningless).
    private func fill(_ out: UnsafeMutablePointer<UInt8>, _ layout: Layout,
                      symbols s: UnsafeBufferPointer<Int8>, labels l: UnsafeBufferPointer<Int>) -> UInt8 {
        var o = writeHeader(out, layout, version: Self.formatVersion, flags: 0)
        func put(_ v: UInt64, _ width: Int) {
            for k in 0..<width { out[o + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            o += width
        }

        var bad: UInt8 = 0
        for c in 0..<layout.chunkCount {
            let start = o
            let n = layout.samples(inChunk: c)
            let first = c * samplesPerChunk
            put(UInt64(n), 4)
            if layout.labelWidth > 0 {
                for j in 0..<n { put(UInt64(l[first + j]), layout.labelWidth) }
            }
            let symbolCount = n * layout.perSample
            bad |= BitPacking.pack(s.baseAddress! + first * layout.perSample, count: symbolCount, mask: mask,
                                   into: out + o)
            o += BitPacking.packedByteCount(symbols: symbolCount, bits: layout.bits)
            put(UInt64(crc32(out + start, o - start)), 4)
        }
        precondition(o == layout.total)
        return bad
    }

    /// Writes the header (`layout.headerSize` bytes, its CRC included) into `out`; returns its size.
    func writeHeader(_ out: UnsafeMutablePointer<UInt8>, _ layout: Layout, version: UInt16, flags: UInt16) -> Int {
        var o = 0
        func put(_ v: UInt64, _ width: Int) {
            for k in 0..<width { out[o + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            o += width
        }
        for b in Self.magic { out[o] = b; o += 1 }
        put(UInt64(version), 2)
        put(UInt64(flags), 2)
        put(UInt64(mask), 1)
        put(UInt64(layout.bits), 1)
        put(UInt64(latentShape.count), 1)
        for d in latentShape { put(UInt64(d), 4) }
        put(UInt64(layout.count), 4)
        put(UInt64(classes), 4)
        put(UInt64(layout.labelWidth), 1)
        put(UInt64(samplesPerChunk), 4)
        put(decoderHash, 8)
        put(UInt64(crc32(out, o)), 4)
        precondition(o == layout.headerSize)
        return o
    }

    // MARK: Decoding

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
        var r = Reader(buffer: buffer, offset: 0)
        _ = try r.take(4, "magic")
        let version = UInt16(try r.integer(2, "header field 'version'"))
        guard version == formatVersion || version == codedFormatVersion else {
            throw ContainerError.unsupportedVersion(version)
        }
        let flags = UInt16(try r.integer(2, "header field 'flags'"))
        let mask = Int(try r.integer(1, "header field 'mask'"))
        let bits = Int(try r.integer(1, "header field 'bits per symbol'"))
        let rank = Int(try r.integer(1, "header field 'rank'"))
        // The rank sets the header's length, so it is checked before the CRC can be.
        guard (1...maxRank).contains(rank) else {
            throw ContainerError.invalidShape([], reason: "rank \(rank) is not in 1...\(maxRank)")
        }
        var shape: [Int] = []
        for i in 0..<rank { shape.append(Int(try r.integer(4, "header field 'dims[\(i)]'"))) }
        let count = Int(try r.integer(4, "header field 'count'"))
        let classes = Int(try r.integer(4, "header field 'classes'"))
        let labelWidth = Int(try r.integer(1, "header field 'label width'"))
        let samplesPerChunk = Int(try r.integer(4, "header field 'samplesPerChunk'"))
        let decoderHash = try r.integer(8, "header field 'decoderHash'")
        let crcEnd = r.offset
        let storedCRC = UInt32(try r.integer(4, "header CRC"))
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
                    let label = Int(load(buffer + o, w))
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

    // MARK: Files

    /// Writes the container to `url` atomically: into a temporary file in the same directory,
    /// flushed to disk, then renamed over `url`. Readers see the old file or the new one,
    /// never a part.
    ///
    /// - Throws: ``ContainerError`` if the container is invalid or ``ContainerError/io(path:reason:)``.
    public func write(to url: URL) throws {
        let bytes = try checkedEncoded()
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = (directory.isEmpty ? "." : directory) + "/.\(url.lastPathComponent).\(UUID().uuidString).tmp"
        func fail(_ what: String) -> ContainerError {
            ContainerError.io(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create temporary file \(temporary)") }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = posixWrite(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("cannot write")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw fail("cannot flush") }
        closed = true
        guard close(fd) == 0 else { throw fail("cannot close") }
        guard rename(temporary, path) == 0 else { throw fail("cannot rename \(temporary) into place") }
        renamed = true
        // Make the rename itself durable; a failure here leaves a complete file, so it is ignored.
        let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    /// Reads and decodes the container at `url` (see ``decode(_:)``).
    ///
    /// - Throws: ``ContainerError/io(path:reason:)`` if the file cannot be read, else what
    ///   ``decode(_:)`` throws.
    public static func read(from url: URL) throws -> LatentContainer {
        try decode(readFile(url.path))
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        func fail(_ what: String) -> ContainerError {
            ContainerError.io(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail("cannot stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ContainerError.io(path: path, reason: "not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        bytes.reserveCapacity(Int(info.st_size))
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("cannot read")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}

// MARK: - Layout

/// Where everything goes in a file: the sizes the header implies, computed once with overflow
/// checks so that every later offset computation is safe.
struct Layout: Equatable {
    let mask: Int
    let bits: Int
    let perSample: Int
    let count: Int
    let labelWidth: Int
    let samplesPerChunk: Int
    let headerSize: Int
    let chunkCount: Int
    /// Size of a chunk of `samplesPerChunk` samples (0 when there is none).
    let fullChunkSize: Int
    let total: Int

    /// Fixed header bytes besides the dims: magic 4, version 2, flags 2, mask 1, bits 1, rank 1,
    /// count 4, classes 4, label width 1, samplesPerChunk 4, decoderHash 8, CRC 4.
    static let fixedHeaderSize = 36

    /// Bytes per label for `classes` when there are labels.
    static func labelWidth(classes: Int) -> Int { classes <= 256 ? 1 : 2 }

    /// The product of `shape`, or nil on overflow.
    static func elementCount(_ shape: [Int]) -> Int? {
        var p = 1
        for d in shape {
            let (q, overflow) = p.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            p = q
        }
        return p
    }

    /// Checks a per-sample latent shape and returns its element count.
    static func checkShape(_ shape: [Int]) throws -> Int {
        guard (1...LatentContainer.maxRank).contains(shape.count) else {
            throw ContainerError.invalidShape(shape, reason: "rank \(shape.count) is not in 1...\(LatentContainer.maxRank)")
        }
        for (i, d) in shape.enumerated() where d < 1 || d > Int(UInt32.max) {
            throw ContainerError.invalidShape(shape, reason: "dimension \(i) is \(d), not in 1...\(UInt32.max)")
        }
        guard let p = elementCount(shape), p <= Int.max / 8 else {
            throw ContainerError.invalidShape(shape, reason: "too many latents per sample")
        }
        return p
    }

    init(mask: Int, shape: [Int], count: Int, labelWidth: Int, samplesPerChunk: Int) throws {
        self.mask = mask
        self.bits = 5 - mask
        self.perSample = try Self.checkShape(shape)
        self.count = count
        self.labelWidth = labelWidth
        self.samplesPerChunk = samplesPerChunk
        self.headerSize = Self.fixedHeaderSize + 4 * shape.count
        let full = count / samplesPerChunk, rest = count % samplesPerChunk
        self.chunkCount = full + (rest > 0 ? 1 : 0)
        func size(_ n: Int) throws -> Int {
            func tooLarge() -> ContainerError {
                .tooLarge("a chunk of \(n) samples of \(formatShape(shape)) at \(5 - mask) bits per symbol")
            }
            let (symbolCount, o1) = n.multipliedReportingOverflow(by: Self.elementCount(shape)!)
            let (symbolBits, o2) = symbolCount.multipliedReportingOverflow(by: 5 - mask)
            let (labelBytes, o3) = n.multipliedReportingOverflow(by: labelWidth)
            guard !o1, !o2, !o3, symbolBits <= Int.max - 7 else { throw tooLarge() }
            let (s, o4) = ((symbolBits + 7) / 8).addingReportingOverflow(labelBytes)
            guard !o4, s <= Int.max - 8 else { throw tooLarge() }
            return s + 8
        }
        self.fullChunkSize = full > 0 ? try size(samplesPerChunk) : 0
        let (fullBytes, o1) = full.multipliedReportingOverflow(by: fullChunkSize)
        let (withHeader, o2) = fullBytes.addingReportingOverflow(headerSize)
        let (total, o3) = withHeader.addingReportingOverflow(rest > 0 ? try size(rest) : 0)
        guard !o1, !o2, !o3 else {
            throw ContainerError.tooLarge("\(count) samples of \(formatShape(shape)) in one file")
        }
        self.total = total
    }

    /// Samples in chunk `c`.
    func samples(inChunk c: Int) -> Int { min(samplesPerChunk, count - c * samplesPerChunk) }

    /// Bytes of the packed symbols of `n` samples.
    func symbolBytes(samples n: Int) -> Int { BitPacking.packedByteCount(symbols: n * perSample, bits: bits) }

    /// Bytes of a chunk of `n` samples: sample count, labels, packed symbols, CRC.
    func chunkSize(samples n: Int) -> Int { 4 + n * labelWidth + symbolBytes(samples: n) + 4 }

    /// Offset of chunk `c`: all chunks before the last are full.
    func chunkOffset(_ c: Int) -> Int { headerSize + c * fullChunkSize }

    /// The chunk that byte `offset` (≥ headerSize, < total) falls in.
    func chunk(containing offset: Int) -> Int {
        guard fullChunkSize > 0 else { return 0 }
        return min((offset - headerSize) / fullChunkSize, chunkCount - 1)
    }
}

// MARK: - Byte helpers

/// Sequential little-endian reads with truncation errors that name the field.
struct Reader {
    let buffer: UnsafeBufferPointer<UInt8>
    var offset: Int

    /// Advances over `n` bytes and returns where they start.
    mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard buffer.count - offset >= n else {
            throw ContainerError.truncated(what: what, offset: offset, needed: n, fileLength: buffer.count)
        }
        defer { offset += n }
        return offset
    }

    /// A little-endian unsigned integer of `n` ≤ 8 bytes.
    mutating func integer(_ n: Int, _ what: String) throws -> UInt64 {
        let start = try take(n, what)
        return load(buffer.baseAddress! + start, n)
    }
}

/// A little-endian unsigned integer of `n` ≤ 8 bytes at `p`.
@inline(__always)
func load(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var v: UInt64 = 0
    for k in 0..<n { v |= UInt64(p[k]) << (8 * k) }
    return v
}

/// zlib's CRC32 of `n` bytes at `p`.
@inline(__always)
/// Checks a chunk of either format version: its trailing CRC32 over everything before it, then
/// its leading sample count against the `samples` the header implies.
func verifyChunk(_ base: UnsafePointer<UInt8>, offset o: Int, size: Int, chunk c: Int, samples n: Int) throws {
    let stored = UInt32(truncatingIfNeeded: load(base + o + size - 4, 4))
    let computed = crc32(base + o, size - 4)
    guard stored == computed else {
        throw ContainerError.chunkCRCMismatch(chunk: c, offset: o, stored: stored, computed: computed)
    }
    let declared = Int(load(base + o, 4))
    guard declared == n else {
        throw ContainerError.chunkSampleCountMismatch(chunk: c, offset: o, stored: declared, expected: n)
    }
}

func crc32(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
    UInt32(truncatingIfNeeded: crc32_z(0, p, n))
}

@inline(__always)
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}

@inline(__always)
private func posixRead(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int {
    read(fd, p, n)
}
