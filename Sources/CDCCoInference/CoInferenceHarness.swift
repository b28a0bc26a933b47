import CDCData
import CDCTensor
import Foundation

/// One row of the co-inference comparison: a system at one setting, measured on a test set.
public struct CoInferenceRow: Codable, Sendable, Equatable {
    public var system: String, split: String, config: String, channel: String
    /// Mean bits of one sample's payload (8 × its real bytes; no estimate).
    public var bitsPerSample: Double
    /// ``bitsPerSample`` over the sample's pixel positions (or audio samples).
    public var bitsPerPixel: Double
    /// Bytes sent once, before any sample (decoders, histograms).
    public var oneOffBytes: Int
    public var accuracy: Float
    /// Against the raw-data classifier on the same test samples (filled in by the report).
    public var accuracyLoss: Float
    /// Per-sample compute time of the device's side (classifier part + encoder + coding) and the
    /// server's (decoding + classifier part), milliseconds, measured in batches on this machine.
    public var deviceMs: Double, serverMs: Double
    public var seed: UInt64
    /// Test samples measured.
    public var samples: Int
    /// Values of one sample's tensor at the split (nil: the sample itself is sent).
    public var featureValues: Int?
    /// The channel the system was trained with, when it differs from the test channel (BottleNet++).
    public var trainChannel: String?
    /// PSNR (dB, peak 1) of images restored from the same payloads by a decoder branch, for a
    /// system that has one (vae-cls's EncClassRec branch); nil otherwise.
    public var restoredPSNR: Double? = nil

    public init(system: String, split: String, config: String, channel: String, bitsPerSample: Double, bitsPerPixel: Double,
                oneOffBytes: Int, accuracy: Float, accuracyLoss: Float, deviceMs: Double, serverMs: Double, seed: UInt64,
                samples: Int, featureValues: Int? = nil, trainChannel: String? = nil) {
        self.system = system; self.split = split; self.config = config; self.channel = channel
        self.bitsPerSample = bitsPerSample; self.bitsPerPixel = bitsPerPixel; self.oneOffBytes = oneOffBytes
        self.accuracy = accuracy; self.accuracyLoss = accuracyLoss; self.deviceMs = deviceMs; self.serverMs = serverMs
        self.seed = seed; self.samples = samples; self.featureValues = featureValues; self.trainChannel = trainChannel
    }

    /// The name the measured system is served under (``coInferenceKey(system:split:config:channel:)``).
    public var key: String { coInferenceKey(system: system, split: split, config: config, channel: channel) }

    /// This row with ``restoredPSNR`` set.
    public func withRestoredPSNR(_ psnr: Double?) -> CoInferenceRow {
        var r = self
        r.restoredPSNR = psnr
        return r
    }

    /// The end-to-end latency of one sample over a link of `bitsPerSecond`, milliseconds:
    /// device time + transfer time + server time (requests one at a time, no queueing).
    public func latencyMs(bitsPerSecond: Double) -> Double {
        deviceMs + bitsPerSample / bitsPerSecond * 1000 + serverMs
    }
}

/// Measures a ``CoInferenceSystem`` on a test set the same way for every system.
public enum CoInferenceHarness {
    /// Runs every test sample through the system in batches: accuracy, the mean payload size
    /// (real bytes), and the device's and the server's compute time per sample.
    public static func evaluate(_ system: any CoInferenceSystem, on data: LabelledDataset, seed: UInt64,
                                batchSize: Int = 250, trainChannel: String? = nil) throws -> CoInferenceRow {
        var correct = 0, bytes = 0
        var device = 0.0, server = 0.0
        for indices in data.batchIndices(size: batchSize, shuffle: nil) {
            let (x, y) = data.batch(indices)
            let t0 = Date()
            let payloads = try system.encode(x)
            let t1 = Date()
            let logits = try system.classify(payloads)
            let t2 = Date()
            device += t1.timeIntervalSince(t0); server += t2.timeIntervalSince(t1)
            guard payloads.count == y.count, logits.shape[0] == y.count else {
                throw SplitError("\(system.system) returned \(payloads.count) payloads and \(logits.shape[0]) score rows for \(y.count) samples")
            }
            bytes += payloads.reduce(0) { $0 + $1.count }
            correct += zip(logits.argmaxLastAxis(), y).filter { $0 == $1 }.count
        }
        let n = max(data.count, 1)
        let bits = Double(bytes * 8) / Double(n)
        return CoInferenceRow(system: system.system, split: system.split, config: system.config, channel: system.channel,
                              bitsPerSample: bits, bitsPerPixel: bits / Double(data.positionsPerSample),
                              oneOffBytes: system.oneOffBytes, accuracy: Float(correct) / Float(n), accuracyLoss: 0,
                              deviceMs: device * 1000 / Double(n), serverMs: server * 1000 / Double(n), seed: seed,
                              samples: data.count, featureValues: system.featureValues, trainChannel: trainChannel)
    }
}
