import ArgumentParser
import CDCBenchmark

/// `cdc profile`: times single layers forward and backward (development aid).
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time single reference layers (development aid).", shouldDisplay: false)
    @Option(help: "Timed calls per layer.") var repeats = 20

    func run() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        for line in LayerProfile.run(repeats: repeats) { print(line) }
    }
}
