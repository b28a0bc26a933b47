// The sizes and offsets a latent container's header implies (FORMAT.md: "Layout (version 1)").

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
