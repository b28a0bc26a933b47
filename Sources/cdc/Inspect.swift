import ArgumentParser
import CDCCodec
import Foundation

/// `cdc inspect FILE`: the header and byte accounting of a container.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a container's header and byte accounting.")
    @Argument(help: "A container written by `cdc edge compress`.") var file: String

    func run() throws {
        let c = try LatentContainer.read(from: URL(fileURLWithPath: file))
        print(c.report(path: file))
    }
}
