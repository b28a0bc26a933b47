import ArgumentParser
import CDCCoInference
import CDCEdgeAgent
import CDCEdgeClient
import CDCFileIO
import CDCPipeline
import Foundation

/// The systems of a co-inference experiment directory for a dataset: what `cdc edge infer` and
/// `cdc cloud serve --inference` build (the same calibration images on both sides).
struct DeploymentOptions: ParsableArguments {
    @Option(help: "Training images the experiment used (its --train-subset; the calibration images are their first ones).")
    var trainSubset = 10000
    @Option(help: "Calibration images (histograms are counted on them).") var calibration = 1000
    @Option(help: "The experiment's seed.") var modelSeed: UInt64 = 0

    func deployment(directory: String, data: DataOptions) throws -> CoInferenceDeployment {
        var train = try data.load(train: true)
        if trainSubset > 0 { train = train.prefix(min(trainSubset, train.count)) }
        return try CoInferenceDeployment(directory: URL(fileURLWithPath: directory), train: train, calibration: calibration, seed: modelSeed)
    }
}

/// `cdc edge infer`: a test set through the cloud's co-inference endpoint.
struct EdgeInfer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Classify a test set on the cloud by co-inference: encode on the edge (up to a split), send each batch, print accuracy, bits and latency.",
        discussion: """
            The systems come from a `cdc experiment co-inference --out DIR` directory (the cloud serves the same one with \\
            `cdc cloud serve --inference DIR`). --split auto runs the partition search with the measured uplink as its \\
            objective: a few raw batches measure the link, then the DISC-like point of lowest latency within --max-loss \\
            of the raw classifier (DIR/search.csv) is sent. See docs/co-inference.md.
            """)

    @OptionGroup var engine: EngineOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var deploymentOptions: DeploymentOptions
    @Option(help: "The cloud's URL, e.g. http://10.0.0.1:8080.") var cloud: String
    @Option(help: "The edge's token (`cdc cloud add-edge`); default: the environment variable CDC_EDGE_TOKEN.") var token: String?
    @Option(help: "The co-inference experiment directory (its models/ and search.csv).") var models: String
    @Option(help: "System: raw, jpeg, webp, cdc, vae-cls, vae-cls-ctx3d, disc-like, disc-like-zlib, bottlenet++ or bottlenet++-coded.") var system = "disc-like"
    @Option(help: "Split point (S0, S1, S2, S3, G), or auto: for disc-like the partition search by measured latency; raw, jpeg, webp and cdc always send the input, vae-cls and vae-cls-ctx3d their latent.")
    var split = "auto"
    @Option(help: "The system's settings as in the results table, e.g. 'tau=0.05 b=2', 'q=40', 'm=4 alpha=8', 'L=2 R=0.5', \"C'=4 8-bit\".") var config: String?
    @Option(help: "The test channel (bottlenet++): none, 'awgn sigma=0.1', 'bec p=0.01'.") var channel = "none"
    @Option(help: "The partition search's accuracy-loss bound (percentage points).") var maxLoss: Float = 1
    @Option(help: "Test images (0 = all).") var testSubset = 0
    @Option(help: "--split auto: test images each candidate sends to measure its latency.") var probeImages = 200
    @Option(help: "Samples per request.") var batch = 100
    @Option(help: "Attempts per request before giving up.") var attempts = 5
    @Option(help: ArgumentHelp("Cap the upload rate at this many Mbit/s.", valueName: "mbit/s")) var maxRate: Double?
    @Option(help: "Emulate an edge K times slower than this CPU: after encoding each batch, wait (K − 1) × the time it took (compute slept, not spent; stated in the report).")
    var deviceSlowdown: Double = 1
    @Option(help: "Write the measurements to this JSON file.") var report: String?

    mutating func run() async throws {
        try engine.apply()
        guard let token = token ?? ProcessInfo.processInfo.environment["CDC_EDGE_TOKEN"], !token.isEmpty else {
            throw ValidationError("an edge token is required: --token or CDC_EDGE_TOKEN (from `cdc cloud add-edge`)")
        }
        guard batch >= 1, attempts >= 1, testSubset >= 0 else { throw ValidationError("--batch and --attempts must be ≥ 1") }
        guard deviceSlowdown >= 1, deviceSlowdown.isFinite else { throw ValidationError("--device-slowdown must be ≥ 1") }
        let rateLimit: UplinkRateLimit?
        do { rateLimit = try maxRate.map { try UplinkRateLimit(bitsPerSecond: $0 * 1e6) } } catch { throw ValidationError("--max-rate: \(error)") }
        let deployment = try deploymentOptions.deployment(directory: models, data: dataOptions)
        var test = try dataOptions.load(train: false)
        if testSubset > 0 { test = test.prefix(min(testSubset, test.count)) }
        let client = CloudClient(baseURL: cloud, token: token, retry: RetryPolicy(attempts: attempts), rateLimit: rateLimit)
        var key: String
        var chosenBy: String?
        var candidates: [InferenceRun.MeasuredCandidate]?
        let sendsInput = ["raw", "jpeg", "webp", "cdc"].contains(system)
        if split == "auto" && !sendsInput && !system.hasPrefix("vae-cls") {
            guard system == "disc-like" else { throw ValidationError("--split auto searches DISC-like points: use --system disc-like or name a split") }
            let url = URL(fileURLWithPath: models).appendingPathComponent("search.csv")
            let rows = try CoInferenceReport.rows(fromCSV: String(contentsOf: url, encoding: .utf8))
            let probe = test.prefix(min(probeImages, test.count))
            let (chosen, all) = try await InferenceRun.chooseByMeasuredLatency(searchRows: rows, deployment: deployment, client: client,
                                                                                probe: probe, batchSize: batch, maxLoss: maxLoss / 100,
                                                                                deviceSlowdown: deviceSlowdown)
            for c in all {
                log(String(format: "  candidate %@: %.0f bits, validation %.2f%%, measured %.3f ms/sample (device %.3f, server %.3f)",
                           c.key, c.bitsPerSample, 100 * c.validationAccuracy, c.latencyMs, c.deviceMs, c.serverMs))
            }
            key = chosen.key
            candidates = all
            chosenBy = String(format: "lowest measured latency within %g pp of the raw classifier (%.3f ms/sample on %d probe images)",
                              maxLoss, chosen.latencyMs, probe.count)
            log("partition search: \(key) — \(chosenBy!)")
        } else {
            let defaults = ["raw": "8-bit"]
            guard let cfg = config ?? defaults[system] else { throw ValidationError("--config is required for \(system)") }
            key = coInferenceKey(system: system, split: sendsInput ? "input" : system.hasPrefix("vae-cls") ? "latent" : split, config: cfg,
                                 channel: channel)
        }
        if system == "cdc" { key = try deployment.system(forKey: key).key }
        let printer = ProgressPrinter()
        var result = try await InferenceRun.run(key: key, deployment: deployment, client: client, test: test, batchSize: batch,
                                                deviceSlowdown: deviceSlowdown) {
            printer.handle(.step(task: "infer", done: $0, total: $1, status: $2))
        }
        result.chosenBy = chosenBy
        result.candidates = candidates
        if let report {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try DurableFile.write(try enc.encode(result), to: URL(fileURLWithPath: report))
        }
        print(String(format: "%@: accuracy %.2f%% on %d images; %.0f bits/sample (+%d framing bytes in all, %d one-off bytes); "
                     + "latency per batch of %d: median %.1f ms, p95 %.1f ms (device %.1f ms, server %.1f ms); uplink %.2f Mbit/s measured%@",
                     key, 100 * result.accuracy, result.samples, result.bitsPerSample, result.framingBytes, result.oneOffBytes, batch,
                     result.latencyMsMedian, result.latencyMsP95, result.deviceMsMedian, result.serverMsMedian,
                     result.measuredBitsPerSecond / 1e6, result.capBitsPerSecond.map { String(format: " (cap %.2f)", $0 / 1e6) } ?? ""))
    }
}
