import CDCCodec

extension LatentContainer {
    /// The container cut into self-contained containers of at most `samplesPerPart` samples
    /// each, in order, with the same mask, latent shape, classes, decoder hash and coding (an
    /// entropy model travels in every part, so each part decodes on its own).
    public func parts(samplesPerPart: Int) throws -> [LatentContainer] {
        precondition(samplesPerPart > 0, "samplesPerPart must be positive")
        let per = symbolsPerSample
        return try stride(from: 0, to: count, by: samplesPerPart).map { start in
            let end = Swift.min(count, start + samplesPerPart)
            return try LatentContainer(mask: mask, latentShape: latentShape, symbols: Array(symbols[(start * per)..<(end * per)]),
                                labels: labels.isEmpty ? [] : Array(labels[start..<end]), classes: classes,
                                decoderHash: decoderHash, samplesPerChunk: samplesPerChunk, coding: coding)
        }
    }

    /// The parts of an upload joined back into one container (the inverse of ``parts(samplesPerPart:)``).
    public static func joined(_ parts: [LatentContainer]) throws -> LatentContainer {
        guard let first = parts.first else { throw WireError("no parts to join") }
        for p in parts where p.mask != first.mask || p.latentShape != first.latentShape || p.decoderHash != first.decoderHash
            || p.classes != first.classes {
            throw WireError("parts disagree on mask, latent shape, classes or decoder")
        }
        return try LatentContainer(mask: first.mask, latentShape: first.latentShape, symbols: parts.flatMap(\.symbols),
                                   labels: parts.flatMap(\.labels), classes: first.classes, decoderHash: first.decoderHash,
                                   samplesPerChunk: first.samplesPerChunk)
    }
}

/// A problem with what crossed the wire, in words.
public struct WireError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
