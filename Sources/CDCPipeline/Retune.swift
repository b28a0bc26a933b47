import CDCNN
import Foundation

/// The compression-ratio switch (paper §4.4, Fig. 5): a trained session's weights, a new mask.
public enum Retune {
    /// A new session at `mask` whose AE, EC (and learned prior) start from `old`'s weights, trained on with
    /// `learningRate` (low) for `epochs` more epochs.
    public static func session(from old: EdgeSession, mask: Int, learningRate: Float, epochs: Int) throws -> EdgeSession {
        var c = old.config
        c.mask = mask; c.learningRate = learningRate; c.epochs = epochs
        let s = old.withConfig(c)
        try Checkpoint.load(Checkpoint.stateDict(old.autoencoder), into: s.autoencoder)
        try Checkpoint.load(Checkpoint.stateDict(old.classifier), into: s.classifier)
        // The prior is a density over the latent domain (−1, 1), so it carries over to the new mask.
        if let from = old.prior, let to = s.prior { try Checkpoint.load(Checkpoint.stateDict(from), into: to) }
        return s
    }
}
