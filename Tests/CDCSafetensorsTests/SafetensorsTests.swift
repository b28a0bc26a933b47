import Foundation
import Testing
@testable import CDCSafetensors

// MARK: Helpers

/// Little-endian bytes of a fixed-width integer.
private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    withUnsafeBytes(of: v.littleEndian) { Array($0) }
}

/// A file built by hand: length prefix, header text exactly as given, then `data`.
private func rawFile(_ header: String, _ data: [UInt8] = []) -> [UInt8] {
    let h = Array(header.utf8)
    return le(UInt64(h.count)) + h + data
}

/// The SafetensorsError `decode` throws for `bytes` (records an issue if it does not throw one).
private func decodeError(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> SafetensorsError? {
    do {
        let file = try SafetensorsFile.decode(bytes)
        Issue.record("expected an error, decoded \(file.tensors.keys.sorted())", sourceLocation: sourceLocation)
    } catch let error as SafetensorsError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

private func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("cdc-safetensors-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

private func f32Tensor(_ values: [Float], _ shape: [Int]) -> SafetensorsTensor {
    SafetensorsTensor(float32: values, shape: shape)
}

// MARK: Round trips

@Suite struct RoundTripTests {
    static func sampleFile() -> SafetensorsFile {
        var tensors: [String: SafetensorsTensor] = [:]
        tensors["layer.weight"] = f32Tensor([1, -2.5, 3e-8, .infinity, -0.0, 6], [2, 3])
        tensors["layer.bias"] = f32Tensor([0.25, 0.5], [2])
        tensors["f64"] = SafetensorsTensor(dtype: .f64, shape: [2],
                                           data: le(Double(1.5).bitPattern) + le(Double(-3).bitPattern))
        tensors["f16"] = SafetensorsTensor(dtype: .f16, shape: [3], data: le(UInt16(0x3C00)) + le(UInt16(0xC000)) + le(UInt16(0x0001)))
        tensors["bf16"] = SafetensorsTensor(dtype: .bf16, shape: [1, 1], data: le(UInt16(0x3F80)))
        tensors["i64"] = SafetensorsTensor(dtype: .i64, shape: [2], data: le(Int64(-7)) + le(Int64.max))
        tensors["i32"] = SafetensorsTensor(dtype: .i32, shape: [1], data: le(Int32(-123456)))
        tensors["i16"] = SafetensorsTensor(dtype: .i16, shape: [2], data: le(Int16(-2)) + le(Int16(300)))
        tensors["i8"] = SafetensorsTensor(dtype: .i8, shape: [3], data: [0xFF, 0x01, 0x80])
        tensors["u8"] = SafetensorsTensor(dtype: .u8, shape: [2, 2], data: [0, 1, 254, 255])
        tensors["mask"] = SafetensorsTensor(dtype: .bool, shape: [3], data: [1, 0, 1])
        tensors["step"] = SafetensorsTensor(dtype: .i64, shape: [], data: le(Int64(42)))      // scalar
        tensors["empty"] = SafetensorsTensor(dtype: .f32, shape: [0, 3], data: [])            // zero-size
        tensors["ünïcode \"quoted\"\n"] = f32Tensor([7], [1])
        let metadata = ["format": "pt", "note": "line1\nline2 \"q\" \\ é 🎉 \u{01}", "": "empty key"]
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    @Test func encodeDecodeIsIdentity() throws {
        let file = Self.sampleFile()
        let bytes = try file.encoded()
        let decoded = try SafetensorsFile.decode(bytes)
        #expect(decoded == file)
        #expect(try SafetensorsFile.decode(Data(bytes)) == file)
        // Deterministic: encoding again gives the same bytes.
        #expect(try decoded.encoded() == bytes)
    }

    @Test func writeThenReadIsIdentity() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        let file = Self.sampleFile()
        try file.write(to: url)
        #expect(try SafetensorsFile.read(from: url) == file)

        // Overwriting an existing file works and leaves no temporary files behind.
        let smaller = SafetensorsFile(tensors: ["x": f32Tensor([1], [1])])
        try smaller.write(to: url)
        #expect(try SafetensorsFile.read(from: url) == smaller)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
    }

    @Test func emptyFileRoundTrips() throws {
        let file = SafetensorsFile()
        let bytes = try file.encoded()
        #expect(bytes == le(UInt64(8)) + Array("{}      ".utf8))
        #expect(try SafetensorsFile.decode(bytes) == file)
    }

    @Test func largeTensorRoundTrips() throws {
        let n = 1 << 20
        let values = (0..<n).map { Float($0) * 0.5 - 1000 }
        let file = SafetensorsFile(tensors: ["big": f32Tensor(values, [1024, 1024])])
        let decoded = try SafetensorsFile.decode(try file.encoded())
        #expect(try decoded.tensors["big"]!.floats() == values)
    }

    @Test func readMissingFileIsIOError() {
        let url = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/x.safetensors")
        #expect {
            try SafetensorsFile.read(from: url)
        } throws: { error in
            guard case .io(let path, _) = error as? SafetensorsError else { return false }
            return path == url.path
        }
    }
}

// MARK: Exact layout

@Suite struct LayoutTests {
    /// What safetensors 0.8.0 (Python) writes for {"a": float32 [1, 2]} with no metadata.
    static let pythonNoMetadata: [UInt8] =
        [0x38, 0, 0, 0, 0, 0, 0, 0]                                              // header length 56
        + Array(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8) // 54 bytes of JSON
        + [0x20, 0x20]                                                            // padded to 56
        + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]                        // 1.0f, 2.0f

    @Test func tinyFileMatchesHandBuiltBytes() throws {
        let file = SafetensorsFile(tensors: ["a": f32Tensor([1, 2], [2])])
        let bytes = try file.encoded()
        #expect(bytes == Self.pythonNoMetadata)
    }

    @Test func tinyFileWithMetadataMatchesHandBuiltBytes() throws {
        let file = SafetensorsFile(tensors: ["a": f32Tensor([1, 2], [2])], metadata: ["k": "v"])
        let bytes = try file.encoded()
        let json = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect(json.utf8.count == 79)
        let expected: [UInt8] = [0x50, 0, 0, 0, 0, 0, 0, 0] + Array(json.utf8) + [0x20]
            + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]
        #expect(bytes == expected)
        // The structural properties, independently of the exact JSON text.
        let n = Int(UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
        #expect(n % 8 == 0)
        #expect(bytes.count == 8 + n + 8)
        #expect(Array(bytes[(8 + n)...]) == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40])
    }

    @Test func metadataEscapingMatchesPython() throws {
        // safetensors 0.8.0 (serde_json) escapes ", \ and control characters only.
        let file = SafetensorsFile(tensors: ["a": f32Tensor([1, 2], [2])],
                                   metadata: ["k": "v", "a\"b/\né\u{01}": "x"])
        let expected: [UInt8] = [0x68, 0, 0, 0, 0, 0, 0, 0]
            + Array(#"{"__metadata__":{"a\"b/\n"#.utf8) + [0xC3, 0xA9]
            + Array(#"\u0001":"x","k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   "#.utf8)
            + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40]
        #expect(try file.encoded() == expected)
    }

    @Test func tensorsAreSortedByNameAndPacked() throws {
        let file = SafetensorsFile(tensors: [
            "b": SafetensorsTensor(dtype: .u8, shape: [1], data: [0xBB]),
            "a": SafetensorsTensor(dtype: .u8, shape: [2], data: [0xAA, 0xAA]),
            "C": SafetensorsTensor(dtype: .u8, shape: [1], data: [0xCC]),
        ])
        let bytes = try file.encoded()
        let header = #"{"C":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}"#
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        #expect(bytes == rawFile(padded, [0xCC, 0xAA, 0xAA, 0xBB]))
    }

    @Test func readsPythonWrittenFileWithOtherKeyOrderAndLayout() throws {
        // safetensors 0.8.0 output: empty __metadata__, tensors ordered by alignment then name,
        // a zero-size tensor, and F16 data after F32.
        let json = #"{"__metadata__":{},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"c":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]},"b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]}}   "#
        let bytes = rawFile(json, [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00])
        #expect(bytes[0] == 0xB8)
        let file = try SafetensorsFile.decode(bytes)
        #expect(file.metadata.isEmpty)
        #expect(file.tensors.count == 3)
        #expect(try file.tensors["a"]!.floats() == [1, 2])
        #expect(file.tensors["c"]! == SafetensorsTensor(dtype: .f32, shape: [0, 3], data: []))
        #expect(try file.tensors["b"]!.floats() == [0x1p-24])

        // Whitespace, field order and escapes a hand-written header might use.
        let other = rawFile(" {\n \"x\\u00e9\" : {\"data_offsets\": [0, 4], \"shape\": [], \"dtype\": \"I32\"},\n \"__metadata__\": {\"format\": \"pt\\/np\"} }\t", le(Int32(-5)))
        let f2 = try SafetensorsFile.decode(other)
        #expect(f2.metadata == ["format": "pt/np"])
        #expect(f2.tensors["xé"] == SafetensorsTensor(dtype: .i32, shape: [], data: le(Int32(-5))))
        #expect(try f2.tensors["xé"]!.floats() == [-5])
    }

    @Test func holesAndTrailingBytesAreAllowed() throws {
        let json = #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"z":{"dtype":"U8","shape":[0],"data_offsets":[5,5]}}"#
        let file = try SafetensorsFile.decode(rawFile(json, [9, 9, 9, 9, 1, 2, 9, 9]))
        #expect(file.tensors["a"]!.data == [1, 2])
        #expect(file.tensors["z"]!.data == [])
    }
}

// MARK: Validation errors

@Suite struct ErrorTests {
    static let goodTensor = #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#

    @Test func fileShorterThanEightBytes() {
        #expect(decodeError([]) == .fileTooShort(byteCount: 0))
        let error = decodeError([1, 0, 0, 0, 0])
        #expect(error == .fileTooShort(byteCount: 5))
        #expect(error?.description.contains("5 bytes") == true)
    }

    @Test func truncatedFile() {
        let bytes = le(UInt64(1234)) + [UInt8](repeating: 0x20, count: 100)
        let error = decodeError(bytes)
        #expect(error == .truncated(headerLength: 1234, available: 100))
        #expect(error?.description == "file is truncated: header says 1234 bytes but only 100 follow")
    }

    @Test func headerLengthTooLarge() {
        #expect(decodeError(le(UInt64(200_000_000)) + Array("{}".utf8))
                == .headerTooLarge(length: 200_000_000, limit: 100_000_000))
        #expect(decodeError(le(UInt64.max)) == .headerTooLarge(length: .max, limit: 100_000_000))
    }

    @Test(arguments: [
        #"{"a":"#,
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#,
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}"#,
        #"{'a':1}"#,
        #"{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}"#,
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x"#,
        "{\"a\u{0}\":1}",
        "",
        "\u{0}\u{0}\u{0}\u{0}",
    ])
    func badJSON(_ header: String) {
        let error = decodeError(rawFile(header, [UInt8](repeating: 0, count: 8)))
        guard case .invalidHeader(let reason) = error else {
            Issue.record("expected invalidHeader, got \(String(describing: error))")
            return
        }
        #expect(reason.hasPrefix("not valid JSON"))
    }

    @Test func headerNotUTF8() {
        var bytes = rawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8))
        bytes[10] = 0xFF
        #expect(decodeError(bytes) == .invalidHeader(reason: "not valid UTF-8"))
    }

    @Test(arguments: ["[1,2]", "\"x\"", "42", "null"])
    func headerNotAnObject(_ header: String) {
        guard case .invalidHeader(let reason) = decodeError(rawFile(header)) else {
            Issue.record("expected invalidHeader")
            return
        }
        #expect(reason.contains("expected a JSON object"))
    }

    @Test func duplicateTensorName() {
        let error = decodeError(rawFile("{\(Self.goodTensor),\(Self.goodTensor)}", [UInt8](repeating: 0, count: 8)))
        guard case .invalidHeader(let reason) = error else {
            Issue.record("expected invalidHeader, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("duplicate key \"a\""))
    }

    @Test func unknownDType() {
        let error = decodeError(rawFile(#"{"w":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)))
        #expect(error == .unknownDType(tensor: "w", dtype: "F99"))
        #expect(error?.description.contains("'w'") == true)
        #expect(error?.description.contains("F99") == true)
        // dtype strings are case-sensitive.
        #expect(decodeError(rawFile(#"{"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)))
                == .unknownDType(tensor: "w", dtype: "f32"))
    }

    @Test(arguments: [
        (#"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, "missing field 'dtype'"),
        (#"{"w":{"dtype":"F32","data_offsets":[0,8]}}"#, "missing field 'shape'"),
        (#"{"w":{"dtype":"F32","shape":[2]}}"#, "missing field 'data_offsets'"),
        (#"{"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}"#, "'dtype' must be a string"),
        (#"{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, "'shape' must be an array"),
        (#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, "'shape' entry 0: -2 is negative"),
        (#"{"w":{"dtype":"F32","shape":[1,2.5],"data_offsets":[0,8]}}"#, "'shape' entry 1: 2.5 is not an integer"),
        (#"{"w":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}"#, "'shape' entry 0: 2e0 is not an integer"),
        (#"{"w":{"dtype":"F32","shape":[true],"data_offsets":[0,8]}}"#, "'shape' entry 0: a boolean is not an integer"),
        (#"{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#, "out of range"),
        (#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, "too many elements"),
        (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "'data_offsets' must be an array of two integers"),
        (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, "'data_offsets' must be an array of two integers"),
        (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}}"#, "'data_offsets' entry 0: -1 is negative"),
        (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}}"#, "'data_offsets' entry 1: a string is not an integer"),
        (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}"#, "unknown field 'extra'"),
        (#"{"w":[1,2]}"#, "expected an object"),
    ])
    func malformedTensorEntry(_ header: String, _ expected: String) {
        let error = decodeError(rawFile(header, [UInt8](repeating: 0, count: 8)))
        guard case .invalidTensorEntry(let tensor, let reason) = error else {
            Issue.record("expected invalidTensorEntry, got \(String(describing: error))")
            return
        }
        #expect(tensor == "w")
        #expect(reason.contains(expected), "\(reason)")
        #expect(error!.description.hasPrefix("tensor 'w': "))
    }

    @Test func offsetsMismatchingShape() {
        let json = #"{"x.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,40]}}"#
        let error = decodeError(rawFile(json, [UInt8](repeating: 0, count: 48)))
        #expect(error == .sizeMismatch(tensor: "x.weight", dtype: .f32, shape: [3, 4], expected: 48, actual: 40))
        #expect(error?.description == "tensor 'x.weight': dtype F32 with shape [3,4] needs 48 bytes but data_offsets span 40")
        // A scalar needs exactly one element.
        #expect(decodeError(rawFile(#"{"s":{"dtype":"I64","shape":[],"data_offsets":[0,0]}}"#))
                == .sizeMismatch(tensor: "s", dtype: .i64, shape: [], expected: 8, actual: 0))
    }

    @Test func offsetsOutOfRangeOrReversed() {
        let past = decodeError(rawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 0, 0]))
        #expect(past == .offsetsOutOfRange(tensor: "a", begin: 0, end: 8, bufferSize: 4))
        #expect(past?.description.contains("'a'") == true)
        let reversed = decodeError(rawFile(#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}"#, [UInt8](repeating: 0, count: 8)))
        #expect(reversed == .offsetsReversed(tensor: "a", begin: 8, end: 4))
    }

    @Test func overlappingTensors() {
        let json = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        let error = decodeError(rawFile(json, [UInt8](repeating: 0, count: 8)))
        #expect(error == .overlappingTensors("a", "b"))
        #expect(error?.description == "tensors 'a' and 'b' overlap in the data buffer")
        // Identical ranges overlap too; a range contained in an earlier, longer one as well.
        let same = #"{"p":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"q":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#
        #expect(decodeError(rawFile(same, [0, 0, 0, 0])) == .overlappingTensors("p", "q"))
        let nested = #"{"big":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"m":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"n":{"dtype":"U8","shape":[1],"data_offsets":[6,7]}}"#
        #expect(decodeError(rawFile(nested, [UInt8](repeating: 0, count: 8))) == .overlappingTensors("big", "m"))
    }

    @Test func metadataValuesMustBeStrings() throws {
        let json = "{\"__metadata__\":{\"ok\":\"x\",\"epoch\":3},\(Self.goodTensor)}"
        let error = decodeError(rawFile(json, [UInt8](repeating: 0, count: 8)))
        guard case .invalidMetadata(let key, _) = error else {
            Issue.record("expected invalidMetadata, got \(String(describing: error))")
            return
        }
        #expect(key == "epoch")
        #expect(error!.description.contains("must be a string"))
        guard case .invalidMetadata(nil, _) = decodeError(rawFile(#"{"__metadata__":["x"]}"#)) else {
            Issue.record("expected invalidMetadata for a non-object")
            return
        }
        // null metadata reads as none.
        #expect(try SafetensorsFile.decode(rawFile(#"{"__metadata__":null}"#)).metadata == [:])
    }

    @Test func encodingRejectsInvalidTensors() {
        #expect(throws: SafetensorsError.dataSizeMismatch(tensor: "w", dtype: .f32, shape: [3], expected: 12, actual: 8)) {
            try SafetensorsFile(tensors: ["w": SafetensorsTensor(dtype: .f32, shape: [3], data: [UInt8](repeating: 0, count: 8))]).encoded()
        }
        #expect(throws: SafetensorsError.reservedTensorName("__metadata__")) {
            try SafetensorsFile(tensors: ["__metadata__": f32Tensor([1], [1])]).encoded()
        }
        #expect {
            try SafetensorsFile(tensors: ["n": SafetensorsTensor(dtype: .u8, shape: [-1], data: [])]).encoded()
        } throws: { error in
            guard case .invalidShape(let tensor, _, _) = error as? SafetensorsError else { return false }
            return tensor == "n"
        }
        // A failed write leaves no file behind.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-st-\(UUID().uuidString)")
        #expect(throws: SafetensorsError.self) {
            try SafetensorsFile(tensors: ["__metadata__": f32Tensor([1], [1])]).write(to: dir.appendingPathComponent("x"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path))
    }

    @Test func writeIntoMissingDirectoryIsIOError() {
        let url = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/x.safetensors")
        #expect {
            try SafetensorsFile(tensors: ["x": f32Tensor([1], [1])]).write(to: url)
        } throws: { error in
            guard case .io = error as? SafetensorsError else { return false }
            return true
        }
    }

    @Test func floatsRejectsWrongDataLength() {
        #expect(throws: SafetensorsError.dataSizeMismatch(tensor: nil, dtype: .f16, shape: [2], expected: 4, actual: 3)) {
            try SafetensorsTensor(dtype: .f16, shape: [2], data: [0, 0, 0]).floats()
        }
    }
}

// MARK: Conversions

@Suite struct ConversionTests {
    private func f16(_ bits: [UInt16]) throws -> [Float] {
        try SafetensorsTensor(dtype: .f16, shape: [bits.count], data: bits.flatMap(le)).floats()
    }

    private func bf16(_ bits: [UInt16]) throws -> [Float] {
        try SafetensorsTensor(dtype: .bf16, shape: [bits.count], data: bits.flatMap(le)).floats()
    }

    @Test func f16KnownBitPatterns() throws {
        let values = try f16([0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0xFC00, 0x0000, 0x8000,
                              0x03FF, 0x0400, 0x3555, 0x8001, 0x3E00])
        #expect(values[0] == 1.0)
        #expect(values[1] == -2.0)
        #expect(values[2] == 65504.0)
        #expect(values[3] == 0x1p-24)                  // smallest subnormal
        #expect(values[3] == 5.9604645e-8)
        #expect(values[4] == .infinity)
        #expect(values[5] == -.infinity)
        #expect(values[6] == 0 && values[6].sign == .plus)
        #expect(values[7] == 0 && values[7].sign == .minus)
        #expect(values[8] == 1023 * 0x1p-24)           // largest subnormal
        #expect(values[9] == 0x1p-14)                  // smallest normal
        #expect(values[10] == 0.333251953125)          // nearest f16 to 1/3
        #expect(values[11] == -0x1p-24)
        #expect(values[12] == 1.5)
    }

    @Test func f16NaN() throws {
        let values = try f16([0x7E00, 0xFE00, 0x7C01])
        #expect(values[0].isNaN && values[1].isNaN && values[2].isNaN)
        #expect(values[0].sign == .plus && values[1].sign == .minus)
        // The payload is kept: 0x7C01 is a signaling NaN with payload 1.
        #expect(values[2].bitPattern == 0x7F80_2000)
    }

    @Test func f16MatchesPlatformConversionForAllPatterns() throws {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if #available(macOS 11, *) {
            let all = (0...UInt16.max).map { $0 }
            let values = try f16(all)
            for (bits, value) in zip(all, values) {
                let reference = Float(Float16(bitPattern: bits))
                if reference.isNaN {
                    #expect(value.isNaN)
                } else if value.bitPattern != reference.bitPattern {
                    Issue.record("f16 0x\(String(bits, radix: 16)): got \(value), expected \(reference)")
                    return
                }
            }
        }
        #endif
    }

    /// Float → F16 rounds to nearest, ties to even, exactly as the platform's Float16 does:
    /// every F16 value, the midpoints between neighbours, and Float bit patterns across every exponent.
    @Test func float16EncodingMatchesPlatformRounding() throws {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if #available(macOS 11, *) {
            var inputs: [Float] = [0, -0, 65504, 65519.99, 65520, -65520, 1e-8, 2.98e-8, 0x1p-25, 0x1.000002p-25,
                                   0x1p-24, 0x1.8p-24, 0x1.8p-23, .infinity, -.infinity, 1 / 3, 0.1, -1234.5678]
            for bits in stride(from: UInt16(0), to: 0x7C00, by: 1) {
                let v = Float(Float16(bitPattern: bits)), next = Float(Float16(bitPattern: bits + 1))
                inputs += [v, -v, (v + next) / 2, next.isFinite ? v + (next - v) * 0.49 : v]
            }
            for pattern in stride(from: UInt32(12_345), to: UInt32.max - 40_009, by: 40_009) {   // every exponent, varied mantissas
                let f = Float(bitPattern: pattern)
                if !f.isNaN { inputs.append(f) }
            }
            let bytes = SafetensorsTensor(float16: inputs, shape: [inputs.count]).data
            for (i, v) in inputs.enumerated() {
                let got = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
                let want = Float16(v).bitPattern
                if got != want {
                    Issue.record("\(v) (0x\(String(v.bitPattern, radix: 16))): got 0x\(String(got, radix: 16)), want 0x\(String(want, radix: 16))")
                    return
                }
            }
            #expect(try SafetensorsTensor(float16: [.nan], shape: [1]).floats()[0].isNaN)
        }
        #endif
    }

    @Test func bf16KnownBitPatterns() throws {
        let values = try bf16([0x3F80, 0xC000, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x4049, 0x7F7F])
        #expect(values[0] == 1.0)
        #expect(values[1] == -2.0)
        #expect(values[2] == .infinity)
        #expect(values[3] == -.infinity)
        #expect(values[4] == 0x1p-133)
        #expect(values[5] == 0 && values[5].sign == .minus)
        #expect(values[6] == 3.140625)
        #expect(values[7] == Float(bitPattern: 0x7F7F_0000))
        #expect(try bf16([0x7FC0])[0].isNaN)
    }

    @Test func otherDTypesToFloat() throws {
        #expect(try f32Tensor([1.5, -2, .infinity], [3]).floats() == [1.5, -2, .infinity])
        #expect(try SafetensorsTensor(dtype: .f64, shape: [2], data: le(Double(0.1).bitPattern) + le(Double(-1e300).bitPattern)).floats()
                == [Float(0.1), -.infinity])
        #expect(try SafetensorsTensor(dtype: .i64, shape: [2], data: le(Int64(-3)) + le(Int64(1 << 40))).floats() == [-3, 0x1p40])
        #expect(try SafetensorsTensor(dtype: .i32, shape: [1], data: le(Int32.min)).floats() == [-0x1p31])
        #expect(try SafetensorsTensor(dtype: .i16, shape: [2], data: le(Int16(-300)) + le(Int16(7))).floats() == [-300, 7])
        #expect(try SafetensorsTensor(dtype: .i8, shape: [3], data: [0xFF, 0x7F, 0x80]).floats() == [-1, 127, -128])
        #expect(try SafetensorsTensor(dtype: .u8, shape: [2], data: [0xFF, 0x02]).floats() == [255, 2])
        #expect(try SafetensorsTensor(dtype: .bool, shape: [3], data: [0, 1, 2]).floats() == [0, 1, 1])
        #expect(try SafetensorsTensor(dtype: .f32, shape: [0], data: []).floats() == [])
        #expect(try SafetensorsTensor(dtype: .f16, shape: [], data: le(UInt16(0x3C00))).floats() == [1])
    }

    @Test func float32InitializerStoresLittleEndianBytes() {
        let t = SafetensorsTensor(float32: [1, -2], shape: [1, 2])
        #expect(t.dtype == .f32)
        #expect(t.shape == [1, 2])
        #expect(t.data == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0])
        #expect(SafetensorsTensor(float32: [], shape: [0, 5]).data.isEmpty)
    }

    @Test func byteSizes() {
        let expected: [SafetensorsDType: Int] = [.f64: 8, .f32: 4, .f16: 2, .bf16: 2, .i64: 8, .i32: 4,
                                                 .i16: 2, .i8: 1, .u8: 1, .bool: 1]
        for dtype in SafetensorsDType.allCases {
            #expect(dtype.byteSize == expected[dtype])
        }
        #expect(SafetensorsDType(rawValue: "BF16") == .bf16)
    }
}

