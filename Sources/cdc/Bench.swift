import ArgumentParser
import CDCCodec
import CDCData
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation

/// `cdc bench`: the spec's timed steps, measured exactly as `torch_reference.py --bench` does,
/// printed as one JSON object with the same keys.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the edge step, cloud step, encode/decode and the audio steps (use a release build).",
        discussion: """
        Prints one JSON object whose keys match `torch_reference.py --bench` (timings.edge_step.median_ms, …).
        With --compare FILE (the JSON that torch_reference.py printed on this machine) it adds the ratio of
        each median to PyTorch's, against both its NCHW figure and its best (channels-last) figure.
        """)

    @OptionGroup var engine: EngineOptions
    @Option(help: "Batch size of the training steps.") var batch = 128
    @Option(help: "Batch size of encode/decode.") var codecBatch = 512
    @Option(help: "Batch size of the audio steps.") var audioBatch = 64
    @Option(help: "Audio length L (divisible by 16).") var audioLen = 8000
    @Option(help: "Audio classes.") var audioClasses = 10
    @Option(help: "Quantizer mask m.") var mask = 4
    @Option(help: "Guidance weight α.") var alpha: Float = EdgeConfig.defaultAlpha
    @Option(help: "Cloud model (resnext-11 or resnext-29).") var cloudModel = "resnext-11"
    @Option(help: "Untimed calls before timing.") var warmup = 5
    @Option(help: "Timed calls of the edge, codec and audio steps.") var repeats = 50
    @Option(help: "Timed calls of the cloud step.") var cloudRepeats = 20
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Only these timings (comma-separated keys, e.g. edge_step,cloud_step).") var only: String?
    @Option(help: "PyTorch reference JSON to compare against.") var compare: String?
    @Option(help: "Session of `cdc edge train` whose codes of the 60 000 Fashion-MNIST training images time the entropy coder (entropy_coding; also run by --only entropy_coding, then with an untrained encoder).")
    var session: String?

    mutating func run() throws {
        try engine.apply()
        guard audioLen % 16 == 0 else { throw ValidationError("--audio-len must be divisible by 16") }
        guard cloudModel == "resnext-11" || cloudModel == "resnext-29" else {
            throw ValidationError("--cloud-model must be resnext-11 or resnext-29")
        }
        let wanted = only.map { Set($0.split(separator: ",").map(String.init)) }
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
        if want("audio_cloud_step") {
            let ra = Autograd.noGrad { ae1.eval()(xa) }
            let cloud1 = ClassifierTrainer(model: ElementaryClassifier.audio(classes: audioClasses), learningRate: 0.05, momentum: 0.9)
            var t = Timing.measure(warmup: warmup, repeats: repeats, batch: audioBatch) { cloud1.step(ra, labels: ya) }
            t["model"] = "cdc-ec-1d"
            timings["audio_cloud_step"] = t
        }

        // entropy_coding: the coded container of the 60 000 training codes, encoded and decoded.
        if session != nil || wanted?.contains("entropy_coding") == true {
            let train = try ImageDataset.fashionMNIST(train: true)
            let s = try session.map { try EdgeSession.resume(from: URL(fileURLWithPath: $0)) }
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
        let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Timing statistics in the PyTorch reference's format.
enum Timing {
    /// Runs `body` `warmup` times untimed, then `repeats` times timed; median and percentiles in ms.
    static func measure(warmup: Int, repeats: Int, batch: Int, unit: String = "samples_per_s",
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
    static func percentile(_ v: [Double], _ q: Double) -> Double {
        let s = v.sorted()
        guard s.count > 1 else { return s.first ?? 0 }
        let pos = q / 100 * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }

    /// Peak resident memory of this process so far, MiB.
    static func peakRSSMiB() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return (Double(u.ru_maxrss) / 1024 * 10).rounded() / 10
    }

    static func cpuName() -> String {
        guard let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in s.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        }
        return "unknown"
    }

    static var onednnVersion: String { EngineInfo.onednnVersion }

    /// Ratios of our medians to PyTorch's (NCHW and best of NCHW / channels-last).
    static func compare(_ ours: [String: Any], withFile path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let ref = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let rt = ref["timings"] as? [String: Any] else {
            throw ValidationError("\(path) is not the JSON of torch_reference.py --bench")
        }
        let cl = rt["channels_last"] as? [String: Any] ?? [:]
        func median(_ d: [String: Any], _ k: String) -> Double? { (d[k] as? [String: Any])?["median_ms"] as? Double }
        var out: [String: Any] = [:]
        for (k, v) in ours {
            guard let mine = (v as? [String: Any])?["median_ms"] as? Double, let theirs = median(rt, k) else { continue }
            let best = min(theirs, median(cl, k) ?? theirs)
            out[k] = ["ours_ms": mine, "torch_nchw_ms": theirs, "torch_best_ms": best,
                      "ratio_vs_nchw": (mine / theirs * 1000).rounded() / 1000,
                      "ratio_vs_best": (mine / best * 1000).rounded() / 1000]
        }
        if let p = ref["peak_rss_mb"] { out["torch_peak_rss_mb"] = p }
        return out
    }
}
