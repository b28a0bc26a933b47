import Testing
@testable import CDCAudioCodecs

@Suite struct MuLawTests {
    @Test func knownCodes() {
        // G.711 μ-law: 0 → 0xFF, largest positive → 0x80, largest negative → 0x00.
        #expect(MuLaw.encode(Int16(0)) == 0xFF)
        #expect(MuLaw.encode(Int16.max) == 0x80)
        #expect(MuLaw.encode(Int16.min) == 0x00)
        #expect(MuLaw.encode(Int16(-1)) == 0x7E)     // -1 >> 2 = -1 in 14 bits: magnitude 1
        #expect(MuLaw.decode(0xFF) == 0)
        #expect(MuLaw.decode(0x7F) == 0)
        #expect(MuLaw.decode(0x80) == 32_124)
        #expect(MuLaw.decode(0x00) == -32_124)
        // Segment boundaries of the 14-bit table (biased magnitude 33 + x): x = 30 is the last
        // value of segment 0 (0x3F), x = 31 the first of segment 1.
        #expect(MuLaw.encode(Int16(30 << 2)) == 0xFF ^ 0x0F)
        #expect(MuLaw.encode(Int16(31 << 2)) == 0xFF ^ 0x10)
        #expect(MuLaw.encode(Int16(-(31 << 2))) == 0x7F ^ 0x10)
        // Pairs as SoX 14.4.2 codes them (`sox -e u-law`).
        #expect(MuLaw.encode(Int16(1_000)) == 0xCE)
        #expect(MuLaw.encode(Int16(-1_000)) == 0x4E)
        #expect(MuLaw.encode(Int16(8_000)) == 0xA0)
        #expect(MuLaw.encode(Int16(-8_000)) == 0x20)
        #expect(MuLaw.encode(Int16(124)) == 0xEF)
        #expect(MuLaw.encode(Int16(120)) == 0xF0)
    }

    @Test func matchesSoxOnEveryMultipleOfFour() {
        // SoX rounds 16-bit samples to 14 bits where G.711's reference code (and this module)
        // truncates; on multiples of 4 the two agree. The FNV-1a hash of SoX's codes for
        // x = -32768, -32764, ..., 32760 (16 383 codes), computed with `sox -e u-law`.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for x in stride(from: -32_768, through: 32_760, by: 4) {
            hash ^= UInt64(MuLaw.encode(Int16(x)))
            hash = hash &* 0x0000_0100_0000_01B3
        }
        #expect(hash == 0x87F5_6D87_B92A_5C3A)
    }

    @Test func everyCodeDecodesAndReencodesToItself() {
        for code in 0...255 where code != 0x7F {   // 0x7F (−0) decodes to 0, which codes to 0xFF
            #expect(MuLaw.encode(MuLaw.decode(UInt8(code))) == UInt8(code))
        }
    }

    @Test func roundTripErrorWithinHalfAStep() {
        // Within the coded range (14-bit magnitude up to 8158), the error is at most half the
        // segment's step (2^(segment+1) in 14-bit units, ×4 in 16-bit) plus the 3 bits that the
        // shift to 14 bits drops.
        var worst = 0
        for x in -32_635...32_635 {
            let code = MuLaw.encode(Int16(x))
            let segment = Int((~code >> 4) & 0x07)
            let halfStep = (1 << (segment + 1)) / 2 * 4
            let error = abs(Int(MuLaw.decode(code)) - x)
            worst = max(worst, error - halfStep)
            #expect(error <= halfStep + 3, "x = \(x): error \(error), half step \(halfStep)")
        }
        #expect(worst <= 3)
    }

    @Test func floatRoundTripAndBytes() throws {
        let input = sine(frequency: 440, sampleRate: 8_000, seconds: 1, amplitude: 0.5)
        let (restored, bytes) = try MuLaw.decodeRoundTrip(samples: input)
        #expect(restored.count == input.count)
        #expect(bytes.payloadBytes == 8_000)
        #expect(bytes.framingBytes == MuLaw.clipHeaderBytes)
        #expect(bytes.total == 8_004)
        #expect(abs(bytes.bitsPerSecond(sampleCount: 8_000, sampleRate: 8_000) - 64_032) < 1e-9)
        let quality = snr(input, restored)
        print("μ-law 440 Hz sine: SNR \(quality) dB")
        #expect(quality > 35)   // G.711 gives ~38 dB SNR over a wide range of levels
        #expect(try MuLaw.encode([0, 1, -1, 2, -2]) == [0xFF, 0x80, 0x00, 0x80, 0x00])
        #expect(throws: AudioCodecError.self) { try MuLaw.encode([.infinity]) }
        #expect(throws: AudioCodecError.self) { try MuLaw.unpack([1, 0, 0, 0]) }
        #expect(throws: AudioCodecError.self) { try MuLaw.unpack([1, 0]) }
    }
}
