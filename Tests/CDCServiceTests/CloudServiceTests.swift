import CDCCloudService
import CDCCodec
import CDCEdgeClient
import CDCEntropy
import CDCStore
import CDCWire
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

// MARK: Fixtures

/// Runs `body` with a fresh temporary directory (named `prefix-<uuid>`), removed afterwards.
func withTemporaryDirectory<T>(_ prefix: String, _ body: (URL) async throws -> T) async throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    return try await body(dir)
}

/// Runs `body` with a fresh store in a temporary directory, a service on it with one edge
/// ("edge-1") and its token; the store is closed afterwards, whatever happens.
func withService(budget: Double = 60, maxPartBytes: Int = API.defaultMaxPartBytes, metricsToken: String? = nil,
                 _ body: (CloudService, SQLiteUploadStore, String) async throws -> Void) async throws {
    try await withTemporaryDirectory("cdc-service") { dir in
        let store = try await SQLiteUploadStore.open(path: dir.appendingPathComponent("cloud.db").path)
        do {
            let token = try await CloudService.addEdge(name: "edge-1", to: store)
            try await body(CloudService(store: store, policy: MaskPolicy(timeBudget: budget), maxPartBytes: maxPartBytes,
                                        metricsToken: metricsToken), store, token)
        } catch {
            try await store.close()
            throw error
        }
        try await store.close()
    }
}

/// A labelled container of `count` random samples at mask `mask` (latent 4×2×2) and the
/// decoder bytes whose hash it carries.
func toyUpload(count: Int, mask: Int = 4, seed: UInt64 = 1) throws -> (LatentContainer, [UInt8]) {
    var rng = SplitMix64(seed: seed)
    let decoder = (0..<700).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    let levels = 1 << (4 - mask)
    let symbols = (0..<(count * 16)).map { _ in Int8(Int(rng.next() % UInt64(2 * levels)) - levels + 1) }
    let labels = (0..<count).map { _ in Int(rng.next() % 10) }
    let c = try LatentContainer(mask: mask, latentShape: [4, 2, 2], symbols: symbols, labels: labels, classes: 10,
                                decoderHash: ModelIdentity.hash(decoder), samplesPerChunk: 32)
    return (c, decoder)
}

func json<T: Encodable>(_ value: T) throws -> ByteBuffer { ByteBuffer(bytes: try JSONEncoder().encode(value)) }
func decoded<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
}
func auth(_ token: String, _ more: HTTPFields = [:]) -> HTTPFields {
    var h = more
    h[.authorization] = "Bearer \(token)"
    return h
}

/// All parts of an upload in the store, joined.
func storedContainer(_ store: SQLiteUploadStore, _ status: UploadStatus) async throws -> LatentContainer {
    var parts: [LatentContainer] = []
    for i in 0..<status.spec.partCount {
        let bytes = try #require(try await store.part(edge: "edge-1", upload: status.id, index: i))
        parts.append(try LatentContainer.decode(bytes))
    }
    return try LatentContainer.joined(parts)
}

// MARK: In-process API tests

@Suite struct CloudAPITests {
    @Test func healthNeedsNoCredentialEverythingElseDoes() async throws {
        try await withService() { service, store, token in
            let app = Application(router: service.router())
            try await app.test(.router) { client in
                #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
                for (uri, method) in [("/v1/mask", HTTPRequest.Method.get), ("/metrics", .get), ("/v1/uploads", .post),
                                      ("/v1/uploads/m4-0000000000000001/parts/0", .put),
                                      ("/v1/no-such-route", .get), ("/v1/mask", .delete)] {
                    let none = try await client.execute(uri: uri, method: method, body: ByteBuffer(string: "{}"))
                    #expect(none.status == .unauthorized, "\(method) \(uri)")
                    #expect(none.headers[.wwwAuthenticate] != nil)
                    let wrong = try await client.execute(uri: uri, method: method, headers: auth(token + "0"), body: ByteBuffer(string: "{}"))
                    #expect(wrong.status == .unauthorized)
                }
                #expect(try await client.execute(uri: "/v1/mask", method: .get, headers: auth(token)).status == .ok)
                // With a credential, an unknown route is what it is.
                #expect(try await client.execute(uri: "/v1/no-such-route", method: .get, headers: auth(token)).status == .notFound)
            }
            #expect(try await store.uploads(edge: "edge-1").isEmpty)
        }
    }

    /// An edge reads only its own metrics; the operator's credential reads every edge's and
    /// nothing else.
    @Test func metricsAreScopedToTheCredential() async throws {
        let operatorToken = "operator-" + CloudService.newToken()
        try await withService(metricsToken: operatorToken) { service, store, token in
            let other = try await CloudService.addEdge(name: "edge-2", to: store)
            let app = Application(router: service.router())
            try await app.test(.router) { client in
                _ = try await client.execute(uri: "/v1/mask", method: .get, headers: auth(token))
                _ = try await client.execute(uri: "/v1/mask", method: .get, headers: auth(other))
                let own = String(buffer: try await client.execute(uri: "/metrics", method: .get, headers: auth(token)).body)
                #expect(own.contains("cdc_requested_mask{edge=\"edge-1\"}"))
                #expect(!own.contains("edge-2"))
                #expect(!own.contains("cdc_unauthorized_requests_total"))
                let all = try await client.execute(uri: "/metrics", method: .get, headers: auth(operatorToken))
                #expect(all.status == .ok)
                let text = String(buffer: all.body)
                #expect(text.contains("cdc_requested_mask{edge=\"edge-1\"}") && text.contains("cdc_requested_mask{edge=\"edge-2\"}"))
                #expect(text.contains("cdc_unauthorized_requests_total"))
                // The operator's credential opens /metrics only.
                #expect(try await client.execute(uri: "/v1/mask", method: .get, headers: auth(operatorToken)).status == .unauthorized)
                #expect(try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(operatorToken),
                                                 body: ByteBuffer(string: "{}")).status == .unauthorized)
            }
        }
    }

    @Test func malformedRequestsAreRefusedAndStoreNothing() async throws {
        try await withService(maxPartBytes: 4096) { service, store, token in
            let (container, decoder) = try toyUpload(count: 100)
            let spec = UploadSpec(mask: 4, decoderHash: container.decoderHash, samples: 100, samplesPerPart: 40,
                                  latentShape: [4, 2, 2], classes: 10)
            let app = Application(router: service.router())
            try await app.test(.router) { client in
                #expect(try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(token), body: ByteBuffer(string: "{nope")).status == .badRequest)
                var bad = spec; bad.mask = 7
                let r = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(token), body: try json(bad))
                #expect(r.status == .badRequest)
                #expect(try decoded(APIError.self, r).error.contains("mask"))
                let created = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(token), body: try json(spec))
                #expect(created.status == .ok)
                let parts = try container.parts(samplesPerPart: 40)
                let good = try parts[0].checkedEncoded()
                let uri = "/v1/uploads/\(spec.id)/parts/0"
                func put(_ bytes: [UInt8], hash: String? = nil, to uri: String = uri) async throws -> TestResponse {
                    let h = auth(token, [HTTPField.Name(API.contentHashHeader)!: hash ?? SHA256.hex(bytes)])
                    return try await client.execute(uri: uri, method: .put, headers: h, body: ByteBuffer(bytes: bytes))
                }
                // No hash header, a wrong hash, a corrupt container (hash of the corrupt bytes), the
                // wrong part (sample count), an index beyond the upload, an oversized body.
                #expect(try await client.execute(uri: uri, method: .put, headers: auth(token), body: ByteBuffer(bytes: good)).status == .badRequest)
                #expect(try await put(good, hash: String(repeating: "0", count: 64)).status == .badRequest)
                var corrupt = good; corrupt[corrupt.count / 2] ^= 0x10
                let c = try await put(corrupt)
                #expect(c.status == .badRequest)
                #expect(try decoded(APIError.self, c).error.contains("not a valid container"))
                #expect(try await put(try parts[2].checkedEncoded()).status == .badRequest)   // 20 samples, part 0 has 40
                #expect(try await put(good, to: "/v1/uploads/\(spec.id)/parts/3").status == .notFound)
                #expect(try await put(good, to: "/v1/uploads/m4-ffffffffffffffff/parts/0").status == .notFound)
                #expect(try await put([UInt8](repeating: 1, count: 5000)).status == .contentTooLarge)
                // A decoder whose hash is not the upload's.
                let d = try await client.execute(uri: "/v1/uploads/\(spec.id)/decoder", method: .put, headers: auth(token),
                                                 body: ByteBuffer(bytes: decoder + [0]))
                #expect(d.status == .badRequest)
            }
            let status = try #require(try await store.upload(edge: "edge-1", id: spec.id))
            #expect(status.storedParts.isEmpty && !status.decoderStored)
        }
    }

    @Test func retriedPartIsAcknowledgedNotStoredTwice() async throws {
        try await withService() { service, store, token in
            let (container, decoder) = try toyUpload(count: 50)
            let spec = UploadSpec(mask: 4, decoderHash: container.decoderHash, samples: 50, samplesPerPart: 25,
                                  latentShape: [4, 2, 2], classes: 10)
            let app = Application(router: service.router())
            try await app.test(.router) { client in
                _ = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(token), body: try json(spec))
                // Announcing the same upload again is the same upload; a different spec under its id is a conflict.
                #expect(try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(token), body: try json(spec)).status == .ok)
                var other = spec; other.samplesPerPart = 10
                #expect(try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(token), body: try json(other)).status == .conflict)
                let parts = try container.parts(samplesPerPart: 25)
                let bytes = try parts[1].checkedEncoded()
                let h = auth(token, [HTTPField.Name(API.contentHashHeader)!: SHA256.hex(bytes)])
                let first = try await client.execute(uri: "/v1/uploads/\(spec.id)/parts/1", method: .put, headers: h, body: ByteBuffer(bytes: bytes))
                #expect(first.status == .created)
                #expect(try decoded(PartReceipt.self, first).stored)
                let again = try await client.execute(uri: "/v1/uploads/\(spec.id)/parts/1", method: .put, headers: h, body: ByteBuffer(bytes: bytes))
                #expect(again.status == .ok)
                #expect(try !decoded(PartReceipt.self, again).stored)
                // Other (valid) bytes under a stored index: refused, the stored part is kept.
                var relabelled = parts[1]; relabelled.labels[0] = (relabelled.labels[0] + 1) % 10
                let otherBytes = try relabelled.checkedEncoded()
                let conflict = try await client.execute(uri: "/v1/uploads/\(spec.id)/parts/1", method: .put,
                                                        headers: auth(token, [HTTPField.Name(API.contentHashHeader)!: SHA256.hex(otherBytes)]),
                                                        body: ByteBuffer(bytes: otherBytes))
                #expect(conflict.status == .conflict)
                let dh = try await client.execute(uri: "/v1/uploads/\(spec.id)/decoder", method: .put, headers: auth(token), body: ByteBuffer(bytes: decoder))
                #expect(dh.status == .created)
                let metrics = try await client.execute(uri: "/metrics", method: .get, headers: auth(token))
                let text = String(buffer: metrics.body)
                #expect(text.contains("cdc_parts_stored_total{edge=\"edge-1\"} 1"))
                #expect(text.contains("cdc_parts_duplicate_total{edge=\"edge-1\"} 1"))
                #expect(text.contains("cdc_received_bytes_total{edge=\"edge-1\"} \(2 * bytes.count + decoder.count)"))
                #expect(text.contains("cdc_current_mask{edge=\"edge-1\"} -1"))
            }
            let status = try #require(try await store.upload(edge: "edge-1", id: spec.id))
            let part1 = try container.parts(samplesPerPart: 25)[1].checkedEncoded()
            #expect(status.storedParts == [1] && status.storedBytes == part1.count)
            #expect(try await store.part(edge: "edge-1", upload: spec.id, index: 1) == part1)
        }
    }
}

// MARK: Over a real socket, with the edge's client

@Suite struct LiveUploadTests {
    @Test func uploadCompletesWithEverySampleOnceAndResumes() async throws {
        try await withService() { service, store, token in
            let (container, decoder) = try toyUpload(count: 300, mask: 2)
            let coded = try container.entropyCoded()
            try await service.application(host: "127.0.0.1", port: 0).test(.live) { client in
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token)
                let uploader = EdgeUploader(client: cloud, samplesPerPart: 64)
                // An upload that stopped after two parts (as if the edge crashed) …
                let spec = UploadSpec(mask: 2, decoderHash: coded.decoderHash, samples: 300, samplesPerPart: 64,
                                      latentShape: [4, 2, 2], classes: 10)
                _ = try await cloud.createUpload(spec)
                let parts = try coded.parts(samplesPerPart: 64)
                for i in [0, 3] { _ = try await cloud.putPart(upload: spec.id, index: i, bytes: try parts[i].checkedEncoded()) }
                // … resumes: only the missing parts and the decoder are sent.
                let result = try await uploader.upload(coded, decoder: decoder)
                #expect(result.partsSkipped == 2 && result.partsSent == 3)
                #expect(result.status.complete && result.status.storedParts == [0, 1, 2, 3, 4])
                #expect(result.maskRequest != nil)
                // Again: nothing to send.
                let again = try await uploader.upload(coded, decoder: decoder)
                #expect(again.partsSent == 0 && again.bytesSent == 0)
                let unauthorized = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: "nope")
                await #expect(throws: CloudClientError.self) { try await unauthorized.maskRequest() }
            }
            let status = try #require(try await store.uploads(edge: "edge-1").first)
            let restored = try await storedContainer(store, status)
            #expect(restored.symbols == container.symbols && restored.labels == container.labels)
            #expect(try await store.decoder(edge: "edge-1", upload: status.id) == decoder)
        }
    }

    /// A server that fails the first attempt of every request with 503: the client retries with back-off, the
    /// upload completes, and the retries are counted and reported.
    @Test func failedRequestsAreRetried() async throws {
        try await withService() { service, store, token in
            let (container, decoder) = try toyUpload(count: 120)
            let router = service.router(outer: EveryOtherFails())
            try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { client in
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token,
                                        retry: RetryPolicy(attempts: 4, initialDelay: 0.01, maxDelay: 0.05))
                let result = try await EdgeUploader(client: cloud, samplesPerPart: 30).upload(container, decoder: decoder)
                #expect(result.status.complete)
                #expect(result.retries > 0)
            }
            let status = try #require(try await store.uploads(edge: "edge-1").first)
            #expect(try await storedContainer(store, status).symbols == container.symbols)
        }
    }

    /// A body sent without Content-Length (chunked) that runs past the limit: 413, not 500.
    @Test func oversizedChunkedBodyIs413() async throws {
        try await withService(maxPartBytes: 4096) { service, store, token in
            let (container, _) = try toyUpload(count: 100)
            let spec = UploadSpec(mask: 4, decoderHash: container.decoderHash, samples: 100, samplesPerPart: 40,
                                  latentShape: [4, 2, 2], classes: 10)
            try await service.application(host: "127.0.0.1", port: 0).test(.live) { client in
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token)
                _ = try await cloud.createUpload(spec)
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(client.port!)/v1/uploads/\(spec.id)/parts/0")
                request.method = .PUT
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.headers.add(name: API.contentHashHeader, value: String(repeating: "0", count: 64))
                let chunks = AsyncStream<ByteBuffer> { continuation in
                    for _ in 0..<4 { continuation.yield(ByteBuffer(repeating: 1, count: 2000)) }
                    continuation.finish()
                }
                request.body = .stream(chunks, length: .unknown)
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(response.status.code == 413)
            }
            #expect(try await store.upload(edge: "edge-1", id: spec.id)?.storedParts.isEmpty == true)
        }
    }

    /// With an upload cap, the measured rate (what the cloud's mask policy sees) stays under it
    /// and near it, and the upload is still complete.
    @Test func cappedUploadIsMeasuredAtTheCap() async throws {
        try await withService() { service, store, token in
            let (container, decoder) = try toyUpload(count: 3000, mask: 2)
            let cap = 100_000.0
            try await service.application(host: "127.0.0.1", port: 0).test(.live) { client in
                let cloud = CloudClient(baseURL: "http://127.0.0.1:\(client.port!)", token: token,
                                        rateLimit: try UplinkRateLimit(bitsPerSecond: cap))
                let result = try await EdgeUploader(client: cloud, samplesPerPart: 500).upload(container, decoder: decoder)
                #expect(result.status.complete && result.partsSent == 6)
                let measured = result.bytesPerSecond * 8
                #expect(measured <= cap, "measured \(measured) bit/s against a cap of \(cap)")
                #expect(measured >= cap / 2, "measured \(measured) bit/s against a cap of \(cap)")
                #expect(result.transferSeconds >= cloud.rateLimit!.seconds(for: result.bytesSent))
            }
            let status = try #require(try await store.uploads(edge: "edge-1").first)
            #expect(try await storedContainer(store, status).symbols == container.symbols)
        }
    }

    @Test func unreachableCloudFailsAfterTheRetries() async throws {
        let cloud = CloudClient(baseURL: "http://127.0.0.1:9", token: "t", retry: RetryPolicy(attempts: 3, initialDelay: 0.01, maxDelay: 0.02),
                                timeout: 0.5)
        await #expect(throws: CloudClientError.self) { try await cloud.maskRequest() }
        #expect(cloud.retryCount == 2)
    }
}

@Suite struct UplinkRateLimitTests {
    /// Bodies paced together share the cap: four of 2 500 bytes at 100 kbit/s take at least 0.8 s.
    @Test func concurrentBodiesShareTheCap() async throws {
        let limit = try UplinkRateLimit(bitsPerSecond: 100_000)
        #expect(limit.seconds(for: 2_500) == 0.2)
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await limit.pace(2_500) } }
            try await group.waitForAll()
        }
        #expect(clock.now - start >= .milliseconds(800))
    }

    @Test(arguments: [0.0, -1, .infinity, .nan]) func impossibleCapsAreRefused(_ rate: Double) {
        #expect(throws: WireError.self) { try UplinkRateLimit(bitsPerSecond: rate) }
    }
}

/// Fails the first attempt of every request with 503 (a flaky proxy). Keyed by method and URI,
/// not by a global count: with parts in flight at once, "every other request" could hand one
/// request every odd slot and exhaust its retries.
struct EveryOtherFails: RouterMiddleware {
    typealias Context = CloudRequestContext
    let seen = Seen()
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var keys: Set<String> = []
        /// True the first time `key` is seen.
        func first(_ key: String) -> Bool { lock.lock(); defer { lock.unlock() }; return keys.insert(key).inserted }
    }
    func handle(_ input: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if seen.first("\(input.method) \(input.uri)") { return Response(status: .serviceUnavailable) }
        return try await next(input, context)
    }
}
