import CDCCloudService
import CDCCloudTrainer
import CDCData
import CDCEdgeAgent
import CDCEdgeClient
import CDCPipeline
import CDCStore
import CDCTensor
import CDCWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// 64 labelled 1×8×8 images of 4 classes (the bright quadrant is the class).
func quadrantImages(count: Int = 64, seed: UInt64 = 1) -> LabelledDataset {
    var g = SeededGenerator(seed: seed)
    var pixels: [Float] = [], labels: [Int] = []
    for _ in 0..<count {
        let cls = Int(g.next() % 4)
        for y in 0..<8 { for x in 0..<8 {
            pixels.append(min(1, 0.2 * g.nextUniform() + ((y / 4) * 2 + x / 4 == cls ? 0.7 : 0.1)))
        } }
        labels.append(cls)
    }
    return LabelledDataset(pixels: pixels, labels: labels, channels: 1, height: 8, width: 8, classes: 4)
}

/// The edge's side of the loop against the cloud at `url` (made here: an agent is not `Sendable`).
func runEdge(url: String, token: String, data: LabelledDataset, session: URL) async throws -> EdgeRunReport {
    var settings = EdgeAgentSettings(session: session)
    settings.newSession.epochs = 1; settings.newSession.batchSize = 16; settings.newSession.mask = 4
    settings.samplesPerPart = 16; settings.wait = 300; settings.poll = 0.2; settings.rounds = 3
    let agent = EdgeAgent(client: CloudClient(baseURL: url, token: token), data: data, settings: settings)
    return try await agent.run()
}

/// The cloud's side: train on the clearest upload, follow clearer ones until m = 0.
func runCloud(store: SQLiteUploadStore, edge: String) async throws -> [(mask: Int, samples: Int, heldOut: [Double])] {
    var settings = CloudTrainerSettings()
    settings.classifier.epochs = 1; settings.classifier.batchSize = 16
    settings.follow = true; settings.followTimeout = 300; settings.poll = 0.2
    let trained = try await CloudTrainer(store: store, edge: edge, settings: settings).run()
    return trained.map { ($0.upload.spec.mask, $0.trainImages + $0.heldOutImages, $0.heldOutAccuracy) }
}

/// Runs `body` with a temporary directory, a fresh store in it with one edge ("edge-1"), and a
/// live cloud service on a free loopback port (its URL and the edge's token); the store is closed
/// and the directory removed afterwards, whatever happens.
func withLiveCloud(_ body: @escaping @Sendable (_ dir: URL, _ store: SQLiteUploadStore, _ url: String, _ token: String) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-loop-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let store = try await SQLiteUploadStore.open(path: dir.appendingPathComponent("cloud.db").path)
    do {
        let token = try await CloudService.addEdge(name: "edge-1", to: store)
        let service = CloudService(store: store, policy: MaskPolicy(timeBudget: 600))
        try await service.application(host: "127.0.0.1", port: 0).test(.live) { client in
            try await body(dir, store, "http://127.0.0.1:\(client.port!)", token)
        }
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
}

@Suite struct MaskLoopTests {
    /// The whole loop in one process over a live socket: the edge trains and uploads at m = 4
    /// (the cloud has no bandwidth measured yet), the cloud trains on it until it converges, the
    /// mask policy then asks for the clearest m the measured (loopback) bandwidth allows, the
    /// edge fine-tunes to it and uploads, and the cloud trains on the clearer data.
    @Test func edgeAndCloudFollowTheMaskRequest() async throws {
        let data = quadrantImages()
        try await withLiveCloud { dir, store, url, token in
            async let edgeRun = runEdge(url: url, token: token, data: data, session: dir.appendingPathComponent("edge"))
            async let cloudRun = runCloud(store: store, edge: "edge-1")
            let (edge, cloud) = try await (edgeRun, cloudRun)

            #expect(edge.uploads.first?.mask == 4)
            #expect(edge.uploads.count == 2, "the edge followed one request: \(edge.uploads.map(\.mask))")
            let clearer = try #require(edge.uploads.last).mask
            #expect(clearer < 4)
            #expect(edge.uploads.allSatisfy { $0.bytesSent > 0 && $0.coding != .auto })
            #expect(cloud.map(\.mask) == [4, clearer])
            #expect(cloud.allSatisfy { $0.samples == data.count && $0.heldOut.count == 1 })
            // Every upload is complete in the store with every sample once; the fine-tuned
            // session is kept beside the first.
            let uploads = try await store.uploads(edge: "edge-1")
            #expect(Set(uploads.map(\.spec.mask)) == [4, clearer])
            #expect(uploads.allSatisfy { $0.complete && $0.spec.samples == data.count })
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("edge/m\(clearer)/session.json").path))
            let progress = try #require(try await store.training(edge: "edge-1"))
            #expect(progress.mask == clearer && progress.converged)
        }
    }

    /// A second run of the edge with the same session finds its upload already stored: nothing
    /// is trained or sent again.
    @Test func aRestartedEdgeResumesWithoutResending() async throws {
        let data = quadrantImages()
        try await withLiveCloud { dir, _, url, token in
            var settings = EdgeAgentSettings(session: dir.appendingPathComponent("edge"))
            settings.newSession.epochs = 1; settings.newSession.batchSize = 16; settings.samplesPerPart = 16
            settings.rounds = 1
            let first = try await EdgeAgent(client: CloudClient(baseURL: url, token: token), data: data, settings: settings).run()
            let again = try await EdgeAgent(client: CloudClient(baseURL: url, token: token), data: data, settings: settings).run()
            #expect(first.uploads.count == 1 && first.uploads[0].partsSent == 4)
            #expect(again.uploads.count == 1 && again.uploads[0].partsSent == 0 && again.uploads[0].partsSkipped == 4)
            #expect(again.uploads[0].mask == first.uploads[0].mask)
        }
    }
}
