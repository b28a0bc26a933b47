import CDCCodec
import CDCData
import CDCModels
import Foundation

/// Rate control: the mask m, and the rate weight λ of the learned prior where m alone is not
/// enough, that meet a target of coded bits per pixel, found with short trainings on a
/// calibration subset and measured with the real coder (not estimated).
public enum RateControl {
    /// One calibration training and what it measured.
    public struct Measurement: Sendable, CustomStringConvertible {
        public var mask: Int, rateWeight: Float
        /// Coded bits per pixel position of the codes alone (headers, model and labels, sent
        /// once per upload, are left out: they vanish over a whole dataset).
        public var bitsPerPixel: Double
        /// Coded bytes per sample (codes alone): what a bandwidth policy divides by.
        public var bytesPerSample: Double
        /// The coding that was measured (never ``Coding/auto``).
        public var coding: Coding = .fixed
        public var description: String {
            String(format: "m=%d λ=%g: %.3f bpp (%.1f bytes/sample)", mask, rateWeight, bitsPerPixel, bytesPerSample)
        }
    }

    /// Codes `data` with the session's autoencoder and measures the coded size of the codes
    /// (with `coding`; ``Coding/auto``: the smaller of the session's codings).
    public static func measure(_ session: EdgeSession, on data: LabelledDataset, coding: Coding = .auto) throws -> Measurement {
        let coded = try session.compress(data, coding: coding, decoderHash: 0)
        let symbolBytes = Double(coded.accounting.symbols)
        return Measurement(mask: session.config.mask, rateWeight: session.config.rateWeight,
                           bitsPerPixel: symbolBytes * 8 / Double(max(data.count, 1) * data.height * data.width),
                           bytesPerSample: symbolBytes / Double(max(data.count, 1)), coding: coded.codingChoice)
    }

    /// Finds the clearest setting whose coded rate is at most `target` bits per pixel: m = 0, 1, …
    /// with `base`'s settings (no rate term); if even m = 4 is above the target, the learned prior
    /// at m = 4 with λ found by bisection on a log scale. Each candidate is a fresh `epochs`-epoch
    /// training on `calibration`. Returns the configuration to train with and every measurement.
    public static func calibrate(target: Double, base: EdgeConfig, calibration: LabelledDataset, epochs: Int = 2,
                                 bisectionSteps: Int = 6, log: (String) -> Void = { _ in }) throws
        -> (config: EdgeConfig, measurements: [Measurement]) {
        guard target > 0 else { throw PipelineError("the target rate must be positive") }
        var all: [Measurement] = []
        func trial(_ c: EdgeConfig) throws -> Measurement {
            var c = c
            c.epochs = epochs
            let s = try EdgeSession(config: c, for: calibration)
            for _ in 0..<epochs { s.trainEpoch(calibration) }
            let m = try measure(s, on: calibration)
            all.append(m)
            log("  calibration \(m)")
            return m
        }
        for m in 0...4 {
            var c = base
            c.mask = m; c.rateWeight = 0
            if try trial(c).bitsPerPixel <= target { return (c, all) }
        }
        // m = 4 is still above the target: trade distortion for rate with λ.
        var c = base
        c.mask = 4; c.learnedPrior = true
        var low: Float = 1e-3, high: Float = 10
        c.rateWeight = high
        guard try trial(c).bitsPerPixel <= target else {
            throw PipelineError(String(format: "no setting reaches %.3f bpp (m = 4 with λ = %g gives %.3f)", target, high,
                                       all.last!.bitsPerPixel))
        }
        var best = c
        for _ in 0..<bisectionSteps {
            let mid = (low * high).squareRoot()
            c.rateWeight = mid
            if try trial(c).bitsPerPixel <= target { high = mid; best = c } else { low = mid }
        }
        return (best, all)
    }
}
