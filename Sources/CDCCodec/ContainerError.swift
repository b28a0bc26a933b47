import CDCEntropy

/// Everything that can go wrong building, encoding, decoding, reading or writing a
/// ``LatentContainer``.
///
/// Each case's `description` names the problem and, where it applies, where it is: the byte
/// offset in the file, the chunk number (0-based), the sample or symbol index. Decoding never
/// returns a container built from corrupt bytes: it throws one of these instead.
///
/// ```swift
/// do {
///     let container = try LatentContainer.read(from: url)
/// } catch let error as ContainerError {
///     print("\(url.path): \(error)")   // e.g. "chunk 3 at byte 41280: CRC mismatch (...)"
/// }
/// ```
public enum ContainerError: Error, CustomStringConvertible, Equatable, Sendable {
    // MARK: Arguments (init) and header fields (decode)

    /// The mask m is not in 0...4.
    case invalidMask(Int)
    /// The per-sample latent shape has a rank outside 1...4, a dimension below 1 or above
    /// `UInt32.max`, or too many elements.
    case invalidShape([Int], reason: String)
    /// The number of symbols is not a whole number of samples of the latent shape.
    case symbolCountMismatch(symbols: Int, perSample: Int)
    /// There are labels, but not one per sample.
    case labelCountMismatch(labels: Int, count: Int)
    /// The number of classes is not in 1...65536.
    case invalidClasses(Int)
    /// The number of samples per chunk is not in 1...UInt32.max.
    case invalidSamplesPerChunk(Int)
    /// A size does not fit the format (a u32 field) or overflows the byte arithmetic.
    case tooLarge(String)
    /// Symbol number `index` (in the flat symbol array) is outside −L+1...L for the mask.
    case symbolOutOfRange(index: Int, value: Int, mask: Int)
    /// The label of sample `sample` is not in 0..<classes.
    case labelOutOfRange(sample: Int, value: Int, classes: Int)
    /// The entropy model does not fit the container: it needs one table per channel
    /// (`latentShape[0]`) over the 2L values of u = q + L − 1.
    case modelMismatch(String)

    // MARK: Decoding

    /// The file does not start with "CDCL" (`found` holds its first bytes, at most 4).
    case badMagic(found: [UInt8])
    /// The format version is not one this reader knows (1 and 2).
    case unsupportedVersion(UInt16)
    /// Flags other than those of the version: 0 for version 1, 1 (entropy-coded) for version 2.
    case unsupportedFlags(UInt16)
    /// The header's bits-per-symbol byte is not 5 − mask.
    case bitsPerSymbolMismatch(mask: Int, bits: Int)
    /// The label width byte is not 0 (no labels) or the width `classes` calls for
    /// (1 byte up to 256 classes, 2 bytes above).
    case invalidLabelWidth(width: Int, classes: Int)
    /// The file ends inside `what`, which needs bytes `offset ..< offset + needed`.
    case truncated(what: String, offset: Int, needed: Int, fileLength: Int)
    /// The header's CRC32 does not match its bytes.
    case headerCRCMismatch(stored: UInt32, computed: UInt32)
    /// Chunk `chunk`, at byte `offset`, declares a sample count other than the header implies.
    case chunkSampleCountMismatch(chunk: Int, offset: Int, stored: Int, expected: Int)
    /// Chunk `chunk`, at byte `offset`, fails its CRC32.
    case chunkCRCMismatch(chunk: Int, offset: Int, stored: UInt32, computed: UInt32)
    /// The padding bits after the last symbol of chunk `chunk` (in the byte at `offset`) are not 0.
    case nonZeroPadding(chunk: Int, offset: Int)
    /// `count` bytes follow the last chunk, which ends at byte `offset`.
    case trailingBytes(offset: Int, count: Int)
    /// The entropy model section of a version-2 file, at byte `offset`, fails its CRC32.
    case modelCRCMismatch(offset: Int, stored: UInt32, computed: UInt32)
    /// The entropy model of a version-2 file, starting at byte `offset`, is malformed.
    case invalidModel(offset: Int, EntropyCodingError)
    /// The code of chunk `chunk`, at byte `offset`, of a version-2 file does not decode
    /// (its CRC matched: the writer or the model is at fault).
    case invalidCodedChunk(chunk: Int, offset: Int, EntropyCodingError)

    // MARK: Files

    /// Reading or writing a file failed.
    case io(path: String, reason: String)

    /// What is wrong and where.
    public var description: String {
        switch self {
        case .invalidMask(let m):
            return "mask \(m) is not in 0...4"
        case .invalidShape(let shape, let reason):
            return "invalid latent shape \(formatShape(shape)): \(reason)"
        case .symbolCountMismatch(let symbols, let perSample):
            return "shape/count inconsistent: \(symbols) symbols is not a whole number of samples of \(perSample) symbols"
        case .labelCountMismatch(let labels, let count):
            return "shape/count inconsistent: \(labels) labels for \(count) samples (give one per sample, or none)"
        case .invalidClasses(let c):
            return "number of classes \(c) is not in 1...65536"
        case .invalidSamplesPerChunk(let s):
            return "samples per chunk \(s) is not in 1...\(UInt32.max)"
        case .tooLarge(let what):
            return "too large for the format: \(what)"
        case .symbolOutOfRange(let index, let value, let mask):
            let L = 1 << (4 - mask)
            return "symbol \(index) is \(value), outside \(1 - L)...\(L) for mask \(mask)"
        case .labelOutOfRange(let sample, let value, let classes):
            return "label of sample \(sample) is \(value), outside 0..<\(classes)"
        case .modelMismatch(let reason):
            return "entropy model does not fit the container: \(reason)"
        case .badMagic(let found):
            let hex = found.map { byteHex($0) }.joined(separator: " ")
            return "bad magic: expected \"CDCL\" (43 44 43 4c), found \(found.isEmpty ? "an empty file" : hex): not a CDC latent container"
        case .unsupportedVersion(let v):
            return "unsupported format version \(v) (this reader knows versions \(LatentContainer.formatVersion) and \(LatentContainer.codedFormatVersion))"
        case .unsupportedFlags(let f):
            return "unsupported flags 0x\(String(f, radix: 16)) (version 1 files have flags 0, version 2 files 0x1: entropy-coded)"
        case .bitsPerSymbolMismatch(let mask, let bits):
            return "header says \(bits) bits per symbol but mask \(mask) needs \(5 - mask)"
        case .invalidLabelWidth(let width, let classes):
            return "label width \(width) is invalid for \(classes) classes (0 for no labels, else \(classes <= 256 ? 1 : 2))"
        case .truncated(let what, let offset, let needed, let length):
            return "truncated: \(what) needs bytes \(offset)..<\(offset + needed), but the file ends at byte \(length)"
        case .headerCRCMismatch(let stored, let computed):
            return "header CRC mismatch: stored 0x\(crcHex(stored)), computed 0x\(crcHex(computed))"
        case .chunkSampleCountMismatch(let chunk, let offset, let stored, let expected):
            return "chunk \(chunk) at byte \(offset): declares \(stored) samples, the header implies \(expected)"
        case .chunkCRCMismatch(let chunk, let offset, let stored, let computed):
            return "chunk \(chunk) at byte \(offset): CRC mismatch: stored 0x\(crcHex(stored)), computed 0x\(crcHex(computed))"
        case .nonZeroPadding(let chunk, let offset):
            return "chunk \(chunk): padding bits in the byte at \(offset) are not zero"
        case .trailingBytes(let offset, let count):
            return "\(count) trailing byte\(count == 1 ? "" : "s") after the last chunk, which ends at byte \(offset)"
        case .modelCRCMismatch(let offset, let stored, let computed):
            return "entropy model at byte \(offset): CRC mismatch: stored 0x\(crcHex(stored)), computed 0x\(crcHex(computed))"
        case .invalidModel(let offset, let error):
            return "entropy model at byte \(offset): \(error)"
        case .invalidCodedChunk(let chunk, let offset, let error):
            return "chunk \(chunk) at byte \(offset): \(error)"
        case .io(let path, let reason):
            return "\(path): \(reason)"
        }
    }
}

func formatShape(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

private func byteHex(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return s.count == 1 ? "0" + s : s
}

private func crcHex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}
