import CDCCloudService
import CDCCloudTrainer
import CDCCodec
import CDCData
import CDCEdgeAgent
import CDCEdgeClient
import CDCPipeline
import CDCStore
import CDCTensor
import CDCWire
import Foundation
import Testing

@Suite struct VAEClsLoopTests {
    /// The mask loop with the VAE codec over a live socket: the edge trains vae-cls and uploads
    /// coded latents with the latent file (no decoder) at m = 4, the cloud trains a fresh latent
    /// classifier on them, asks for a clearer m, the edge fine-tunes to it (L of that m) and
    /// uploads again; test images encoded by the edge are classified through the codec.
    @Test func edgeAndCloudFollowTheMaskRequestWithVAECls() async throws {
        let data = quadrantImages()
        try await withLiveCloud { dir, store, url, token in
            let sessionDir = dir.appendingPathComponent("edge")
            async let edgeRun: EdgeRunReport = {
                var settings = EdgeAgentSettings(session: sessionDir)
                var vae = VAEClsConfig()
                vae.epochs = 1; vae.batchSize = 16
                settings.newVAESession = vae
                settings.samplesPerPart = 16; settings.wait = 300; settings.poll = 0.2; settings.rounds = 3
                return try await EdgeAgent(client: CloudClient(baseURL: url, token: token), data: data, settings: settings).run()
            }()
            async let cloudRun: [TrainedClassifier] = {
                var settings = CloudTrainerSettings()
                settings.classifier.epochs = 1; settings.classifier.batchSize = 16
                settings.follow = true; settings.followTimeout = 300; settings.poll = 0.2
                return try await CloudTrainer(store: store, edge: "edge-1", settings: settings).run()
            }()
            let (edge, cloud) = try await (edgeRun, cloudRun)
            #expect(edge.uploads.first?.mask == 4)
            #expect(edge.uploads.count == 2, "the edge followed one request: \(edge.uploads.map(\.mask))")
            let clearer = try #require(edge.uploads.last).mask
            #expect(clearer < 4 && cloud.map(\.upload.spec.mask) == [4, clearer])
            #expect(cloud.allSatisfy { $0.modelName == "vae-cls-head" && $0.trainImages + $0.heldOutImages == data.count })
            // The one-off file is the latent file: centres and shapes, far smaller than a decoder.
            #expect(edge.uploads.allSatisfy { $0.decoderBytes < 1000 && $0.bytesSent > 0 })
            let uploads = try await store.uploads(edge: "edge-1")
            #expect(uploads.allSatisfy { $0.complete && $0.spec.latentShape == [16, 2, 2] })
            // The deployment figure: test images encoded by the session of the clearer upload.
            let s = try #require(try EdgeModelSessions.resume(from: sessionDir.appendingPathComponent("m\(clearer)")) as? VAEClsSession)
            #expect(s.model.quantizer.levels == VAERatePoint.forMask(clearer).levels)
            let test = quadrantImages(count: 32, seed: 7)
            let file = try s.latentFile()
            let tc = try s.compress(test, coding: .histogram, decoderHash: ModelIdentity.hash(file))
            let through = try #require(try cloud.last!.accuracy(throughCodec: tc))
            #expect(through.images == 32 && (0...1).contains(through.accuracy))
            // Codes of the first session do not match the second upload's latent file.
            let first = try #require(try EdgeModelSessions.resume(from: sessionDir) as? VAEClsSession)
            let tc4 = try first.compress(test, coding: .fixed, decoderHash: ModelIdentity.hash(try first.latentFile()))
            #expect(try cloud.last!.accuracy(throughCodec: tc4) == nil)
        }
    }
}
