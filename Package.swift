// swift-tools-version: 6.0
import PackageDescription

/// The byte-crunching modules of the upload path (entropy coding, containers, SHA-256) are
/// optimized in debug builds too (the tests, `swift run`): unoptimized, a debug cloud validated
/// parts at about 10 Mbit/s on localhost; optimized, at over 60.
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "swift-cdc",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cdc", targets: ["cdc"]),
        .library(name: "CDCTensor", targets: ["CDCTensor"]),
        .library(name: "CDCNN", targets: ["CDCNN"]),
        .library(name: "CDCModels", targets: ["CDCModels"]),
        .library(name: "CDCEdgeAgent", targets: ["CDCEdgeAgent"]),
        .library(name: "CDCCloudTrainer", targets: ["CDCCloudTrainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // oneDNN 2.6 C API (Debian libdnnl-dev) plus OpenMP thread control.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", pkgConfig: nil,
                       providers: [.apt(["libdnnl-dev"])]),
        // zlib, for gzip-compressed IDX files.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // libjpeg-turbo, libwebp and libpng (JPEG/WebP baselines, image folders).
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CWebP", path: "Sources/CWebP", providers: [.apt(["libwebp-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", providers: [.apt(["libpng-dev"])]),
        // libopus (the Opus audio baseline).
        .systemLibrary(name: "COpus", path: "Sources/COpus", providers: [.apt(["libopus-dev"])]),
        // libsndfile and libsoxr (audio datasets: decoding WAV/FLAC/OGG, resampling).
        .systemLibrary(name: "CSndFile", path: "Sources/CSndFile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", path: "Sources/CSoxr", providers: [.apt(["libsoxr-dev"])]),
        // Tensors, autograd, ops; reference kernels and oneDNN kernels.
        .target(name: "CDCTensor", dependencies: ["CDNNL"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        // Durable atomic file writes and the little-endian byte reader/writer of the binary formats.
        .target(name: "CDCFileIO", swiftSettings: optimizedInDebug),
        // The safetensors file format, independent of the engine.
        .target(name: "CDCSafetensors", dependencies: ["CDCFileIO"]),
        // Modules, layers, losses, optimizers, schedules, checkpoints.
        .target(name: "CDCNN", dependencies: ["CDCTensor", "CDCSafetensors", "CDCFileIO"]),
        // Datasets: IDX (Fashion-MNIST), CIFAR binary, image folders, audio (FSDD, UrbanSound8K,
        // audio class folders); splits, augmentation.
        .target(name: "CDCData", dependencies: ["CDCTensor", "CZlib", "CPNG", "CTurboJPEG", "CSndFile", "CSoxr"]),
        // rANS entropy coding of latent symbols in integer arithmetic, with per-channel models.
        .target(name: "CDCEntropy", swiftSettings: optimizedInDebug),
        // The upload container of quantized latent codes (versioned, bit-packed or entropy-coded,
        // CRC per chunk).
        .target(name: "CDCCodec", dependencies: ["CZlib", "CDCEntropy", "CDCFileIO"], exclude: ["FORMAT.md"],
                swiftSettings: optimizedInDebug),
        // JPEG and WebP as baseline codecs, with honest byte accounting.
        .target(name: "CDCImageCodecs", dependencies: ["CTurboJPEG", "CWebP", "CDCFileIO"]),
        // Opus and G.711 μ-law as audio baseline codecs, with honest byte accounting.
        .target(name: "CDCAudioCodecs", dependencies: ["COpus", "CDCFileIO"]),
        // The reference models of shared/spec/reference-models.md and the timed steps.
        .target(name: "CDCModels", dependencies: ["CDCNN", "CDCEntropy"]),
        // The CDC pipeline: edge training sessions, compression, restoration, cloud training,
        // the rate–accuracy experiment.
        .target(name: "CDCPipeline", dependencies: ["CDCModels", "CDCData", "CDCCodec", "CDCEntropy", "CDCImageCodecs", "CDCAudioCodecs", "CDCSafetensors", "CDCFileIO"]),
        // Co-inference: split points of the cloud classifiers, BottleNet++, DISC-like feature
        // compression, the partition search and the harness that measures every system on real
        // coded bytes.
        .target(name: "CDCCoInference", dependencies: ["CDCPipeline", "CDCWire", "CDCEntropy", "CDCImageCodecs", "CZlib"]),
        // What edge and cloud agree on over HTTP: the API's messages, content hashes (SHA-256),
        // the mask policy.
        .target(name: "CDCWire", dependencies: ["CDCCodec"], swiftSettings: optimizedInDebug),
        // The cloud's durable store of edges, uploads, parts and decoders: one protocol, SQLite
        // (WAL) as the embedded implementation.
        .target(name: "CDCStore", dependencies: [
            "CDCWire", .product(name: "SQLiteNIO", package: "sqlite-nio"), .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // The cloud service: Hummingbird routes, credentials, /metrics.
        .target(name: "CDCCloudService", dependencies: [
            "CDCWire", "CDCStore", "CDCCodec", .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        // The edge's uploader: chunked, resumable, retried with back-off, bandwidth measured.
        .target(name: "CDCEdgeClient", dependencies: [
            "CDCWire", "CDCCodec", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // The edge's loop as a library: train or resume stage 1, compress, upload, follow mask
        // requests, retune.
        .target(name: "CDCEdgeAgent", dependencies: ["CDCPipeline", "CDCEdgeClient", "CDCWire", "CDCCodec", "CDCData", "CDCCoInference"]),
        // The cloud's loop as a library: restore uploads from any UploadStore, train, detect
        // convergence, write progress for the mask policy.
        .target(name: "CDCCloudTrainer", dependencies: ["CDCPipeline", "CDCStore", "CDCWire", "CDCCodec", "CDCData", "CDCNN"]),
        // The timed steps of `cdc bench` (the PyTorch reference's protocol) and `cdc profile`.
        .target(name: "CDCBenchmark", dependencies: ["CDCModels", "CDCPipeline", "CDCData", "CDCCodec", "CDCNN", "CDCTensor"]),
        .executableTarget(name: "cdc", dependencies: [
            "CDCBenchmark", "CDCCoInference",
            "CDCEdgeAgent", "CDCCloudTrainer", "CDCFileIO",
            "CDCPipeline",
            "CDCModels", "CDCData", "CDCCodec", "CDCImageCodecs",
            "CDCWire", "CDCStore", "CDCCloudService", "CDCEdgeClient",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "CDCTensorTests", dependencies: ["CDCTensor"]),
        .testTarget(name: "CDCSafetensorsTests", dependencies: ["CDCSafetensors"]),
        .testTarget(name: "CDCFileIOTests", dependencies: ["CDCFileIO"]),
        .testTarget(name: "CDCNNTests", dependencies: ["CDCNN"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CDCEntropyTests", dependencies: ["CDCEntropy"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CDCCodecTests", dependencies: ["CDCCodec", "CDCEntropy"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CDCImageCodecsTests", dependencies: ["CDCImageCodecs"]),
        .testTarget(name: "CDCAudioCodecsTests", dependencies: ["CDCAudioCodecs"]),
        .testTarget(name: "CDCDataTests", dependencies: ["CDCData", "CSndFile"]),
        .testTarget(name: "CDCPipelineTests", dependencies: ["CDCPipeline"]),
        .testTarget(name: "CDCServiceTests", dependencies: [
            "CDCWire", "CDCStore", "CDCCloudService", "CDCEdgeClient", "CDCCodec", "CDCEntropy",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        .testTarget(name: "CDCLoopTests", dependencies: [
            "CDCEdgeAgent", "CDCCoInference", "CDCModels", "CDCNN", "CDCCloudTrainer", "CDCPipeline", "CDCData", "CDCCodec", "CDCWire", "CDCStore", "CDCCloudService", "CDCTensor",
            "CDCEdgeClient", .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .testTarget(name: "CDCCoInferenceTests", dependencies: ["CDCCoInference", "CDCPipeline", "CDCData"]),
        .testTarget(name: "CDCModelsTests", dependencies: ["CDCModels", "CDCData"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
