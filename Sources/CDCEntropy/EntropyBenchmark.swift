/// Timing of the entropy coder on a dataset of latent codes, for `cdc bench` and the like.
///
/// ```swift
/// // Synthetic stand-ins for the 60 000 Fashion-MNIST training codes (16 × 7 × 7) at mask 0:
/// let r = try EntropyBenchmark.run(alphabetSize: 32)
/// print(r)
/// // 47040000 symbols over 32 values: 17969023 bytes coded (3.0560 bits/symbol,
/// // model estimate 3.0559), encode 0.188 s, decode 0.269 s
/// // Or the real codes, channel-major per sample, stored as u = q + L − 1:
/// let s = try EntropyBenchmark.run(symbols: u, alphabetSize: 32, channels: 16, symbolsPerChannel: 49)
/// ```
///
/// The symbols are coded the way a coded container codes them: under a static histogram
/// measured on all of them, in independent streams of `samplesPerChunk` samples. The decoded
/// symbols are compared with the input, and the timings exclude measuring the model.
public enum EntropyBenchmark {
    /// What one run measured.
    public struct Result: Sendable, CustomStringConvertible {
        /// Number of symbols coded.
        public var symbols: Int
        /// Size of their alphabet.
        public var alphabetSize: Int
        /// Bytes of all the coded streams together.
        public var codedBytes: Int
        /// The model's ideal code length of the symbols, in bits.
        public var estimatedBits: Double
        /// Wall-clock seconds to encode every chunk.
        public var encodeSeconds: Double
        /// Wall-clock seconds to decode every chunk.
        public var decodeSeconds: Double

        /// Coded bits per symbol.
        public var bitsPerSymbol: Double { symbols == 0 ? 0 : Double(codedBytes) * 8 / Double(symbols) }

        /// One line: sizes, rates and times.
        public var description: String {
            "\(symbols) symbols over \(alphabetSize) values: \(codedBytes) bytes coded ("
                + format(bitsPerSymbol, 4) + " bits/symbol, model estimate "
                + format(symbols == 0 ? 0 : estimatedBits / Double(symbols), 4) + "), encode "
                + format(encodeSeconds, 3) + " s, decode " + format(decodeSeconds, 3) + " s"
        }
    }

    /// The benchmark failed: the decoded symbols differ from the input.
    public struct Mismatch: Error, CustomStringConvertible {
        /// Index of the first differing symbol.
        public var index: Int
        /// What went wrong.
        public var description: String { "decoded symbols differ from the input at index \(index)" }
    }

    /// Codes `symbols` — samples of `channels` × `symbolsPerChannel` symbols each, channel-major —
    /// and decodes them back, timing both.
    ///
    /// - Throws: an ``EntropyCodingError`` if the symbols do not fit the alphabet or the
    ///   geometry, or ``Mismatch`` if a round trip is not exact.
    public static func run(symbols: [UInt8], alphabetSize: Int, channels: Int, symbolsPerChannel: Int,
                           samplesPerChunk: Int = 1024) throws -> Result {
        guard channels >= 1, symbolsPerChannel >= 1, samplesPerChunk >= 1 else {
            throw EntropyCodingError.invalidSymbolsPerChannel(min(channels, symbolsPerChannel, samplesPerChunk))
        }
        let chunk = samplesPerChunk * channels * symbolsPerChannel
        return try symbols.withUnsafeBufferPointer { all in
            let model = try EntropyModel.staticHistogram(measuring: all, channels: channels,
                                                         symbolsPerChannel: symbolsPerChannel,
                                                         alphabetSize: alphabetSize)
            let coder = EntropyCoder(model: model)
            let estimate = try model.estimatedBits(all, symbolsPerChannel: symbolsPerChannel)
            let clock = ContinuousClock()
            var streams: [[UInt8]] = []
            streams.reserveCapacity(all.count / chunk + 1)
            let encode = try clock.measure {
                var start = 0
                while start < all.count {
                    let part = UnsafeBufferPointer(rebasing: all[start ..< min(start + chunk, all.count)])
                    var bytes: [UInt8] = []
                    try coder.encode(part, symbolsPerChannel: symbolsPerChannel, appendingTo: &bytes)
                    streams.append(bytes)
                    start += chunk
                }
            }
            var decoded = [UInt8](repeating: 0, count: all.count)
            let decode = try decoded.withUnsafeMutableBufferPointer { out in
                try clock.measure {
                    var start = 0
                    for stream in streams {
                        let part = UnsafeMutableBufferPointer(rebasing: out[start ..< min(start + chunk, all.count)])
                        try stream.withUnsafeBufferPointer {
                            try coder.decode($0, into: part, symbolsPerChannel: symbolsPerChannel)
                        }
                        start += chunk
                    }
                }
            }
            if let i = all.indices.first(where: { decoded[$0] != all[$0] }) { throw Mismatch(index: i) }
            return Result(symbols: all.count, alphabetSize: alphabetSize,
                          codedBytes: streams.reduce(0) { $0 + $1.count }, estimatedBits: estimate,
                          encodeSeconds: seconds(encode), decodeSeconds: seconds(decode))
        }
    }

    /// ``run(symbols:alphabetSize:channels:symbolsPerChannel:samplesPerChunk:)`` on synthetic
    /// latents shaped like the Fashion-MNIST training codes (by default 60 000 samples of
    /// 16 × 7 × 7): each channel has its own peaked, two-sided geometric distribution over the
    /// alphabet (for two symbols, its own probability of a 1), drawn from a seeded generator.
    public static func run(alphabetSize: Int, samples: Int = 60000, channels: Int = 16,
                           symbolsPerChannel: Int = 49, seed: UInt64 = 1) throws -> Result {
        let symbols = syntheticLatents(alphabetSize: alphabetSize, samples: samples, channels: channels,
                                       symbolsPerChannel: symbolsPerChannel, seed: seed)
        return try run(symbols: symbols, alphabetSize: alphabetSize, channels: channels,
                       symbolsPerChannel: symbolsPerChannel)
    }

    /// The synthetic latents of ``run(alphabetSize:samples:channels:symbolsPerChannel:seed:)``.
    public static func syntheticLatents(alphabetSize: Int, samples: Int, channels: Int, symbolsPerChannel: Int,
                                        seed: UInt64) -> [UInt8] {
        precondition((1...256).contains(alphabetSize) && samples >= 0 && channels >= 1 && symbolsPerChannel >= 1)
        var rng = SplitMix64(seed: seed)
        // Per channel, a cumulative distribution in units of 2^32: a peak at a random symbol
        // with a random decay per step on either side.
        var cdfs: [[UInt64]] = []
        for _ in 0..<channels {
            let peak = Int(rng.next() % UInt64(alphabetSize))
            let decay = 0.15 + 0.8 * Double(rng.next() >> 11) / Double(1 << 53)
            var weights = (0..<alphabetSize).map { s -> Double in
                var w = 1.0
                for _ in 0..<abs(s - peak) { w *= decay }
                return w
            }
            let total = weights.reduce(0, +)
            weights = weights.map { $0 / total }
            var acc = 0.0
            cdfs.append(weights.map { w in acc += w; return UInt64(min(acc, 1) * 4294967296) })
        }
        var out = [UInt8](repeating: 0, count: samples * channels * symbolsPerChannel)
        var i = 0
        for _ in 0..<samples {
            for c in 0..<channels {
                let cdf = cdfs[c]
                for _ in 0..<symbolsPerChannel {
                    let r = rng.next() >> 32
                    var s = 0
                    while s < alphabetSize - 1 && r >= cdf[s] { s += 1 }
                    out[i] = UInt8(s)
                    i += 1
                }
            }
        }
        return out
    }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// A small deterministic generator (SplitMix64) for synthetic data and tests: the same
/// sequence on every machine.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `value` with `digits` decimals, without Foundation.
func format(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return String(value) }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled - Double(whole) * scale)
    var text = String(fraction)
    while text.count < digits { text = "0" + text }
    return (value < 0 && scaled > 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + text : "")
}
