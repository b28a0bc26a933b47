import AsyncHTTPClient
import CDCWire
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// How failed requests are retried: exponential back-off with jitter, for connection errors,
/// timeouts, 408, 429 and 5xx. Other 4xx answers are final (the request itself is wrong).
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var attempts: Int
    /// Delay before the first retry (seconds); doubles each time up to `maxDelay`.
    public var initialDelay: Double
    public var maxDelay: Double
    public init(attempts: Int = 10, initialDelay: Double = 0.2, maxDelay: Double = 10) {
        self.attempts = attempts; self.initialDelay = initialDelay; self.maxDelay = maxDelay
    }

    /// The delay before retry number `n` (1-based): initial·2^(n−1), capped, with ±25 % jitter.
    public func delay(beforeRetry n: Int) -> Double {
        let base = min(maxDelay, initialDelay * pow(2, Double(n - 1)))
        return base * Double.random(in: 0.75...1.25)
    }
}

/// An answer the cloud gave that retrying will not change (a 4xx), or retries that ran out.
public enum CloudClientError: Error, CustomStringConvertible, Sendable {
    case rejected(status: Int, message: String)
    case unreachable(attempts: Int, lastError: String)
    case malformedAnswer(String)

    public var description: String {
        switch self {
        case .rejected(let status, let message): return "the cloud refused the request (\(status)): \(message)"
        case .unreachable(let attempts, let last): return "the cloud did not answer after \(attempts) attempts: \(last)"
        case .malformedAnswer(let s): return "the cloud's answer is malformed: \(s)"
        }
    }
}

/// The edge's client of the cloud's HTTP API (``API``), on AsyncHTTPClient: JSON in and out,
/// the edge's bearer token on every request, retries with back-off, and a count of retries
/// and of acknowledged bytes for the bandwidth reports.
public final class CloudClient: Sendable {
    public let baseURL: String
    let token: String
    let http: HTTPClient
    public let retry: RetryPolicy
    /// Per-request timeout (seconds) for a request without a body; a body adds one second per
    /// 2 kB, so a 64 kbit/s link shared by four parts in flight (the uploader's default) still
    /// finishes each. AsyncHTTPClient retries a refused connection until this deadline, so it
    /// also bounds how long one attempt waits for an absent cloud.
    public let timeout: Double
    /// Paces every request body to a cap on the upload rate; nil: as fast as the link goes.
    public let rateLimit: UplinkRateLimit?
    private let retries = Mutex(0)

    public init(baseURL: String, token: String, http: HTTPClient = .shared, retry: RetryPolicy = RetryPolicy(), timeout: Double = 30,
                rateLimit: UplinkRateLimit? = nil) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url; self.token = token; self.http = http; self.retry = retry; self.timeout = timeout
        self.rateLimit = rateLimit
    }

    /// Failed attempts retried since the client was made.
    public var retryCount: Int { retries.withLock { $0 } }

    public func register(_ registration: EdgeRegistration) async throws -> EdgeState {
        try await send(.POST, "register", json: registration)
    }
    public func reportStatus(_ status: EdgeStatus) async throws -> EdgeState { try await send(.POST, "status", json: status) }
    public func createUpload(_ spec: UploadSpec) async throws -> UploadStatus { try await send(.POST, "uploads", json: spec) }
    public func upload(id: String) async throws -> UploadStatus { try await send(.GET, "uploads/\(id)") }
    public func putDecoder(upload id: String, bytes: [UInt8]) async throws -> PartReceipt {
        try await send(.PUT, "uploads/\(id)/decoder", body: bytes)
    }
    public func putPart(upload id: String, index: Int, bytes: [UInt8]) async throws -> PartReceipt {
        try await send(.PUT, "uploads/\(id)/parts/\(index)", body: bytes, headers: [API.contentHashHeader: SHA256.hex(bytes)])
    }
    public func reportBandwidth(_ report: BandwidthReport) async throws -> MaskRequest { try await send(.POST, "bandwidth", json: report) }
    public func maskRequest() async throws -> MaskRequest { try await send(.GET, "mask") }

    /// The co-inference systems the cloud serves (empty if none).
    public func inferenceCatalog() async throws -> [InferenceSystemInfo] { try await send(.GET, "infer") }

    /// Class scores for `payloads` (one coded sample or feature each) under the system `key`
    /// (an entry of ``inferenceCatalog()``). The batch is paced by ``rateLimit`` and retried like
    /// an upload (classifying is idempotent); a 4xx (unknown system, a payload the system cannot
    /// decode) is ``CloudClientError/rejected(status:message:)``.
    public func infer(system key: String, payloads: [[UInt8]]) async throws -> InferenceReply {
        let reply: InferenceReply = try await send(.POST, "infer?system=\(Self.queryComponent(key))", body: InferenceBatch.encode(payloads),
                                                   headers: ["Content-Type": "application/octet-stream"])
        guard reply.count == payloads.count, reply.problem == nil else {
            throw CloudClientError.malformedAnswer("\(payloads.count) samples of \(key) answered with \(reply.problem ?? "\(reply.count) rows")")
        }
        return reply
    }

    /// `value` percent-encoded for a query: everything but RFC 3986's unreserved ASCII characters,
    /// so that a key's `/`, `=`, `&`, `+` and spaces reach the cloud as themselves.
    static func queryComponent(_ value: String) -> String {
        var unreserved = CharacterSet(charactersIn: "-._~")
        unreserved.formUnion(CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
        return value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }

    // MARK: Transport

    func send<T: Decodable, Body: Encodable>(_ method: HTTPMethod, _ path: String, json: Body) async throws -> T {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try await send(method, path, body: Array(try encoder.encode(json)), headers: ["Content-Type": "application/json"])
    }

    func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) async throws -> T {
        let bytes = try await raw(method, "/\(API.version)/\(path)", body: body, headers: headers)
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw CloudClientError.malformedAnswer("\(T.self) from \(method) \(path): \(error)")
        }
    }

    /// One request with retries; returns the body of a 2xx answer.
    public func raw(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) async throws -> [UInt8] {
        var lastError = ""
        for attempt in 1...max(1, retry.attempts) {
            if attempt > 1 {
                retries.withLock { $0 += 1 }
                try await Task.sleep(nanoseconds: UInt64(retry.delay(beforeRetry: attempt - 1) * 1e9))
            }
            var request = HTTPClientRequest(url: baseURL + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            for (k, v) in headers { request.headers.add(name: k, value: v) }
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            // A retry pays for its bytes again, as it does on a real link.
            if let body, let rateLimit { try await rateLimit.pace(body.count) }
            do {
                let seconds = timeout + Double(body?.count ?? 0) / 2_000
                let response = try await http.execute(request, timeout: .milliseconds(Int64(seconds * 1000)))
                let answer = try await response.body.collect(upTo: 64 << 20)
                let bytes = Array(answer.readableBytesView)
                let status = Int(response.status.code)
                if (200..<300).contains(status) { return bytes }
                let message = (try? JSONDecoder().decode(APIError.self, from: Data(bytes)))?.error ?? String(decoding: bytes, as: UTF8.self)
                if status == 408 || status == 429 || status >= 500 {
                    lastError = "\(status): \(message)"
                    continue
                }
                throw CloudClientError.rejected(status: status, message: message)
            } catch let error as CloudClientError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                lastError = "\(error)"
            }
        }
        throw CloudClientError.unreachable(attempts: retry.attempts, lastError: lastError)
    }
}
