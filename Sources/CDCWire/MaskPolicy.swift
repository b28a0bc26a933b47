/// The cloud's bandwidth-driven choice of the mask m it asks an edge for (paper §3.1, stage 2).
///
/// From the bandwidth the edge measured and the operator's time budget for one upload, the
/// policy picks the *smallest* m (the clearest data) whose upload of the edge's whole dataset
/// fits in the budget. It asks for that m only when it is clearer than the best the cloud
/// already holds, and — once some data is stored — only when the classifier has converged on
/// what it has (clearer data is worth a new upload only then). With no bandwidth measured yet
/// it asks for m = 4, the cheapest upload, so training can start.
///
/// Upload size per m is estimated from bytes per sample: measured for the masks the edge has
/// uploaded, and for the others scaled from the nearest measured mask by the fixed-length bits
/// ratio (5 − m) / (5 − m₀) — coded sizes shrink roughly in that proportion; with nothing
/// measured, the fixed-length size itself. Every new mask means a new decoder, so the decoder's
/// size is part of each estimate.
///
/// An upload the edge started and has not finished (a crash, a restart) is asked for again
/// before anything else, as long as it is clearer than what the cloud holds: its stored parts
/// are not thrown away.
public struct MaskPolicy: Sendable, Equatable {
    /// Seconds the operator allows for one upload of the edge's dataset.
    public var timeBudget: Double

    public init(timeBudget: Double) { self.timeBudget = timeBudget }

    /// What the policy knows when it decides.
    public struct Inputs: Sendable, Equatable {
        /// Samples in the edge's dataset.
        public var samples: Int
        /// Latents per sample (the product of the latent shape).
        public var latentsPerSample: Int
        /// Measured uplink bytes per second; nil before the first report.
        public var bytesPerSecond: Double?
        /// Measured bytes per sample of stored uploads, by mask.
        public var measuredBytesPerSample: [Int: Double]
        /// The clearest (smallest) mask of a complete upload the cloud holds; nil if none.
        public var bestStoredMask: Int?
        /// Whether the cloud classifier has converged on the data it holds.
        public var converged: Bool
        /// Bytes of the decoder that comes with every upload (the last one stored; 0 if none yet).
        public var decoderBytes: Double
        /// The clearest mask of an upload that is started (something stored) but not complete.
        public var unfinishedMask: Int?

        public init(samples: Int, latentsPerSample: Int, bytesPerSecond: Double?, measuredBytesPerSample: [Int: Double] = [:],
                    bestStoredMask: Int? = nil, converged: Bool = false, decoderBytes: Double = 0, unfinishedMask: Int? = nil) {
            self.samples = samples; self.latentsPerSample = latentsPerSample; self.bytesPerSecond = bytesPerSecond
            self.measuredBytesPerSample = measuredBytesPerSample; self.bestStoredMask = bestStoredMask; self.converged = converged
            self.decoderBytes = decoderBytes; self.unfinishedMask = unfinishedMask
        }
    }

    /// Estimated bytes per sample of an upload at mask `m`.
    public func bytesPerSample(mask m: Int, _ inputs: Inputs) -> Double {
        if let measured = inputs.measuredBytesPerSample[m] { return measured }
        let fixed = Double((5 - m) * inputs.latentsPerSample) / 8
        guard let nearest = inputs.measuredBytesPerSample.keys.min(by: { abs($0 - m) < abs($1 - m) || (abs($0 - m) == abs($1 - m) && $0 < $1) }),
              let bps = inputs.measuredBytesPerSample[nearest] else { return fixed }
        return bps * Double(5 - m) / Double(5 - nearest)
    }

    /// Estimated seconds to upload the whole dataset at mask `m` with its decoder, nil without a bandwidth.
    public func uploadSeconds(mask m: Int, _ inputs: Inputs) -> Double? {
        guard let bw = inputs.bytesPerSecond, bw > 0 else { return nil }
        return (bytesPerSample(mask: m, inputs) * Double(inputs.samples) + inputs.decoderBytes) / bw
    }

    /// The smallest m whose upload fits the budget (4 if none does), nil without a bandwidth.
    public func fittingMask(_ inputs: Inputs) -> Int? {
        guard inputs.bytesPerSecond.map({ $0 > 0 }) == true else { return nil }
        return (0...4).first { uploadSeconds(mask: $0, inputs)! <= timeBudget } ?? 4
    }

    /// The request for the edge.
    public func request(_ inputs: Inputs) -> MaskRequest {
        let best = inputs.bestStoredMask
        // An unfinished upload clearer than what is held: finish it first.
        if let unfinished = inputs.unfinishedMask, best.map({ unfinished < $0 }) ?? true {
            return MaskRequest(mask: unfinished, reason: "finish the upload in progress (m = \(unfinished)) first",
                               fittingMask: fittingMask(inputs))
        }
        guard let fit = fittingMask(inputs) else {
            if best != nil { return MaskRequest(mask: nil, reason: "no bandwidth measured yet") }
            return MaskRequest(mask: 4, reason: "no bandwidth measured yet: the cheapest upload (m = 4) first")
        }
        let seconds = uploadSeconds(mask: fit, inputs)!
        let bw = String(format: "%.2f Mbit/s", inputs.bytesPerSecond! * 8 / 1e6)
        let fits = seconds <= timeBudget
            ? String(format: "m = %d fits the %.0f s budget at %@ (≈ %.1f s)", fit, timeBudget, bw, seconds)
            : String(format: "no m fits the %.0f s budget at %@; m = 4, the cheapest, takes ≈ %.1f s", timeBudget, bw, seconds)
        func answer(_ mask: Int?, _ reason: String) -> MaskRequest { MaskRequest(mask: mask, reason: reason, fittingMask: fit) }
        guard let best else { return answer(fit, fits) }
        if best == 0 { return answer(nil, "the cloud holds the clearest data (m = 0)") }
        if fit >= best { return answer(nil, "the cloud holds m = \(best); at \(bw) nothing clearer fits the budget") }
        if !inputs.converged { return answer(nil, "\(fits), but the classifier has not converged on m = \(best) yet") }
        return answer(fit, "\(fits); the classifier has converged on m = \(best)")
    }
}
