import CDCCloudService
import CDCCoInference
import CDCData
import CDCEdgeAgent
import CDCEdgeClient
import CDCModels
import CDCNN
import CDCPipeline
import CDCStore
import CDCTensor
import CDCWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Random 1×28×28 images (8-bit values) with labels: what resnext-11 splits need.
func randomImages(_ n: Int, seed: UInt64) -> LabelledDataset {
    var g = SeededGenerator(seed: seed)
    return LabelledDataset(pixels: (0..<(n * 784)).map { _ in Float(g.next() % 256) / 255 }, labels: (0..<n).map { $0 % 10 },
                           channels: 1, height: 28, width: 28, classes: 10)
}

@Suite struct CoInferenceLoopTests {
    /// Real co-inference in one process over a live socket: the cloud serves the systems of an
    /// experiment directory, the edge (its own deployment built from the same directory and
    /// images) sends a test set through `/v1/infer`; the scores are those of the harness run
    /// locally, the search measures its candidates over the link, and a payload of the wrong
    /// size is a 400 that stores nothing.
    @Test func edgeInfersThroughTheCloudAsTheHarnessDoesLocally() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-coinference-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("models"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The "trained" raw classifier: a seeded resnext-11 (training is not what is tested here).
        let raw = GlobalRandom.withSeed(5) { ResNeXt.resnext11() }
        try Checkpoint.save(raw, to: dir.appendingPathComponent("models/raw-s0.safetensors"))
        let train = randomImages(24, seed: 1), test = randomImages(20, seed: 2)
        let cloudSide = try CoInferenceDeployment(directory: dir, train: train, calibration: 16)
        let key = "disc-like/S3/tau=0.05_b=2/none"

        let store = try await SQLiteUploadStore.open(path: dir.appendingPathComponent("cloud.db").path)
        do {
            let token = try await CloudService.addEdge(name: "edge-1", to: store)
            let service = CloudService(store: store, policy: MaskPolicy(timeBudget: 600), inference: try CoInferenceServer(cloudSide))
            try await service.application(host: "127.0.0.1", port: 0).test(.live) { client in
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token)
                let edgeSide = try CoInferenceDeployment(directory: dir, train: train, calibration: 16)
                let local = try CoInferenceHarness.evaluate(try edgeSide.system(forKey: key), on: test, seed: 0, batchSize: 8)
                #expect(try await cloud.inferenceCatalog().map(\.key) == ["raw/input/8-bit/none"])
                let report = try await InferenceRun.run(key: key, deployment: edgeSide, client: cloud, test: test, batchSize: 8)
                #expect(report.samples == 20 && report.batches == 3)
                #expect(report.accuracy == local.accuracy)
                #expect(report.bitsPerSample == local.bitsPerSample)
                #expect(report.framingBytes == 3 * 9 + 20 * 4)   // three batch headers, a length per sample
                #expect(report.latencyMsP95 >= report.latencyMsMedian && report.latencyMsMedian > 0)

                // The search: cloud-only and one point per split, each measured over the link.
                let row = { (system: String, split: String, config: String, bits: Double, acc: Float) in
                    CoInferenceRow(system: system, split: split, config: config, channel: "none", bitsPerSample: bits, bitsPerPixel: bits / 784,
                                   oneOffBytes: 0, accuracy: acc, accuracyLoss: 0, deviceMs: 1, serverMs: 1, seed: 0, samples: 10)
                }
                let search = [row("raw", "input", "8-bit", 6272, 0.5), row("disc-like", "G", "tau=0.0 b=2", 900, 0.495),
                              row("disc-like", "G", "tau=0.0 b=1", 500, 0.40), row("disc-like", "S3", "tau=0.05 b=2", 3000, 0.5)]
                let (chosen, all) = try await InferenceRun.chooseByMeasuredLatency(searchRows: search, deployment: edgeSide, client: cloud,
                                                                                    probe: test, batchSize: 10, maxLoss: 0.01)
                // G at 1 bit is 10 pp off: not a candidate.
                #expect(all.map(\.key) == ["raw/input/8-bit/none", "disc-like/G/tau=0.0_b=2/none", "disc-like/S3/tau=0.05_b=2/none"])
                #expect(all.allSatisfy { $0.latencyMs > 0 && $0.deviceMs >= 0 })
                #expect(chosen.latencyMs == all.map(\.latencyMs).min())

                // A payload that is not one of the system's: 400 with the reason; nothing stored.
                do {
                    _ = try await cloud.infer(system: key, payloads: [[1, 2, 3]])
                    Issue.record("a truncated payload was accepted")
                } catch CloudClientError.rejected(let status, let message) {
                    #expect(status == 400 && message.contains("DISC-like"))
                }
            }
            #expect(try await store.uploads(edge: "edge-1").isEmpty)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}
