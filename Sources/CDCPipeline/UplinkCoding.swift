import CDCCodec
import CDCEntropy
import CDCModels
import Foundation

/// How the edge codes the symbols of an upload.
public enum UplinkCoding: Sendable, Equatable {
    /// Exactly 5 − m bits per symbol (the paper's scheme; container format version 1).
    case fixedLength
    /// rANS under per-channel histograms measured on the data being uploaded (version 2).
    case histogram
    /// rANS under the integer tables of a learned prior (`PriorFile`), one row per channel over
    /// the 2L symbols of the container's mask (version 2).
    case learnedPrior(tables: [[UInt32]])

    /// A short name for reports: fixed, histogram or learned prior.
    public var name: String {
        switch self {
        case .fixedLength: return "fixed length"
        case .histogram: return "histogram"
        case .learnedPrior: return "learned prior"
        }
    }

    /// The learned prior's saved tables as an entropy model: integer-only quantization to the
    /// coder's precision, so edge and cloud build identical tables.
    public static func model(fromPriorTables tables: [[UInt32]]) throws -> EntropyModel {
        guard let width = tables.first?.count, width >= 2, tables.allSatisfy({ $0.count == width }) else {
            throw PipelineError("prior tables must have one row of 2L ≥ 2 entries per channel")
        }
        let precision = EntropyModel.defaultPrecisionBits(alphabetSize: width)
        return try EntropyModel(origin: .learnedPrior, tables: tables.map {
            try FrequencyTable(quantizing: $0.map(UInt64.init), alphabetSize: width, precisionBits: precision)
        })
    }

    /// `container` (fixed-length, as `EdgeCodec.compress` makes it) recoded this way.
    public func apply(to container: LatentContainer) throws -> LatentContainer {
        switch self {
        case .fixedLength: return container
        case .histogram: return try container.entropyCoded()
        case .learnedPrior(let tables):
            guard tables.first?.count == 2 * container.levels else {
                throw PipelineError("the prior's tables are for \(tables.first?.count ?? 0) symbols; mask \(container.mask) has \(2 * container.levels)")
            }
            return try container.entropyCoded(model: try Self.model(fromPriorTables: tables))
        }
    }
}
