import CDCTensor

/// One way of classifying a sample that lives on a device with a classifier that runs (partly)
/// on a server: the device turns each sample into bytes, the bytes cross the link, the server
/// turns them into class scores. Every system of the co-inference comparison — raw images,
/// JPEG/WebP, CDC's deployment case, BottleNet++, DISC-like feature compression — is one of
/// these, so that every row is measured the same way: bits from the real bytes of
/// ``encode(_:)``, accuracy from ``classify(_:)``, and the time each side takes.
public protocol CoInferenceSystem: AnyObject {
    /// The system's family: `raw`, `jpeg`, `webp`, `cdc`, `bottlenet++`, `bottlenet++-coded`,
    /// `disc-like`, `disc-like-zlib`.
    var system: String { get }
    /// Where the classifier is cut (``SplitClassifier/points``); `input` for systems that send
    /// the sample itself (raw, codecs, CDC).
    var split: String { get }
    /// The system's settings, short and stable (e.g. `q=40`, `C'=4 8-bit`, `tau=0.05 b=2`).
    var config: String { get }
    /// The channel between device and server (`none`, `awgn sigma=0.1`, `bec p=0.01`).
    var channel: String { get }
    /// Bytes sent once before any sample (decoders, histograms, calibration tables), not per sample.
    var oneOffBytes: Int { get }
    /// The device's side: a batch of samples (`[n, C, H, W]` images in [0, 1], or `[n, 1, L]`
    /// clips in [−1, 1]) to one payload per sample, each decodable on its own.
    func encode(_ batch: Tensor) throws -> [[UInt8]]
    /// The server's side: payloads (after the channel, if the system simulates one) to class
    /// scores `[n, classes]`. Throws a ``SplitError`` for a payload that is not one of this
    /// system's (wrong size, truncated, corrupt).
    func classify(_ payloads: [[UInt8]]) throws -> Tensor
    /// Values of one sample's tensor at the split (what a 32-bit feature would cost / 32); nil
    /// for systems that send the sample itself.
    var featureValues: Int? { get }
}

extension CoInferenceSystem {
    public var featureValues: Int? { nil }

    /// The name the inference endpoint serves this system under: `system/split/config/channel`
    /// with spaces as `_`.
    public var key: String { coInferenceKey(system: system, split: split, config: config, channel: channel) }
}

/// The name a system is served under: `system/split/config/channel` with spaces as `_` (what
/// ``CoInferenceDeployment/system(forKey:)`` parses back).
public func coInferenceKey(system: String, split: String, config: String, channel: String) -> String {
    [system, split, config, channel].map { $0.replacingOccurrences(of: " ", with: "_") }.joined(separator: "/")
}
