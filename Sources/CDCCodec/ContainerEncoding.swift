// Encoding a latent container in format version 1 (fixed-length symbols), and the header that
// both versions share: FORMAT.md, "Layout (version 1)". Version 2's symbols and model are
// written in CodedContainer.swift.

import CDCFileIO

extension LatentContainer {
    /// The container's bytes: format version 1 for ``SymbolCoding/fixedLength``, version 2 for
    /// ``SymbolCoding/entropy(_:)``.
    ///
    /// - Precondition: the container is valid (``validate()`` passes), as every container made
    ///   by the initializer or ``decode(_:)`` is until its properties are changed.
    public func encoded() -> [UInt8] {
        do {
            return try checkedEncoded()
        } catch {
            preconditionFailure("LatentContainer.encoded() on an invalid container: \(error)")
        }
    }

    /// The container's bytes with its symbols written as `coding` says, whatever ``coding`` is.
    ///
    /// - Precondition: the container is valid and `coding` fits it (``validate()`` passes
    ///   with ``coding`` set to it).
    public func encoded(coding: SymbolCoding) -> [UInt8] {
        var copy = self
        copy.coding = coding
        return copy.encoded()
    }

    /// The container's bytes, or the ``ContainerError`` that makes it invalid.
    public func checkedEncoded() throws -> [UInt8] {
        if case .entropy(let model) = coding { return try codedEncoding(model).bytes }
        return try fixedLengthEncoding()
    }

    /// The bytes of format version 1.
    private func fixedLengthEncoding() throws -> [UInt8] {
        let layout = try self.layout()
        try checkLabelRange()
        var bad: UInt8 = 0
        let bytes = symbols.withUnsafeBufferPointer { s in
            labels.withUnsafeBufferPointer { l in
                [UInt8](unsafeUninitializedCapacity: layout.total) { out, initialized in
                    bad = fill(out.baseAddress!, layout, symbols: s, labels: l)
                    initialized = layout.total
                }
            }
        }
        if bad != 0 { try checkSymbolRange() }
        return bytes
    }

    /// Writes the whole file into `out` (exactly `layout.total` bytes); returns nonzero if
    /// some symbol was out of range (and the bytes are then meaningless).
    private func fill(_ out: UnsafeMutablePointer<UInt8>, _ layout: Layout,
                      symbols s: UnsafeBufferPointer<Int8>, labels l: UnsafeBufferPointer<Int>) -> UInt8 {
        var o = writeHeader(out, layout, version: Self.formatVersion, flags: 0)
        let w = layout.labelWidth
        var bad: UInt8 = 0
        for c in 0..<layout.chunkCount {
            let start = o
            let n = layout.samples(inChunk: c)
            let first = c * samplesPerChunk
            LittleEndian.store(UInt32(truncatingIfNeeded: n), to: out + o)
            o += 4
            if w > 0 {
                for j in 0..<n { LittleEndian.store(UInt64(truncatingIfNeeded: l[first + j]), byteCount: w, to: out + o + j * w) }
                o += n * w
            }
            let symbolCount = n * layout.perSample
            bad |= BitPacking.pack(s.baseAddress! + first * layout.perSample, count: symbolCount, mask: mask,
                                   into: out + o)
            o += BitPacking.packedByteCount(symbols: symbolCount, bits: layout.bits)
            LittleEndian.store(crc32(out + start, o - start), to: out + o)
            o += 4
        }
        precondition(o == layout.total)
        return bad
    }

    /// Writes the header (`layout.headerSize` bytes, its CRC included) into `out`; returns its size.
    func writeHeader(_ out: UnsafeMutablePointer<UInt8>, _ layout: Layout, version: UInt16, flags: UInt16) -> Int {
        var o = 0
        func put<T: FixedWidthInteger>(_ v: T) {
            LittleEndian.store(v, to: out + o)
            o += MemoryLayout<T>.size
        }
        func u8(_ v: Int) { put(UInt8(truncatingIfNeeded: v)) }
        func u32(_ v: Int) { put(UInt32(truncatingIfNeeded: v)) }
        for b in Self.magic { put(b) }
        put(version)
        put(flags)
        u8(mask)
        u8(layout.bits)
        u8(latentShape.count)
        for d in latentShape { u32(d) }
        u32(layout.count)
        u32(classes)
        u8(layout.labelWidth)
        u32(samplesPerChunk)
        put(decoderHash)
        put(crc32(out, o))
        precondition(o == layout.headerSize)
        return o
    }
}
