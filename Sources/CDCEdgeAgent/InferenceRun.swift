import CDCCoInference
import CDCData
import CDCEdgeClient
import CDCTensor
import CDCWire
import Foundation

/// What `cdc edge infer` measured: a test set sent through the cloud's inference endpoint.
public struct InferenceRunReport: Codable, Sendable {
    public var key: String
    public var samples: Int, batches: Int, batchSize: Int
    public var accuracy: Float
    /// Mean payload bits per sample (8 × real bytes), and the batches' framing on top.
    public var bitsPerSample: Double, framingBytes: Int
    public var oneOffBytes: Int
    /// Request bytes (payloads + framing) of all batches.
    public var requestBytes: Int
    /// Per batch: end-to-end latency (device encoding + request + reply), its median and 95th
    /// percentile; the device's encoding and the server's compute (as the reply reports it), medians.
    public var latencyMsMedian: Double, latencyMsP95: Double
    public var deviceMsMedian: Double, serverMsMedian: Double
    /// The upload cap of the run (bits per second), and the rate measured over the transfers:
    /// request bits over (round trip − server compute), median over batches.
    public var capBitsPerSecond: Double?
    public var measuredBitsPerSecond: Double
    /// The emulated device slowdown K of the run (nil: none; see `InferenceRun.encode`).
    public var deviceSlowdown: Double?
    /// When the split was chosen by the partition search: why, and every candidate as measured.
    public var chosenBy: String?
    public var candidates: [InferenceRun.MeasuredCandidate]?
}

/// The edge's side of real co-inference over the service.
public enum InferenceRun {
    /// Sends `test` in batches of `batchSize` through `client` for the system `key` of
    /// `deployment` (encoding each batch on the edge first), checks the cloud's answers against
    /// the labels, and measures latency per batch.
    public static func run(key: String, deployment: CoInferenceDeployment, client: CloudClient, test: LabelledDataset,
                           batchSize: Int, deviceSlowdown: Double = 1,
                           progress: ((Int, Int, String) -> Void)? = nil) async throws -> InferenceRunReport {
        let system = try deployment.system(forKey: key)
        var latencies: [Double] = [], devices: [Double] = [], servers: [Double] = [], rates: [Double] = []
        var correct = 0, payloadBytes = 0, requestBytes = 0
        let batches = test.batchIndices(size: batchSize, shuffle: nil)
        for (i, indices) in batches.enumerated() {
            let (x, labels) = test.batch(indices)
            let t0 = Date()
            let payloads = try await encode(x, with: system, slowdown: deviceSlowdown)
            let t1 = Date()
            let reply = try await client.infer(system: key, payloads: payloads)
            let t2 = Date()
            if let problem = reply.problem { throw SplitError("the cloud's reply: \(problem)") }
            guard reply.count == labels.count else { throw SplitError("the cloud scored \(reply.count) samples of \(labels.count)") }
            correct += zip(reply.predictions, labels).filter { $0 == $1 }.count
            let bytes = payloads.reduce(0) { $0 + $1.count }
            payloadBytes += bytes
            let request = bytes + InferenceBatch.framingBytes(count: payloads.count)
            requestBytes += request
            let roundTrip = t2.timeIntervalSince(t1)
            latencies.append(t2.timeIntervalSince(t0) * 1000)
            devices.append(t1.timeIntervalSince(t0) * 1000)
            servers.append(reply.serverMilliseconds)
            let transfer = roundTrip - reply.serverMilliseconds / 1000
            if transfer > 0 { rates.append(Double(request * 8) / transfer) }
            progress?(i + 1, batches.count, String(format: "latency %.1f ms, accuracy so far %.2f%%", latencies.last!,
                                                   100 * Float(correct) / Float((i + 1) * batchSize > test.count ? test.count : (i + 1) * batchSize)))
        }
        return InferenceRunReport(key: key, samples: test.count, batches: batches.count, batchSize: batchSize,
                                  accuracy: Float(correct) / Float(max(test.count, 1)),
                                  bitsPerSample: Double(payloadBytes * 8) / Double(max(test.count, 1)),
                                  framingBytes: requestBytes - payloadBytes, oneOffBytes: system.oneOffBytes, requestBytes: requestBytes,
                                  latencyMsMedian: percentile(latencies, 0.5), latencyMsP95: percentile(latencies, 0.95),
                                  deviceMsMedian: percentile(devices, 0.5), serverMsMedian: percentile(servers, 0.5),
                                  capBitsPerSecond: client.rateLimit?.bitsPerSecond, measuredBitsPerSecond: percentile(rates, 0.5),
                                  deviceSlowdown: deviceSlowdown == 1 ? nil : deviceSlowdown)
    }

    /// One candidate of the measured search: a system and its latency measured over the link.
    public struct MeasuredCandidate: Codable, Sendable {
        public var key: String
        /// Validation accuracy and bits per sample from the experiment's search.
        public var validationAccuracy: Float, bitsPerSample: Double
        /// Per sample, measured now: end-to-end latency (median over the probe batches), the
        /// device's encoding, the server's compute (as the replies report it).
        public var latencyMs: Double, deviceMs: Double, serverMs: Double
    }

    /// The partition search with measured latency as its objective. The candidates are
    /// cloud-only (`raw`: the edge sends the image) and, for every split of `searchRows` (the
    /// experiment's `search.csv`, measured on validation images), its DISC-like point with the
    /// fewest bits within `maxLoss` of the raw classifier's validation accuracy. Each candidate
    /// sends `probe` through the real link — encoding on this edge, the transfer at the link's
    /// rate and the cloud's compute all measured — and the one of lowest median latency per
    /// sample wins. The device's and the cloud's speeds are whatever the two processes get;
    /// `deviceSlowdown` emulates a weaker edge (see ``encode(_:with:slowdown:)``).
    public static func chooseByMeasuredLatency(searchRows: [CoInferenceRow], deployment: CoInferenceDeployment, client: CloudClient,
                                               probe: LabelledDataset, batchSize: Int, maxLoss: Float, deviceSlowdown: Double = 1)
        async throws -> (chosen: MeasuredCandidate, candidates: [MeasuredCandidate]) {
        let reference = CoInferenceReport.reference(searchRows)
        var points: [CoInferenceRow] = searchRows.filter { $0.system == "raw" }
        let disc = PartitionSearch.admissible(searchRows.filter { $0.system == "disc-like" }, reference: reference, maxLoss: maxLoss)
        for split in Set(disc.map(\.split)).sorted() {
            if let best = PartitionSearch.fewestBits(disc.filter { $0.split == split }, reference: reference, maxLoss: maxLoss) {
                points.append(best)
            }
        }
        guard !points.isEmpty else { throw SplitError("the search table has no raw row and no point within \(maxLoss * 100) pp") }
        var measured: [MeasuredCandidate] = []
        for p in points {
            let key = p.key
            let system = try deployment.system(forKey: key)
            var latencies: [Double] = [], devices: [Double] = [], servers: [Double] = []
            for indices in probe.batchIndices(size: batchSize, shuffle: nil) {
                let x = probe.batch(indices).0
                let t0 = Date()
                let payloads = try await encode(x, with: system, slowdown: deviceSlowdown)
                let t1 = Date()
                let reply = try await client.infer(system: key, payloads: payloads)
                let t2 = Date()
                let n = Double(indices.count)
                latencies.append(t2.timeIntervalSince(t0) * 1000 / n)
                devices.append(t1.timeIntervalSince(t0) * 1000 / n)
                servers.append(reply.serverMilliseconds / n)
            }
            measured.append(MeasuredCandidate(key: key, validationAccuracy: p.accuracy, bitsPerSample: p.bitsPerSample,
                                              latencyMs: percentile(latencies, 0.5), deviceMs: percentile(devices, 0.5),
                                              serverMs: percentile(servers, 0.5)))
        }
        let chosen = measured.min { ($0.latencyMs, -$0.validationAccuracy) < ($1.latencyMs, -$1.validationAccuracy) }!
        return (chosen, measured)
    }

    /// The device's side of a batch. With `slowdown` K > 1 it then waits (K − 1) × the time the
    /// encoding took: an emulation of a device K times slower than this CPU (its compute is
    /// slept, not spent), for trying the partition search against a weak edge on one machine.
    static func encode(_ x: Tensor, with system: any CoInferenceSystem, slowdown: Double) async throws -> [[UInt8]] {
        let t0 = Date()
        let payloads = try system.encode(x)
        if slowdown > 1 { try await Task.sleep(for: .seconds(Date().timeIntervalSince(t0) * (slowdown - 1))) }
        return payloads
    }

    /// The `q`-quantile of `values` (nearest rank); 0 for none.
    static func percentile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        return s[min(s.count - 1, max(0, Int((q * Double(s.count)).rounded(.up)) - 1))]
    }
}
