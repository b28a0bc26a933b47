import CDCCodec
import CDCData
import CDCEntropy
import Foundation

extension EdgeCodec {
    /// The learned prior's saved tables as an entropy model: integer-only quantization to the
    /// coder's precision, so edge and cloud build identical tables.
    public static func priorModel(tables: [[UInt32]]) throws -> EntropyModel {
        guard let width = tables.first?.count, width >= 2, tables.allSatisfy({ $0.count == width }) else {
            throw PipelineError("prior tables must have one row of 2L ≥ 2 entries per channel")
        }
        let precision = EntropyModel.defaultPrecisionBits(alphabetSize: width)
        return try EntropyModel(origin: .learnedPrior, tables: tables.map {
            try FrequencyTable(quantizing: $0.map(UInt64.init), alphabetSize: width, precisionBits: precision)
        })
    }

    /// `container` (fixed-length, as ``compress(_:_:decoderHash:batchSize:)`` makes it) coded with
    /// `coding`. ``Coding/prior`` needs the learned prior's tables (`priorTables`, one row of 2L
    /// frequencies per channel); ``Coding/auto`` codes with histograms and, when `priorTables`
    /// is given, with the prior too, and keeps the smaller container (both decode to the same
    /// symbols). The result's ``LatentContainer/codingChoice`` says which coding it holds.
    public static func code(_ container: LatentContainer, _ coding: Coding, priorTables: [[UInt32]]? = nil) throws -> LatentContainer {
        switch coding {
        case .fixed: return container
        case .histogram: return try container.entropyCoded()
        case .prior:
            guard let tables = priorTables else {
                throw PipelineError("coding with the learned prior needs a session trained with one (--learned-prior or --rate-weight)")
            }
            guard tables.first?.count == 2 * container.levels else {
                throw PipelineError("the prior's tables are for \(tables.first?.count ?? 0) symbols; mask \(container.mask) has \(2 * container.levels)")
            }
            return try container.entropyCoded(model: try priorModel(tables: tables))
        case .auto:
            let histogram = try code(container, .histogram)
            guard priorTables != nil else { return histogram }
            let prior = try code(container, .prior, priorTables: priorTables)
            return prior.accounting.total < histogram.accounting.total ? prior : histogram
        }
    }
}

extension EdgeSession {
    /// The integer tables of the session's learned prior at its mask (nil without a prior).
    public var priorTables: [[UInt32]]? {
        prior.map { $0.frequencyTables(mask: config.mask, total: PriorFile.total) }
    }

    /// `data` encoded by the session's autoencoder and coded with `coding` (the session's prior
    /// tables for ``Coding/prior`` and ``Coding/auto``).
    public func compress(_ data: LabelledDataset, coding: Coding, decoderHash: UInt64) throws -> LatentContainer {
        let fixed = try EdgeCodec.compress(autoencoder, data, decoderHash: decoderHash)
        return try EdgeCodec.code(fixed, coding, priorTables: priorTables)
    }
}
