/// Everything that can go wrong building a frequency table or a model, reading a serialized
/// model, or encoding and decoding a symbol stream.
///
/// Decoding never returns symbols from a stream it cannot vouch for: a stream that is cut short,
/// has bytes left over, escapes to an impossible value or does not end in the state the encoder
/// started from throws one of these instead.
public enum EntropyCodingError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A frequency table breaks a rule of ``FrequencyTable`` (named in `reason`).
    case invalidTable(String)
    /// A model breaks a rule of ``EntropyModel``, or its serialized bytes are malformed
    /// (named in `reason`).
    case invalidModel(String)
    /// Symbol number `index` of the stream is not in `0..<alphabetSize`.
    case symbolOutOfAlphabet(index: Int, value: Int, alphabetSize: Int)
    /// The run length of a channel is not ≥ 1.
    case invalidSymbolsPerChannel(Int)
    /// The symbols' integer type cannot hold every symbol of the model's alphabet.
    case alphabetTooLarge(alphabetSize: Int, symbolType: String)
    /// `requested` symbols cannot come out of `bytes` bytes under this model (at most `limit`
    /// can): the stream or the count is corrupt. Checked before anything is decoded.
    case tooManySymbols(requested: Int, bytes: Int, limit: Int)
    /// The stream's length cannot hold the coder's initial states (or is not empty for zero symbols).
    case invalidStreamLength(Int)
    /// The stream's initial state of lane `lane` is outside the coder's normalization interval.
    case invalidInitialState(lane: Int)
    /// The stream ends before symbol number `symbol` is decoded.
    case truncatedStream(symbol: Int)
    /// Symbol number `symbol` escapes to `value`, which is outside the alphabet or inside the
    /// table's support (an encoder never escapes such a value).
    case invalidEscape(symbol: Int, value: Int)
    /// `count` bytes are left over after the last symbol.
    case trailingBytes(count: Int)
    /// Lane `lane` does not end in the encoder's initial state: the stream is corrupt.
    case invalidFinalState(lane: Int)

    /// What is wrong.
    public var description: String {
        switch self {
        case .invalidTable(let reason):
            return "invalid frequency table: \(reason)"
        case .invalidModel(let reason):
            return "invalid entropy model: \(reason)"
        case .symbolOutOfAlphabet(let index, let value, let alphabetSize):
            return "symbol \(index) is \(value), outside the alphabet 0..<\(alphabetSize)"
        case .invalidSymbolsPerChannel(let n):
            return "symbols per channel \(n) is not ≥ 1"
        case .alphabetTooLarge(let size, let type):
            return "an alphabet of \(size) symbols does not fit \(type)"
        case .tooManySymbols(let requested, let bytes, let limit):
            return "\(requested) symbols cannot be coded in \(bytes) bytes under this model (at most \(limit))"
        case .invalidStreamLength(let n):
            return "a coded stream of \(n) bytes is too short for the coder's initial states"
        case .invalidInitialState(let lane):
            return "the initial state of lane \(lane) is out of range"
        case .truncatedStream(let symbol):
            return "the coded stream ends before symbol \(symbol)"
        case .invalidEscape(let symbol, let value):
            return "symbol \(symbol) escapes to \(value), which no encoder escapes"
        case .trailingBytes(let count):
            return "\(count) byte\(count == 1 ? "" : "s") left over after the last symbol"
        case .invalidFinalState(let lane):
            return "lane \(lane) does not end in the initial state: the coded stream is corrupt"
        }
    }
}
