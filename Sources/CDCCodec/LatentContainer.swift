// The upload container of the CDC pipeline: quantized latent symbols of a dataset, its labels
// and the identity of the decoder that restores them, in a versioned, checksummed binary file.
//
// The file format is described once, in FORMAT.md next to this file. The code is split by job:
// this file holds the type, its initializer, derived values and validation;
// ContainerEncoding.swift writes format version 1, CodedContainer.swift version 2 (entropy
// coding); ContainerDecoding.swift reads and checks both; ContainerFiles.swift reads and writes
// files; Layout.swift computes the sizes and offsets a header implies; CRC32.swift checksums.

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
/// The bytes are specified in FORMAT.md next to this file: "Symbols" (the stored values),
/// "Layout (version 1)" (header and chunks of bit-packed symbols), "Layout (version 2:
/// entropy-coded symbols)" (the model section, coded chunks and the rANS code), "Reading rules"
/// (what ``decode(_:)`` checks, in which order) and "Byte accounting" (``accounting``).
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
}
