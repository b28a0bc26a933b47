import CDCCloudService
import CDCCloudTrainer
import CDCData
import CDCEdgeAgent
import CDCStore
import CDCTensor
import Foundation
import Testing

/// 64 clips of 1 024 samples at 8 kHz, 4 classes of tones (200, 600, 1 400, 2 600 Hz) with a
/// random phase and level.
func toneClips(count: Int = 64, length: Int = 1024, seed: UInt64 = 1) -> LabelledDataset {
    var g = SeededGenerator(seed: seed)
    let freqs: [Float] = [200, 600, 1400, 2600]
    var samples: [Float] = [], labels: [Int] = []
    for i in 0..<count {
        let c = i % 4
        let phase = Float(g.next() % 1000) / 1000 * 2 * .pi, level = 0.3 + Float(g.next() % 1000) / 2000
        for t in 0..<length { samples.append(level * sin(2 * .pi * freqs[c] * Float(t) / 8000 + phase)) }
        labels.append(c)
    }
    return LabelledDataset(audio: samples, labels: labels, length: length, sampleRate: 8000, classes: 4)
}

@Suite struct AudioLoopTests {
    /// The mask loop on audio clips over a live socket: the edge trains cdc-ae-1d + cdc-ec-1d and
    /// uploads [16, L/16] latents at m = 4, the cloud restores clips at the uploaded decoder's
    /// rate and length and trains m5, asks for a clearer m, and trains again on it.
    @Test func edgeAndCloudFollowTheMaskRequestOnAudio() async throws {
        let data = toneClips()
        try await withLiveCloud { dir, store, url, token in
            async let edgeRun = runEdge(url: url, token: token, data: data, session: dir.appendingPathComponent("edge"))
            async let cloudRun = runCloud(store: store, edge: "edge-1")
            let (edge, cloud) = try await (edgeRun, cloudRun)
            #expect(edge.uploads.first?.mask == 4)
            #expect(edge.uploads.count == 2, "the edge followed one request: \(edge.uploads.map(\.mask))")
            #expect(edge.rawBytes == data.count * (1024 * 2 + 1))   // 16-bit PCM + a label byte
            let uploads = try await store.uploads(edge: "edge-1")
            #expect(uploads.allSatisfy { $0.complete && $0.spec.latentShape == [16, 64] })
            #expect(cloud.count == 2 && cloud.allSatisfy { $0.samples == data.count })
            let registration = try #require(try await store.registration(edge: "edge-1"))
            #expect(registration.latentsPerSample == 1024)
        }
    }
}
