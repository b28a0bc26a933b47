import CDCCloudService
import CDCEdgeClient
import CDCStore
import CDCWire
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

// MARK: Fixtures

/// A co-inference backend of two systems whose payloads must have a fixed size; the score of
/// class c is the sum of the payload's bytes at positions ≡ c (mod classes). It counts its calls.
final class FakeInferenceBackend: InferenceBackend {
    /// Payloads of 4 bytes, 3 classes; a key with `/`, `=` and `.`.
    static let disc = InferenceSystemInfo(key: "disc-like/S2/tau=0.05_b=2/none", system: "disc-like", split: "S2",
                                          config: "tau=0.05_b=2", channel: "none", oneOffBytes: 1234, sampleShape: [1, 28, 28], classes: 3)
    /// Payloads of 1000 bytes, 5 classes; a key with `+`, `&` and a space too.
    static let wide = InferenceSystemInfo(key: "bottlenet++/S1/c=8&q=4 x/awgn", system: "bottlenet++", split: "S1",
                                          config: "c=8&q=4 x", channel: "awgn", oneOffBytes: 0, sampleShape: [3, 32, 32], classes: 5)
    static let payloadBytes = [disc.key: 4, wide.key: 1000]

    private let callCount = Mutex(0)
    /// Calls of `classify` so far, refused ones included.
    var calls: Int { callCount.withLock { $0 } }

    var catalog: [InferenceSystemInfo] { [Self.disc, Self.wide] }

    func classify(system key: String, payloads: [[UInt8]]) async throws -> InferenceReply {
        callCount.withLock { $0 += 1 }
        guard let info = catalog.first(where: { $0.key == key }), let size = Self.payloadBytes[key] else {
            throw InferenceError.unknownSystem(key)
        }
        if let i = payloads.firstIndex(where: { $0.count != size }) {
            throw InferenceError.badPayload("sample \(i) is \(payloads[i].count) bytes; \(key) takes \(size)")
        }
        return InferenceReply(system: key, count: payloads.count, classes: info.classes,
                              scores: payloads.flatMap { Self.scores($0, classes: info.classes) }, serverMilliseconds: 0.25)
    }

    static func scores(_ payload: [UInt8], classes: Int) -> [Float] {
        var s = [Float](repeating: 0, count: classes)
        for (j, b) in payload.enumerated() { s[j % classes] += Float(b) }
        return s
    }
}

/// `withService`'s store and edge, with a service that has `backend` (nil: none).
func withInferenceService(backend: FakeInferenceBackend?, maxInferenceBytes: Int = API.defaultMaxInferenceBytes,
                          _ body: (CloudService, SQLiteUploadStore, String) async throws -> Void) async throws {
    try await withService() { plain, store, token in
        try await body(CloudService(store: store, policy: plain.policy, inference: backend, maxInferenceBytes: maxInferenceBytes),
                       store, token)
    }
}

/// The route of `FakeInferenceBackend.disc`, its key percent-encoded by hand.
let discURI = "/v1/infer?system=disc-like%2FS2%2Ftau%3D0.05_b%3D2%2Fnone"
/// The route of `FakeInferenceBackend.wide`.
let wideURI = "/v1/infer?system=bottlenet%2B%2B%2FS1%2Fc%3D8%26q%3D4%20x%2Fawgn"

/// `count` bytes of a pattern that differs with `seed`.
func patterned(_ count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: i &* 13 &+ seed &* 31) }
}

/// The message of a JSON error body, after checking that it is one.
func errorMessage(_ response: TestResponse) throws -> String {
    #expect(response.headers[.contentType] == "application/json")
    return try decoded(APIError.self, response).error
}

// MARK: The batch format

@Suite struct InferenceBatchTests {
    @Test func roundTripKeepsEveryPayloadEmptyOnesIncluded() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], (0..<300).map { UInt8($0 % 251) }]
        let bytes = InferenceBatch.encode(payloads)
        #expect(Array(bytes.prefix(9)) == [0x43, 0x44, 0x43, 0x49, 1, 3, 0, 0, 0])
        #expect(Array(bytes[9..<13]) == [3, 0, 0, 0])
        #expect(bytes.count == InferenceBatch.framingBytes(count: 3) + 303)
        #expect(try InferenceBatch.decode(bytes) == payloads)
    }

    @Test func malformedBatchesAreRefusedWithTheReason() throws {
        func refusal(_ bytes: [UInt8], maxSamples: Int = 4096, maxPayloadBytes: Int = 16 << 20) -> String {
            do {
                _ = try InferenceBatch.decode(bytes, maxSamples: maxSamples, maxPayloadBytes: maxPayloadBytes)
                return "accepted"
            } catch let error as WireError {
                return error.description
            } catch {
                return "\(error)"
            }
        }
        let good = InferenceBatch.encode([[1, 2, 3, 4], [5, 6]])   // 9 + 4 + 4 + 4 + 2 = 23 bytes
        #expect(refusal(Array("XDCI".utf8) + good.dropFirst(4)).contains("not an inference batch"))
        #expect(refusal([]).contains("not an inference batch"))
        #expect(refusal(Array(good.prefix(6))).contains("header"))
        var v2 = good; v2[4] = 2
        #expect(refusal(v2).contains("version 2"))
        #expect(refusal(Array(good.prefix(19))) == "inference batch truncated in the length of sample 1 of 2: 2 of 4 bytes missing")
        #expect(refusal(Array(good.dropLast())) == "inference batch truncated in sample 1 of 2: 1 of 2 bytes missing")
        #expect(refusal(good + [0, 0]).contains("2 trailing bytes"))
        #expect(refusal(InferenceBatch.encode([])).contains("at least one sample"))
        #expect(refusal(InferenceBatch.encode(Array(repeating: [7], count: 5)), maxSamples: 4).contains("at most 4 samples"))
        #expect(refusal(good, maxPayloadBytes: 3).contains("sample 0 of the inference batch is 4 bytes; the limit is 3"))
        // A count that claims more samples than the limit, however short the body.
        var huge = good; huge.replaceSubrange(5..<9, with: [0xff, 0xff, 0xff, 0xff])
        #expect(refusal(huge).contains("at most 4096 samples"))
        #expect(refusal(good) == "accepted")
    }

    @Test func predictionsAreTheArgmaxOfEachRow() {
        let reply = InferenceReply(system: "s", count: 3, classes: 3, scores: [0, 2, 1, 5, 5, -1, -3, -2, -1], serverMilliseconds: 1)
        #expect(reply.problem == nil)
        #expect(reply.predictions == [1, 0, 2])
        #expect(InferenceReply(system: "s", count: 2, classes: 3, scores: [0, 1], serverMilliseconds: 0).problem != nil)
    }
}

// MARK: The route, in process

@Suite struct InferenceEndpointTests {
    @Test func withoutACredentialTheBackendIsNeverCalled() async throws {
        let backend = FakeInferenceBackend()
        try await withInferenceService(backend: backend) { service, _, token in
            let batch = ByteBuffer(bytes: InferenceBatch.encode([[1, 2, 3, 4]]))
            try await Application(router: service.router()).test(.router) { client in
                for headers in [HTTPFields(), auth(token + "0"), [.authorization: "Basic \(token)"]] {
                    let post = try await client.execute(uri: discURI, method: .post, headers: headers, body: batch)
                    #expect(post.status == .unauthorized)
                    #expect(try errorMessage(post).contains("credential"))
                    #expect(try await client.execute(uri: "/v1/infer", method: .get, headers: headers).status == .unauthorized)
                }
            }
            #expect(backend.calls == 0)
        }
    }

    @Test func refusedBatchesAreJSONErrorsAndStoreNothing() async throws {
        let backend = FakeInferenceBackend()
        try await withInferenceService(backend: backend, maxInferenceBytes: 4096) { service, store, token in
            try await Application(router: service.router()).test(.router) { client in
                func post(_ uri: String, _ bytes: [UInt8]) async throws -> TestResponse {
                    try await client.execute(uri: uri, method: .post, headers: auth(token), body: ByteBuffer(bytes: bytes))
                }
                let good = InferenceBatch.encode([[1, 2, 3, 4], [5, 6, 7, 8]])
                let unknown = try await post("/v1/infer?system=disc-like%2FS9%2Fnone", good)
                #expect(unknown.status == .notFound)
                let message = try errorMessage(unknown)
                #expect(message.contains("disc-like/S9/none") && message.contains("GET /v1/infer"))
                for uri in ["/v1/infer", "/v1/infer?system=", "/v1/infer?model=x"] {
                    let missing = try await post(uri, good)
                    #expect(missing.status == .badRequest, "\(uri)")
                    #expect(try errorMessage(missing).contains("`system`"))
                }
                let truncated = try await post(discURI, Array(good.dropLast()))
                #expect(truncated.status == .badRequest)
                #expect(try errorMessage(truncated).contains("truncated in sample 1 of 2"))
                let notABatch = try await post(discURI, Array("{\"samples\": []}".utf8))
                #expect(notABatch.status == .badRequest)
                #expect(try errorMessage(notABatch).contains("not an inference batch"))
                let wrongSize = try await post(discURI, InferenceBatch.encode([[1, 2, 3, 4], [5, 6, 7]]))
                #expect(wrongSize.status == .badRequest)
                #expect(try errorMessage(wrongSize) == "sample 1 is 3 bytes; \(FakeInferenceBackend.disc.key) takes 4")
                let oversized = try await post(discURI, InferenceBatch.encode(Array(repeating: [1, 2, 3, 4], count: 600)))
                #expect(oversized.status == .contentTooLarge)
                _ = try errorMessage(oversized)
                // Only the batches that were well formed reached the backend; none was counted as classified.
                #expect(backend.calls == 2)
                let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get, headers: auth(token)).body)
                #expect(metrics.contains("cdc_inference_requests_total{edge=\"edge-1\"} 0"))
            }
            #expect(try await store.uploads(edge: "edge-1").isEmpty)
            #expect(try await store.registration(edge: "edge-1") == nil)
        }
    }

    @Test func withoutABackendTheCatalogIsEmptyAndBatchesAre404() async throws {
        try await withInferenceService(backend: nil) { service, _, token in
            try await Application(router: service.router()).test(.router) { client in
                let catalog = try await client.execute(uri: "/v1/infer", method: .get, headers: auth(token))
                #expect(catalog.status == .ok)
                #expect(try decoded([InferenceSystemInfo].self, catalog).isEmpty)
                let batch = try await client.execute(uri: discURI, method: .post, headers: auth(token),
                                                     body: ByteBuffer(bytes: InferenceBatch.encode([[1, 2, 3, 4]])))
                #expect(batch.status == .notFound)
                #expect(try errorMessage(batch).contains("--inference DIR"))
            }
        }
    }

    @Test func batchesAreClassifiedAndCounted() async throws {
        let backend = FakeInferenceBackend()
        try await withInferenceService(backend: backend) { service, store, token in
            try await Application(router: service.router()).test(.router) { client in
                let catalog = try await client.execute(uri: "/v1/infer", method: .get, headers: auth(token))
                #expect(catalog.status == .ok)
                #expect(try decoded([InferenceSystemInfo].self, catalog) == [FakeInferenceBackend.disc, FakeInferenceBackend.wide])

                let body = InferenceBatch.encode([[1, 2, 3, 4], [0, 9, 0, 0], [0, 0, 200, 0]])
                let response = try await client.execute(uri: discURI, method: .post, headers: auth(token), body: ByteBuffer(bytes: body))
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let reply = try decoded(InferenceReply.self, response)
                #expect(reply == InferenceReply(system: FakeInferenceBackend.disc.key, count: 3, classes: 3,
                                                scores: [5, 2, 3, 0, 9, 0, 0, 0, 200], serverMilliseconds: 0.25))
                #expect(reply.predictions == [0, 1, 2])

                // A key with `+`, `&` and a space arrives intact.
                let wide = (0..<2).map { patterned(1000, seed: $0) }
                let wideReply = try decoded(InferenceReply.self, try await client.execute(
                    uri: wideURI, method: .post, headers: auth(token), body: ByteBuffer(bytes: InferenceBatch.encode(wide))))
                #expect(wideReply.system == FakeInferenceBackend.wide.key)
                #expect(wideReply.scores == wide.flatMap { FakeInferenceBackend.scores($0, classes: 5) })

                let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get, headers: auth(token)).body)
                #expect(metrics.contains("cdc_inference_requests_total{edge=\"edge-1\"} 2"))
                #expect(metrics.contains("cdc_inference_samples_total{edge=\"edge-1\"} 5"))
                #expect(metrics.contains("cdc_inference_bytes_total{edge=\"edge-1\"} \(body.count + InferenceBatch.framingBytes(count: 2) + 2000)"))
            }
            #expect(backend.calls == 2)
            #expect(try await store.uploads(edge: "edge-1").isEmpty)
        }
    }
}

// MARK: Over a real socket, with the edge's client

@Suite struct LiveInferenceTests {
    /// `CloudClient.infer` against the service on a localhost port: the scores come back, a
    /// refusal surfaces its message without retries, and the upload cap paces the batch.
    @Test func clientInfersAtTheUploadCap() async throws {
        let backend = FakeInferenceBackend()
        try await withInferenceService(backend: backend) { service, store, token in
            try await service.application(host: "127.0.0.1", port: 0).test(.live) { client in
                let limit = try UplinkRateLimit(bitsPerSecond: 200_000)
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token, rateLimit: limit)
                #expect(try await cloud.inferenceCatalog() == [FakeInferenceBackend.disc, FakeInferenceBackend.wide])

                // 25 samples of 1000 bytes: about 25 kB, a second at 200 kbit/s.
                let payloads = (0..<25).map { patterned(1000, seed: $0) }
                let batchBytes = InferenceBatch.framingBytes(count: payloads.count) + 25_000
                let clock = ContinuousClock()
                let start = clock.now
                let reply = try await cloud.infer(system: FakeInferenceBackend.wide.key, payloads: payloads)
                let elapsed = (clock.now - start) / .seconds(1)
                #expect(reply.count == 25 && reply.classes == 5)
                #expect(reply.scores == payloads.flatMap { FakeInferenceBackend.scores($0, classes: 5) })
                #expect(elapsed >= 0.6 * limit.seconds(for: batchBytes), "\(elapsed) s for \(batchBytes) bytes")

                let small = try await cloud.infer(system: FakeInferenceBackend.disc.key, payloads: [[9, 1, 1, 1]])
                #expect(small.predictions == [0])

                do {
                    _ = try await cloud.infer(system: "disc-like/S9/none", payloads: [[1, 2, 3, 4]])
                    Issue.record("an unknown system was accepted")
                } catch CloudClientError.rejected(let status, let message) {
                    #expect(status == 404 && message.contains("GET /v1/infer"))
                }
                do {
                    _ = try await cloud.infer(system: FakeInferenceBackend.disc.key, payloads: [[1, 2]])
                    Issue.record("a payload of the wrong size was accepted")
                } catch CloudClientError.rejected(let status, let message) {
                    #expect(status == 400 && message.contains("takes 4"))
                }
                #expect(cloud.retryCount == 0)
            }
            #expect(backend.calls == 4)
            #expect(try await store.uploads(edge: "edge-1").isEmpty)
        }
    }

    /// A 503 on the first attempt (a flaky proxy): the batch is sent again and classified once.
    @Test func failedBatchIsRetried() async throws {
        let backend = FakeInferenceBackend()
        try await withInferenceService(backend: backend) { service, _, token in
            let router = service.router(outer: EveryOtherFails())
            try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { client in
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token,
                                        retry: RetryPolicy(attempts: 3, initialDelay: 0.01, maxDelay: 0.05))
                let reply = try await cloud.infer(system: FakeInferenceBackend.disc.key, payloads: [[1, 2, 3, 4]])
                #expect(reply.scores == [5, 2, 3])
                #expect(cloud.retryCount == 1)
            }
            #expect(backend.calls == 1)
        }
    }
}
