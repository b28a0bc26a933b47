/// Everything that can go wrong reading, validating or writing a safetensors file.
///
/// Each case's `description` says what is wrong and, where it applies, names the tensor.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file is shorter than the 8-byte header length prefix.
    case fileTooShort(byteCount: Int)
    /// The header length prefix exceeds the 100 MB sanity limit.
    case headerTooLarge(length: UInt64, limit: Int)
    /// The header length prefix says more bytes than the file holds after the prefix.
    case truncated(headerLength: UInt64, available: Int)
    /// The header is not valid UTF-8 JSON, is not an object, or has a duplicate key.
    case invalidHeader(reason: String)
    /// A tensor's `dtype` is not one this module supports.
    case unknownDType(tensor: String, dtype: String)
    /// A tensor's header entry has a missing, ill-typed, unknown or out-of-range field.
    case invalidTensorEntry(tensor: String, reason: String)
    /// A tensor's `data_offsets` span a number of bytes other than dtype × shape needs.
    case sizeMismatch(tensor: String, dtype: SafetensorsDType, shape: [Int], expected: Int, actual: Int)
    /// A tensor's `data_offsets` end before they begin.
    case offsetsReversed(tensor: String, begin: Int, end: Int)
    /// A tensor's `data_offsets` run past the end of the data buffer.
    case offsetsOutOfRange(tensor: String, begin: Int, end: Int, bufferSize: Int)
    /// Two tensors share bytes of the data buffer.
    case overlappingTensors(String, String)
    /// The `__metadata__` entry is not an object of strings.
    case invalidMetadata(key: String?, reason: String)
    /// An in-memory tensor's data length does not match dtype × shape
    /// (`tensor` is nil when the tensor has no name in context).
    case dataSizeMismatch(tensor: String?, dtype: SafetensorsDType, shape: [Int], expected: Int, actual: Int)
    /// An in-memory tensor has an invalid shape (negative dimension or too many elements).
    case invalidShape(tensor: String?, shape: [Int], reason: String)
    /// A tensor is named `__metadata__`, which the format reserves.
    case reservedTensorName(String)
    /// Reading or writing the file failed.
    case io(path: String, reason: String)

    /// What is wrong, naming the tensor where one is involved.
    public var description: String {
        switch self {
        case .fileTooShort(let n):
            return "file is too short: \(n) byte\(n == 1 ? "" : "s"), but a safetensors file starts with an 8-byte header length"
        case .headerTooLarge(let length, let limit):
            return "header length \(length) is absurdly large (limit \(limit) bytes): not a safetensors file, or corrupt"
        case .truncated(let length, let available):
            return "file is truncated: header says \(length) bytes but only \(available) follow"
        case .invalidHeader(let reason):
            return "invalid header: \(reason)"
        case .unknownDType(let tensor, let dtype):
            return "tensor '\(tensor)': unknown or unsupported dtype \"\(dtype)\""
        case .invalidTensorEntry(let tensor, let reason):
            return "tensor '\(tensor)': \(reason)"
        case .sizeMismatch(let tensor, let dtype, let shape, let expected, let actual):
            return "tensor '\(tensor)': dtype \(dtype.rawValue) with shape \(formatShape(shape)) needs \(expected) bytes but data_offsets span \(actual)"
        case .offsetsReversed(let tensor, let begin, let end):
            return "tensor '\(tensor)': data_offsets [\(begin),\(end)] end before they begin"
        case .offsetsOutOfRange(let tensor, let begin, let end, let size):
            return "tensor '\(tensor)': data_offsets [\(begin),\(end)] run past the end of the \(size)-byte data buffer"
        case .overlappingTensors(let a, let b):
            return "tensors '\(a)' and '\(b)' overlap in the data buffer"
        case .invalidMetadata(let key, let reason):
            if let key { return "__metadata__ entry '\(key)': \(reason)" }
            return "__metadata__: \(reason)"
        case .dataSizeMismatch(let tensor, let dtype, let shape, let expected, let actual):
            return "\(prefix(tensor))dtype \(dtype.rawValue) with shape \(formatShape(shape)) needs \(expected) bytes but the data holds \(actual)"
        case .invalidShape(let tensor, let shape, let reason):
            return "\(prefix(tensor))invalid shape \(formatShape(shape)): \(reason)"
        case .reservedTensorName(let name):
            return "tensor name '\(name)' is reserved for the metadata entry"
        case .io(let path, let reason):
            return "\(path): \(reason)"
        }
    }
}

private func prefix(_ tensor: String?) -> String {
    tensor.map { "tensor '\($0)': " } ?? "tensor: "
}

func formatShape(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ",") + "]"
}
