import Foundation

/// The body of `POST /v1/infer`: a batch of coded samples or features, one opaque payload per
/// sample, for the system the query names.
///
/// Binary, little-endian: magic `CDCI` (4 bytes), version (u8, 1), sample count (u32), then for
/// each sample its length (u32) and that many bytes. The framing costs
/// ``framingBytes(count:)`` bytes on top of the payloads.
public enum InferenceBatch {
    /// The first four bytes of every batch.
    public static let magic: [UInt8] = Array("CDCI".utf8)
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// Bytes of the header: magic, version, count.
    static let headerBytes = 9

    /// Bytes of framing (header and lengths) around `count` payloads.
    public static func framingBytes(count: Int) -> Int { headerBytes + 4 * count }

    /// The batch of `payloads` (each shorter than 4 GiB, fewer than 2³² of them).
    public static func encode(_ payloads: [[UInt8]]) -> [UInt8] {
        precondition(payloads.count <= Int(UInt32.max), "an inference batch holds fewer than 2^32 samples")
        var out = magic
        out.reserveCapacity(framingBytes(count: payloads.count) + payloads.reduce(0) { $0 + $1.count })
        out.append(version)
        append(UInt32(payloads.count), to: &out)
        for payload in payloads {
            precondition(payload.count <= Int(UInt32.max), "an inference payload is shorter than 4 GiB")
            append(UInt32(payload.count), to: &out)
            out.append(contentsOf: payload)
        }
        return out
    }

    /// The payloads of a batch; throws ``WireError`` for anything but exactly one well-formed
    /// batch of 1…`maxSamples` payloads of at most `maxPayloadBytes` bytes each.
    public static func decode(_ bytes: [UInt8], maxSamples: Int = 4096, maxPayloadBytes: Int = 16 << 20) throws -> [[UInt8]] {
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw WireError("not an inference batch (it starts with the magic \"CDCI\")")
        }
        guard bytes.count >= headerBytes else {
            throw WireError("inference batch truncated in its header: \(headerBytes - bytes.count) of \(headerBytes) bytes missing")
        }
        guard bytes[4] == version else {
            throw WireError("unknown inference batch version \(bytes[4]) (this build reads version \(version))")
        }
        let count = Int(readUInt32(bytes, at: 5))
        guard count > 0 else { throw WireError("an inference batch holds at least one sample, this one none") }
        guard count <= maxSamples else {
            throw WireError("an inference batch holds at most \(maxSamples) samples, this one \(count)")
        }
        var payloads: [[UInt8]] = []
        payloads.reserveCapacity(count)
        var offset = headerBytes
        for i in 0..<count {
            let left = bytes.count - offset
            guard left >= 4 else {
                throw WireError("inference batch truncated in the length of sample \(i) of \(count): \(4 - left) of 4 bytes missing")
            }
            let length = Int(readUInt32(bytes, at: offset))
            offset += 4
            guard length <= maxPayloadBytes else {
                throw WireError("sample \(i) of the inference batch is \(length) bytes; the limit is \(maxPayloadBytes)")
            }
            guard bytes.count - offset >= length else {
                throw WireError("inference batch truncated in sample \(i) of \(count): \(length - (bytes.count - offset)) of \(length) bytes missing")
            }
            payloads.append(Array(bytes[offset..<(offset + length)]))
            offset += length
        }
        guard offset == bytes.count else {
            throw WireError("\(bytes.count - offset) trailing bytes after the \(count) samples of the inference batch")
        }
        return payloads
    }

    private static func append(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << UInt32(8 * $1) }
    }
}

/// The cloud's answer to `POST /v1/infer`: class scores for every sample of the batch.
public struct InferenceReply: Codable, Sendable, Equatable {
    /// The system's key, as asked.
    public var system: String
    /// Samples classified (the batch's count).
    public var count: Int
    /// Classes per sample.
    public var classes: Int
    /// Scores (logits), row-major `count × classes`.
    public var scores: [Float]
    /// The backend's compute time for the batch (milliseconds): decoding and the rest of the
    /// classifier, not the transfer.
    public var serverMilliseconds: Double

    public init(system: String, count: Int, classes: Int, scores: [Float], serverMilliseconds: Double) {
        self.system = system; self.count = count; self.classes = classes; self.scores = scores
        self.serverMilliseconds = serverMilliseconds
    }

    /// Why the reply is inconsistent (scores not `count × classes`), or nil if it is not.
    public var problem: String? {
        guard count >= 0, classes >= 1, scores.count == count * classes else {
            return "\(scores.count) scores for \(count) samples of \(classes) classes"
        }
        return nil
    }

    /// The class of highest score of each sample (the first on ties).
    public var predictions: [Int] {
        guard problem == nil else { return [] }
        return (0..<count).map { row in
            let base = row * classes
            var best = 0
            for c in 1..<classes where scores[base + c] > scores[base + best] { best = c }
            return best
        }
    }
}

/// One co-inference system the cloud serves (an entry of `GET /v1/infer`).
public struct InferenceSystemInfo: Codable, Sendable, Equatable {
    /// What `POST /v1/infer?system=` takes, e.g. `disc-like/S2/tau=0.05_b=2/none`.
    public var key: String
    /// The system's family (e.g. `disc-like`, `bottlenet++`, `jpeg`).
    public var system: String
    /// Where the classifier is split (e.g. `S2`; `input` for systems that send the input).
    public var split: String
    /// The system's settings, in words (e.g. `tau=0.05_b=2`).
    public var config: String
    /// The channel model between edge and cloud (e.g. `none`).
    public var channel: String
    /// Bytes the edge needs once before it can encode (its part of the model), 0 if none.
    public var oneOffBytes: Int
    /// Shape of one sample the edge starts from (its input).
    public var sampleShape: [Int]
    /// Classes of the scores.
    public var classes: Int

    public init(key: String, system: String, split: String, config: String, channel: String, oneOffBytes: Int,
                sampleShape: [Int], classes: Int) {
        self.key = key; self.system = system; self.split = split; self.config = config; self.channel = channel
        self.oneOffBytes = oneOffBytes; self.sampleShape = sampleShape; self.classes = classes
    }
}

/// What serves co-inference behind the cloud's `/v1/infer`: it decodes a batch's payloads for
/// a system and runs the rest of its classifier.
public protocol InferenceBackend: Sendable {
    /// The systems served.
    var catalog: [InferenceSystemInfo] { get async }
    /// Scores for every payload (one per sample) under the system `key`; throws
    /// ``InferenceError`` for an unknown key or a payload the system cannot decode.
    func classify(system key: String, payloads: [[UInt8]]) async throws -> InferenceReply
}

/// Why a backend refused a batch: the service answers 404 and 400.
public enum InferenceError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No system has this key.
    case unknownSystem(String)
    /// A payload the system cannot decode, in words.
    case badPayload(String)

    public var description: String {
        switch self {
        case .unknownSystem(let key): return "no co-inference system \"\(key)\""
        case .badPayload(let message): return "bad payload: \(message)"
        }
    }
}
