import ArgumentParser
import CDCCloudService
import CDCCoInference
import CDCCodec
import CDCPipeline
import CDCStore
import CDCWire
import Foundation

/// `cdc cloud add-edge`: a new edge and its credential.
struct CloudAddEdge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-edge",
        abstract: "Register an edge in the cloud's store and print its token (shown once; only its hash is stored).")

    @Option(help: "The cloud's store (SQLite file; created if missing).") var store = "cloud.db"
    @Option(help: "The edge's name (letters, digits, '-', '_', '.').") var name: String

    mutating func run() async throws {
        let s = try await SQLiteUploadStore.open(path: store)
        do {
            let token = try await CloudService.addEdge(name: name, to: s)
            try await s.close()
            print(token)
        } catch {
            try? await s.close()
            throw PipelineError("\(error)")
        }
    }
}

/// `cdc cloud serve`: the cloud's HTTP service.
struct CloudServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the cloud's HTTP API (uploads into the store, bandwidth reports, mask requests, /metrics) until SIGINT/SIGTERM.")

    @Option(help: "The cloud's store (SQLite file; created if missing).") var store = "cloud.db"
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the chosen one is printed).") var port = 8080
    @Option(help: "Seconds the operator allows for one upload of an edge's dataset: the mask policy picks the clearest m that fits.")
    var timeBudget: Double = 600
    @Option(help: "Largest part body accepted (bytes).") var maxPartBytes = API.defaultMaxPartBytes
    @Option(help: "The operator's credential for /metrics with every edge's series (for Prometheus); default: the environment variable CDC_METRICS_TOKEN. An edge's own token reads only its own series.")
    var metricsToken: String?
    @Option(help: "Serve co-inference (`/v1/infer`) with the systems of this `cdc experiment co-inference --out` directory.")
    var inference: String?
    @OptionGroup var inferenceData: DataOptions
    @OptionGroup var deploymentOptions: DeploymentOptions

    mutating func run() async throws {
        guard timeBudget > 0, maxPartBytes > 0 else { throw ValidationError("--time-budget and --max-part-bytes must be positive") }
        let operatorToken = (metricsToken ?? ProcessInfo.processInfo.environment["CDC_METRICS_TOKEN"]).flatMap { $0.isEmpty ? nil : $0 }
        if let t = operatorToken, t.count < 16 {
            throw ValidationError("the metrics credential must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        }
        let backend = try inference.map { try CoInferenceServer(deploymentOptions.deployment(directory: $0, data: inferenceData)) }
        let s = try await SQLiteUploadStore.open(path: store)
        let service = CloudService(store: s, policy: MaskPolicy(timeBudget: timeBudget), maxPartBytes: maxPartBytes,
                                   metricsToken: operatorToken, inference: backend)
        let path = store
        let app = service.application(host: host, port: port) { channel in
            // One line on stdout that scripts wait for.
            FileHandle.standardOutput.write(Data("cdc cloud: listening on \(channel.localAddress?.description ?? "?") (store \(path))\n".utf8))
        }
        do { try await app.runService() } catch {
            try? await s.close()
            throw error
        }
        try await s.close()
    }
}
