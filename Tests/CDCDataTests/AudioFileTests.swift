import CDCData
import CSndFile
import Foundation
import Testing

/// Writes a PCM WAV file by hand: `samples` interleaved, in [−1, 1], quantized to `bits`
/// (8: unsigned, 16/24/32: signed integers) or stored as 32-bit floats. Returns what a reader
/// should get back (the quantized values scaled by 1/2^(bits−1)).
@discardableResult
func writeWAV(_ url: URL, samples: [Float], channels: Int = 1, rate: Int, bits: Int = 16, float: Bool = false) throws -> [Float] {
    var data: [UInt8] = [], expected: [Float] = []
    let bytes = float ? 4 : bits / 8
    for v in samples {
        if float {
            withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) }
            expected.append(v)
            continue
        }
        let scale = Double(1 << (bits - 1))
        let q = Int64(min(max((Double(v) * scale).rounded(), -scale), scale - 1))
        expected.append(Float(Double(q) / scale))
        let stored = bits == 8 ? UInt64(q + 128) : UInt64(bitPattern: q)
        for k in 0..<bytes { data.append(UInt8(truncatingIfNeeded: stored >> (8 * UInt64(k)))) }
    }
    try wavBytes(data: data, channels: channels, rate: rate, bits: float ? 32 : bits, formatTag: float ? 3 : 1)
        .write(to: url)
    return expected
}

/// A WAV file's bytes: RIFF header, `fmt ` chunk and a `data` chunk holding `data`; the
/// `data` chunk's size is `declaredSize` when given (to fake a truncated file).
func wavBytes(data: [UInt8], channels: Int, rate: Int, bits: Int, formatTag: UInt16, declaredSize: Int? = nil) -> Data {
    var out = Data()
    func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { out.append(contentsOf: $0) } }
    func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { out.append(contentsOf: $0) } }
    let block = channels * bits / 8
    out.append(contentsOf: Array("RIFF".utf8)); u32(36 + (declaredSize ?? data.count))
    out.append(contentsOf: Array("WAVE".utf8))
    out.append(contentsOf: Array("fmt ".utf8)); u32(16)
    u16(Int(formatTag)); u16(channels); u32(rate); u32(rate * block); u16(block); u16(bits)
    out.append(contentsOf: Array("data".utf8)); u32(declaredSize ?? data.count)
    out.append(contentsOf: data)
    return out
}

/// Writes `samples` (interleaved) through libsndfile in `format` (e.g. FLAC, 16-bit).
func writeSndFile(_ url: URL, samples: [Float], channels: Int = 1, rate: Int, format: Int32) throws {
    var info = SF_INFO()
    info.samplerate = Int32(rate); info.channels = Int32(channels); info.format = format
    guard let f = sf_open(url.path, Int32(SFM_WRITE), &info) else {
        throw DatasetError("cannot write \(url.path): \(String(cString: sf_strerror(nil)))")
    }
    defer { sf_close(f) }
    let written = samples.withUnsafeBufferPointer { sf_writef_float(f, $0.baseAddress, sf_count_t(samples.count / channels)) }
    guard written == samples.count / channels else { throw DatasetError("short write to \(url.path)") }
}

/// A sine of `frequency` Hz at `rate`, `count` samples of amplitude `amplitude`.
func sine(_ frequency: Double, rate: Int, count: Int, amplitude: Double = 0.5) -> [Float] {
    (0..<count).map { Float(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(rate))) }
}

/// The frequency of the largest DFT bin of `x` (plain O(n²) DFT, bins 1..<n/2).
func peakFrequency(_ x: [Float], rate: Int) -> Double {
    let n = x.count
    var best = 0.0, bestBin = 0
    x.withUnsafeBufferPointer { p in
        for k in 1..<(n / 2) {
            var re = 0.0, im = 0.0
            let w = 2 * Double.pi * Double(k) / Double(n)
            for t in 0..<n { let a = w * Double(t); re += Double(p[t]) * cos(a); im -= Double(p[t]) * sin(a) }
            let m = re * re + im * im
            if m > best { best = m; bestBin = k }
        }
    }
    return Double(bestBin) * Double(rate) / Double(n)
}

/// Reading clips with libsndfile, mono mixing, resampling with libsoxr, padding and cropping.
@Suite final class AudioFileTests {
    let dir = makeTemporaryDirectory("cdc-audio")
    deinit { try? FileManager.default.removeItem(at: dir) }

    func file(_ name: String) -> URL { dir.appendingPathComponent(name) }

    /// A pseudo-random ramp in [−1, 1] including both extremes.
    func values(_ n: Int) -> [Float] {
        (0..<n).map { (i: Int) -> Float in
            if i < 2 { return i == 0 ? -1 : 1 }
            let k: Int = (i * 7919) % 2001 - 1000
            return Float(k) / 1000
        }
    }

    @Test(arguments: [(8, 1, 8000), (16, 2, 16000), (24, 1, 44100), (32, 2, 8000), (16, 1, 44100), (24, 2, 16000)])
    func readsIntegerPCM(bits: Int, channels: Int, rate: Int) throws {
        let url = file("int\(bits)-\(channels)-\(rate).wav")
        let expected = try writeWAV(url, samples: values(64 * channels), channels: channels, rate: rate, bits: bits)
        let a = try AudioFile.read(url)
        #expect(a.channels == channels && a.sampleRate == rate && a.frames == 64)
        // Integer samples are scaled by 1/2^(bits−1): exact but for float rounding.
        let tolerance: Float = bits == 32 ? 1e-7 : 1e-9
        #expect(zip(a.samples, expected).allSatisfy { abs($0 - $1) <= tolerance }, "\(bits)-bit: \(Array(a.samples.prefix(6))) vs \(Array(expected.prefix(6)))")
        #expect(a.samples.count == expected.count)
    }

    @Test func readsFloatPCMAndMixesToMono() throws {
        let url = file("float.wav")
        // A value above 1 in a float file is clamped.
        var stereo = values(2 * 50)
        stereo[7] = 1.5
        try writeWAV(url, samples: stereo, channels: 2, rate: 44100, float: true)
        let a = try AudioFile.read(url)
        #expect(a.channels == 2 && a.sampleRate == 44100 && a.frames == 50)
        stereo[7] = 1
        #expect(a.samples == stereo)
        let mono = a.mono
        #expect(mono.count == 50)
        let mean: [Float] = (0..<50).map { (f: Int) -> Float in (stereo[2 * f] + stereo[2 * f + 1]) / 2 }
        #expect(zip(mono, mean).allSatisfy { (m: Float, e: Float) -> Bool in abs(m - e) < 1e-7 })
    }

    @Test func readsFLACThroughLibsndfile() throws {
        let url = file("tone.flac")
        let x = sine(1000, rate: 16000, count: 400)
        try writeSndFile(url, samples: x, rate: 16000, format: Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16))
        let a = try AudioFile.read(url)
        #expect(a.channels == 1 && a.sampleRate == 16000 && a.frames == 400)
        #expect(zip(a.samples, x).allSatisfy { abs($0 - $1) <= 2.0 / 32768 })
        // A FLAC file cut short reads fewer frames than its header announces.
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count / 2).write(to: file("cut.flac"))
        expectDatasetError(containing: ["cut.flac", "truncated"]) { _ = try AudioFile.read(file("cut.flac")) }
    }

    @Test func readsOggVorbis() throws {
        let url = file("tone.ogg")
        try writeSndFile(url, samples: sine(1000, rate: 16000, count: 1600), rate: 16000,
                         format: Int32(SF_FORMAT_OGG | SF_FORMAT_VORBIS))
        let a = try AudioFile.read(url)
        #expect(a.channels == 1 && a.sampleRate == 16000 && abs(a.frames - 1600) <= 64, "\(a.frames) frames")
        #expect(abs(peakFrequency(a.samples, rate: 16000) - 1000) <= 10)
    }

    @Test func resamplingKeepsTheFrequency() throws {
        // 440 Hz at 44.1 kHz → 8 kHz: a quarter second, 2 000 samples out.
        let x = sine(440, rate: 44100, count: 11025)
        let y = try AudioFile.resample(x, from: 44100, to: 8000)
        #expect(y.count == 2000)
        let f = peakFrequency(y, rate: 8000)
        #expect(abs(f - 440) <= 4.4, "peak at \(f) Hz")
        // The amplitude is kept (RMS of the middle, away from the edges' filter transients).
        let mid = y[200..<1800]
        let rms = (mid.reduce(0) { $0 + Double($1) * Double($1) } / Double(mid.count)).squareRoot()
        #expect(abs(rms - 0.5 / 2.0.squareRoot()) < 0.01, "rms \(rms)")
        // A tone above the new Nyquist frequency is filtered out, not aliased.
        let high = try AudioFile.resample(sine(6000, rate: 16000, count: 4000), from: 16000, to: 8000)
        let highRMS = (high[200..<1800].reduce(0) { $0 + Double($1) * Double($1) } / 1600).squareRoot()
        #expect(high.count == 2000 && highRMS < 0.01, "rms \(highRMS)")
        // Upsampling keeps the frequency too; equal rates are left alone.
        let up = try AudioFile.resample(sine(1000, rate: 8000, count: 800), from: 8000, to: 16000)
        #expect(up.count == 1600 && abs(peakFrequency(up, rate: 16000) - 1000) <= 10)
        #expect(try AudioFile.resample(x, from: 44100, to: 44100) == x)
    }

    @Test func clipMixesResamplesAndFits() throws {
        // A stereo 44.1 kHz file of 440 Hz in both channels: the clip is 8 kHz, 2 000 samples, 440 Hz.
        let url = file("stereo44.wav")
        let tone = sine(440, rate: 44100, count: 11025, amplitude: 0.4)
        try writeWAV(url, samples: tone.flatMap { [$0, $0] }, channels: 2, rate: 44100, bits: 24)
        let c = try AudioFile.clip(url, sampleRate: 8000, length: 2000)
        #expect(c.count == 2000)
        #expect(abs(peakFrequency(c, rate: 8000) - 440) <= 4.4)
        // Longer target: zero padding at the end.
        let padded = try AudioFile.clip(url, sampleRate: 8000, length: 2500)
        #expect(padded.count == 2500 && padded[2000...].allSatisfy { $0 == 0 } && padded[0..<2000] == c[...])
    }

    @Test func padsShortClipsAndCropsAroundTheLoudestSecond() {
        // Padding: zeros at the end.
        #expect(AudioFile.fit([1, 2, 3], length: 5, sampleRate: 8000) == [1, 2, 3, 0, 0])
        #expect(AudioFile.fit([1, 2, 3], length: 3, sampleRate: 8000) == [1, 2, 3])
        // 4 s at 1 kHz (1 s = 1 000 samples): quiet, with a loud second at `at`.
        func clip(loudAt at: Int) -> [Float] {
            (0..<4000).map { i in (at..<(at + 1000)).contains(i) ? (i % 2 == 0 ? 0.8 : -0.8) : (i % 2 == 0 ? 0.01 : -0.01) }
        }
        let x = clip(loudAt: 2000)
        #expect(AudioFile.loudestWindowStart(x, window: 1000) == 2000)
        // Crop of exactly the loud second, of half of it (centred), and of more (centred, clamped).
        #expect(AudioFile.fit(x, length: 1000, sampleRate: 1000) == Array(x[2000..<3000]))
        #expect(AudioFile.fit(x, length: 500, sampleRate: 1000) == Array(x[2250..<2750]))
        #expect(AudioFile.fit(x, length: 1600, sampleRate: 1000) == Array(x[1700..<3300]))
        let start = clip(loudAt: 0), end = clip(loudAt: 3000)
        #expect(AudioFile.fit(start, length: 1600, sampleRate: 1000) == Array(start[0..<1600]))
        #expect(AudioFile.fit(end, length: 1600, sampleRate: 1000) == Array(end[2400..<4000]))
        // A clip shorter than a second but longer than the target: the loudest stretch is the whole clip.
        #expect(AudioFile.fit(Array(x[0..<600]), length: 200, sampleRate: 1000) == Array(x[200..<400]))
    }

    @Test func refusesBadFilesNamingThem() throws {
        // A truncated WAV: its data chunk announces more bytes than the file holds.
        var pcm: [UInt8] = []
        for i in 0..<400 { pcm.append(UInt8(i % 256)); pcm.append(0) }
        try wavBytes(data: Array(pcm[0..<300]), channels: 1, rate: 8000, bits: 16, formatTag: 1, declaredSize: 800)
            .write(to: file("truncated.wav"))
        expectDatasetError(containing: ["truncated.wav", "truncated"]) { _ = try AudioFile.read(file("truncated.wav")) }
        // Cut inside the header.
        try wavBytes(data: pcm, channels: 1, rate: 8000, bits: 16, formatTag: 1).prefix(30).write(to: file("cut.wav"))
        expectDatasetError(containing: ["cut.wav", "not a readable audio file"]) { _ = try AudioFile.read(file("cut.wav")) }
        // Not audio at all.
        try Data("this is not a sound\n".utf8).write(to: file("text.wav"))
        expectDatasetError(containing: ["text.wav", "not a readable audio file"]) { _ = try AudioFile.read(file("text.wav")) }
        expectDatasetError(containing: ["text.wav"]) { _ = try AudioFile.clip(file("text.wav")) }
        // Zero samples.
        try wavBytes(data: [], channels: 1, rate: 8000, bits: 16, formatTag: 1).write(to: file("empty.wav"))
        expectDatasetError(containing: ["empty.wav", "zero samples"]) { _ = try AudioFile.read(file("empty.wav")) }
        expectDatasetError(containing: ["missing.wav", "no such file"]) { _ = try AudioFile.read(file("missing.wav")) }
    }
}
