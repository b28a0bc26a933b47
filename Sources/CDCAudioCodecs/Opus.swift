import CDCFileIO
import COpus

/// One mono clip coded with Opus: the packets (one per 20 ms frame) and what a decoder needs to
/// restore exactly `sampleCount` time-aligned samples.
public struct OpusClip: Sendable, Equatable {
    /// Sample rate of the input and of the decoded output (8, 12, 16, 24 or 48 kHz).
    public var sampleRate: Int
    /// Number of samples of the original clip (the decoded clip has exactly as many).
    public var sampleCount: Int
    /// Leading decoded samples to drop: the encoder's lookahead (`OPUS_GET_LOOKAHEAD`).
    public var preSkip: Int
    /// The Opus packets, one 20 ms frame each, in order.
    public var packets: [[UInt8]]

    /// Makes a clip from its parts (as ``Opus/encode(_:sampleRate:bitrate:rateControl:)`` or
    /// ``Opus/unpack(_:)`` do).
    public init(sampleRate: Int, sampleCount: Int, preSkip: Int, packets: [[UInt8]]) {
        self.sampleRate = sampleRate
        self.sampleCount = sampleCount
        self.preSkip = preSkip
        self.packets = packets
    }

    /// The bytes this clip costs in the container of ``Opus/pack(_:)``: the packets as payload;
    /// the clip header and the packets' length prefixes as framing. Equals `pack(self).count` in total.
    public var bytes: AudioByteCount {
        var framing = Opus.clipHeaderBytes
        var payload = 0
        for packet in packets {
            payload += packet.count
            framing += Opus.lengthPrefixBytes(packet.count)
        }
        return AudioByteCount(payloadBytes: payload, framingBytes: framing)
    }
}

/// Opus (RFC 6716) through libopus, as a mono speech baseline codec at a fixed target bitrate.
///
/// Settings, fixed so that runs are comparable:
/// - application `OPUS_APPLICATION_AUDIO`: the baseline is judged on how faithfully it restores
///   the waveform and spectrum that a classifier sees, not on perceived intelligibility. VOIP's
///   speech tuning adds an input high-pass filter whose phase shift misaligns the waveform
///   (a 440 Hz sine at 8 kHz, 16 kbit/s: 13.7 dB SNR with VOIP, 36.8 dB with AUDIO); on three
///   noisy synthetic spoken digits at 6, 8, 12 and 16 kbit/s, AUDIO had the higher SNR and the
///   lower log-spectral distance in 10 of 12 cases each, at the same bytes within 4 %. libopus
///   still chooses SILK or CELT per frame itself;
/// - 20 ms frames (one packet per frame), complexity 10, no DTX, no in-band FEC;
/// - rate control: constrained VBR by default (libopus's default; the average rate stays at the
///   target and each packet within about one frame's budget of it), or CBR on request;
/// - bandwidth set explicitly by ``bandwidth(sampleRate:bitrate:)``: narrowband at 8 kHz, and
///   for higher input rates the widest band that both the input rate and the bitrate allow.
///
/// The encoder's lookahead (`OPUS_GET_LOOKAHEAD`: 6.5 ms, 52 samples at 8 kHz) delays the
/// decoded signal; the clip is padded with zeros by enough whole frames that the decoder
/// outputs the last input sample, and the first `preSkip` decoded samples are dropped, so the
/// decoded clip has the input's length and is time-aligned with it.
///
/// Byte accounting (``pack(_:)``): a 7-byte clip header (sample rate in kHz: 1 byte; sample
/// count: UInt32 LE; pre-skip: UInt16 LE) and before every packet its length in RFC 6716
/// Appendix B's self-delimiting form (1 byte below 252 bytes, else 2) — the minimal container
/// a stream of clips needs. The bitrate is not sent: the decoder does not need it.
public enum Opus {
    /// How the encoder spends its bitrate.
    public enum RateControl: String, Sendable, CaseIterable {
        /// Constant bitrate: every packet has the same size.
        case cbr
        /// Constrained VBR: sizes vary with the signal, the average is held at the target.
        case constrainedVBR
    }

    /// An Opus audio bandwidth (the highest coded frequency).
    public enum Bandwidth: Int, Sendable, Comparable, CaseIterable {
        /// 4 kHz.
        case narrowband = 1101
        /// 6 kHz.
        case mediumband = 1102
        /// 8 kHz.
        case wideband = 1103
        /// 12 kHz.
        case superwideband = 1104
        /// 20 kHz.
        case fullband = 1105

        /// Orders by the coded frequency range.
        public static func < (lhs: Bandwidth, rhs: Bandwidth) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// Input (and output) sample rates that Opus codes natively.
    public static let supportedSampleRates = [8_000, 12_000, 16_000, 24_000, 48_000]
    /// Bitrates accepted, in bit/s: the range the Opus specification supports (6–510 kbit/s).
    public static let bitrateRange = 6_000...510_000
    /// Frame duration in milliseconds (one packet per frame).
    public static let frameMilliseconds = 20
    /// Complexity used by the encoder (0...10; 10 is the slowest and best).
    public static let complexity = 10
    /// Bytes of the per-clip header of ``pack(_:)``.
    public static let clipHeaderBytes = 7

    /// Samples per 20 ms frame at `sampleRate`.
    public static func frameSize(sampleRate: Int) -> Int { sampleRate * frameMilliseconds / 1000 }

    /// The bandwidth the encoder is set to: the widest band below the input's Nyquist frequency
    /// (8 kHz: narrowband, 12: mediumband, 16: wideband, 24: super-wideband, 48: fullband) and
    /// the bitrate's limit (below 12 kbit/s narrowband, below 24 wideband, below 32
    /// super-wideband, else fullband), whichever is narrower.
    public static func bandwidth(sampleRate: Int, bitrate: Int) throws -> Bandwidth {
        try validate(sampleRate: sampleRate, bitrate: bitrate)
        let byRate: Bandwidth
        switch sampleRate {
        case 8_000: byRate = .narrowband
        case 12_000: byRate = .mediumband
        case 16_000: byRate = .wideband
        case 24_000: byRate = .superwideband
        default: byRate = .fullband
        }
        let byBitrate: Bandwidth
        switch bitrate {
        case ..<12_000: byBitrate = .narrowband
        case ..<24_000: byBitrate = .wideband
        case ..<32_000: byBitrate = .superwideband
        default: byBitrate = .fullband
        }
        return min(byRate, byBitrate)
    }

    /// The encoder's lookahead in samples at `sampleRate` with this module's settings: the
    /// number of leading decoded samples that ``decode(_:)`` drops.
    public static func lookahead(sampleRate: Int) throws -> Int {
        let encoder = try Encoder(sampleRate: sampleRate, bitrate: 16_000, rateControl: .constrainedVBR)
        return encoder.lookahead
    }

    /// Encodes a mono clip of `samples` in [−1, 1] (values outside are clipped by libopus) at
    /// `sampleRate` and a target `bitrate` in bit/s. Throws for an unsupported rate or bitrate
    /// or a non-finite sample.
    public static func encode(_ samples: [Float], sampleRate: Int, bitrate: Int,
                              rateControl: RateControl = .constrainedVBR) throws -> OpusClip {
        try validate(sampleRate: sampleRate, bitrate: bitrate)
        guard samples.allSatisfy(\.isFinite) else {
            throw AudioCodecError.invalidArgument("samples must be finite")
        }
        guard samples.count <= Int(UInt32.max) else {
            throw AudioCodecError.invalidArgument("a clip has at most \(UInt32.max) samples")
        }
        let encoder = try Encoder(sampleRate: sampleRate, bitrate: bitrate, rateControl: rateControl)
        let frame = frameSize(sampleRate: sampleRate)
        let preSkip = encoder.lookahead
        let frames = (samples.count + preSkip + frame - 1) / frame
        var padded = samples
        padded.append(contentsOf: repeatElement(0, count: frames * frame - samples.count))
        var packets: [[UInt8]] = []
        packets.reserveCapacity(frames)
        var buffer = [UInt8](repeating: 0, count: maxPacketBytes)
        for f in 0..<frames {
            let length = padded.withUnsafeBufferPointer { input in
                buffer.withUnsafeMutableBufferPointer { output in
                    opus_encode_float(encoder.state, input.baseAddress! + f * frame, Int32(frame),
                                      output.baseAddress!, Int32(output.count))
                }
            }
            guard length > 0 else {
                throw AudioCodecError.library(call: "opus_encode_float", message: errorString(length))
            }
            packets.append(Array(buffer[0..<Int(length)]))
        }
        return OpusClip(sampleRate: sampleRate, sampleCount: samples.count, preSkip: preSkip, packets: packets)
    }

    /// Decodes `clip` to exactly `clip.sampleCount` samples, time-aligned with the encoded input.
    /// Throws ``AudioCodecError/corruptData(_:)`` for an empty or malformed packet, a packet that
    /// is not one 20 ms frame, or too few packets for the clip's length.
    public static func decode(_ clip: OpusClip) throws -> [Float] {
        guard supportedSampleRates.contains(clip.sampleRate) else {
            throw AudioCodecError.invalidArgument("Opus sample rate must be one of \(supportedSampleRates), not \(clip.sampleRate)")
        }
        guard clip.sampleCount >= 0, clip.preSkip >= 0 else {
            throw AudioCodecError.corruptData("negative sample count or pre-skip")
        }
        let frame = frameSize(sampleRate: clip.sampleRate)
        let needed = (clip.sampleCount + clip.preSkip + frame - 1) / frame
        guard clip.packets.count == needed else {
            throw AudioCodecError.corruptData(
                "\(clip.packets.count) packets for \(clip.sampleCount) samples with pre-skip \(clip.preSkip); expected \(needed)")
        }
        var error: Int32 = 0
        guard let decoder = opus_decoder_create(Int32(clip.sampleRate), 1, &error), error == OPUS_OK else {
            throw AudioCodecError.library(call: "opus_decoder_create", message: errorString(error))
        }
        defer { opus_decoder_destroy(decoder) }
        var output = [Float](repeating: 0, count: needed * frame)
        for (index, packet) in clip.packets.enumerated() {
            guard !packet.isEmpty else {
                throw AudioCodecError.corruptData("packet \(index) is empty")
            }
            let samples = packet.withUnsafeBufferPointer { p in
                opus_packet_get_nb_samples(p.baseAddress!, Int32(p.count), Int32(clip.sampleRate))
            }
            guard samples >= 0 else {
                throw AudioCodecError.corruptData("packet \(index): \(errorString(samples))")
            }
            guard samples == frame else {
                throw AudioCodecError.corruptData("packet \(index) holds \(samples) samples, not one 20 ms frame (\(frame))")
            }
            let decoded = packet.withUnsafeBufferPointer { p in
                output.withUnsafeMutableBufferPointer { out in
                    opus_decode_float(decoder, p.baseAddress, Int32(p.count), out.baseAddress! + index * frame,
                                      Int32(frame), 0)
                }
            }
            guard decoded == frame else {
                throw AudioCodecError.corruptData("packet \(index): \(decoded < 0 ? errorString(decoded) : "decoded \(decoded) samples, not \(frame)")")
            }
        }
        return Array(output[clip.preSkip..<(clip.preSkip + clip.sampleCount)])
    }

    /// The clip in the minimal container whose size ``OpusClip/bytes`` counts: sample rate in kHz
    /// (1 byte), sample count (UInt32 LE), pre-skip (UInt16 LE), then each packet preceded by
    /// its length (RFC 6716 Appendix B: 1 byte if below 252, else 2).
    public static func pack(_ clip: OpusClip) throws -> [UInt8] {
        guard supportedSampleRates.contains(clip.sampleRate) else {
            throw AudioCodecError.invalidArgument("Opus sample rate must be one of \(supportedSampleRates), not \(clip.sampleRate)")
        }
        guard (0...Int(UInt32.max)).contains(clip.sampleCount), (0...Int(UInt16.max)).contains(clip.preSkip) else {
            throw AudioCodecError.invalidArgument("sample count or pre-skip out of range")
        }
        var out: [UInt8] = []
        out.reserveCapacity(clip.bytes.total)
        out.append(UInt8(clip.sampleRate / 1000))
        LittleEndian.append(UInt32(clip.sampleCount), to: &out)
        LittleEndian.append(UInt16(clip.preSkip), to: &out)
        for packet in clip.packets {
            guard (1...maxPacketBytes).contains(packet.count) else {
                throw AudioCodecError.invalidArgument("an Opus packet has 1...\(maxPacketBytes) bytes, not \(packet.count)")
            }
            if packet.count < 252 {
                out.append(UInt8(packet.count))
            } else {
                let first = 252 + (packet.count & 3)
                out.append(UInt8(first))
                out.append(UInt8((packet.count - first) / 4))
            }
            out.append(contentsOf: packet)
        }
        return out
    }

    /// Reads a clip written by ``pack(_:)``. Throws ``AudioCodecError/corruptData(_:)`` for a
    /// truncated container, an unknown sample rate, or a packet count that does not match the
    /// header; the packets themselves are checked by ``decode(_:)``.
    public static func unpack(_ bytes: [UInt8]) throws -> OpusClip {
        guard bytes.count >= clipHeaderBytes else {
            throw AudioCodecError.corruptData("Opus clip of \(bytes.count) bytes is shorter than its \(clipHeaderBytes)-byte header")
        }
        let sampleRate = Int(bytes[0]) * 1000
        guard supportedSampleRates.contains(sampleRate) else {
            throw AudioCodecError.corruptData("unknown sample rate code \(bytes[0])")
        }
        let sampleCount = Int(LittleEndian.load(UInt32.self, from: bytes, at: 1))
        let preSkip = Int(LittleEndian.load(UInt16.self, from: bytes, at: 5))
        var packets: [[UInt8]] = []
        var offset = clipHeaderBytes
        while offset < bytes.count {
            var length = Int(bytes[offset])
            offset += 1
            if length >= 252 {
                guard offset < bytes.count else { throw AudioCodecError.corruptData("truncated packet length") }
                length += 4 * Int(bytes[offset])
                offset += 1
            }
            guard length > 0, offset + length <= bytes.count else {
                throw AudioCodecError.corruptData("packet \(packets.count) of \(length) bytes runs past the end of the clip")
            }
            packets.append(Array(bytes[offset..<(offset + length)]))
            offset += length
        }
        let frame = frameSize(sampleRate: sampleRate)
        let needed = (sampleCount + preSkip + frame - 1) / frame
        guard packets.count == needed else {
            throw AudioCodecError.corruptData("clip holds \(packets.count) packets; its header implies \(needed)")
        }
        return OpusClip(sampleRate: sampleRate, sampleCount: sampleCount, preSkip: preSkip, packets: packets)
    }

    /// Encodes `samples`, packs, unpacks and decodes them: the restored clip (same length,
    /// time-aligned) and the bytes the packed clip cost. The experiments' entry point.
    public static func decodeRoundTrip(samples: [Float], sampleRate: Int, bitrate: Int,
                                       rateControl: RateControl = .constrainedVBR) throws -> (restored: [Float], bytes: AudioByteCount) {
        let clip = try encode(samples, sampleRate: sampleRate, bitrate: bitrate, rateControl: rateControl)
        let packed = try pack(clip)
        let restored = try decode(try unpack(packed))
        let bytes = clip.bytes
        precondition(bytes.total == packed.count, "Opus byte accounting disagrees with the container")
        return (restored, bytes)
    }

    // MARK: - Internals

    /// The most bytes of one Opus packet of one frame (RFC 6716, section 3.2.1).
    static let maxPacketBytes = 1275

    /// Bytes of the length prefix of a packet of `count` bytes in ``pack(_:)``.
    static func lengthPrefixBytes(_ count: Int) -> Int { count < 252 ? 1 : 2 }

    static func validate(sampleRate: Int, bitrate: Int) throws {
        guard supportedSampleRates.contains(sampleRate) else {
            throw AudioCodecError.invalidArgument("Opus sample rate must be one of \(supportedSampleRates) Hz, not \(sampleRate)")
        }
        guard bitrateRange.contains(bitrate) else {
            throw AudioCodecError.invalidArgument(
                "Opus bitrate must be in \(bitrateRange.lowerBound)...\(bitrateRange.upperBound) bit/s, not \(bitrate)")
        }
    }

    static func errorString(_ code: Int32) -> String {
        guard let message = opus_strerror(code) else { return "error \(code)" }
        return String(cString: message)
    }

    /// An encoder state with this module's settings; destroyed with the object.
    final class Encoder {
        let state: OpaquePointer
        let lookahead: Int

        init(sampleRate: Int, bitrate: Int, rateControl: RateControl) throws {
            let band = try Opus.bandwidth(sampleRate: sampleRate, bitrate: bitrate)
            var error: Int32 = 0
            guard let state = opus_encoder_create(Int32(sampleRate), 1, OPUS_APPLICATION_AUDIO, &error),
                  error == OPUS_OK else {
                throw AudioCodecError.library(call: "opus_encoder_create", message: Opus.errorString(error))
            }
            self.state = state
            let settings: [(String, Int32, Int32)] = [
                ("OPUS_SET_BITRATE", OPUS_SET_BITRATE_REQUEST, Int32(bitrate)),
                ("OPUS_SET_VBR", OPUS_SET_VBR_REQUEST, rateControl == .cbr ? 0 : 1),
                ("OPUS_SET_VBR_CONSTRAINT", OPUS_SET_VBR_CONSTRAINT_REQUEST, 1),
                ("OPUS_SET_COMPLEXITY", OPUS_SET_COMPLEXITY_REQUEST, Int32(Opus.complexity)),
                ("OPUS_SET_BANDWIDTH", OPUS_SET_BANDWIDTH_REQUEST, Int32(band.rawValue)),
                ("OPUS_SET_DTX", OPUS_SET_DTX_REQUEST, 0),
                ("OPUS_SET_INBAND_FEC", OPUS_SET_INBAND_FEC_REQUEST, 0),
                ("OPUS_SET_EXPERT_FRAME_DURATION", OPUS_SET_EXPERT_FRAME_DURATION_REQUEST, OPUS_FRAMESIZE_20_MS),
            ]
            for (name, request, value) in settings {
                let result = cdc_opus_encoder_ctl_set(state, request, value)
                guard result == OPUS_OK else {
                    opus_encoder_destroy(state)
                    throw AudioCodecError.library(call: name, message: Opus.errorString(result))
                }
            }
            var lookahead: Int32 = 0
            let result = cdc_opus_encoder_ctl_get(state, OPUS_GET_LOOKAHEAD_REQUEST, &lookahead)
            guard result == OPUS_OK, lookahead >= 0 else {
                opus_encoder_destroy(state)
                throw AudioCodecError.library(call: "OPUS_GET_LOOKAHEAD", message: Opus.errorString(result))
            }
            self.lookahead = Int(lookahead)
        }

        deinit { opus_encoder_destroy(state) }
    }
}
