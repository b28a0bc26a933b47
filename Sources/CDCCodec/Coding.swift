import CDCEntropy

/// How the symbols of an upload are coded: the one choice that the codec, the pipeline, rate
/// control and the command line (`--coding`) share.
public enum Coding: String, CaseIterable, Sendable, Codable {
    /// The smaller of ``histogram`` and, when a learned prior exists, ``prior``: chosen per upload
    /// by coding both.
    case auto
    /// Exactly 5 − m bits per symbol, the paper's scheme (container format version 1).
    case fixed
    /// rANS under per-channel histograms measured on the data being uploaded; the tables travel
    /// in the container (version 2).
    case histogram
    /// rANS under the integer tables of the learned prior trained with the autoencoder
    /// (version 2).
    case prior

    /// A short name for reports.
    public var name: String {
        switch self {
        case .auto: return "auto"
        case .fixed: return "fixed length"
        case .histogram: return "histogram"
        case .prior: return "learned prior"
        }
    }
}

extension LatentContainer {
    /// How this container's symbols are coded (never ``Coding/auto``).
    public var codingChoice: Coding {
        switch coding {
        case .fixedLength: return .fixed
        case .entropy(let model): return model.origin == .learnedPrior ? .prior : .histogram
        }
    }
}
