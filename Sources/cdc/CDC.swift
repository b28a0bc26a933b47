import ArgumentParser
import CDCTensor

/// The `cdc` command-line tool.
@main
struct CDC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdc",
        abstract: "Classification-driven compression for edge–cloud deep learning.",
        subcommands: [Edge.self, Cloud.self, Inspect.self, Experiment.self, Models.self, Bench.self, Profile.self])
}

/// Options shared by commands that compute.
struct EngineOptions: ParsableArguments {
    @Option(help: "Threads for oneDNN and the engine's loops (default: all cores).")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            Engine.threads = threads
        }
    }
}
