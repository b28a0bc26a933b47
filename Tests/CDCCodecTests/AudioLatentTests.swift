import CDCEntropy
import Foundation
import Testing
@testable import CDCCodec

/// Containers of 1-D (audio) latents: `cdc-ae-1d` gives K = 16 channels × L/16 positions per clip.
@Suite struct AudioLatentTests {
    /// A full-length clip's latent (8 000 samples → 16 × 500) at every mask, fixed-length and
    /// entropy-coded, written and read back bit-exactly.
    @Test(arguments: 0...4)
    func clipLatentsRoundTripBitExactly(mask: Int) throws {
        let c = try randomContainer(mask: mask, shape: [16, 500], count: 7, labelled: true, classes: 10,
                                    samplesPerChunk: 3, seed: 4242 + UInt64(mask))
        for file in [try c.encoded(), try c.entropyCoded().encoded()] {
            let back = try LatentContainer.decode(file)
            #expect(back.latentShape == [16, 500])
            #expect(back.symbols == c.symbols)
            #expect(back.labels == c.labels)
            #expect(back.mask == mask && back.classes == 10 && back.decoderHash == c.decoderHash)
            #expect(try back.encoded() == file || back.codingChoice != c.codingChoice)
        }
        // Re-encoding the coded file's symbols in the same mode gives the same bytes.
        let coded = try c.entropyCoded()
        #expect(try LatentContainer.decode(coded.encoded()).encoded() == coded.encoded())
    }

    /// Small audio-shaped files: every single-byte change of every byte is rejected, fixed-length
    /// and coded (the CRC every-byte check of the image containers, on [K, l] latents).
    @Test func everySingleByteChangeOfAnAudioContainerIsDetected() throws {
        let fixed = try randomContainer(mask: 4, shape: [16, 2], count: 5, labelled: true, classes: 10,
                                        samplesPerChunk: 2, seed: 77)
        let coded = try randomContainer(mask: 2, shape: [16, 2], count: 4, labelled: true, classes: 10,
                                        samplesPerChunk: 3, seed: 78).entropyCoded()
        for file in [try fixed.encoded(), try coded.encoded()] {
            var rejected = 0
            for offset in file.indices {
                for delta in 1...255 {
                    var bytes = file
                    bytes[offset] ^= UInt8(delta)
                    if (try? LatentContainer.decode(bytes)) == nil { rejected += 1 } else {
                        Issue.record("byte \(offset) ^ \(delta) of a \(file.count)-byte audio container decoded")
                    }
                }
            }
            #expect(rejected == file.count * 255)
        }
    }

    /// The report gives rates per audio sample for [K, l] latents (16 samples per position).
    @Test func reportSpeaksOfAudioSamples() throws {
        let c = try randomContainer(mask: 4, shape: [16, 500], count: 3, labelled: true, classes: 10, seed: 9)
        let text = try LatentContainer.decode(c.encoded()).report(path: nil)
        #expect(text.contains("bits per audio sample"))
        #expect(text.contains("8000 audio samples per clip"))
    }
}
