import CDCEntropy
import Foundation
import Testing
@testable import CDCCodec

extension SplitMix64 {
    /// Uniform in `range` (CDCEntropy's generator, so every run tests the same data).
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

/// Random symbols for mask `mask`: `count` samples of `perSample` symbols, with the extremes
/// −L+1 and L forced into the first and last position of every sample.
func randomSymbols(mask: Int, count: Int, perSample: Int, rng: inout SplitMix64) -> [Int8] {
    let L = 1 << (4 - mask)
    var s = (0..<(count * perSample)).map { _ in Int8(rng.int(in: (1 - L)...L)) }
    for i in 0..<count {
        s[i * perSample] = Int8(1 - L)
        s[i * perSample + perSample - 1] = Int8(L)
    }
    return s
}

/// A random valid container.
func randomContainer(mask: Int, shape: [Int], count: Int, labelled: Bool, classes: Int,
                     samplesPerChunk: Int = 1024, seed: UInt64) throws -> LatentContainer {
    var rng = SplitMix64(seed: seed)
    let perSample = shape.reduce(1, *)
    let symbols = randomSymbols(mask: mask, count: count, perSample: perSample, rng: &rng)
    var labels = labelled ? (0..<count).map { _ in rng.int(in: 0...(classes - 1)) } : []
    if labelled, count > 1 { labels[0] = classes - 1; labels[1] = 0 }
    return try LatentContainer(mask: mask, latentShape: shape, symbols: symbols, labels: labels,
                               classes: classes, decoderHash: rng.next(), samplesPerChunk: samplesPerChunk)
}

/// Little-endian bytes of a fixed-width integer.
func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    withUnsafeBytes(of: v.littleEndian) { Array($0) }
}

/// The little-endian u32 at `offset`.
func u32(_ bytes: [UInt8], at offset: Int) -> Int {
    (0..<4).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
}

/// zlib CRC32, through the module's helper.
func crc(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    Array(bytes).withUnsafeBufferPointer { crc32($0.baseAddress!, $0.count) }
}

/// Header length of an encoded container (from its rank byte).
func headerLength(_ bytes: [UInt8]) -> Int { 36 + 4 * Int(bytes[10]) }

/// Overwrites `value` (little-endian, `width` bytes) at `offset`.
func patch(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64, width: Int) {
    for k in 0..<width { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
}

/// Rewrites the header CRC so that a deliberately patched header passes it.
func fixHeaderCRC(_ bytes: inout [UInt8]) {
    let h = headerLength(bytes)
    patch(&bytes, at: h - 4, UInt64(crc(bytes[0..<(h - 4)])), width: 4)
}

/// Rewrites the CRC of the chunk in `range` (sample count through CRC).
func fixChunkCRC(_ bytes: inout [UInt8], chunk range: Range<Int>) {
    patch(&bytes, at: range.upperBound - 4, UInt64(crc(bytes[range.lowerBound..<(range.upperBound - 4)])), width: 4)
}

/// The ContainerError `decode` throws for `bytes` (records an issue if it does not throw one).
func decodeError(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> ContainerError? {
    do {
        let c = try LatentContainer.decode(bytes)
        Issue.record("expected an error, decoded \(c.count) samples", sourceLocation: sourceLocation)
    } catch let error as ContainerError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// The ContainerError `body` throws (records an issue if it does not throw one).
func thrownError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> ContainerError? {
    do {
        try body()
        Issue.record("expected a ContainerError", sourceLocation: sourceLocation)
    } catch let error as ContainerError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("cdc-codec-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
