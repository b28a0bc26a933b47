import ArgumentParser
import CDCBenchmark
import CDCPipeline
import Foundation

/// `cdc bench`: the spec's timed steps, measured exactly as `torch_reference.py --bench` does,
/// printed as one JSON object with the same keys.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the edge step, cloud step, encode/decode and the audio steps (use a release build).",
        discussion: """
        Prints one JSON object whose keys match `torch_reference.py --bench` (timings.edge_step.median_ms, …).
        With --compare FILE (the JSON that torch_reference.py printed on this machine) it adds the ratio of
        each median to PyTorch's, against both its NCHW figure and its best (channels-last) figure, and,
        when that JSON has a bf16 block (--bf16), against its bf16-autocast and fastest figures.
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
    @Option(help: "Timed calls of the cloud steps (cloud_step, audio_m5_step).") var cloudRepeats = 20
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Only these timings (comma-separated keys, e.g. edge_step,cloud_step).") var only: String?
    @Option(help: "PyTorch reference JSON to compare against.") var compare: String?
    @Option(help: "Session of `cdc edge train` whose codes of the 60 000 Fashion-MNIST training images time the entropy coder (entropy_coding; also run by --only entropy_coding, then with an untrained encoder).")
    var session: String?

    mutating func run() throws {
        try engine.apply()
        var s = StepBenchmarkSettings()
        s.batch = batch; s.codecBatch = codecBatch; s.audioBatch = audioBatch; s.audioLen = audioLen; s.audioClasses = audioClasses
        s.mask = mask; s.alpha = alpha; s.cloudModel = cloudModel; s.warmup = warmup; s.repeats = repeats
        s.cloudRepeats = cloudRepeats; s.seed = seed
        s.only = only.map { Set($0.split(separator: ",").map(String.init)) }
        s.compare = compare.map { URL(fileURLWithPath: $0) }
        s.session = session.map { URL(fileURLWithPath: $0) }
        let out = try StepBenchmark.run(s)
        let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
