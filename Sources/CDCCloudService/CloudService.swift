import CDCCodec
import CDCStore
import CDCWire
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context of the cloud's routes: Hummingbird's core storage plus the edge the
/// credential belongs to (set by ``EdgeAuthentication``).
public struct CloudRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The authenticated edge; nil on `/health` and for the operator's metrics credential.
    public var edge: String?
    public init(source: Source) {
        coreContext = .init(source: source)
        edge = nil
    }
    /// Parts and decoders are larger than Hummingbird's 2 MiB default; each route sets its own limit.
    public var maxUploadSize: Int { API.defaultMaxDecoderBytes }
}

/// The cloud's HTTP service (Hummingbird 2): registration, uploads of parts and decoders into
/// the store, bandwidth reports and the mask policy's requests, co-inference (when it has an
/// ``InferenceBackend``), and `/metrics`.
///
/// ```swift
/// let store = try await SQLiteUploadStore.open(path: "cloud.db")
/// let service = CloudService(store: store, policy: MaskPolicy(timeBudget: 600))
/// try await service.application(host: "0.0.0.0", port: 8080).runService()
/// ```
public struct CloudService: Sendable {
    public let store: any UploadStore
    public let policy: MaskPolicy
    public let maxPartBytes: Int
    public let maxDecoderBytes: Int
    /// SHA-256 (hex) of the operator's credential for `/metrics` (every edge's series); nil: none.
    /// An edge's own token reads only that edge's series.
    public let metricsTokenSHA256: String?
    /// What serves `/v1/infer`; nil: no co-inference (the catalog is empty, batches are 404).
    public let inference: (any InferenceBackend)?
    /// Largest co-inference batch body accepted (bytes).
    public let maxInferenceBytes: Int
    public let metrics = ServiceMetrics()

    public init(store: any UploadStore, policy: MaskPolicy, maxPartBytes: Int = API.defaultMaxPartBytes,
                maxDecoderBytes: Int = API.defaultMaxDecoderBytes, metricsToken: String? = nil,
                inference: (any InferenceBackend)? = nil, maxInferenceBytes: Int = API.defaultMaxInferenceBytes) {
        self.store = store; self.policy = policy; self.maxPartBytes = maxPartBytes; self.maxDecoderBytes = maxDecoderBytes
        self.metricsTokenSHA256 = metricsToken.flatMap { $0.isEmpty ? nil : SHA256.hex(Array($0.utf8)) }
        self.inference = inference; self.maxInferenceBytes = maxInferenceBytes
    }

    /// A new random edge credential: 32 bytes as 64 hex digits.
    public static func newToken() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    /// Adds an edge and returns its token (only the token's SHA-256 is stored).
    public static func addEdge(name: String, to store: any UploadStore) async throws -> String {
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw StoreError.conflict("an edge name is 1–64 letters, digits, '-', '_' or '.'")
        }
        let token = newToken()
        try await store.addEdge(name: name, tokenSHA256: SHA256.hex(Array(token.utf8)))
        return token
    }

    /// The application listening on `host:port`.
    public func application(host: String, port: Int, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
        -> some ApplicationProtocol {
        Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "cdc-cloud"),
                    onServerRunning: onServerRunning)
    }

    /// The routes.
    public func router() -> Router<CloudRequestContext> {
        let router = Router(context: CloudRequestContext.self)
        addRoutes(to: router)
        return router
    }

    /// The routes behind `outer` middleware (fault injection in tests, logging), which runs first.
    public func router<Outer: RouterMiddleware>(outer: Outer) -> Router<CloudRequestContext> where Outer.Context == CloudRequestContext {
        let router = Router(context: CloudRequestContext.self)
        router.add(middleware: outer)
        addRoutes(to: router)
        return router
    }

    func addRoutes(to router: Router<CloudRequestContext>) {
        router.add(middleware: ErrorBodies())
        // On the router, not a group: an unknown path or method is 401 without a credential too,
        // so routes cannot be probed without one.
        router.add(middleware: EdgeAuthentication(store: store, metrics: metrics, open: ["/health"],
                                                  operatorTokenSHA256: metricsTokenSHA256, operatorPaths: ["/metrics"]))
        router.get("health") { _, _ in "ok" }
        router.get("metrics") { _, context in
            // The operator sees every edge; an edge sees only its own series.
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: try await self.prometheusText(only: context.edge))))
        }
        let v1 = router.group(RouterPath(API.version))
        v1.post("register") { request, context -> Response in
            let edge = context.edge!
            let registration = try await self.json(EdgeRegistration.self, request, context)
            guard registration.samples > 0, registration.channels > 0, registration.height > 0, registration.width > 0,
                  registration.classes > 0 else { throw HTTPError(.badRequest, message: "samples, channels, height, width and classes must be positive") }
            try await self.store.register(edge: edge, registration)
            return try self.reply(try await self.state(edge: edge))
        }
        v1.post("status") { request, context -> Response in
            let status = try await self.json(EdgeStatus.self, request, context)
            try await self.store.setStatus(edge: context.edge!, status)
            return try self.reply(try await self.state(edge: context.edge!))
        }
        v1.post("uploads") { request, context -> Response in
            let spec = try await self.json(UploadSpec.self, request, context)
            if let problem = spec.problem { throw HTTPError(.badRequest, message: problem) }
            return try self.reply(try await self.store.createUpload(edge: context.edge!, spec: spec))
        }
        v1.get("uploads/:id") { _, context -> Response in
            try self.reply(try await self.upload(context))
        }
        v1.put("uploads/:id/decoder") { request, context -> Response in
            let upload = try await self.upload(context)
            let body = try await self.body(request, limit: self.maxDecoderBytes)
            guard ModelIdentity.hash(body) == upload.spec.decoderHashValue else {
                throw HTTPError(.badRequest, message: "the decoder's hash is not the upload's (\(upload.spec.decoderHash))")
            }
            let sha = SHA256.hex(body)
            let stored = try await self.store.storeDecoder(edge: context.edge!, upload: upload.id, sha256: sha, bytes: body)
            await self.metrics.received(edge: context.edge!, bytes: body.count, stored: stored, isPart: false)
            return try self.reply(PartReceipt(index: -1, sha256: sha, stored: stored), status: stored ? .created : .ok)
        }
        v1.put("uploads/:id/parts/:index") { request, context -> Response in
            let upload = try await self.upload(context)
            guard let index = context.parameters.get("index", as: Int.self), (0..<upload.spec.partCount).contains(index) else {
                throw HTTPError(.notFound, message: "no such part: the upload has parts 0..<\(upload.spec.partCount)")
            }
            guard let claimed = request.headers[HTTPField.Name(API.contentHashHeader)!], claimed.count == 64 else {
                throw HTTPError(.badRequest, message: "header \(API.contentHashHeader) (the body's SHA-256, 64 hex digits) is required")
            }
            let body = try await self.body(request, limit: self.maxPartBytes)
            let sha = SHA256.hex(body)
            guard sha == claimed.lowercased() else {
                throw HTTPError(.badRequest, message: "the body's SHA-256 is \(sha), not \(claimed): corrupted in transit")
            }
            let container: LatentContainer
            do { container = try LatentContainer.decode(body) } catch {
                throw HTTPError(.badRequest, message: "not a valid container: \(error)")
            }
            let spec = upload.spec
            guard container.decoderHash == spec.decoderHashValue, container.mask == spec.mask,
                  container.latentShape == spec.latentShape, container.classes == spec.classes,
                  container.count == spec.samples(inPart: index), container.labels.count == container.count else {
                throw HTTPError(.badRequest, message: "the container (m = \(container.mask), \(container.count) labelled samples of \(container.latentShape), decoder \(ModelIdentity.hex(container.decoderHash))) is not part \(index) of upload \(spec.id)")
            }
            let stored = try await self.store.storePart(edge: context.edge!, upload: upload.id, index: index, sha256: sha,
                                                        samples: container.count, bytes: body)
            await self.metrics.received(edge: context.edge!, bytes: body.count, stored: stored, isPart: true)
            return try self.reply(PartReceipt(index: index, sha256: sha, stored: stored), status: stored ? .created : .ok)
        }
        v1.post("bandwidth") { request, context -> Response in
            let report = try await self.json(BandwidthReport.self, request, context)
            guard report.bytes >= 0, report.seconds >= 0, report.seconds.isFinite, report.retries >= 0, report.bytes == 0 || report.seconds > 0 else {
                throw HTTPError(.badRequest, message: "bytes, seconds and retries must be non-negative, and bytes sent take some seconds")
            }
            try await self.store.recordBandwidth(edge: context.edge!, report)
            await self.metrics.retried(edge: context.edge!, report.retries)
            return try self.reply(try await self.maskRequest(edge: context.edge!))
        }
        v1.get("mask") { _, context -> Response in
            try self.reply(try await self.maskRequest(edge: context.edge!))
        }
        v1.get("infer") { _, _ -> Response in
            try self.reply(await self.inference?.catalog ?? [])
        }
        // Co-inference: nothing is stored; the batch is decoded, classified and answered.
        v1.post("infer") { request, context -> Response in
            guard let key = request.uri.queryParameters.get("system"), !key.isEmpty else {
                throw HTTPError(.badRequest, message: "the query parameter `system` (a key of GET /v1/infer, percent-encoded) is required")
            }
            guard let backend = self.inference else {
                throw HTTPError(.notFound, message: "this cloud serves no co-inference models (start `cdc cloud serve` with `--inference DIR`)")
            }
            let body = try await self.body(request, limit: self.maxInferenceBytes)
            let payloads: [[UInt8]]
            do { payloads = try InferenceBatch.decode(body) } catch {
                throw HTTPError(.badRequest, message: "\(error)")
            }
            let reply: InferenceReply
            do { reply = try await backend.classify(system: key, payloads: payloads) } catch let error as InferenceError {
                switch error {
                case .unknownSystem(let key):
                    throw HTTPError(.notFound, message: "no co-inference system \"\(key)\" here; GET /v1/infer lists the systems this cloud serves")
                case .badPayload(let message): throw HTTPError(.badRequest, message: message)
                }
            }
            // A backend's inconsistent answer is its bug: a 500 (logged), not scores to trust.
            guard reply.count == payloads.count, reply.problem == nil else {
                throw WireError("the co-inference backend answered \(payloads.count) samples of \(key) with \(reply.problem ?? "\(reply.count) rows")")
            }
            await self.metrics.inferred(edge: context.edge!, samples: payloads.count, bytes: body.count)
            return try self.reply(reply)
        }
    }

    // MARK: Helpers

    func json<T: Decodable>(_ type: T.Type, _ request: Request, _ context: CloudRequestContext) async throws -> T {
        let body = try await self.body(request, limit: API.maxJSONBytes)
        do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch {
            throw HTTPError(.badRequest, message: "malformed \(T.self) JSON: \(error)")
        }
    }

    func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw HTTPError(.contentTooLarge, message: "the body is \(length) bytes; the limit is \(limit)")
        }
        var buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: limit) } catch let error as HTTPError {
            throw error.status == .contentTooLarge ? HTTPError(.contentTooLarge, message: "the body exceeds the limit of \(limit) bytes") : error
        } catch is NIOTooManyBytesError {
            // A body without Content-Length (chunked) that runs past the limit.
            throw HTTPError(.contentTooLarge, message: "the body exceeds the limit of \(limit) bytes")
        }
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    func reply<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    func upload(_ context: CloudRequestContext) async throws -> UploadStatus {
        guard let id = context.parameters.get("id"), let upload = try await store.upload(edge: context.edge!, id: id) else {
            throw HTTPError(.notFound, message: "no such upload")
        }
        return upload
    }

    func state(edge: String) async throws -> EdgeState {
        EdgeState(name: edge, registration: try await store.registration(edge: edge), uploads: try await store.uploads(edge: edge),
                  maskRequest: try await maskRequest(edge: edge))
    }

    /// Bandwidth reports smaller than this are used only when there is no larger one: a few kB
    /// (the tail of a resumed upload) measure round trips and TCP's slow start, not the link.
    public static let bandwidthReportMinimumBytes = 64 * 1024

    /// The policy's inputs for `edge`, from the store.
    public func policyInputs(edge: String) async throws -> MaskPolicy.Inputs {
        let uploads = try await store.uploads(edge: edge)
        let registration = try await store.registration(edge: edge)
        let samples = registration?.samples ?? uploads.last?.spec.samples ?? 0
        let latents = uploads.last.map { $0.spec.latentShape.reduce(1, *) }
            ?? registration.map(\.latentsPerSample) ?? 0
        var measured: [Int: Double] = [:]
        for u in uploads where !u.storedParts.isEmpty {
            let storedSamples = u.storedParts.map { u.spec.samples(inPart: $0) }.reduce(0, +)
            measured[u.spec.mask] = Double(u.storedBytes) / Double(max(storedSamples, 1))
        }
        let best = uploads.filter(\.complete).map(\.spec.mask).min()
        let unfinished = uploads.filter { !$0.complete && (!$0.storedParts.isEmpty || $0.decoderStored) }.map(\.spec.mask).min()
        let training = try await store.training(edge: edge)
        var decoderBytes = 0
        if let last = uploads.last(where: \.decoderStored) { decoderBytes = try await store.decoder(edge: edge, upload: last.id)?.count ?? 0 }
        return MaskPolicy.Inputs(samples: samples, latentsPerSample: latents,
                                 bytesPerSecond: try await store.latestBandwidth(edge: edge, minimumBytes: Self.bandwidthReportMinimumBytes)?.bytesPerSecond,
                                 measuredBytesPerSample: measured, bestStoredMask: best,
                                 converged: training.map { $0.converged && $0.mask == best } ?? false,
                                 decoderBytes: Double(decoderBytes), unfinishedMask: unfinished)
    }

    func maskRequest(edge: String) async throws -> MaskRequest {
        let request = policy.request(try await policyInputs(edge: edge))
        await metrics.requested(edge: edge, mask: request.mask)
        return request
    }

    /// The `/metrics` page (Prometheus text format 0.0.4): every edge's series, or `only` one
    /// edge's (without the service-wide counters).
    public func prometheusText(only: String? = nil) async throws -> String {
        var edges: [String: EdgeGauges] = [:]
        for edge in try await store.edgeNames() where only == nil || edge == only {
            let uploads = try await store.uploads(edge: edge)
            edges[edge] = EdgeGauges(
                storedBytes: uploads.map(\.storedBytes).reduce(0, +),
                storedParts: uploads.map(\.storedParts.count).reduce(0, +),
                bestMask: uploads.filter(\.complete).map(\.spec.mask).min(),
                bytesPerSecond: try await store.latestBandwidth(edge: edge, minimumBytes: Self.bandwidthReportMinimumBytes)?.bytesPerSecond,
                training: try await store.training(edge: edge))
        }
        return await metrics.prometheusText(gauges: edges, only: only)
    }
}

/// Turns every thrown error into a JSON body `{"error": ...}` with the right status:
/// HTTPError keeps its status, ``StoreError`` conflicts are 409 and missing things 404, and
/// anything else is a 500 whose message is logged, not sent.
struct ErrorBodies: RouterMiddleware {
    typealias Context = CloudRequestContext
    func handle(_ input: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(input, context)
        } catch let error as HTTPError {
            return Self.response(error.status, error.body ?? error.status.reasonPhrase, headers: error.headers)
        } catch let error as StoreError {
            switch error {
            case .conflict(let m): return Self.response(.conflict, m)
            case .notFound(let m): return Self.response(.notFound, m)
            case .database: context.logger.error("store: \(error)"); return Self.response(.internalServerError, "the store failed")
            }
        } catch {
            context.logger.error("\(input.method) \(input.uri.path): \(error)")
            return Self.response(.internalServerError, "internal error")
        }
    }

    static func response(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = (try? encoder.encode(APIError(message))) ?? Data()
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Requires `Authorization: Bearer <token>` of a known edge on every route but `/health` (the
/// operator's credential, if one is set, on `operatorPaths` only); without it the answer is 401
/// and the handler never runs (nothing is read or stored).
struct EdgeAuthentication: RouterMiddleware {
    typealias Context = CloudRequestContext
    let store: any UploadStore
    let metrics: ServiceMetrics
    /// Paths that need no credential.
    let open: Set<String>
    /// SHA-256 (hex) of the operator's credential, valid on `operatorPaths` (with no edge in the context).
    var operatorTokenSHA256: String? = nil
    var operatorPaths: Set<String> = []

    func handle(_ input: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if open.contains(input.uri.path) { return try await next(input, context) }
        let presented = input.headers[.authorization].flatMap { header -> String? in
            guard header.hasPrefix("Bearer ") else { return nil }
            let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : SHA256.hex(Array(token.utf8))
        }
        if let presented, presented == operatorTokenSHA256, operatorPaths.contains(input.uri.path) {
            return try await next(input, context)
        }
        guard let presented, let edge = try await store.edge(tokenSHA256: presented) else {
            await metrics.unauthorized()
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"cdc\""],
                            message: "a valid edge credential is required (Authorization: Bearer <token> from `cdc cloud add-edge`)")
        }
        var context = context
        context.edge = edge
        return try await next(input, context)
    }
}
