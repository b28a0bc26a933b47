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
    @Option(help: ArgumentHelp("Arithmetic of convolutions and linear layers: fp32, bf16 (oneDNN's bf16 kernels; refused where they are missing) or bf16-emulated (bf16 rounding on fp32 kernels: bf16's numerics on any CPU, not its speed).",
                               valueName: "fp32|bf16|bf16-emulated"))
    var precision: ComputePrecision = .fp32

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            Engine.threads = threads
        }
        do { try Engine.setPrecision(precision) } catch { throw ValidationError("--precision bf16: \(error)") }
    }
}

extension ComputePrecision: ExpressibleByArgument {}
