import ArgumentParser
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// `cdc models` and `cdc models export`.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the reference models with parameter counts and forward FLOPs per sample.",
        subcommands: [List.self, Export.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the reference models (default).")
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let summaries = ReferenceModel.allCases.map { $0.summary() }
            // swift-cdc's own autoencoders besides the spec's (not reference models).
            var others = AutoencoderArchitecture.allCases.filter { $0 != .spec && !$0.isAudio }.map {
                ModelSummary.of($0.make(), name: $0.rawValue, sampleShape: [1, 28, 28])
            }
            // The VAE codec of the co-inference spec (encoder + latent classifier; L = 2).
            others.append(ModelSummary.of(VAEClassifier(levels: 2), name: VAEClassifier.architecture, sampleShape: [1, 28, 28]))
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(summaries + others), as: UTF8.self))
                return
            }
            print("model".padding(toLength: 12, withPad: " ", startingAt: 0) + "      params   FLOPs/sample  input")
            for (m, s) in zip(ReferenceModel.allCases, summaries) {
                let shape = m.sampleShape().map(String.init).joined(separator: "×")
                print(m.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)
                      + String(format: "%12ld %14ld  %@", s.parameters, s.flopsPerSample, shape))
            }
            print("not in reference-models.md (`--autoencoder`; vae-cls: `--system vae-cls`, its encoder's FLOPs in brackets):")
            for s in others {
                print(s.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                      + String(format: "%12ld %14ld  1×28×28", s.parameters, s.flopsPerSample)
                      + (s.name == VAEClassifier.architecture ? s.encoderFlopsPerSample.map { " (\($0))" } ?? "" : ""))
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a freshly initialised reference model as safetensors (PyTorch state_dict names).")
        @Argument(help: "Model name (\(ReferenceModel.allCases.map(\.rawValue).joined(separator: ", "))).")
        var name: String
        @Option(help: "Output file.") var out: String
        @Option(help: "Random seed for the initialisation.") var seed: UInt64 = 0
        @Option(help: "Quantizer mask m for the autoencoders (0…4).") var mask: Int = 4
        @Option(help: "Number of classes for the classifiers.") var classes: Int = 10

        func run() throws {
            guard let model = ReferenceModel(rawValue: name) else {
                throw ValidationError("unknown model '\(name)'; known: \(ReferenceModel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard (0...4).contains(mask) else { throw ValidationError("--mask must be in 0…4") }
            guard classes >= 2 else { throw ValidationError("--classes must be at least 2") }
            GlobalRandom.seed(seed)
            let m = model.make(mask: mask, classes: classes)
            try Checkpoint.save(m, to: URL(fileURLWithPath: out),
                                metadata: ["model": name, "seed": "\(seed)", "mask": "\(mask)", "classes": "\(classes)"])
            print("wrote \(out): \(name), \(m.parameterCount) parameters, seed \(seed)")
        }
    }
}
