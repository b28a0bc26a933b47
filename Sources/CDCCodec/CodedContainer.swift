// Format version 2 of the latent container: the symbols entropy-coded with rANS under a
// per-channel model carried in the file. The layout is FORMAT.md's "Layout (version 2:
// entropy-coded symbols)"; the reader's checks follow its "Reading rules".

import CDCEntropy
import CDCFileIO

/// How a ``LatentContainer`` writes its symbols.
///
/// ```swift
/// try container.write(to: url)                                   // fixed-length, version 1
/// try container.entropyCoded().write(to: url)                    // measured histograms, version 2
/// let bytes = container.encoded(coding: .entropy(learnedPrior))  // a model saved with the network
/// ```
public enum SymbolCoding: Sendable, Equatable {
    /// Each symbol in exactly 5 − m bits: format version 1.
    case fixedLength
    /// rANS under this model (one table per channel, K = `latentShape[0]`, over the 2L values
    /// of u = q + L − 1), which the file carries: format version 2.
    case entropy(EntropyModel)
}

extension LatentContainer {
    // MARK: Models

    /// Channels K (the first dimension of the latent shape) and latents per channel (P / K):
    /// the geometry the entropy model's tables follow.
    public var channelGeometry: (channels: Int, symbolsPerChannel: Int) {
        let k = latentShape.first ?? 1
        return (k, k > 0 ? symbolsPerSample / k : 0)
    }

    /// A static histogram measured on this container's own symbols: per channel, the counts
    /// of u = q + L − 1 over all samples, quantized (`EntropyModel.staticHistogram`).
    ///
    /// - Parameter precisionBits: the tables' precision (default 12 bits).
    /// - Throws: ``ContainerError`` if the container is invalid.
    public func measuredEntropyModel(precisionBits: Int? = nil) throws -> EntropyModel {
        _ = try layout()
        try checkSymbolRange()
        let (k, run) = channelGeometry
        do {
            return try withUnsignedSymbols { u in
                try EntropyModel.staticHistogram(measuring: u, channels: k, symbolsPerChannel: run,
                                                 alphabetSize: 2 * levels, precisionBits: precisionBits)
            }
        } catch let error as EntropyCodingError {
            throw ContainerError.modelMismatch(error.description)
        }
    }

    /// This container with ``coding`` set to entropy coding under `model`, or by default under
    /// a static histogram measured on its own symbols (``measuredEntropyModel(precisionBits:)``):
    /// what an edge uploads.
    ///
    /// - Throws: ``ContainerError`` if the container is invalid or the model does not fit it.
    public func entropyCoded(model: EntropyModel? = nil) throws -> LatentContainer {
        var copy = self
        copy.coding = .entropy(try model ?? measuredEntropyModel())
        try copy.checkCoding()
        return copy
    }

    /// The model's ideal code length of all symbols in bits (−Σ log2 p), or nil for a
    /// fixed-length container.
    public var estimatedCodedBits: Double? {
        guard case .entropy(let model) = coding else { return nil }
        let run = channelGeometry.symbolsPerChannel
        return try? withUnsignedSymbols { try model.estimatedBits($0, symbolsPerChannel: run) }
    }

    /// Checks that an entropy model fits the mask and the latent shape.
    func checkCoding() throws {
        guard case .entropy(let model) = coding else { return }
        let k = channelGeometry.channels
        guard model.channels == k, model.alphabetSize == 2 * levels else {
            throw ContainerError.modelMismatch(
                "the model has \(model.channels) table\(model.channels == 1 ? "" : "s") over \(model.alphabetSize) symbols; "
                    + "mask \(mask) and shape \(formatShape(latentShape)) need \(k) over \(2 * levels)")
        }
    }

    /// Calls `body` with the symbols as u = q + L − 1.
    func withUnsignedSymbols<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let offset = Int8(levels - 1)
        let u = symbols.map { UInt8(bitPattern: $0 &+ offset) }
        return try u.withUnsafeBufferPointer(body)
    }

    // MARK: Encoding

    /// The bytes of format version 2 and their exact accounting.
    func codedEncoding(_ model: EntropyModel) throws -> (bytes: [UInt8], accounting: ByteAccounting) {
        let layout = try self.layout()
        try checkLabelRange()
        try checkSymbolRange()
        try checkCoding()
        let coder = EntropyCoder(model: model)
        let (_, run) = channelGeometry
        let offset = Int8(levels - 1)

        var bytes = [UInt8](repeating: 0, count: layout.headerSize)
        bytes.withUnsafeMutableBufferPointer {
            _ = writeHeader($0.baseAddress!, layout, version: Self.codedFormatVersion, flags: Self.entropyCodedFlags)
        }
        func crc(from start: Int) -> UInt32 {
            bytes.withUnsafeBufferPointer { crc32($0.baseAddress! + start, $0.count - start) }
        }
        let serialized = model.serialized()
        let modelStart = bytes.count
        LittleEndian.append(UInt32(truncatingIfNeeded: serialized.count), to: &bytes)
        bytes.append(contentsOf: serialized)
        LittleEndian.append(crc(from: modelStart), to: &bytes)

        var codeBytes = 0
        var scratch = [UInt8](repeating: 0, count: min(layout.samplesPerChunk, layout.count) * layout.perSample)
        for c in 0..<layout.chunkCount {
            let start = bytes.count
            let n = layout.samples(inChunk: c)
            let first = c * samplesPerChunk
            LittleEndian.append(UInt32(truncatingIfNeeded: n), to: &bytes)
            for j in 0..<n where layout.labelWidth > 0 {
                LittleEndian.append(UInt64(truncatingIfNeeded: labels[first + j]), byteCount: layout.labelWidth, to: &bytes)
            }
            let lengthAt = bytes.count
            LittleEndian.append(UInt32(0), to: &bytes)
            let symbolCount = n * layout.perSample
            try symbols.withUnsafeBufferPointer { s in
                try scratch.withUnsafeMutableBufferPointer { u in
                    let from = first * layout.perSample
                    for i in 0..<symbolCount { u[i] = UInt8(bitPattern: s[from + i] &+ offset) }
                    try coder.encode(UnsafeBufferPointer(rebasing: u[0 ..< symbolCount]), symbolsPerChannel: run,
                                     appendingTo: &bytes)
                }
            }
            let length = bytes.count - lengthAt - 4
            guard length <= Int(UInt32.max) else {
                throw ContainerError.tooLarge("a coded chunk of \(length) bytes (the format holds at most \(UInt32.max))")
            }
            LittleEndian.store(UInt32(length), into: &bytes, at: lengthAt)
            codeBytes += length
            LittleEndian.append(crc(from: start), to: &bytes)
        }
        let accounting = ByteAccounting(header: layout.headerSize, model: serialized.count + 8,
                                        labels: layout.count * layout.labelWidth, symbols: codeBytes,
                                        chunkFraming: 12 * layout.chunkCount)
        precondition(accounting.total == bytes.count)
        return (bytes, accounting)
    }

    // MARK: Decoding

    /// Where one verified chunk of a version-2 file lies.
    private struct CodedChunk {
        var offset: Int
        var samples: Int
        var labels: Int
        var code: Int
        var codeLength: Int
    }

    /// Decodes the rest of a version-2 file after its header (checked by the caller): the model,
    /// then every chunk's framing and CRC, then the chunks' labels and codes.
    static func decodeCoded(_ buffer: UnsafeBufferPointer<UInt8>, _ layout: Layout, shape: [Int], classes: Int,
                            decoderHash: UInt64) throws -> LatentContainer {
        let length = buffer.count
        let base = buffer.baseAddress!
        var o = layout.headerSize

        // The model.
        guard length - o >= 4 else {
            throw ContainerError.truncated(what: "model length", offset: o, needed: 4, fileLength: length)
        }
        let modelLength = Int(LittleEndian.load(UInt32.self, from: base + o))
        guard length - o - 4 >= modelLength, length - o - 4 - modelLength >= 4 else {
            throw ContainerError.truncated(what: "model", offset: o, needed: modelLength + 8, fileLength: length)
        }
        let storedModelCRC = LittleEndian.load(UInt32.self, from: base + o + 4 + modelLength)
        let computedModelCRC = crc32(base + o, 4 + modelLength)
        guard storedModelCRC == computedModelCRC else {
            throw ContainerError.modelCRCMismatch(offset: o, stored: storedModelCRC, computed: computedModelCRC)
        }
        let model: EntropyModel
        do {
            model = try EntropyModel(serialized: UnsafeBufferPointer(start: base + o + 4, count: modelLength))
        } catch let error as EntropyCodingError {
            throw ContainerError.invalidModel(offset: o + 4, error)
        }
        let mask = layout.mask
        var container = LatentContainer(unchecked: mask, latentShape: shape, symbols: [], labels: [], classes: classes,
                                        decoderHash: decoderHash, samplesPerChunk: layout.samplesPerChunk,
                                        coding: .entropy(model))
        try container.checkCoding()
        o += 8 + modelLength

        // Every chunk's framing, lengths and CRC, before anything is allocated in proportion to
        // the header's counts: each chunk takes at least 12 bytes, so the walk ends within the file.
        let w = layout.labelWidth
        var chunks: [CodedChunk] = []
        for c in 0..<layout.chunkCount {
            let n = layout.samples(inChunk: c)
            let what = "chunk \(c) of \(layout.chunkCount)"
            let head = 8 + n * w
            guard length - o >= head else {
                throw ContainerError.truncated(what: what, offset: o, needed: head, fileLength: length)
            }
            let codeLength = Int(LittleEndian.load(UInt32.self, from: base + o + 4 + n * w))
            let size = head + codeLength + 4
            guard length - o >= size else {
                throw ContainerError.truncated(what: what, offset: o, needed: size, fileLength: length)
            }
            try verifyChunk(base, offset: o, size: size, chunk: c, samples: n)
            chunks.append(CodedChunk(offset: o, samples: n, labels: o + 4, code: o + head, codeLength: codeLength))
            o += size
        }
        guard o == length else { throw ContainerError.trailingBytes(offset: o, count: length - o) }

        // Each chunk's code must be long enough for its symbols (every symbol costs a minimum
        // fraction of a bit): this bounds the symbols allocated below by the file's length.
        let coder = EntropyCoder(model: model)
        for (c, chunk) in chunks.enumerated() {
            let symbolCount = chunk.samples * layout.perSample
            let limit = coder.maximumSymbols(codedIn: chunk.codeLength)
            guard symbolCount <= limit else {
                throw ContainerError.invalidCodedChunk(
                    chunk: c, offset: chunk.offset,
                    .tooManySymbols(requested: symbolCount, bytes: chunk.codeLength, limit: limit))
            }
        }
        let run = container.channelGeometry.symbolsPerChannel
        let offset = Int8(container.levels - 1)
        let labelCount = w == 0 ? 0 : layout.count
        let symbolCount = layout.count * layout.perSample
        var labels = [Int](repeating: 0, count: labelCount)
        var symbols = [Int8](repeating: 0, count: symbolCount)
        try symbols.withUnsafeMutableBufferPointer { s in
            try s.withMemoryRebound(to: UInt8.self) { u in
                for (c, chunk) in chunks.enumerated() {
                    let first = c * layout.samplesPerChunk
                    for j in 0..<chunk.samples where w > 0 {
                        let label = Int(LittleEndian.load(byteCount: w, from: base + chunk.labels + j * w))
                        guard label < classes else {
                            throw ContainerError.labelOutOfRange(sample: first + j, value: label, classes: classes)
                        }
                        labels[first + j] = label
                    }
                    let from = first * layout.perSample
                    let part = UnsafeMutableBufferPointer(rebasing: u[from ..< from + chunk.samples * layout.perSample])
                    do {
                        try coder.decode(UnsafeBufferPointer(start: base + chunk.code, count: chunk.codeLength),
                                         into: part, symbolsPerChannel: run)
                    } catch let error as EntropyCodingError {
                        throw ContainerError.invalidCodedChunk(chunk: c, offset: chunk.offset, error)
                    }
                }
            }
            for i in s.indices { s[i] &-= offset }
        }
        container.symbols = symbols
        container.labels = labels
        return container
    }
}
