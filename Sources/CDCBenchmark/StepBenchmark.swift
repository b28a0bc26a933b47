import CDCCodec
import CDCData
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation

/// What `cdc bench` times and how: the spec's steps, measured exactly as the PyTorch
/// reference (`torch_reference.py --bench`) measures them.
public struct StepBenchmarkSettings: Sendable {
    /// Batch sizes of the training steps, of encode/decode and of the audio steps.
    public var batch = 128, codecBatch = 512, audioBatch = 64
    /// Audio length L (divisible by 16) and classes.
    public var audioLen = 8000, audioClasses = 10
    /// Quantizer mask m and guidance weight α of the edge step.
    public var mask = 4
    public var alpha: Float = EdgeConfig.defaultAlpha
    /// `resnext-11` or `resnext-29`.
    public var cloudModel = "resnext-11"
    /// Untimed calls before timing; timed calls of the edge, codec and audio steps, and of the cloud
    /// steps (`cloud_step`, `audio_m5_step`).
    public var warmup = 5, repeats = 50, cloudRepeats = 20
    public var seed: UInt64 = 0
    /// Only these timings (keys such as `edge_step`); nil: all.
    public var only: Set<String>? = nil
    /// The PyTorch reference's JSON to compare against.
    public var compare: URL? = nil
    /// A trained session whose codes of the Fashion-MNIST training images time the entropy coder.
    public var session: URL? = nil
    /// The defaults above.
    public init() {}
}

/// The spec's timed steps (edge step, encode, decode, cloud step, the audio steps, entropy
/// coding), as one JSON-ready dictionary with the reference's keys.
public enum StepBenchmark {
    /// Runs the steps of `settings` and returns the report (`timings.edge_step.median_ms`, …).
    public static func run(_ settings: StepBenchmarkSettings) throws -> [String: Any] {
        let (batch, codecBatch, audioBatch, audioLen, audioClasses) = (settings.batch, settings.codecBatch, settings.audioBatch,
                                                                        settings.audioLen, settings.audioClasses)
        let (mask, alpha, cloudModel, warmup, repeats, cloudRepeats, seed) = (settings.mask, settings.alpha, settings.cloudModel,
                                                                              settings.warmup, settings.repeats, settings.cloudRepeats, settings.seed)
        let (only, compare, session) = (settings.only, settings.compare, settings.session)
        guard audioLen % 16 == 0 else { throw PipelineError("the audio length must be divisible by 16") }
        guard cloudModel == "resnext-11" || cloudModel == "resnext-29" else {
            throw PipelineError("the cloud model must be resnext-11 or resnext-29")
        }
        let wanted = only
        func want(_ k: String) -> Bool { wanted?.contains(k) ?? true }
        var timings: [String: Any] = [:]
        var peakAfterEdge: Double? = nil
        GlobalRandom.seed(seed)
        var g = SeededGenerator(seed: seed)
        let (B, C, H, W, cls) = (batch, 1, 28, 28, 10)

        // edge-step: cdc-ae + cdc-ec, two Adam optimizers.
        let x = Tensor.uniform([B, C, H, W], generator: &g)
        let y = (0..<B).map { _ in Int(g.next() % UInt64(cls)) }
        let ae = CDCAutoencoder.image(channels: C, mask: mask)
        let ec = ElementaryClassifier.image(channels: C, height: H, width: W, classes: cls)
        let edge = EdgeTrainer(autoencoder: ae, classifier: ec, alpha: alpha)
        if want("edge_step") {
            timings["edge_step"] = Timing.measure(warmup: warmup, repeats: repeats, batch: B) { edge.step(x, labels: y) }
            peakAfterEdge = Timing.peakRSSMiB()
        }
        // encode / decode at inference.
        ae.eval()
        let xc = Tensor.uniform([codecBatch, C, H, W], generator: &g)
        let (symbols, latentShape) = ae.encode(xc)
        if want("encode") {
            timings["encode"] = Timing.measure(warmup: warmup, repeats: repeats, batch: codecBatch, unit: "images_per_s") {
                _ = ae.encode(xc)
            }
        }
        if want("decode") {
            timings["decode"] = Timing.measure(warmup: warmup, repeats: repeats, batch: codecBatch, unit: "images_per_s") {
                _ = ae.decode(symbols, shape: latentShape)
            }
        }
        // cloud-step on restored images.
        if want("cloud_step") {
            let restored = Autograd.noGrad { ae(x) }
            let net = cloudModel == "resnext-29" ? ResNeXt.resnext29(channels: C, classes: cls) : ResNeXt.resnext11(channels: C, classes: cls)
            let cloud = ClassifierTrainer(model: net, learningRate: 0.05, momentum: 0.9)
            timings["cloud_step"] = Timing.measure(warmup: warmup, repeats: cloudRepeats, batch: B) {
                cloud.step(restored, labels: y)
            }
        }
        // audio steps.
        var ga = SeededGenerator(seed: seed + 1)
        let xa = Tensor.uniform([audioBatch, 1, audioLen], low: -1, high: 1, generator: &ga)
        let ya = (0..<audioBatch).map { _ in Int(ga.next() % UInt64(audioClasses)) }
        let ae1 = CDCAutoencoder.audio(mask: mask)
        if want("audio_edge_step") {
            let edge1 = EdgeTrainer(autoencoder: ae1, classifier: ElementaryClassifier.audio(classes: audioClasses), alpha: alpha)
            timings["audio_edge_step"] = Timing.measure(warmup: warmup, repeats: repeats, batch: audioBatch) {
                edge1.step(xa, labels: ya)
            }
        }
        // The cloud's audio input: the autoencoder's restoration of xa (as the reference does).
        let ra = want("audio_cloud_step") || want("audio_m5_step") ? Autograd.noGrad { ae1.eval()(xa) } : xa
        if want("audio_cloud_step") {
            let cloud1 = ClassifierTrainer(model: ElementaryClassifier.audio(classes: audioClasses), learningRate: 0.05, momentum: 0.9)
            var t = Timing.measure(warmup: warmup, repeats: repeats, batch: audioBatch) { cloud1.step(ra, labels: ya) }
            t["model"] = "cdc-ec-1d"
            timings["audio_cloud_step"] = t
        }
        // audio_m5_step: m5 (the audio cloud classifier) on restored audio, SGD momentum 0.9,
        // timed over the cloud step's repeats as the reference does.
        if want("audio_m5_step") {
            let m5 = ClassifierTrainer(model: AudioClassifier.m5(classes: audioClasses), learningRate: 0.05, momentum: 0.9)
            var t = Timing.measure(warmup: warmup, repeats: cloudRepeats, batch: audioBatch) { m5.step(ra, labels: ya) }
            t["model"] = "m5"
            timings["audio_m5_step"] = t
        }

        // entropy_coding: the coded container of the 60 000 training codes, encoded and decoded.
        if session != nil || wanted?.contains("entropy_coding") == true {
            let train = try LabelledDataset.fashionMNIST(train: true)
            let s = try session.map { try EdgeSession.resume(from: $0) }
            let encoderAE = s?.autoencoder ?? CDCAutoencoder.image(channels: 1, mask: mask)
            let fixed = try EdgeCodec.compress(encoderAE, train, decoderHash: 0)
            let coded = try EdgeCodec.code(fixed, s?.prior != nil ? .prior : .histogram, priorTables: s?.priorTables)
            var failure: Error?
            var t = Timing.measure(warmup: 1, repeats: 5, batch: train.count) {
                do {
                    let back = try LatentContainer.decode(coded.encoded())
                    if back.symbols.count != fixed.symbols.count { failure = PipelineError("round trip lost symbols") }
                } catch { failure = error }
            }
            if let failure { throw failure }
            t["bits_per_latent"] = (Double(coded.accounting.symbols * 8) / Double(fixed.symbols.count) * 1000).rounded() / 1000
            t["fixed_bits_per_latent"] = 5 - encoderAE.quantizer.mask
            t["coding"] = coded.codingChoice.name
            t["what"] = "encode + decode of the coded container of the \(train.count) training codes"
            timings["entropy_coding"] = t
        }

        var out: [String: Any] = [
            "engine": "swift-cdc (oneDNN \(Timing.onednnVersion))",
            "cpu": Timing.cpuName(),
            "threads": Engine.threads,
            "precision": Engine.precision.rawValue,
            "cpu_isa": EngineInfo.cpuISA,
            "config": ["batch": B, "codec_batch": codecBatch, "image_shape": [C, H, W], "classes": cls, "mask": mask,
                       "alpha": alpha, "cloud_model": cloudModel, "audio_batch": audioBatch, "audio_len": audioLen,
                       "audio_classes": audioClasses, "warmup": warmup] as [String: Any],
            "models": Dictionary(uniqueKeysWithValues: ReferenceModel.allCases.map { m -> (String, Any) in
                let s = m.summary(audioLength: audioLen)
                var d: [String: Any] = ["params": s.parameters, "flops_per_sample": s.flopsPerSample]
                if let e = s.encoderFlopsPerSample { d["encoder_flops_per_sample"] = e }
                if let e = s.decoderFlopsPerSample { d["decoder_flops_per_sample"] = e }
                return (m.rawValue, d)
            }),
            "timings": timings,
            "peak_rss_mb": Timing.peakRSSMiB(),
        ]
        if let peakAfterEdge { out["peak_rss_after_edge_step_mb"] = peakAfterEdge }
        if let compare { out["comparison"] = try Timing.compare(timings, withFile: compare) }
        return out
    }
}

/// Timing statistics in the PyTorch reference's format.
public enum Timing {
    /// Runs `body` `warmup` times untimed, then `repeats` times timed; median and percentiles in ms.
    public static func measure(warmup: Int, repeats: Int, batch: Int, unit: String = "samples_per_s",
                        _ body: () -> Void) -> [String: Any] {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        let med = percentile(times, 50)
        func r(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
        return ["median_ms": r(med), "p10_ms": r(percentile(times, 10)), "p25_ms": r(percentile(times, 25)),
                "p75_ms": r(percentile(times, 75)), "p90_ms": r(percentile(times, 90)), "repeats": repeats,
                unit: (Double(batch) / (med / 1e3) * 10).rounded() / 10]
    }

    /// Linear-interpolated percentile (numpy's default).
    public static func percentile(_ v: [Double], _ q: Double) -> Double {
        let s = v.sorted()
        guard s.count > 1 else { return s.first ?? 0 }
        let pos = q / 100 * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }

    /// Peak resident memory of this process so far, MiB.
    public static func peakRSSMiB() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return (Double(u.ru_maxrss) / 1024 * 10).rounded() / 10
    }

    /// The CPU's model name from /proc/cpuinfo.
    public static func cpuName() -> String {
        guard let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in s.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        }
        return "unknown"
    }

    /// The oneDNN library's version.
    public static var onednnVersion: String { EngineInfo.onednnVersion }

    /// Ratios of our medians to PyTorch's (NCHW and best of NCHW / channels-last); when the
    /// reference ran with `--bf16`, also to its bf16-autocast figure and to the fastest of all
    /// three modes (`ratio_vs_bf16`, `ratio_vs_fastest`).
    public static func compare(_ ours: [String: Any], withFile url: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: url); let path = url.path
        guard let ref = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let rt = ref["timings"] as? [String: Any] else {
            throw PipelineError("\(path) is not the JSON of torch_reference.py --bench")
        }
        let cl = rt["channels_last"] as? [String: Any] ?? [:]
        let bf16 = rt["bf16"] as? [String: Any] ?? [:]
        func median(_ d: [String: Any], _ k: String) -> Double? { (d[k] as? [String: Any])?["median_ms"] as? Double }
        var out: [String: Any] = [:]
        for (k, v) in ours {
            guard let mine = (v as? [String: Any])?["median_ms"] as? Double, let theirs = median(rt, k) else { continue }
            let best = min(theirs, median(cl, k) ?? theirs)
            func ratio(_ t: Double) -> Double { (mine / t * 1000).rounded() / 1000 }
            var entry: [String: Any] = ["ours_ms": mine, "torch_nchw_ms": theirs, "torch_best_ms": best,
                                        "ratio_vs_nchw": ratio(theirs), "ratio_vs_best": ratio(best)]
            if let b = median(bf16, k) {
                entry["torch_bf16_ms"] = b
                entry["ratio_vs_bf16"] = ratio(b)
                entry["torch_fastest_ms"] = min(best, b)
                entry["ratio_vs_fastest"] = ratio(min(best, b))
            }
            out[k] = entry
        }
        if let p = ref["peak_rss_mb"] { out["torch_peak_rss_mb"] = p }
        return out
    }
}
