import CDCFileIO
import Testing

@Suite struct LittleEndianTests {
    @Test func loadsAtOffsetsWithoutAlignment() {
        let bytes: [UInt8] = [0xAA, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xFF]
        #expect(LittleEndian.load(UInt16.self, from: bytes, at: 1) == 0x0201)
        #expect(LittleEndian.load(UInt32.self, from: bytes, at: 1) == 0x0403_0201)
        #expect(LittleEndian.load(UInt64.self, from: bytes, at: 1) == 0x0807_0605_0403_0201)
        #expect(LittleEndian.load(Int16.self, from: bytes, at: 8) == Int16(bitPattern: 0xFF08))
        #expect(LittleEndian.load(UInt8.self, from: bytes, at: 9) == 0xFF)
        bytes.withUnsafeBytes { raw in
            #expect(LittleEndian.load(UInt32.self, from: raw, at: 5) == 0x0807_0605)
            #expect(LittleEndian.load(UInt32.self, from: raw.baseAddress! + 3) == 0x0605_0403)
            for n in 0...8 {
                var expected: UInt64 = 0
                for k in 0..<n { expected |= UInt64(bytes[1 + k]) << (8 * k) }
                #expect(LittleEndian.load(byteCount: n, from: raw.baseAddress! + 1) == expected)
            }
        }
    }

    @Test func storesAndAppendsRoundTrip() {
        var out: [UInt8] = []
        LittleEndian.append(UInt16(0x0201), to: &out)
        LittleEndian.append(Int32(-2), to: &out)
        LittleEndian.append(UInt64(0x0807_0605_0403_0201), byteCount: 3, to: &out)
        LittleEndian.append(UInt64(0xFFFF), byteCount: 0, to: &out)
        #expect(out == [0x01, 0x02, 0xFE, 0xFF, 0xFF, 0xFF, 0x01, 0x02, 0x03])
        LittleEndian.store(UInt32(0xDEAD_BEEF), into: &out, at: 2)
        #expect(out == [0x01, 0x02, 0xEF, 0xBE, 0xAD, 0xDE, 0x01, 0x02, 0x03])
        #expect(LittleEndian.bytes(of: Int64(-1)) == [UInt8](repeating: 0xFF, count: 8))
        var buffer = [UInt8](repeating: 0, count: 16)
        buffer.withUnsafeMutableBytes { raw in
            LittleEndian.store(UInt64(0x1122_3344_5566_7788), to: raw.baseAddress! + 1)
            for n in [1, 2, 3, 4, 5, 8] {
                LittleEndian.store(UInt64(0xA1A2_A3A4_A5A6_A7A8), byteCount: n, to: raw.baseAddress! + 9)
                #expect(LittleEndian.load(byteCount: n, from: raw.baseAddress! + 9)
                            == UInt64(0xA1A2_A3A4_A5A6_A7A8) & (n == 8 ? ~0 : (UInt64(1) << (8 * n)) - 1))
            }
        }
        #expect(LittleEndian.load(UInt64.self, from: buffer, at: 1) == 0x1122_3344_5566_7788)
    }

    @Test func readerReadsSequentially() throws {
        var bytes: [UInt8] = Array("CDCL".utf8)
        LittleEndian.append(UInt16(2), to: &bytes)
        bytes.append(7)
        LittleEndian.append(UInt32(123_456), to: &bytes)
        LittleEndian.append(UInt64.max - 1, to: &bytes)
        LittleEndian.append(Int32(-5), to: &bytes)
        LittleEndian.append(Int64.min, to: &bytes)
        LittleEndian.append(UInt64(300), byteCount: 2, to: &bytes)
        try bytes.withUnsafeBytes { raw in
            var r = LittleEndianReader(raw)
            let magic = Array(try r.take(4))
            let (version, width, count) = (try r.u16(), try r.u8(), try r.u32())
            let (big, negative, smallest) = (try r.u64(), try r.i32(), try r.i64())
            let (label, nothing) = (try r.read(byteCount: 2), try r.read(byteCount: 0))
            #expect(magic == Array("CDCL".utf8))
            #expect(version == 2 && width == 7 && count == 123_456)
            #expect(big == UInt64.max - 1 && negative == -5 && smallest == Int64.min)
            #expect(label == 300 && nothing == 0)
            #expect(r.isAtEnd && r.remaining == 0)
        }
    }

    @Test func readerThrowsOnTruncationAndStaysPut() throws {
        let bytes: [UInt8] = [1, 2, 3, 4, 5, 6]
        bytes.withUnsafeBufferPointer { buffer in
            var r = LittleEndianReader(buffer, offset: 1)
            #expect(throws: TruncatedRead(offset: 1, needed: 8, length: 6)) { try r.u64() }
            #expect(r.offset == 1)
            #expect((try? r.u32()) == 0x0504_0302)
            #expect(throws: TruncatedRead(offset: 5, needed: 2, length: 6)) { try r.read(UInt16.self) }
            #expect(throws: TruncatedRead(offset: 5, needed: 4, length: 6)) { try r.skip(4) }
            #expect(throws: TruncatedRead(offset: 5, needed: 3, length: 6)) { try r.read(byteCount: 3) }
            #expect((try? r.skip(1)) == 5)
            #expect(r.isAtEnd)
        }
        #expect(TruncatedRead(offset: 5, needed: 2, length: 6).description
                    == "needs 2 bytes at offset 5, but the bytes end at 6")
        // An empty buffer.
        [UInt8]().withUnsafeBytes { raw in
            var r = LittleEndianReader(raw)
            #expect(throws: TruncatedRead(offset: 0, needed: 1, length: 0)) { try r.u8() }
            #expect((try? r.read(byteCount: 0)) == 0)
            #expect((try? r.take(0))?.count == 0)
        }
    }
}
