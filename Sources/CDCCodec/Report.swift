import CDCEntropy
import Foundation

/// The exact byte breakdown of a container's encoding (``LatentContainer/encoded()``).
///
/// ```swift
/// let a = container.accounting
/// assert(a.header + a.model + a.labels + a.symbols + a.chunkFraming == a.total)
/// assert(a.total == container.encoded().count)
/// ```
///
/// In a fixed-length (version 1) file the packed symbols of each chunk end on a byte boundary:
/// the padding bits of a chunk's last symbol byte are counted in ``symbols``, where they sit. In
/// an entropy-coded (version 2) file ``symbols`` counts the rANS codes and ``model`` the model
/// section.
public struct ByteAccounting: Sendable, Equatable {
    /// The header, its CRC included: 36 + 4·rank bytes.
    public var header: Int
    /// The entropy model section (its length field, the serialized model and its CRC32); 0 in
    /// a fixed-length file.
    public var model: Int
    /// Labels: count × label width (0 without labels).
    public var labels: Int
    /// The symbols: packed (the sum over chunks of ⌈n·P·(5−m)/8⌉ for a chunk of n samples of P
    /// latents), or the rANS codes of the chunks.
    public var symbols: Int
    /// Per-chunk framing: a u32 sample count and a u32 CRC32, 8 bytes per chunk; 12 in a coded
    /// file, which adds a u32 code length.
    public var chunkFraming: Int
    /// The whole file: header + model + labels + symbols + chunkFraming.
    public var total: Int

    /// Creates an accounting from its parts; ``total`` is their sum.
    public init(header: Int, model: Int = 0, labels: Int, symbols: Int, chunkFraming: Int) {
        self.header = header
        self.model = model
        self.labels = labels
        self.symbols = symbols
        self.chunkFraming = chunkFraming
        self.total = header + model + labels + symbols + chunkFraming
    }
}

extension Layout {
    /// The byte breakdown of a fixed-length file with this layout.
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
    /// For a fixed-length container it follows from the layout (the symbol and label values are
    /// not looked at); for an entropy-coded one it takes encoding the symbols.
    ///
    /// - Precondition: the container is valid (see ``validate()``).
    public var accounting: ByteAccounting {
        guard case .entropy(let model) = coding else { return checkedLayout.accounting }
        do {
            return try codedEncoding(model).accounting
        } catch {
            preconditionFailure("LatentContainer on an invalid container: \(error)")
        }
    }

    private var checkedLayout: Layout {
        do {
            return try layout()
        } catch {
            preconditionFailure("LatentContainer on an invalid container: \(error)")
        }
    }

    /// What `cdc inspect` prints: the header fields, the byte accounting and the rate in bits
    /// per latent, per sample and (for image latents `[K, h, w]`, whose images have 4h × 4w
    /// pixels) per pixel.
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
    ///   bits per pixel     3.0107  (symbols alone 3.0000; 28 × 28 pixels per sample)
    /// ```
    ///
    /// An entropy-coded container also shows its model, the model's estimate of the symbols'
    /// code length next to the actual code, and the model section in the bytes:
    ///
    /// ```text
    ///   format        version 2, flags 0x0001 (entropy-coded symbols: rANS, one table per channel)
    ///   model         static histogram: 16 tables over 8 values at 12-bit precision
    /// bytes
    ///   header               48
    ///   model               190  (182 bytes of tables + length and CRC32)
    ///   labels            60000
    ///   symbols        12349873  (rANS code)
    ///   chunk framing       708  (59 chunks × 12: sample count + code length + CRC32)
    ///   total          12410819
    /// rate
    ///   bits per latent    2.1107  (coded symbols 2.1003, model estimate 2.0993; fixed length 3)
    ///   bits per sample    1654.78  (coded symbols 1646.65, model estimate 1645.86; fixed length 2352)
    ///   bits per pixel     2.1107  (coded symbols 2.1003, model estimate 2.0993; 28 × 28 pixels per sample)
    /// ```
    ///
    /// - Parameter path: the file's path for the first line, or nil for an in-memory container.
    public func report(path: String?) -> String {
        let layout = checkedLayout
        let a = accounting
        let L = levels
        let n = layout.count
        var model: EntropyModel?
        if case .entropy(let m) = coding { model = m }
        var lines: [String] = []
        lines.append("CDC latent container" + (path.map { " " + $0 } ?? " (in memory)"))
        if model != nil {
            lines.append("  format        version \(Self.codedFormatVersion), flags 0x0001 (entropy-coded symbols: rANS, one table per channel)")
            lines.append("  mask          m = \(mask): L = \(L) level\(L == 1 ? "" : "s") per sign, symbols \(1 - L)...\(L) (\(layout.bits) bit\(layout.bits == 1 ? "" : "s") each at fixed length)")
        } else {
            lines.append("  format        version \(Self.formatVersion), flags 0x0000 (fixed-width bit-packed symbols)")
            lines.append("  mask          m = \(mask): L = \(L) level\(L == 1 ? "" : "s") per sign, symbols \(1 - L)...\(L), \(layout.bits) bit\(layout.bits == 1 ? "" : "s") each")
        }
        lines.append("  latent shape  \(formatShape(latentShape)) per sample = \(layout.perSample) latent\(layout.perSample == 1 ? "" : "s")")
        lines.append("  samples       \(n) in \(layout.chunkCount) chunk\(layout.chunkCount == 1 ? "" : "s") of up to \(samplesPerChunk)")
        if layout.labelWidth == 0 {
            lines.append("  labels        none (unlabelled), \(classes) class\(classes == 1 ? "" : "es")")
        } else {
            lines.append("  labels        \(layout.labelWidth) byte\(layout.labelWidth == 1 ? "" : "s") each, \(classes) class\(classes == 1 ? "" : "es")")
        }
        lines.append("  decoder       fnv1a64 \(ModelIdentity.hex(decoderHash))")
        if let model {
            lines.append("  model         \(model.origin): \(model.channels) table\(model.channels == 1 ? "" : "s") over \(model.alphabetSize) values at \(model.precisionBits)-bit precision")
        }
        let width = String(a.total).count
        func row(_ name: String, _ value: Int, _ note: String = "") -> String {
            let v = String(value)
            let padded = name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, width - v.count)) + v
            return "  " + padded + (note.isEmpty ? "" : "  (" + note + ")")
        }
        let chunks = "\(layout.chunkCount) chunk\(layout.chunkCount == 1 ? "" : "s")"
        lines.append("bytes")
        lines.append(row("header", a.header))
        if model != nil {
            lines.append(row("model", a.model, "\(a.model - 8) bytes of tables + length and CRC32"))
            lines.append(row("labels", a.labels))
            lines.append(row("symbols", a.symbols, "rANS code"))
            lines.append(row("chunk framing", a.chunkFraming, "\(chunks) × 12: sample count + code length + CRC32"))
        } else {
            lines.append(row("labels", a.labels))
            lines.append(row("symbols", a.symbols, "\(n * layout.perSample * layout.bits) bits of symbols + \(layout.paddingBits) padding bits"))
            lines.append(row("chunk framing", a.chunkFraming, "\(chunks) × 8: sample count + CRC32"))
        }
        lines.append(row("total", a.total))
        lines.append("rate")
        guard n > 0 else {
            lines.append("  bits per latent    n/a (no samples)")
            lines.append("  bits per sample    n/a (no samples)")
            return lines.joined(separator: "\n") + "\n"
        }
        // Per sample, per latent and (for [K, h, w] image latents) per pixel.
        var units: [(name: String, count: Double, digits: Int, note: String)] = [
            ("bits per latent ", Double(n * layout.perSample), 4, ""),
            ("bits per sample ", Double(n), 2, ""),
        ]
        if latentShape.count == 3 {
            let pixels = 16 * latentShape[1] * latentShape[2]
            units.append(("bits per pixel  ", Double(n * pixels), 4,
                          "\(4 * latentShape[1]) × \(4 * latentShape[2]) pixels per sample"))
        } else if latentShape.count == 2 {
            // cdc-ae-1d: one latent position per 16 audio samples.
            let samples = 16 * latentShape[1]
            units.append(("bits per audio sample", Double(n * samples), 4, "\(samples) audio samples per clip"))
        }
        let totalBits = Double(a.total) * 8, symbolBits = Double(a.symbols) * 8
        let estimate = estimatedCodedBits
        for unit in units {
            var notes: [String] = []
            if model != nil {
                notes.append("coded symbols " + fixed(symbolBits / unit.count, unit.digits))
                if let estimate { notes.append("model estimate " + fixed(estimate / unit.count, unit.digits)) }
                let fixedBits = Double(n * layout.perSample * layout.bits) / unit.count
                let rounded = fixedBits.rounded() == fixedBits ? String(Int(fixedBits)) : fixed(fixedBits, unit.digits)
                notes = [notes.joined(separator: ", ") + "; fixed length " + rounded]
            } else {
                notes.append("symbols alone " + fixed(symbolBits / unit.count, unit.digits))
            }
            if !unit.note.isEmpty { notes.append(unit.note) }
            lines.append("  " + unit.name + "   " + fixed(totalBits / unit.count, unit.digits) + "  (" + notes.joined(separator: "; ") + ")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `value` with `digits` decimals, independent of the locale.
private func fixed(_ value: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", locale: nil, value)
}
