import Foundation
import Testing
@testable import CDCAudioCodecs

/// A `seconds`-long sine of `frequency` Hz and amplitude `amplitude` at `sampleRate`.
func sine(frequency: Double, sampleRate: Int, seconds: Double, amplitude: Float = 0.5) -> [Float] {
    let n = Int(Double(sampleRate) * seconds)
    return (0..<n).map { amplitude * Float(sin(2 * Double.pi * frequency * Double($0) / Double(sampleRate))) }
}

/// Signal-to-noise ratio in dB of `restored` against `original`.
func snr(_ original: [Float], _ restored: [Float]) -> Double {
    var signal = 0.0, noise = 0.0
    for (x, y) in zip(original, restored) {
        signal += Double(x) * Double(x)
        noise += Double(x - y) * Double(x - y)
    }
    return 10 * log10(signal / max(noise, 1e-30))
}

/// The lag in -maxLag...maxLag at which the cross-correlation of `a` and `b` peaks
/// (positive: `b` is late).
func correlationPeakLag(_ a: [Float], _ b: [Float], maxLag: Int) -> Int {
    var best = 0
    var bestValue = -Double.infinity
    for lag in -maxLag...maxLag {
        var sum = 0.0
        for i in a.indices where i + lag >= 0 && i + lag < b.count {
            sum += Double(a[i]) * Double(b[i + lag])
        }
        if sum > bestValue { bestValue = sum; best = lag }
    }
    return best
}

@Suite struct OpusTests {
    @Test func sineRoundTripAt16kbitIsFaithfulAndAligned() throws {
        let input = sine(frequency: 440, sampleRate: 8_000, seconds: 1)
        let (restored, bytes) = try Opus.decodeRoundTrip(samples: input, sampleRate: 8_000, bitrate: 16_000)
        #expect(restored.count == input.count)
        let quality = snr(input, restored)
        print("Opus 8 kHz 16 kbit/s sine: SNR \(quality) dB, \(bytes)")
        #expect(quality > 28)   // measured 36.8 dB (libopus 1.3.1)
        // A 440 Hz sine repeats every ~18 samples; the search window is narrower than half of that,
        // so the peak is unambiguous. Non-periodic alignment is checked on a chirp below.
        #expect(abs(correlationPeakLag(input, restored, maxLag: 8)) <= 2)
    }

    @Test func chirpIsTimeAligned() throws {
        // A rising chirp (200 Hz → 3 kHz) under a Hann window: no periodicity, so a misalignment
        // of any size shows up as an off-zero peak.
        let rate = 8_000, n = 8_000
        let input: [Float] = (0..<n).map { i in
            let t = Double(i) / Double(rate)
            let phase = 2 * Double.pi * (200 * t + 0.5 * 2_800 * t * t)
            let window = 0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(n - 1))
            return Float(0.5 * window * sin(phase))
        }
        let (restored, _) = try Opus.decodeRoundTrip(samples: input, sampleRate: rate, bitrate: 16_000)
        let lag = correlationPeakLag(input, restored, maxLag: 200)
        print("Opus chirp: peak lag \(lag), SNR \(snr(input, restored)) dB")
        #expect(abs(lag) <= 2)
    }

    @Test func higherBitrateCostsMoreAndIsNoWorse() throws {
        let input = sine(frequency: 440, sampleRate: 8_000, seconds: 1)
        var previous: (bytes: Int, snr: Double)?
        // 6–16 kbit/s, the baseline's range. (Above, libopus may switch the sine to CELT, whose
        // SNR is not monotone in the bitrate: 36.1 dB at 24 kbit/s against 36.8 at 16.)
        for bitrate in [6_000, 8_000, 12_000, 16_000] {
            let (restored, bytes) = try Opus.decodeRoundTrip(samples: input, sampleRate: 8_000, bitrate: bitrate)
            let quality = snr(input, restored)
            print("Opus 8 kHz \(bitrate) bit/s: \(bytes.total) bytes (\(bytes.payloadBytes) + \(bytes.framingBytes)), SNR \(quality) dB")
            if let previous {
                #expect(bytes.total >= previous.bytes)
                #expect(quality >= previous.snr - 0.5)
            }
            previous = (bytes.total, quality)
        }
    }

    @Test(arguments: [6_000, 8_000, 12_000, 16_000])
    func bytesPerSecondNearTarget(bitrate: Int) throws {
        // 2 s of a speech-like signal: a 150 Hz harmonic series with vibrato, amplitude-modulated
        // at a syllable rate, plus a little noise.
        let rate = 8_000
        var generator = SplitMix(seed: 7)
        let input: [Float] = (0..<(2 * rate)).map { i in
            let t = Double(i) / Double(rate)
            let f0 = 150 + 10 * sin(2 * Double.pi * 3 * t)
            var x = 0.0
            for k in 1...12 { x += sin(2 * Double.pi * f0 * Double(k) * t) / Double(k) }
            let envelope = 0.55 + 0.45 * sin(2 * Double.pi * 4 * t)
            return Float(0.2 * envelope * x + 0.01 * (generator.nextUnit() - 0.5))
        }
        for rateControl in Opus.RateControl.allCases {
            let clip = try Opus.encode(input, sampleRate: rate, bitrate: bitrate, rateControl: rateControl)
            let bytes = clip.bytes
            #expect(bytes.total == (try Opus.pack(clip)).count)
            let perSecond = bytes.bitsPerSecond(sampleCount: input.count, sampleRate: rate)
            print("Opus \(rateControl) target \(bitrate): \(perSecond) bit/s, payload \(bytes.payloadBytes), framing \(bytes.framingBytes), \(clip.packets.count) packets")
            #expect(abs(perSecond - Double(bitrate)) <= 0.25 * Double(bitrate))
        }
    }

    @Test func cbrPacketsHaveTheTargetSize() throws {
        let input = sine(frequency: 440, sampleRate: 8_000, seconds: 0.5)
        let clip = try Opus.encode(input, sampleRate: 8_000, bitrate: 16_000, rateControl: .cbr)
        // 16 kbit/s × 20 ms = 40 bytes per packet.
        #expect(clip.packets.allSatisfy { $0.count == 40 })
        #expect(clip.bytes.framingBytes == Opus.clipHeaderBytes + clip.packets.count)
    }

    @Test func lookaheadAndPacketCount() throws {
        let lookahead = try Opus.lookahead(sampleRate: 8_000)
        #expect(lookahead == 52)   // 2.5 ms + 4 ms delay compensation at 8 kHz
        let clip = try Opus.encode([Float](repeating: 0, count: 8_000), sampleRate: 8_000, bitrate: 8_000)
        #expect(clip.preSkip == lookahead)
        #expect(clip.packets.count == (8_000 + lookahead + 159) / 160)
    }

    @Test func sixteenKilohertzInputIsWideband() throws {
        #expect(try Opus.bandwidth(sampleRate: 16_000, bitrate: 16_000) == .wideband)
        #expect(try Opus.bandwidth(sampleRate: 16_000, bitrate: 8_000) == .narrowband)
        #expect(try Opus.bandwidth(sampleRate: 8_000, bitrate: 64_000) == .narrowband)
        let input = sine(frequency: 3_000, sampleRate: 16_000, seconds: 1)
        let (restored, bytes) = try Opus.decodeRoundTrip(samples: input, sampleRate: 16_000, bitrate: 16_000)
        #expect(restored.count == input.count)
        let quality = snr(input, restored)
        print("Opus 16 kHz 16 kbit/s 3 kHz sine: SNR \(quality) dB, \(bytes)")
        // 3 kHz is above narrowband's 4 kHz band edge only at 8 kHz sampling: coded wideband, it survives.
        #expect(quality > 10)
        #expect(abs(correlationPeakLag(input, restored, maxLag: 2)) <= 2)
    }

    @Test func emptyAndShortClips() throws {
        for n in [0, 1, 159, 160, 161] {
            let input = sine(frequency: 440, sampleRate: 8_000, seconds: Double(n) / 8_000)
            let (restored, _) = try Opus.decodeRoundTrip(samples: input, sampleRate: 8_000, bitrate: 12_000)
            #expect(restored.count == n)
        }
    }

    @Test func invalidArgumentsThrow() {
        let input = sine(frequency: 440, sampleRate: 8_000, seconds: 0.1)
        #expect(throws: AudioCodecError.self) { try Opus.encode(input, sampleRate: 8_000, bitrate: 5_999) }
        #expect(throws: AudioCodecError.self) { try Opus.encode(input, sampleRate: 8_000, bitrate: 600_000) }
        #expect(throws: AudioCodecError.self) { try Opus.encode(input, sampleRate: 44_100, bitrate: 16_000) }
        #expect(throws: AudioCodecError.self) { try Opus.encode([0, .nan], sampleRate: 8_000, bitrate: 16_000) }
        do {
            _ = try Opus.encode(input, sampleRate: 11_025, bitrate: 16_000)
            Issue.record("expected an error")
        } catch let error as AudioCodecError {
            #expect(error.description.contains("11025"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func corruptPacketsThrow() throws {
        let input = sine(frequency: 440, sampleRate: 8_000, seconds: 0.2)
        let clip = try Opus.encode(input, sampleRate: 8_000, bitrate: 16_000)
        // TOC code 3 (an arbitrary number of frames) with a frame count of 0: invalid.
        var bad = clip
        bad.packets[2] = [clip.packets[2][0] | 0x03, 0x00]
        #expect(throws: AudioCodecError.self) { try Opus.decode(bad) }
        // TOC code 1 (two frames of equal size) with an odd number of bytes after the TOC: invalid.
        bad = clip
        bad.packets[1] = [(clip.packets[1][0] & 0xFC) | 0x01, 1, 2, 3]
        #expect(throws: AudioCodecError.self) { try Opus.decode(bad) }
        // An empty packet (libopus would conceal it as a loss).
        bad = clip
        bad.packets[0] = []
        #expect(throws: AudioCodecError.self) { try Opus.decode(bad) }
        // A packet of a different frame duration (TOC config 0: SILK NB 10 ms).
        bad = clip
        bad.packets[3] = [0x00] + clip.packets[3].dropFirst()
        #expect(throws: AudioCodecError.self) { try Opus.decode(bad) }
        // A missing packet.
        bad = clip
        bad.packets.removeLast()
        #expect(throws: AudioCodecError.self) { try Opus.decode(bad) }
    }

    @Test func corruptContainersThrow() throws {
        let clip = try Opus.encode(sine(frequency: 440, sampleRate: 8_000, seconds: 0.2), sampleRate: 8_000, bitrate: 8_000)
        let packed = try Opus.pack(clip)
        #expect(try Opus.unpack(packed) == clip)
        #expect(throws: AudioCodecError.self) { try Opus.unpack(Array(packed.dropLast())) }
        #expect(throws: AudioCodecError.self) { try Opus.unpack(Array(packed.prefix(5))) }
        var wrongRate = packed
        wrongRate[0] = 44
        #expect(throws: AudioCodecError.self) { try Opus.unpack(wrongRate) }
        var wrongCount = packed
        wrongCount[2] &+= 10   // + 2560 samples: more packets implied than present
        #expect(throws: AudioCodecError.self) { try Opus.unpack(wrongCount) }
    }

    @Test func longPacketsUseTwoByteLengths() throws {
        // 256 kbit/s at 48 kHz: 640-byte packets, whose lengths take 2 bytes.
        let input = sine(frequency: 1_000, sampleRate: 48_000, seconds: 0.1)
        let clip = try Opus.encode(input, sampleRate: 48_000, bitrate: 256_000, rateControl: .cbr)
        #expect(clip.packets.allSatisfy { $0.count >= 252 })
        #expect(clip.bytes.framingBytes == Opus.clipHeaderBytes + 2 * clip.packets.count)
        let packed = try Opus.pack(clip)
        #expect(packed.count == clip.bytes.total)
        #expect(try Opus.unpack(packed) == clip)
    }
}

/// SplitMix64, for reproducible test noise.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A uniform Double in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
