import CSndFile
import CSoxr
import Foundation

/// A decoded audio file: its samples as floats in [−1, 1], interleaved frame by frame
/// (`frames × channels`), at the file's own sample rate.
///
/// ```swift
/// let file = try AudioFile.read(url)               // any format libsndfile reads
/// let clip = try AudioFile.clip(url, sampleRate: 8000, length: 8000)   // mono, 8 kHz, 1 s
/// ```
public struct AudioFile: Sendable, Equatable {
    /// Samples in [−1, 1], interleaved: frame `f`, channel `c` is `samples[f × channels + c]`.
    public var samples: [Float]
    /// Number of channels (1 mono, 2 stereo, …).
    public var channels: Int
    /// Frames per second.
    public var sampleRate: Int
    /// Number of frames (samples per channel).
    public var frames: Int { channels > 0 ? samples.count / channels : 0 }

    /// File extensions the audio loaders look for (compared case-insensitively): what
    /// libsndfile reads (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, AU).
    public static let extensions: Set<String> = ["wav", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "au"]

    /// A clip from interleaved samples.
    public init(samples: [Float], channels: Int, sampleRate: Int) {
        precondition(channels > 0 && samples.count % channels == 0, "\(samples.count) samples do not make frames of \(channels) channels")
        self.samples = samples; self.channels = channels; self.sampleRate = sampleRate
    }

    /// Reads `url` with libsndfile (WAV 8/16/24/32-bit integer or float PCM, FLAC, Ogg, MP3,
    /// AIFF, …): integer samples scaled to [−1, 1), float samples clamped to [−1, 1].
    ///
    /// Errors name the file: not an audio file libsndfile recognises, a truncated file (a WAV
    /// whose `data` chunk is shorter than its header says, or fewer frames than announced),
    /// a file of zero samples, an implausible sample rate or channel count.
    public static func read(_ url: URL) throws(DatasetError) -> AudioFile {
        let name = url.path
        guard FileManager.default.fileExists(atPath: name) else { throw DatasetError("\(name): no such file") }
        try checkRIFFLength(url)
        var info = SF_INFO()
        guard let file = sf_open(name, Int32(SFM_READ), &info) else {
            let reason = String(cString: sf_strerror(nil))
            throw DatasetError("\(name): not a readable audio file (\(reason))")
        }
        defer { sf_close(file) }
        let channels = Int(info.channels), rate = Int(info.samplerate), frames = Int(info.frames)
        guard channels > 0, channels <= 1024 else { throw DatasetError("\(name): invalid channel count \(channels)") }
        guard rate > 0, rate <= 10_000_000 else { throw DatasetError("\(name): invalid sample rate \(rate)") }
        guard frames > 0 else { throw DatasetError("\(name): the audio file holds zero samples") }
        guard frames <= (1 << 31) / channels else { throw DatasetError("\(name): too long (\(frames) frames)") }
        // Float files are not rescaled; integer files are normalised to [−1, 1).
        sf_command(file, Int32(SFC_SET_NORM_FLOAT), nil, Int32(SF_TRUE))
        var read = 0
        var samples = [Float](unsafeUninitializedCapacity: frames * channels) { buf, n in
            read = Int(sf_readf_float(file, buf.baseAddress, sf_count_t(frames)))
            n = max(0, read) * channels
        }
        if read < frames {
            // Ogg and MP3 announce an estimate; a short clean read of those is their real length.
            let major = info.format & Int32(SF_FORMAT_TYPEMASK)
            let estimated = major == Int32(SF_FORMAT_OGG) || major == Int32(SF_FORMAT_MPEG)
            if read <= 0 || !estimated || sf_error(file) != Int32(SF_ERR_NO_ERROR) {
                var message = String(cString: sf_strerror(file))
                if message == "No Error." { message = "unexpected end of file" }
                throw DatasetError("\(name): truncated audio file: read \(max(0, read)) of \(frames) frames (\(message))")
            }
        }
        // Integer PCM is already in [−1, 1); other encodings (float, lossy codecs) are clamped.
        let subtype = info.format & Int32(SF_FORMAT_SUBMASK)
        let integerPCM = [SF_FORMAT_PCM_S8, SF_FORMAT_PCM_16, SF_FORMAT_PCM_24, SF_FORMAT_PCM_32, SF_FORMAT_PCM_U8]
            .contains { Int32($0) == subtype }
        if !integerPCM { clamp(&samples) }
        return AudioFile(samples: samples, channels: channels, sampleRate: rate)
    }

    /// Clamps every sample to [−1, 1] (NaN to 0).
    static func clamp(_ samples: inout [Float]) {
        samples.withUnsafeMutableBufferPointer { s in
            for i in s.indices {
                let v = s[i]
                s[i] = v.isNaN ? 0 : Float.minimum(Float.maximum(v, -1), 1)
            }
        }
    }

    /// Refuses a RIFF/WAVE file whose `data` chunk announces more bytes than the file holds
    /// (libsndfile would silently read the shorter part). Streaming writers' placeholder sizes
    /// (0 and 0xFFFFFFFF) are accepted; other files are left to libsndfile.
    static func checkRIFFLength(_ url: URL) throws(DatasetError) {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw DatasetError("\(url.path): cannot open for reading")
        }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size >= 12 else { return }
        func read(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard (try? handle.seek(toOffset: offset)) != nil, let d = try? handle.read(upToCount: count), d.count == count else { return nil }
            return [UInt8](d)
        }
        guard let head = read(0, 12), head[0..<4] == [0x52, 0x49, 0x46, 0x46][...], head[8..<12] == [0x57, 0x41, 0x56, 0x45][...] else { return }
        var offset: UInt64 = 12
        for _ in 0..<256 {
            guard offset + 8 <= size, let chunk = read(offset, 8) else { return }
            let length = UInt64(chunk[4]) | UInt64(chunk[5]) << 8 | UInt64(chunk[6]) << 16 | UInt64(chunk[7]) << 24
            if chunk[0..<4] == [0x64, 0x61, 0x74, 0x61][...] {   // "data"
                if length != 0 && length != 0xFFFF_FFFF && offset + 8 + length > size {
                    throw DatasetError("\(url.path): truncated WAV file: its data chunk announces \(length) bytes but the file "
                                       + "holds \(size - min(size, offset + 8)) after the chunk header")
                }
                return
            }
            offset += 8 + length + (length & 1)
        }
    }

    /// The mono mix: each frame's mean over the channels.
    public var mono: [Float] {
        if channels == 1 { return samples }
        let c = channels, n = frames
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            samples.withUnsafeBufferPointer { s in
                let scale = 1 / Float(c)
                for f in 0..<n {
                    var sum: Float = 0
                    for k in 0..<c { sum += s[f * c + k] }
                    out[f] = sum * scale
                }
            }
            count = n
        }
    }

    /// `samples` (mono) resampled from `rate` to `target` samples per second with libsoxr
    /// (`soxr_oneshot`, high quality: 20-bit, linear phase); `round(count × target / rate)`
    /// samples come out, clamped to [−1, 1]. The same array when the rates are equal.
    public static func resample(_ samples: [Float], from rate: Int, to target: Int) throws(DatasetError) -> [Float] {
        guard rate > 0, target > 0 else { throw DatasetError("cannot resample from \(rate) Hz to \(target) Hz") }
        if rate == target || samples.isEmpty { return samples }
        let outCount = max(1, Int((Double(samples.count) * Double(target) / Double(rate)).rounded()))
        var failure: String?
        var out = [Float](repeating: 0, count: outCount)
        var quality = soxr_quality_spec(UInt(SOXR_HQ), 0)
        var io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        samples.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var idone = 0, odone = 0
                if let error = soxr_oneshot(Double(rate), Double(target), 1, src.baseAddress, src.count, &idone,
                                            dst.baseAddress, dst.count, &odone, &io, &quality, nil) {
                    failure = String(cString: error)
                }
            }
        }
        if let failure { throw DatasetError("resampling from \(rate) Hz to \(target) Hz failed: \(failure)") }
        // soxr flushes its tail in one shot; should it stop short, the rest stays silent. The
        // filter's ringing may overshoot full scale slightly: clamp back to [−1, 1].
        clamp(&out)
        return out
    }

    /// The start of the loudest `window` samples of `samples` (the largest sum of squares over
    /// a sliding window; the first such start on ties); 0 when the clip is not longer than the window.
    public static func loudestWindowStart(_ samples: [Float], window: Int) -> Int {
        let n = samples.count
        guard window > 0, n > window else { return 0 }
        return samples.withUnsafeBufferPointer { s in
            var energy: Double = 0
            for i in 0..<window { energy += Double(s[i]) * Double(s[i]) }
            var best = energy, bestStart = 0
            for start in 1...(n - window) {
                let out = Double(s[start - 1]), new = Double(s[start + window - 1])
                energy += new * new - out * out
                if energy > best * (1 + 1e-12) + 1e-30 { best = energy; bestStart = start }
            }
            return bestStart
        }
    }

    /// `samples` made exactly `length` long: a shorter clip is padded with zeros at the end; a
    /// longer one is cropped to the `length` samples centred on its loudest one-second stretch
    /// (`sampleRate` samples, or the whole clip when shorter), the window clamped to the clip.
    public static func fit(_ samples: [Float], length: Int, sampleRate: Int) -> [Float] {
        precondition(length > 0, "the clip length must be positive")
        let n = samples.count
        if n == length { return samples }
        if n < length { return samples + [Float](repeating: 0, count: length - n) }
        let window = min(max(1, sampleRate), n)
        let loud = loudestWindowStart(samples, window: window)
        let centre = loud + window / 2
        let start = min(max(0, centre - length / 2), n - length)
        return Array(samples[start..<(start + length)])
    }

    /// Reads `url` and makes it one model input: the mono mix (mean of the channels), resampled
    /// to `sampleRate` when the file's rate differs, then padded or cropped to `length`
    /// samples (see ``fit(_:length:sampleRate:)``). Errors name the file.
    public static func clip(_ url: URL, sampleRate: Int = 8000, length: Int = 8000) throws(DatasetError) -> [Float] {
        let file = try read(url)
        var mono = file.mono
        if file.sampleRate != sampleRate {
            do { mono = try resample(mono, from: file.sampleRate, to: sampleRate) } catch {
                throw DatasetError("\(url.path): \(error.description)")
            }
        }
        return fit(mono, length: length, sampleRate: sampleRate)
    }
}
