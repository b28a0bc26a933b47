import CDCStore
import Foundation

/// What `/metrics` shows of one edge from the store (gauges: they survive a restart).
struct EdgeGauges: Sendable {
    var storedBytes: Int
    var storedParts: Int
    var bestMask: Int?
    var bytesPerSecond: Double?
    var training: TrainingProgress?
}

/// The service's counters since it started (Prometheus counters reset on restart), per edge.
public actor ServiceMetrics {
    struct Counters: Sendable {
        var bytesReceived = 0
        var partsStored = 0
        var partsDuplicate = 0
        var decodersStored = 0
        var retries = 0
        var requestedMask: Int?
        var inferenceRequests = 0
        var inferenceSamples = 0
        var inferenceBytes = 0
    }
    private var edges: [String: Counters] = [:]
    private var unauthorizedCount = 0

    public init() {}

    func received(edge: String, bytes: Int, stored: Bool, isPart: Bool) {
        edges[edge, default: Counters()].bytesReceived += bytes
        if isPart {
            if stored { edges[edge, default: Counters()].partsStored += 1 } else { edges[edge, default: Counters()].partsDuplicate += 1 }
        } else if stored {
            edges[edge, default: Counters()].decodersStored += 1
        }
    }

    func retried(edge: String, _ n: Int) { edges[edge, default: Counters()].retries += n }
    func requested(edge: String, mask: Int?) { edges[edge, default: Counters()].requestedMask = mask }
    func unauthorized() { unauthorizedCount += 1 }
    func inferred(edge: String, samples: Int, bytes: Int) {
        edges[edge, default: Counters()].inferenceRequests += 1
        edges[edge, default: Counters()].inferenceSamples += samples
        edges[edge, default: Counters()].inferenceBytes += bytes
    }

    /// Bytes of part and decoder bodies received from `edge` since start (duplicates included).
    public func bytesReceived(edge: String) -> Int { edges[edge]?.bytesReceived ?? 0 }

    func prometheusText(gauges: [String: EdgeGauges], only: String? = nil) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (edge, v) in samples.sorted(by: { $0.0 < $1.0 }) {
                out += "\(name){edge=\"\(edge)\"} \(v.rounded() == v && abs(v) < 1e15 ? String(Int(v)) : String(v))\n"
            }
        }
        let names = Set(edges.keys).union(gauges.keys).filter { only == nil || $0 == only }
        func counter(_ f: (Counters) -> Int) -> [(String, Double)] { names.map { ($0, Double(f(edges[$0] ?? Counters()))) } }
        family("cdc_received_bytes_total", "counter", "Bytes of part and decoder bodies received since the service started, retries included.",
               counter(\.bytesReceived))
        family("cdc_parts_stored_total", "counter", "Parts stored since the service started.", counter(\.partsStored))
        family("cdc_parts_duplicate_total", "counter", "Parts received again after they were stored (acknowledged, not stored twice).",
               counter(\.partsDuplicate))
        family("cdc_upload_retries_total", "counter", "Failed transfer attempts the edge reported and retried.", counter(\.retries))
        family("cdc_inference_requests_total", "counter", "Co-inference batches classified since the service started.",
               counter(\.inferenceRequests))
        family("cdc_inference_samples_total", "counter", "Samples of the co-inference batches classified.", counter(\.inferenceSamples))
        family("cdc_inference_bytes_total", "counter", "Bytes of the co-inference batches classified (framing included).",
               counter(\.inferenceBytes))
        family("cdc_stored_bytes", "gauge", "Bytes of parts in the store.", gauges.map { ($0.key, Double($0.value.storedBytes)) })
        family("cdc_stored_parts", "gauge", "Parts in the store.", gauges.map { ($0.key, Double($0.value.storedParts)) })
        family("cdc_current_mask", "gauge", "The clearest mask m of a complete upload in the store (-1: none).",
               gauges.map { ($0.key, Double($0.value.bestMask ?? -1)) })
        family("cdc_requested_mask", "gauge", "The mask m last asked of the edge (-1: nothing new).",
               names.map { ($0, Double(edges[$0]?.requestedMask ?? -1)) })
        family("cdc_bandwidth_bytes_per_second", "gauge", "The edge's last measured uplink throughput.",
               gauges.compactMap { g in g.value.bytesPerSecond.map { (g.key, $0) } })
        family("cdc_training_epoch", "gauge", "The cloud classifier's last finished epoch on the edge's data.",
               gauges.compactMap { g in g.value.training.map { (g.key, Double($0.epoch)) } })
        family("cdc_training_accuracy", "gauge", "The cloud classifier's held-out accuracy (0-1).",
               gauges.compactMap { g in g.value.training.map { (g.key, $0.accuracy) } })
        family("cdc_training_converged", "gauge", "1 when the cloud classifier has converged on the current data.",
               gauges.compactMap { g in g.value.training.map { (g.key, $0.converged ? 1 : 0) } })
        if only == nil {
            out += "# HELP cdc_unauthorized_requests_total Requests refused for a missing or unknown credential.\n"
            out += "# TYPE cdc_unauthorized_requests_total counter\ncdc_unauthorized_requests_total \(unauthorizedCount)\n"
        }
        return out
    }
}
