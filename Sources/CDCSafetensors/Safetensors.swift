// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: little-endian u64 N] [N bytes: UTF-8 JSON header] [data buffer]
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the start of the data buffer) plus an optional
// "__metadata__" object of string values. Data is little-endian, row-major.

import CDCFileIO
import Foundation

/// Element types this module reads and writes, spelled as in the header's `dtype` field.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// One tensor: its element type, shape and raw little-endian row-major bytes.
public struct SafetensorsTensor: Sendable, Equatable {
    /// Element type.
    public var dtype: SafetensorsDType
    /// Dimensions, outermost first; `[]` is a scalar (one element).
    public var shape: [Int]
    /// Raw little-endian bytes, `shape.product × dtype.byteSize` of them.
    public var data: [UInt8]

    /// Wraps raw bytes; sizes are checked when encoding or converting.
    public init(dtype: SafetensorsDType, shape: [Int], data: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// An F32 tensor from `values` (row-major); `values.count` must equal the shape's product.
    public init(float32 values: [Float], shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == values.count,
                     "SafetensorsTensor(float32:shape:): \(values.count) values do not fill shape \(formatShape(shape))")
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        #if _endian(little)
        bytes.withUnsafeMutableBytes { dst in
            values.withUnsafeBytes { src in
                if src.count > 0 { dst.copyMemory(from: src) }
            }
        }
        #else
        bytes.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { LittleEndian.store(v.bitPattern, to: dst.baseAddress! + i * 4) }
        }
        #endif
        self.init(dtype: .f32, shape: shape, data: bytes)
    }

    /// An F16 tensor from `values` (row-major), each rounded to the nearest IEEE 754 binary16
    /// value (ties to even; beyond ±65504 becomes ±inf, as PyTorch's `.half()` does).
    public init(float16 values: [Float], shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == values.count,
                     "SafetensorsTensor(float16:shape:): \(values.count) values do not fill shape \(formatShape(shape))")
        var bytes = [UInt8](repeating: 0, count: values.count * 2)
        bytes.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { LittleEndian.store(f16Bits(from: v), to: dst.baseAddress! + i * 2) }
        }
        self.init(dtype: .f16, shape: shape, data: bytes)
    }

    /// Number of elements (product of `shape`), or nil for a negative or overflowing shape.
    var elementCount: Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Checks that the shape is valid and the data holds exactly dtype × shape bytes.
    func validate(name: String?) throws(SafetensorsError) {
        if let bad = shape.first(where: { $0 < 0 }) {
            throw .invalidShape(tensor: name, shape: shape, reason: "dimension \(bad) is negative")
        }
        guard let count = elementCount else {
            throw .invalidShape(tensor: name, shape: shape, reason: "element count overflows")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow { throw .invalidShape(tensor: name, shape: shape, reason: "byte size overflows") }
        if bytes != data.count {
            throw .dataSizeMismatch(tensor: name, dtype: dtype, shape: shape, expected: bytes, actual: data.count)
        }
    }

    /// The elements converted to Float: exact for F32, F16, BF16 and small integers;
    /// rounded for F64 and large I32/I64; BOOL gives 0 or 1 (any nonzero byte is 1).
    /// Throws when the data length does not match dtype × shape.
    public func floats() throws -> [Float] {
        try validate(name: nil)
        let n = data.count / dtype.byteSize
        switch dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
                data.withUnsafeBytes { src in
                    if n > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: src) }
                }
                #if _endian(big)
                for i in 0..<n { buffer[i] = Float(bitPattern: UInt32(littleEndian: buffer[i].bitPattern)) }
                #endif
                initialized = n
            }
        case .f64: return map(n, UInt64.self) { Float(Double(bitPattern: $0)) }
        case .f16: return map(n, UInt16.self) { floatFromF16Bits($0) }
        case .bf16: return map(n, UInt16.self) { floatFromBF16Bits($0) }
        case .i64: return map(n, Int64.self) { Float($0) }
        case .i32: return map(n, Int32.self) { Float($0) }
        case .i16: return map(n, Int16.self) { Float($0) }
        case .i8: return data.map { Float(Int8(bitPattern: $0)) }
        case .u8: return data.map { Float($0) }
        case .bool: return data.map { $0 == 0 ? 0 : 1 }
        }
    }

    /// Loads `n` little-endian elements of type `T` and converts each with `convert`.
    private func map<T: FixedWidthInteger>(_ n: Int, _: T.Type, _ convert: (T) -> Float) -> [Float] {
        data.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: n) { out, initialized in
                let size = MemoryLayout<T>.size
                for i in 0..<n {
                    out[i] = convert(LittleEndian.load(T.self, from: raw.baseAddress! + i * size))
                }
                initialized = n
            }
        }
    }
}

/// Converts IEEE 754 binary16 bits to Float (exact: subnormals, ±0, ±inf, NaN payloads kept).
func floatFromF16Bits(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        // Zero or subnormal: mantissa × 2^-24, exactly representable in Float.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// Rounds a Float to the nearest IEEE 754 binary16 value (ties to even) and returns its bits;
/// overflow gives ±inf, NaN stays NaN (quiet), tiny values become subnormals or ±0.
func f16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    let mantissa = bits & 0x7F_FFFF
    if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 | UInt16(mantissa >> 13) : 0) }
    let e = exponent - 127 + 15                       // the binary16 biased exponent
    if e >= 0x1F { return sign | 0x7C00 }             // overflow: ±inf
    if e <= 0 {
        // Subnormal or zero: the value is m × 2^-24 with m = full significand >> (14 - e).
        if e < -10 { return sign }                     // below half the smallest subnormal
        let full = mantissa | 0x80_0000               // 24-bit significand with the hidden bit
        let shift = UInt32(14 - e)
        var m = full >> shift
        let rest = full & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
        if rest > half || (rest == half && m & 1 == 1) { m += 1 }
        return sign | UInt16(m)                       // m == 0x400 carries into the smallest normal
    }
    var h = UInt32(e) << 10 | mantissa >> 13
    let rest = mantissa & 0x1FFF
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }   // may carry into the exponent (→ inf)
    return sign | UInt16(h)
}

/// Converts bfloat16 bits (the top half of a Float) to Float.
func floatFromBF16Bits(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// A whole safetensors file: named tensors plus string metadata.
public struct SafetensorsFile: Sendable, Equatable {
    /// Tensors by name.
    public var tensors: [String: SafetensorsTensor]
    /// The `__metadata__` entries (empty when the file has none).
    public var metadata: [String: String]

    /// Largest header accepted on read (the Python package's limit).
    static let maxHeaderLength = 100_000_000
    static let metadataKey = "__metadata__"

    /// Creates a file from tensors and optional metadata.
    public init(tensors: [String: SafetensorsTensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    // MARK: Reading

    /// Reads and validates the file at `url`.
    public static func read(from url: URL) throws -> SafetensorsFile {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw SafetensorsError.io(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try decode(data)
    }

    /// Decodes and validates a file's bytes.
    public static func decode(_ bytes: [UInt8]) throws -> SafetensorsFile {
        try bytes.withUnsafeBytes { try decode(raw: $0) }
    }

    /// Decodes and validates a file's bytes.
    public static func decode(_ data: Data) throws -> SafetensorsFile {
        try data.withUnsafeBytes { try decode(raw: $0) }
    }

    private struct Entry {
        let name: String
        let dtype: SafetensorsDType
        let shape: [Int]
        let begin: Int
        let end: Int
    }

    static func decode(raw: UnsafeRawBufferPointer) throws(SafetensorsError) -> SafetensorsFile {
        guard raw.count >= 8 else { throw .fileTooShort(byteCount: raw.count) }
        let headerLength = LittleEndian.load(UInt64.self, from: raw, at: 0)
        if headerLength > UInt64(maxHeaderLength) {
            throw .headerTooLarge(length: headerLength, limit: maxHeaderLength)
        }
        let available = raw.count - 8
        guard headerLength <= UInt64(available) else {
            throw .truncated(headerLength: headerLength, available: available)
        }
        let n = Int(headerLength)
        let headerBytes = [UInt8](raw[8..<(8 + n)])
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw .invalidHeader(reason: "not valid UTF-8")
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(headerBytes)
        } catch {
            throw .invalidHeader(reason: "not valid JSON: \(error.message)")
        }
        guard case .object(let members) = root else {
            throw .invalidHeader(reason: "expected a JSON object at the top level, found \(root.kindDescription)")
        }

        let dataStart = 8 + n
        let bufferSize = raw.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        entries.reserveCapacity(members.count)
        for member in members {
            let (name, value) = (member.key, member.value)
            if name == metadataKey {
                metadata = try parseMetadata(value)
            } else {
                entries.append(try parseEntry(name: name, value: value, bufferSize: bufferSize))
            }
        }

        // Reject overlapping byte ranges; holes (unused bytes) are allowed.
        // Zero-size tensors occupy no bytes and so never overlap.
        let ranged = entries.filter { $0.end > $0.begin }.sorted {
            ($0.begin, $0.end) < ($1.begin, $1.end)
        }
        var furthest: Entry? = nil
        for entry in ranged {
            if let previous = furthest, entry.begin < previous.end {
                let pair = [previous.name, entry.name].sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                throw .overlappingTensors(pair[0], pair[1])
            }
            if furthest == nil || entry.end > furthest!.end { furthest = entry }
        }

        var tensors: [String: SafetensorsTensor] = [:]
        tensors.reserveCapacity(entries.count)
        for e in entries {
            let bytes = [UInt8](raw[(dataStart + e.begin)..<(dataStart + e.end)])
            tensors[e.name] = SafetensorsTensor(dtype: e.dtype, shape: e.shape, data: bytes)
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    private static func parseMetadata(_ value: JSONValue) throws(SafetensorsError) -> [String: String] {
        switch value {
        case .null:
            return [:]
        case .object(let members):
            var result: [String: String] = [:]
            for member in members {
                let (key, v) = (member.key, member.value)
                guard case .string(let s) = v else {
                    throw .invalidMetadata(key: key, reason: "value must be a string, found \(v.kindDescription)")
                }
                result[key] = s
            }
            return result
        default:
            throw .invalidMetadata(key: nil, reason: "expected an object of strings, found \(value.kindDescription)")
        }
    }

    /// `value` as a non-negative integer; `field` and `index` name it in the error.
    private static func nonNegativeInt(_ value: JSONValue, tensor: String, field: String, index: Int) throws(SafetensorsError) -> Int {
        func fail(_ why: String) -> SafetensorsError {
            .invalidTensorEntry(tensor: tensor, reason: "'\(field)' entry \(index): \(why)")
        }
        guard case .number(let text) = value else { throw fail("\(value.kindDescription) is not an integer") }
        guard let i = Int(text) else {
            if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { throw fail("\(text) is not an integer") }
            throw fail("\(text) is out of range")
        }
        guard i >= 0 else { throw fail("\(text) is negative") }
        return i
    }

    private static func parseEntry(name: String, value: JSONValue, bufferSize: Int) throws(SafetensorsError) -> Entry {
        guard case .object(let fields) = value else {
            throw .invalidTensorEntry(tensor: name, reason: "expected an object, found \(value.kindDescription)")
        }
        var dtypeValue: JSONValue?, shapeValue: JSONValue?, offsetsValue: JSONValue?
        for field in fields {
            let (key, v) = (field.key, field.value)
            switch key {
            case "dtype": dtypeValue = v
            case "shape": shapeValue = v
            case "data_offsets": offsetsValue = v
            default: throw .invalidTensorEntry(tensor: name, reason: "unknown field '\(key)'")
            }
        }

        guard let dtypeValue else { throw .invalidTensorEntry(tensor: name, reason: "missing field 'dtype'") }
        guard case .string(let dtypeString) = dtypeValue else {
            throw .invalidTensorEntry(tensor: name, reason: "'dtype' must be a string, found \(dtypeValue.kindDescription)")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeString) else {
            throw .unknownDType(tensor: name, dtype: dtypeString)
        }

        guard let shapeValue else { throw .invalidTensorEntry(tensor: name, reason: "missing field 'shape'") }
        guard case .array(let dims) = shapeValue else {
            throw .invalidTensorEntry(tensor: name, reason: "'shape' must be an array of integers, found \(shapeValue.kindDescription)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, d) in dims.enumerated() {
            shape.append(try nonNegativeInt(d, tensor: name, field: "shape", index: i))
        }

        guard let offsetsValue else { throw .invalidTensorEntry(tensor: name, reason: "missing field 'data_offsets'") }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw .invalidTensorEntry(tensor: name, reason: "'data_offsets' must be an array of two integers, found \(offsetsValue.kindDescription)")
        }
        var bounds: [Int] = []
        for (i, o) in offsets.enumerated() {
            bounds.append(try nonNegativeInt(o, tensor: name, field: "data_offsets", index: i))
        }
        let (begin, end) = (bounds[0], bounds[1])
        if end < begin { throw .offsetsReversed(tensor: name, begin: begin, end: end) }
        if end > bufferSize { throw .offsetsOutOfRange(tensor: name, begin: begin, end: end, bufferSize: bufferSize) }

        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { throw .invalidTensorEntry(tensor: name, reason: "shape \(formatShape(shape)) has too many elements") }
            count = p
        }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        if overflow { throw .invalidTensorEntry(tensor: name, reason: "shape \(formatShape(shape)) has too many elements") }
        if expected != end - begin {
            throw .sizeMismatch(tensor: name, dtype: dtype, shape: shape, expected: expected, actual: end - begin)
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    // MARK: Writing

    /// The file's bytes as the Python package lays them out: tensors sorted by name
    /// (UTF-8 byte order) and packed without gaps, `__metadata__` first (omitted when
    /// empty, keys sorted), compact JSON padded with spaces to a multiple of 8 bytes.
    public func encoded() throws -> [UInt8] {
        let names = tensors.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var header: [UInt8] = [UInt8(ascii: "{")]
        var needsComma = false
        if !metadata.isEmpty {
            appendJSONString(Self.metadataKey, to: &header)
            header.append(contentsOf: Array(":{".utf8))
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, key) in keys.enumerated() {
                if i > 0 { header.append(UInt8(ascii: ",")) }
                appendJSONString(key, to: &header)
                header.append(UInt8(ascii: ":"))
                appendJSONString(metadata[key]!, to: &header)
            }
            header.append(UInt8(ascii: "}"))
            needsComma = true
        }
        var offset = 0
        for name in names {
            if name == Self.metadataKey { throw SafetensorsError.reservedTensorName(name) }
            let tensor = tensors[name]!
            try tensor.validate(name: name)
            if needsComma { header.append(UInt8(ascii: ",")) }
            needsComma = true
            appendJSONString(name, to: &header)
            let end = offset + tensor.data.count
            let entry = ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":\(formatShape(tensor.shape)),\"data_offsets\":[\(offset),\(end)]}"
            header.append(contentsOf: Array(entry.utf8))
            offset = end
        }
        header.append(UInt8(ascii: "}"))
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        LittleEndian.append(UInt64(header.count), to: &out)
        out.append(contentsOf: header)
        for name in names {
            out.append(contentsOf: tensors[name]!.data)
        }
        return out
    }

    /// Writes the file durably and atomically (CDCFileIO's `DurableFile`): to a temporary file
    /// in the same directory, flushed to disk, then renamed over `url`. Readers see the old file
    /// or the new one, never a part.
    ///
    /// - Throws: what ``encoded()`` throws, or ``SafetensorsError/io(path:reason:)`` naming `url`.
    public func write(to url: URL) throws {
        let bytes = try encoded()
        do {
            try DurableFile.write(bytes, to: url)
        } catch {
            throw SafetensorsError.io(path: error.path, reason: error.reason)
        }
    }
}
