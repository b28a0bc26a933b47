import CDCEntropy

/// Per-sample rANS coding of quantized symbols under a static histogram counted once on
/// calibration samples (no training): one table per channel, each sample coded as its own
/// stream so that it can be sent and decoded alone. The serialized histogram is a one-off
/// transfer (``oneOffBytes``).
public struct StaticSymbolCoder: Sendable {
    public let model: EntropyModel
    /// Channels (one frequency table each) and symbols per channel of one sample.
    public let channels: Int, symbolsPerChannel: Int
    public var symbolsPerSample: Int { channels * symbolsPerChannel }
    let coder: EntropyCoder

    /// Counts the histogram of `calibration` (whole samples of `channels × symbolsPerChannel`
    /// symbols, concatenated) over an alphabet of `alphabetSize` symbols.
    public init(calibration: [UInt16], channels: Int, symbolsPerChannel: Int, alphabetSize: Int) throws {
        let per = channels * symbolsPerChannel
        guard per > 0, !calibration.isEmpty, calibration.count % per == 0 else {
            throw SplitError("calibration holds \(calibration.count) symbols, not whole samples of \(per)")
        }
        // Samples follow one another, so channel c of every sample is one run per sample: count
        // the histogram over a channel-major copy.
        let n = calibration.count / per
        var channelMajor = [UInt16](repeating: 0, count: calibration.count)
        for s in 0..<n {
            for c in 0..<channels {
                let src = s * per + c * symbolsPerChannel, dst = (c * n + s) * symbolsPerChannel
                for j in 0..<symbolsPerChannel { channelMajor[dst + j] = calibration[src + j] }
            }
        }
        try self.init(model: EntropyModel.staticHistogram(measuring: channelMajor, channels: channels,
                                                          symbolsPerChannel: n * symbolsPerChannel, alphabetSize: alphabetSize),
                      channels: channels, symbolsPerChannel: symbolsPerChannel)
    }

    /// A coder for a model received from the device (``serialized``).
    public init(model: EntropyModel, channels: Int, symbolsPerChannel: Int) throws {
        guard model.channels == channels else {
            throw SplitError("the histogram has \(model.channels) tables for \(channels) channels")
        }
        self.model = model; self.channels = channels; self.symbolsPerChannel = symbolsPerChannel
        coder = EntropyCoder(model: model)
    }

    /// The histogram's bytes (what the device sends once).
    public var oneOffBytes: Int { model.serialized().count }

    /// One sample's symbols (``symbolsPerSample`` of them) coded, appended to `output`.
    public func encode(_ symbols: UnsafeBufferPointer<UInt16>, appendingTo output: inout [UInt8]) throws {
        guard symbols.count == symbolsPerSample else {
            throw SplitError("a sample has \(symbolsPerSample) symbols, not \(symbols.count)")
        }
        try coder.encode(symbols, symbolsPerChannel: symbolsPerChannel, appendingTo: &output)
    }

    /// The symbols of `count` samples, back to back, each coded on its own: one payload per sample.
    public func encodeSamples(_ symbols: [UInt16], count: Int) throws -> [[UInt8]] {
        let per = symbolsPerSample
        guard symbols.count == count * per else {
            throw SplitError("\(count) samples have \(count * per) symbols, not \(symbols.count)")
        }
        return try symbols.withUnsafeBufferPointer { all in
            try (0..<count).map { i in
                var out: [UInt8] = []
                try encode(UnsafeBufferPointer(rebasing: all[(i * per)..<((i + 1) * per)]), appendingTo: &out)
                return out
            }
        }
    }

    /// One sample's symbols from its code; a stream that is not exactly one sample's code throws.
    public func decode(_ bytes: ArraySlice<UInt8>) throws -> [UInt16] {
        do {
            return try [UInt16](unsafeUninitializedCapacity: symbolsPerSample) { out, initialized in
                try bytes.withUnsafeBufferPointer { b in
                    try coder.decode(b, into: out, symbolsPerChannel: symbolsPerChannel)
                }
                initialized = symbolsPerSample
            }
        } catch let e as EntropyCodingError {
            throw SplitError("the coded sample is corrupt or truncated: \(e)")
        }
    }
}
