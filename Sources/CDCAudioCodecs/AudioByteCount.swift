/// An error of the audio baseline codecs, with a message that says what was wrong.
public enum AudioCodecError: Error, Equatable, CustomStringConvertible {
    /// An argument outside what the codec accepts (bitrate, sample rate, non-finite samples).
    case invalidArgument(String)
    /// Coded bytes that cannot be decoded (a corrupt or truncated packet or clip).
    case corruptData(String)
    /// A libopus call failed; `message` is libopus's own error string.
    case library(call: String, message: String)

    /// A one-line description of the error.
    public var description: String {
        switch self {
        case .invalidArgument(let message): return "invalid argument: \(message)"
        case .corruptData(let message): return "corrupt audio data: \(message)"
        case .library(let call, let message): return "\(call) failed: \(message)"
        }
    }
}

/// The bytes one coded clip costs on the wire: the codec's payload plus the framing a minimal
/// container needs to carry it (clip header, per-packet length prefixes).
public struct AudioByteCount: Sendable, Equatable, Hashable {
    /// Bytes produced by the codec itself (Opus packets; μ-law: one byte per sample).
    public var payloadBytes: Int
    /// Bytes of the container around the payload (see ``Opus/clipHeaderBytes`` and
    /// ``MuLaw/clipHeaderBytes``).
    public var framingBytes: Int
    /// `payloadBytes + framingBytes`.
    public var total: Int { payloadBytes + framingBytes }

    /// A count of `payloadBytes` payload and `framingBytes` framing.
    public init(payloadBytes: Int, framingBytes: Int) {
        self.payloadBytes = payloadBytes
        self.framingBytes = framingBytes
    }

    /// The sum of two counts (e.g. over the clips of a dataset).
    public static func + (lhs: AudioByteCount, rhs: AudioByteCount) -> AudioByteCount {
        AudioByteCount(payloadBytes: lhs.payloadBytes + rhs.payloadBytes,
                       framingBytes: lhs.framingBytes + rhs.framingBytes)
    }

    /// `8 * total` bits over the duration of `sampleCount` samples at `sampleRate`: the rate
    /// actually paid, framing included.
    public func bitsPerSecond(sampleCount: Int, sampleRate: Int) -> Double {
        guard sampleCount > 0, sampleRate > 0 else { return 0 }
        return Double(8 * total) * Double(sampleRate) / Double(sampleCount)
    }
}
