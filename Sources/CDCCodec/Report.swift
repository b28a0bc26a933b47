import Foundation

/// The exact byte breakdown of a container's encoding (``LatentContainer/encoded()``).
///
/// ```swift
/// let a = container.accounting
/// assert(a.header + a.labels + a.symbols + a.chunkFraming == a.total)
/// assert(a.total == container.encoded().count)
/// ```
///
/// The packed symbols of each chunk end on a byte boundary: the padding bits of a chunk's last
/// symbol byte are counted in ``symbols``, where they sit (``paddingBits`` says how many bits
/// of ``symbols`` are padding).
public struct ByteAccounting: Sendable, Equatable {
    /// The header, its CRC included: 36 + 4·rank bytes.
    public var header: Int
    /// Labels: count × label width (0 without labels).
    public var labels: Int
    /// Packed symbols: the sum over chunks of ⌈n·P·(5−m)/8⌉ for a chunk of n samples of P latents.
    public var symbols: Int
    /// Per-chunk framing: a u32 sample count and a u32 CRC32, 8 bytes per chunk.
    public var chunkFraming: Int
    /// The whole file: header + labels + symbols + chunkFraming.
    public var total: Int

    /// Creates an accounting from its parts; ``total`` is their sum.
    public init(header: Int, labels: Int, symbols: Int, chunkFraming: Int) {
        self.header = header
        self.labels = labels
        self.symbols = symbols
        self.chunkFraming = chunkFraming
        self.total = header + labels + symbols + chunkFraming
    }
}

extension Layout {
    /// The byte breakdown of a file with this layout.
    var accounting: ByteAccounting {
        let full = count / samplesPerChunk, rest = count % samplesPerChunk
        let symbols = full * (full > 0 ? symbolBytes(samples: samplesPerChunk) : 0)
            + (rest > 0 ? symbolBytes(samples: rest) : 0)
        return ByteAccounting(header: headerSize, labels: count * labelWidth, symbols: symbols,
                              chunkFraming: 8 * chunkCount)
    }

    /// Bits of the symbol section that are padding, not symbols.
    var paddingBits: Int { accounting.symbols * 8 - count * perSample * bits }
}

extension LatentContainer {
    /// The exact byte breakdown of ``encoded()``: `accounting.total == encoded().count`.
    ///
    /// - Precondition: the container is valid (see ``validate()``); the symbol and label values
    ///   are not looked at.
    public var accounting: ByteAccounting { checkedLayout.accounting }

    private var checkedLayout: Layout {
        do {
            return try layout()
        } catch {
            preconditionFailure("LatentContainer on an invalid container: \(error)")
        }
    }

    /// What `cdc inspect` prints: the header fields, the byte accounting and the rate in bits
    /// per latent and per sample.
    ///
    /// ```text
    /// CDC latent container upload.cdcl
    ///   format        version 1, flags 0x0000 (fixed-width bit-packed symbols)
    ///   mask          m = 2: L = 4 levels per sign, symbols -3...4, 3 bits each
    ///   latent shape  [16, 7, 7] per sample = 784 latents
    ///   samples       60000 in 59 chunks of up to 1024
    ///   labels        1 byte each, 10 classes
    ///   decoder       fnv1a64 0123456789abcdef
    /// bytes
    ///   header               48
    ///   labels            60000
    ///   symbols        17640000  (141120000 bits of symbols + 0 padding bits)
    ///   chunk framing       472  (59 chunks × 8: sample count + CRC32)
    ///   total          17700520
    /// rate
    ///   bits per latent    3.0010  (symbols alone 3.0000)
    ///   bits per sample    2360.07  (symbols alone 2352.00)
    /// ```
    ///
    /// - Parameter path: the file's path for the first line, or nil for an in-memory container.
    public func report(path: String?) -> String {
        let layout = checkedLayout
        let a = layout.accounting
        let L = levels
        let n = layout.count
        var lines: [String] = []
        lines.append("CDC latent container" + (path.map { " " + $0 } ?? " (in memory)"))
        lines.append("  format        version \(Self.formatVersion), flags 0x0000 (fixed-width bit-packed symbols)")
        lines.append("  mask          m = \(mask): L = \(L) level\(L == 1 ? "" : "s") per sign, symbols \(1 - L)...\(L), \(layout.bits) bit\(layout.bits == 1 ? "" : "s") each")
        lines.append("  latent shape  \(formatShape(latentShape)) per sample = \(layout.perSample) latent\(layout.perSample == 1 ? "" : "s")")
        lines.append("  samples       \(n) in \(layout.chunkCount) chunk\(layout.chunkCount == 1 ? "" : "s") of up to \(samplesPerChunk)")
        if layout.labelWidth == 0 {
            lines.append("  labels        none (unlabelled), \(classes) class\(classes == 1 ? "" : "es")")
        } else {
            lines.append("  labels        \(layout.labelWidth) byte\(layout.labelWidth == 1 ? "" : "s") each, \(classes) class\(classes == 1 ? "" : "es")")
        }
        lines.append("  decoder       fnv1a64 \(ModelIdentity.hex(decoderHash))")
        let width = String(a.total).count
        func row(_ name: String, _ value: Int, _ note: String = "") -> String {
            let v = String(value)
            let padded = name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, width - v.count)) + v
            return "  " + padded + (note.isEmpty ? "" : "  (" + note + ")")
        }
        lines.append("bytes")
        lines.append(row("header", a.header))
        lines.append(row("labels", a.labels))
        lines.append(row("symbols", a.symbols, "\(n * layout.perSample * layout.bits) bits of symbols + \(layout.paddingBits) padding bits"))
        lines.append(row("chunk framing", a.chunkFraming, "\(layout.chunkCount) chunk\(layout.chunkCount == 1 ? "" : "s") × 8: sample count + CRC32"))
        lines.append(row("total", a.total))
        lines.append("rate")
        if n == 0 {
            lines.append("  bits per latent    n/a (no samples)")
            lines.append("  bits per sample    n/a (no samples)")
        } else {
            let latents = Double(n * layout.perSample)
            let totalBits = Double(a.total) * 8, symbolBits = Double(a.symbols) * 8
            lines.append("  bits per latent    " + fixed(totalBits / latents, 4) + "  (symbols alone " + fixed(symbolBits / latents, 4) + ")")
            lines.append("  bits per sample    " + fixed(totalBits / Double(n), 2) + "  (symbols alone " + fixed(symbolBits / Double(n), 2) + ")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `value` with `digits` decimals, independent of the locale.
private func fixed(_ value: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", locale: nil, value)
}
