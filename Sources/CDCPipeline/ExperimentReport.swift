import CDCFileIO
import CDCModels
import Foundation

/// The files of an experiment: `results.csv`, `results.md` (in the shape of the paper's
/// Tables 1–2), `plot.svg` (accuracy against bits per pixel) and `timings.json`.
public enum ExperimentReport {
    static let columns = ["method", "mask", "alpha", "quality", "seed", "bpp", "bpp_payload", "uplink_bytes", "raw_bytes",
                          "bandwidth_reduction", "accuracy", "accuracy_raw_test", "accuracy_loss", "accuracy_validation", "rate_weight", "sweep", "seconds", "autoencoder"]

    public static func csv(_ rows: [ExperimentRow]) -> String {
        var s = columns.joined(separator: ",") + "\n"
        for r in rows {
            let fields: [String] = [
                r.method, r.mask.map(String.init) ?? "", r.alpha.map { String(format: "%g", $0) } ?? "",
                r.quality.map(String.init) ?? "", "\(r.seed)", String(format: "%.4f", r.bpp), String(format: "%.4f", r.bppPayload),
                "\(r.uplinkBytes)", "\(r.rawBytes)", String(format: "%.2f", Double(r.rawBytes) / Double(max(r.uplinkBytes, 1))),
                String(format: "%.4f", r.accuracy), String(format: "%.4f", r.accuracyRawTest), String(format: "%.4f", r.accuracyLoss),
                r.accuracyValidation.flatMap { $0.isNaN ? nil : String(format: "%.4f", $0) } ?? "",
                r.rateWeight.map { String(format: "%g", $0) } ?? "", r.sweep ? "1" : "0",
                String(format: "%.1f", r.seconds), r.autoencoder ?? "",
            ]
            s += fields.joined(separator: ",") + "\n"
        }
        return s
    }

    /// The rows of a `results.csv` written by ``csv(_:)`` (values as rounded there), read by
    /// column name; throws ``PipelineError`` naming the line of a malformed one.
    public static func rows(fromCSV text: String) throws -> [ExperimentRow] {
        var lines = text.split(whereSeparator: \.isNewline).map(String.init)
        guard !lines.isEmpty else { throw PipelineError("results.csv is empty") }
        let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for name in ["method", "mask", "alpha", "quality", "seed", "bpp", "bpp_payload", "uplink_bytes", "raw_bytes", "accuracy",
                     "accuracy_raw_test", "accuracy_loss"] where !header.contains(name) {
            throw PipelineError("results.csv has no column '\(name)'")
        }
        return try lines.enumerated().map { n, line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == header.count else { throw PipelineError("results.csv line \(n + 2): \(fields.count) fields, the header has \(header.count)") }
            let f = Dictionary(uniqueKeysWithValues: zip(header, fields))
            func need<T>(_ name: String, _ parse: (String) -> T?) throws -> T {
                guard let v = f[name].flatMap(parse) else { throw PipelineError("results.csv line \(n + 2): bad \(name) '\(f[name] ?? "")'") }
                return v
            }
            func optional<T>(_ name: String, _ parse: (String) -> T?) throws -> T? {
                guard let text = f[name], !text.isEmpty else { return nil }
                return try need(name, parse)
            }
            var row = ExperimentRow(method: try need("method") { $0.isEmpty ? nil : $0 }, mask: try optional("mask") { Int($0) },
                                    alpha: try optional("alpha") { Float($0) }, quality: try optional("quality") { Int($0) },
                                    seed: try need("seed") { UInt64($0) }, bpp: try need("bpp") { Double($0) },
                                    bppPayload: try need("bpp_payload") { Double($0) }, uplinkBytes: try need("uplink_bytes") { Int($0) },
                                    rawBytes: try need("raw_bytes") { Int($0) }, accuracy: try need("accuracy") { Float($0) },
                                    accuracyRawTest: try need("accuracy_raw_test") { Float($0) },
                                    accuracyLoss: try need("accuracy_loss") { Float($0) },
                                    accuracyValidation: try optional("accuracy_validation") { Float($0) },
                                    seconds: try optional("seconds") { Double($0) } ?? 0)
            row.rateWeight = try optional("rate_weight") { Float($0) }
            row.sweep = try optional("sweep") { Int($0) } == 1
            row.autoencoder = try optional("autoencoder") { $0 }   // absent in older files: the spec's cdc-ae
            return row
        }
    }

    /// Writes `results.md` and `plot.svg` of an experiment directory again from its
    /// `results.csv` and `timings.json` (after a change to the report, or after rows of runs
    /// that differ only in their seeds were put into one `results.csv`, without rerunning).
    /// Accuracy losses are measured again against the mean of the raw rows, and `results.csv`
    /// is rewritten with them.
    public static func rerender(_ dir: URL) throws {
        var rows = try Self.rows(fromCSV: String(decoding: try Data(contentsOf: dir.appendingPathComponent("results.csv")), as: UTF8.self))
        let raw = rows.filter { $0.method == "raw" }.map(\.accuracy)
        if !raw.isEmpty {
            let base = raw.reduce(0, +) / Float(raw.count)
            for i in rows.indices { rows[i].accuracyLoss = base - rows[i].accuracy }
            try DurableFile.write(Data(csv(rows).utf8), to: dir.appendingPathComponent("results.csv"))
        }
        struct Meta: Decodable { var config: ExperimentConfig }
        let config = try JSONDecoder().decode(Meta.self, from: try Data(contentsOf: dir.appendingPathComponent("timings.json"))).config
        // The α of the table is the one every non-sweep CDC row was trained with.
        let chosen = rows.first { $0.method == "cdc" && !$0.sweep }?.alpha
        try DurableFile.write(Data(markdown(rows, config: config, chosenAlpha: chosen).utf8), to: dir.appendingPathComponent("results.md"))
        try DurableFile.write(Data(svg(rows, audio: config.sampleRate != nil).utf8), to: dir.appendingPathComponent("plot.svg"))
    }

    /// A row's autoencoder when it is not the spec's `cdc-ae` (rows without one, and rows of
    /// files written before the column existed, used the spec's).
    static func nonSpecAutoencoder(_ r: ExperimentRow) -> String? {
        r.autoencoder.flatMap { $0 == AutoencoderArchitecture.spec.rawValue || $0 == AutoencoderArchitecture.audio.rawValue || $0.isEmpty ? nil : $0 }
    }

    /// Mean, spread (max − min) and count of the test accuracy of rows that differ only by seed.
    public struct Group: Sendable {
        public var method: String, mask: Int?, alpha: Float?, quality: Int?, rateWeight: Float?
        /// The edge autoencoder when it is not the spec's `cdc-ae` (nil: cdc-ae, or not an edge row).
        public var autoencoder: String? = nil
        /// Whether the rows used a model other than the spec's `cdc-ae`.
        public var isNonSpec: Bool { autoencoder != nil }
        /// `method`, with the autoencoder when it is not the spec's (`cdc-coded (cdc-ae-wide)`).
        public var label: String { isNonSpec ? "\(method) (\(autoencoder!))" : method }
        public var bpp: Double, bppPayload: Double, bandwidthReduction: Double
        public var mean: Float, spread: Float, count: Int, meanLoss: Float
    }

    /// The table rows (sweep-only rows left out) grouped over seeds: raw, CDC, AE, then the
    /// others, each by mask and quality.
    public static func groups(_ rows: [ExperimentRow]) -> [Group] {
        let rank = ["raw": 0, "cdc": 1, "ae": 2, "cdc-coded": 3, "ae-coded": 4]
        return ungroupedOrder(rows).sorted {
            (rank[$0.method] ?? 5, $0.method, $0.autoencoder ?? "", $0.mask ?? -1, $0.rateWeight ?? -1, $0.quality ?? -1)
                < (rank[$1.method] ?? 5, $1.method, $1.autoencoder ?? "", $1.mask ?? -1, $1.rateWeight ?? -1, $1.quality ?? -1)
        }
    }

    static func ungroupedOrder(_ rows: [ExperimentRow]) -> [Group] {
        var order: [String] = [], members: [String: [ExperimentRow]] = [:]
        for r in rows where !r.sweep {
            let key = "\(r.method)|\(r.mask ?? -1)|\(r.alpha ?? -1)|\(r.quality ?? -1)|\(r.rateWeight ?? -1)|\(nonSpecAutoencoder(r) ?? "")"
            if members[key] == nil { order.append(key) }
            members[key, default: []].append(r)
        }
        return order.map { key in
            let g = members[key]!, acc = g.map(\.accuracy), k = Double(g.count)
            return Group(method: g[0].method, mask: g[0].mask, alpha: g[0].alpha, quality: g[0].quality, rateWeight: g[0].rateWeight,
                         autoencoder: nonSpecAutoencoder(g[0]), bpp: g.map(\.bpp).reduce(0, +) / k, bppPayload: g.map(\.bppPayload).reduce(0, +) / k,
                         bandwidthReduction: g.map { Double($0.rawBytes) / Double(max($0.uplinkBytes, 1)) }.reduce(0, +) / k,
                         mean: acc.reduce(0, +) / Float(k), spread: (acc.max() ?? 0) - (acc.min() ?? 0), count: g.count,
                         meanLoss: g.map(\.accuracyLoss).reduce(0, +) / Float(k))
        }
    }

    /// One checked statement about the results (the issue's and the paper's claims).
    public struct Claim: Sendable {
        public var statement: String, holds: Bool, evidence: String
    }

    /// CDC at the highest mask within 1.5 pp of raw; CDC's loss below the plain AE's at every m by
    /// more than the spread over seeds; the paper's "AE loses at least twice as much as CDC".
    /// The paper's claims are checked on the spec's `cdc-ae` rows only; the coding claims on every
    /// coded CDC row (swift-cdc's codec, whatever its autoencoder).
    public static func claims(_ rows: [ExperimentRow], codecTargets: [Double] = [0.5, 1, 2], audio: Bool = false) -> [Claim] {
        if audio { return audioClaims(rows) }
        let gs = groups(rows)
        let spec = gs.filter { !$0.isNonSpec }
        let cdc = Dictionary(spec.filter { $0.method == "cdc" }.map { ($0.mask ?? -1, $0) }, uniquingKeysWith: { a, _ in a })
        let ae = Dictionary(spec.filter { $0.method == "ae" }.map { ($0.mask ?? -1, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [Claim] = []
        if let m = cdc.keys.max(), let g = cdc[m] {
            out.append(Claim(statement: "CDC at m = \(m) loses at most 1.5 pp against raw data", holds: g.meanLoss <= 0.015,
                             evidence: String(format: "mean loss %.2f pp over %d seed(s)", 100 * g.meanLoss, g.count)))
        }
        let masks = cdc.keys.filter { ae[$0] != nil }.sorted()
        if !masks.isEmpty {
            var ok = true, parts: [String] = []
            for m in masks {
                let c = cdc[m]!, a = ae[m]!, margin = a.meanLoss - c.meanLoss, spread = max(c.spread, a.spread)
                if !(margin > spread) { ok = false }
                parts.append(String(format: "m=%d: AE − CDC = %+.2f pp, spread %.2f pp", m, 100 * margin, 100 * spread))
            }
            out.append(Claim(statement: "CDC's loss is smaller than the plain AE's at every m by more than the spread over seeds",
                             holds: ok, evidence: parts.joined(separator: "; ")))
            var ok2 = true, parts2: [String] = []
            for m in masks {
                let c = cdc[m]!, a = ae[m]!
                if !(a.meanLoss >= 2 * max(c.meanLoss, 0) && a.meanLoss > 0) { ok2 = false }
                parts2.append(String(format: "m=%d: AE %.2f pp vs CDC %.2f pp", m, 100 * a.meanLoss, 100 * c.meanLoss))
            }
            out.append(Claim(statement: "The paper's claim: the plain AE loses at least twice as much accuracy as CDC at every m",
                             holds: ok2, evidence: parts2.joined(separator: "; ")))
        }
        out += codingClaims(gs, targets: codecTargets)
        out += vaeClsClaims(gs)
        return out
    }

    /// The VAE codec in CDC's setting (the cloud trains on latents, never restoring images): (a)
    /// the paper's "more accurate than JPEG at about 0.8 bpp" (by more than 10 pp on CIFAR-10),
    /// at JPEG's row nearest 0.8 bpp; (b) against coded CDC at the same or fewer uplink bits; (c)
    /// with context-model rows, the anchor's 3-D masked context model against the per-channel
    /// prior at the same mask. (a) and (b) take the coded rows of both rate models.
    public static func vaeClsClaims(_ gs: [Group]) -> [Claim] {
        let vae = gs.filter { $0.method == "vae-cls-coded" || $0.method == "vae-cls-ctx3d-coded" }
        guard !vae.isEmpty else { return [] }
        func name(_ g: Group) -> String { g.method == "vae-cls-ctx3d-coded" ? "vae-cls-ctx3d" : "vae-cls" }
        var out: [Claim] = []
        if let jpeg = gs.filter({ $0.method == "jpeg" }).min(by: { abs($0.bpp - 0.8) < abs($1.bpp - 0.8) }) {
            let fit = vae.filter { $0.bpp <= jpeg.bpp * 1.1 }.max { $0.mean < $1.mean }
            let gain = fit.map { $0.mean - jpeg.mean }
            out.append(Claim(statement: "vae-cls (coded, cloud trained on latents) is more accurate than JPEG near 0.8 bpp (the paper: by more than 10 pp on CIFAR-10)",
                             holds: (gain ?? -1) > 0,
                             evidence: fit.map { String(format: "%@ m = %d %.2f%% at %.3f bpp vs JPEG q = %d %.2f%% at %.3f bpp: %+.2f pp%@", name($0), $0.mask ?? 0,
                                                        100 * $0.mean, $0.bpp, jpeg.quality ?? 0, 100 * jpeg.mean, jpeg.bpp, 100 * (gain ?? 0),
                                                        (gain ?? 0) > 0.10 ? " (the paper's margin)" : (gain ?? 0) > 0 ? " (less than the paper's 10 pp)" : "") }
                                 ?? String(format: "no vae-cls row at or below JPEG's %.3f bpp", jpeg.bpp)))
        }
        // Every coded CDC row of the spec's autoencoder: histogram-coded, and with the learned prior's rate term.
        let cdc = gs.filter { $0.method == "cdc-coded" && !$0.isNonSpec }
        if !cdc.isEmpty {
            var ok = true, parts: [String] = []
            for v in vae.sorted(by: { $0.bpp < $1.bpp }) {
                guard let c = cdc.filter({ $0.bpp <= v.bpp * 1.1 }).max(by: { $0.mean < $1.mean }) else {
                    parts.append(String(format: "%@ m = %d %.2f%% at %.3f bpp: no coded CDC row at that rate", name(v), v.mask ?? 0, 100 * v.mean, v.bpp))
                    continue
                }
                if v.mean + max(v.spread, c.spread) < c.mean { ok = false }
                parts.append(String(format: "%@ m = %d %.2f%% at %.3f bpp vs CDC m = %d%@ %.2f%% at %.3f bpp", name(v), v.mask ?? 0, 100 * v.mean,
                                    v.bpp, c.mask ?? 0, c.rateWeight.map { String(format: " λ = %g", $0) } ?? "", 100 * c.mean, c.bpp))
            }
            out.append(Claim(statement: "vae-cls (coded) is at least as accurate as coded CDC at the same or fewer bits (within the spread over seeds)",
                             holds: ok, evidence: parts.joined(separator: "; ")))
        }
        // The anchor's context model against the per-channel prior, mask by mask.
        let pairs = vae.filter { $0.method == "vae-cls-ctx3d-coded" }.compactMap { c in
            vae.first { $0.method == "vae-cls-coded" && $0.mask == c.mask }.map { (c, $0) }
        }
        if !pairs.isEmpty {
            let ok = pairs.allSatisfy { c, f in c.bpp < f.bpp && c.mean + max(c.spread, f.spread) >= f.mean }
            out.append(Claim(statement: "the 3-D masked context model (the anchor's rate model) codes vae-cls's uploads in fewer bits than the per-channel prior, at the same accuracy (within the spread over seeds)",
                             holds: ok,
                             evidence: pairs.sorted { ($0.0.mask ?? 0) > ($1.0.mask ?? 0) }.map { c, f in
                                 String(format: "m = %d: context %.3f bpp %.2f%% vs prior %.3f bpp %.2f%% (%.0f%% of the bits)", c.mask ?? 0, c.bpp,
                                        100 * c.mean, f.bpp, 100 * f.mean, 100 * c.bpp / f.bpp)
                             }.joined(separator: "; ")))
        }
        return out
    }

    /// The paper's audio claims (Table 1, U/F columns, and §4.2): (a) CDC at the highest mask
    /// loses little against raw audio — at most 2 pp here (the paper: 1.66 pp on FSDD); (b) the
    /// plain AE loses much more than CDC — at least twice as much at every m (the paper: it does
    /// not converge, 77.66 pp on FSDD); (c) against Opus at matched bits per second: at each
    /// Opus row's total uplink rate, the most accurate CDC row (fixed-length or coded) that
    /// fits in that rate is at least as accurate as Opus.
    public static func audioClaims(_ rows: [ExperimentRow]) -> [Claim] {
        let gs = groups(rows)
        let cdc = Dictionary(gs.filter { $0.method == "cdc" }.map { ($0.mask ?? -1, $0) }, uniquingKeysWith: { a, _ in a })
        let ae = Dictionary(gs.filter { $0.method == "ae" }.map { ($0.mask ?? -1, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [Claim] = []
        if let m = cdc.keys.max(), let g = cdc[m] {
            out.append(Claim(statement: "(a) CDC at m = \(m) loses at most 2 pp against raw audio (the paper: 1.66 pp on FSDD)",
                             holds: g.meanLoss <= 0.02,
                             evidence: String(format: "mean loss %.2f pp over %d seed(s), spread %.2f pp", 100 * g.meanLoss, g.count, 100 * g.spread)))
        }
        let masks = cdc.keys.filter { ae[$0] != nil }.sorted()
        if !masks.isEmpty {
            var ok = true, parts: [String] = []
            for m in masks {
                let c = cdc[m]!, a = ae[m]!
                if !(a.meanLoss >= 2 * max(c.meanLoss, 0) && a.meanLoss > 0) { ok = false }
                parts.append(String(format: "m=%d: AE %.2f pp (%.2f%%) vs CDC %.2f pp (%.2f%%)", m, 100 * a.meanLoss, 100 * a.mean,
                                    100 * c.meanLoss, 100 * c.mean))
            }
            out.append(Claim(statement: "(b) The plain AE loses at least twice as much accuracy as CDC at every m (the paper: the AE does not converge on audio)",
                             holds: ok, evidence: parts.joined(separator: "; ")))
        }
        let opus = gs.filter { $0.method == "opus" }.sorted { $0.bpp < $1.bpp }
        let cdcAll = gs.filter { $0.method == "cdc" || $0.method == "cdc-coded" }
        if !opus.isEmpty && !cdcAll.isEmpty {
            var ok = true, parts: [String] = []
            for o in opus {
                guard let best = cdcAll.filter({ $0.bpp <= o.bpp }).max(by: { $0.mean < $1.mean }) else {
                    ok = false
                    parts.append(String(format: "Opus %d kbit/s (%.3f b/sample, %.2f%%): no CDC row fits", o.quality ?? 0, o.bpp, 100 * o.mean))
                    continue
                }
                if best.mean < o.mean { ok = false }
                parts.append(String(format: "Opus %d kbit/s (%.3f b/sample): %.2f%% vs %@ m = %d (%.3f b/sample): %.2f%%", o.quality ?? 0,
                                    o.bpp, 100 * o.mean, best.method, best.mask ?? 4, best.bpp, 100 * best.mean))
            }
            out.append(Claim(statement: "(c) At each Opus rate the most accurate CDC row within that total uplink rate is at least as accurate as Opus",
                             holds: ok, evidence: parts.joined(separator: "; ")))
        }
        return out
    }

    /// The entropy-coding claims: at the accuracy of fixed-length CDC at m = 4 (within 0.3 pp), a coded
    /// uplink at least 30% smaller; and at each target rate t (bits per pixel of the total
    /// uplink), the most accurate coded CDC row that fits in t is at least as accurate as JPEG
    /// and WebP at t (their accuracy interpolated linearly in log-rate between measured points;
    /// below their lowest measured rate they cannot meet t; above their highest, their best).
    public static func codingClaims(_ gs: [Group], targets: [Double] = [0.5, 1, 2]) -> [Claim] {
        var out: [Claim] = []
        let coded = gs.filter { $0.method == "cdc-coded" }
        guard !coded.isEmpty else { return out }
        if let fixed = gs.first(where: { $0.method == "cdc" && $0.mask == 4 && !$0.isNonSpec }) {
            let matching = coded.filter { $0.mean >= fixed.mean - 0.003 }
            if let best = matching.min(by: { $0.bpp < $1.bpp }) {
                let saving = 1 - best.bpp / fixed.bpp
                out.append(Claim(statement: "At the accuracy of fixed-length CDC at m = 4 (within 0.3 pp) the entropy-coded uplink is at least 30% smaller",
                                 holds: saving >= 0.3,
                                 evidence: String(format: "fixed %.3f bpp at %.2f%%; coded %.3f bpp at %.2f%% (%@): %.0f%% smaller",
                                                  fixed.bpp, 100 * fixed.mean, best.bpp, 100 * best.mean,
                                                  "m = \(best.mask ?? 4)" + (best.rateWeight.map { String(format: ", λ = %g", $0) } ?? "")
                                                      + (best.isNonSpec ? ", \(best.autoencoder!)" : ""),
                                                  100 * saving)))
            } else {
                out.append(Claim(statement: "At the accuracy of fixed-length CDC at m = 4 (within 0.3 pp) the entropy-coded uplink is at least 30% smaller",
                                 holds: false, evidence: "no coded row reaches that accuracy"))
            }
        }
        for codec in ["jpeg", "webp"] {
            let curve = gs.filter { $0.method == codec }.sorted { $0.bpp < $1.bpp }
            guard let lowest = curve.first, let highest = curve.last, !targets.isEmpty else { continue }
            var ok = true, parts: [String] = []
            let name = codec.uppercased()
            for t in targets.sorted() {
                guard let cdc = coded.filter({ $0.bpp <= t }).max(by: { $0.mean < $1.mean }) else {
                    ok = false
                    parts.append(String(format: "%g bpp: no coded CDC row fits", t))
                    continue
                }
                let mine = String(format: "%g bpp: CDC %.2f%% (%.3f bpp, m = %d%@%@)", t, 100 * cdc.mean, cdc.bpp, cdc.mask ?? 4,
                                  cdc.rateWeight.map { String(format: ", λ = %g", $0) } ?? "",
                                  cdc.isNonSpec ? ", \(cdc.autoencoder!)" : "")
                let theirs: Double
                if t < lowest.bpp {
                    parts.append(mine + String(format: " vs %@ none (its lowest rate is %.3f bpp)", name, lowest.bpp))
                    continue
                } else if t >= highest.bpp {
                    theirs = Double(highest.mean)
                } else {
                    let hi = curve.firstIndex(where: { $0.bpp > t })!
                    let a = curve[hi - 1], b = curve[hi]
                    let w = (log(t) - log(a.bpp)) / (log(b.bpp) - log(a.bpp))
                    theirs = Double(a.mean) + w * Double(b.mean - a.mean)
                }
                if Double(cdc.mean) < theirs { ok = false }
                parts.append(mine + String(format: " vs %@ %.2f%%", name, 100 * theirs))
            }
            out.append(Claim(statement: "At each target rate coded CDC is at least as accurate as \(name)",
                             holds: ok, evidence: parts.joined(separator: "; ")))
        }
        return out
    }

    public static func markdown(_ rows: [ExperimentRow], config: ExperimentConfig, chosenAlpha: Float? = nil) -> String {
        let audio = config.sampleRate != nil
        let unit = audio ? "bits/sample" : "bpp"
        var s = """
        | method | m | α | λ | \(audio ? "kbit/s" : "quality") | runs | \(unit) (total uplink) | \(unit) (payload) | bandwidth reduction | accuracy (mean) | spread | accuracy loss (pp) |
        | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |

        """
        let gs = groups(rows)
        for g in gs {
            s += "| \(g.label) | \(g.mask.map(String.init) ?? "") | \(g.alpha.map { String(format: "%g", $0) } ?? "") | "
                + "\(g.rateWeight.map { String(format: "%g", $0) } ?? "") | \(g.quality.map(String.init) ?? "") | \(g.count) | " + String(format: "%.3f | %.3f | %.1f× | %.2f%% | %.2f | %.2f |\n",
                g.bpp, g.bppPayload, g.bandwidthReduction, 100 * g.mean, 100 * g.spread, 100 * g.meanLoss)
        }
        if let rate = config.sampleRate {
            s += "\nbits/sample (total uplink): every uplink byte (codes or Opus/μ-law streams, labels, decoder, headers) × 8 / "
            s += "audio samples (\(rate) per second, so kbit/s = bits/sample × \(String(format: "%g", Double(rate) / 1000))); raw is 16-bit PCM. "
            s += "bits/sample (payload): CDC codes alone (5 − m fixed-length; -coded rows: the rANS-coded codes) or the Opus packets "
            s += "with their framing, μ-law bytes. kbit/s: the Opus rows' target bitrate. "
        } else {
            s += "\nbpp (total uplink): every uplink byte (codes or files, labels, decoder, headers) × 8 / pixel positions; "
            s += "bpp (payload): CDC codes alone (5 − m fixed-length; -coded rows: the rANS-coded codes) or JPEG/WebP whole files. "
        }
        if gs.contains(where: { $0.method.hasPrefix("vae-cls") }) {
            s += "vae-cls rows: the VAE codec's latent indices (L = 2, 3, 6 centres at m = 4, 3, 2) in the same container, its latent "
            s += "file (the centres) in place of a decoder; the cloud's classifier reads the latents (results.csv's accuracy_raw_test "
            s += "holds the edge's jointly trained classifier on the test images: the co-inference use). "
            if gs.contains(where: { $0.method.hasPrefix("vae-cls-ctx3d") }) {
                s += "vae-cls-ctx3d rows: trained with the anchor's 3-D masked context model as the rate model; its coded row's "
                s += "chunks are coded under that model (adaptive rANS), with the model's weights counted as a one-off file. "
            }
        }
        s += "λ: weight of the learned prior's rate term. Accuracy: the cloud classifier on the test set "
        s += "passed through the same codec, mean over the runs (seeds); spread: max − min over them (pp); loss against the mean "
        s += "of the raw-data classifiers."
        if gs.contains(where: \.isNonSpec) {
            s += " Rows that name an autoencoder (such as cdc-ae-wide, swift-cdc's wider one) did not use the spec's cdc-ae; "
            s += "the paper's claims below are checked on cdc-ae rows only, the coding claims on every coded CDC row."
        }
        s += "\n"
        let sweep = rows.filter { $0.method == "cdc" && $0.mask == config.alphaSweepMask && $0.seed == config.seeds.first }
        if sweep.count > 1 {
            s += "\n### α sweep (m = \(config.alphaSweepMask), seed \(config.seeds.first ?? 0))\n\n"
            s += "| α | validation accuracy | test accuracy | accuracy on raw test \(audio ? "clips" : "images") |\n| ---: | ---: | ---: | ---: |\n"
            for r in sweep.sorted(by: { ($0.alpha ?? 0) < ($1.alpha ?? 0) }) {
                s += String(format: "| %g | %@ | %.2f%% | %.2f%% |\n", r.alpha ?? 0,
                            r.accuracyValidation.map { String(format: "%.2f%%", 100 * $0) } ?? "", 100 * r.accuracy, 100 * r.accuracyRawTest)
            }
            if let a = chosenAlpha {
                s += "\nα of the table: \(String(format: "%g", a))\(config.autoAlpha ? " (best validation accuracy)" : " (fixed)").\n"
            }
        }
        let cs = claims(rows, codecTargets: config.codecTargets, audio: audio)
        if !cs.isEmpty {
            s += "\n### Claims checked\n\n"
            for c in cs { s += "- \(c.holds ? "**holds**" : "**does not hold**"): \(c.statement) (\(c.evidence)).\n" }
        }
        return s
    }

    /// Accuracy (y) against total-uplink bits per pixel or per audio sample (x, log scale), one
    /// series per method.
    public static func svg(_ rows: [ExperimentRow], audio: Bool = false) -> String {
        // A wider legend when a series names its autoencoder.
        let named = rows.contains { nonSpecAutoencoder($0) != nil }
        let w = named ? 700.0 : 640.0, h = 420.0, left = 60.0, right = named ? 210.0 : 150.0, top = 20.0, bottom = 50.0
        let pts = rows.filter { $0.method != "raw" && !$0.sweep }
        let xs = pts.map { log2(max($0.bpp, 1e-3)) }, ys = rows.map { Double($0.accuracy) }
        let x0 = (xs.min() ?? -1) - 0.2, x1 = (xs.max() ?? 3) + 0.2
        let y0 = max(0, (ys.min() ?? 0) - 0.02), y1 = min(1, (ys.max() ?? 1) + 0.02)
        func px(_ v: Double) -> Double { left + (v - x0) / max(x1 - x0, 1e-9) * (w - left - right) }
        func py(_ v: Double) -> Double { top + (1 - (v - y0) / max(y1 - y0, 1e-9)) * (h - top - bottom) }
        let colors = ["cdc": "#d62728", "ae": "#1f77b4", "cdc-coded": "#ff7f0e", "ae-coded": "#17becf", "jpeg": "#2ca02c",
                      "webp": "#9467bd", "opus": "#2ca02c", "mulaw": "#9467bd", "raw": "#444444"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        var e = Int(floor(x0))
        while Double(e) <= x1 {
            if Double(e) >= x0 {
                let x = px(Double(e))
                s += "<line x1=\"\(x)\" y1=\"\(h - bottom)\" x2=\"\(x)\" y2=\"\(h - bottom + 5)\" stroke=\"black\"/>"
                s += "<text x=\"\(x)\" y=\"\(h - bottom + 18)\" text-anchor=\"middle\">\(String(format: "%g", pow(2, Double(e))))</text>\n"
            }
            e += 1
        }
        for i in 0...4 {
            let v = y0 + (y1 - y0) * Double(i) / 4, y = py(v)
            s += "<line x1=\"\(left - 5)\" y1=\"\(y)\" x2=\"\(left)\" y2=\"\(y)\" stroke=\"black\"/>"
            s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.1f%%", 100 * v))</text>\n"
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\">\(audio ? "bits per audio sample" : "bits per pixel") (total uplink, log scale)</text>\n"
        s += "<text x=\"15\" y=\"\((top + h - bottom) / 2)\" transform=\"rotate(-90 15 \((top + h - bottom) / 2))\" text-anchor=\"middle\">test accuracy</text>\n"
        let gs = groups(rows)
        if let raw = gs.first(where: { $0.method == "raw" }) {
            let y = py(Double(raw.mean))
            s += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(w - right)\" y2=\"\(y)\" stroke=\"#444\" stroke-dasharray=\"4 3\"/>\n"
        }
        var legendY = top + 10
        // One series per method and autoencoder (the spec's rows first).
        var seriesKeys: [(method: String, autoencoder: String?)] = []
        for method in ["cdc", "ae", "cdc-coded", "ae-coded", "jpeg", "webp", "opus", "mulaw", "raw"] {
            let aes = Set(gs.filter { $0.method == method }.map(\.autoencoder))
            seriesKeys += aes.sorted { ($0 ?? "") < ($1 ?? "") }.map { (method, $0) }
        }
        for (method, autoencoder) in seriesKeys {
            func inSeries(_ g: Group) -> Bool { g.method == method && g.autoencoder == autoencoder }
            let series = gs.filter { inSeries($0) && method != "raw" }.sorted { $0.bpp < $1.bpp }
            guard !series.isEmpty || method == "raw" else { continue }
            let c = autoencoder == nil ? (colors[method] ?? "black") : (method.hasPrefix("cdc") ? "#8c564b" : "#e377c2")
            if series.count > 1 {
                let path = series.map { "\(px(log2($0.bpp))),\(py(Double($0.mean)))" }.joined(separator: " ")
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\"/>\n"
            }
            for p in series {
                s += "<circle cx=\"\(px(log2(p.bpp)))\" cy=\"\(py(Double(p.mean)))\" r=\"3.5\" fill=\"\(c)\"/>\n"
            }
            // Each seed's run as a small open circle around the mean.
            for r in pts where r.method == method && !r.sweep && nonSpecAutoencoder(r) == autoencoder {
                s += "<circle cx=\"\(px(log2(r.bpp)))\" cy=\"\(py(Double(r.accuracy)))\" r=\"2\" fill=\"none\" stroke=\"\(c)\" stroke-opacity=\"0.6\"/>\n"
            }
            let name = method == "raw" ? "raw data (dashed)" : method.uppercased() + (autoencoder.map { " (\($0))" } ?? "")
            s += "<rect x=\"\(w - right + 15)\" y=\"\(legendY - 9)\" width=\"10\" height=\"10\" fill=\"\(c)\"/>"
            s += "<text x=\"\(w - right + 30)\" y=\"\(legendY)\">\(name)</text>\n"
            legendY += 18
        }
        return s + "</svg>\n"
    }

    /// Writes all four files (each atomically).
    public static func write(rows: [ExperimentRow], config: ExperimentConfig, chosenAlpha: Float? = nil, timings: [String: Double],
                             to dir: URL) throws {
        try DurableFile.write(Data(csv(rows).utf8), to: dir.appendingPathComponent("results.csv"))
        try DurableFile.write(Data(markdown(rows, config: config, chosenAlpha: chosenAlpha).utf8), to: dir.appendingPathComponent("results.md"))
        try DurableFile.write(Data(svg(rows, audio: config.sampleRate != nil).utf8), to: dir.appendingPathComponent("plot.svg"))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Meta: Encodable { var config: ExperimentConfig; var phaseSeconds: [String: Double] }
        try DurableFile.write(enc.encode(Meta(config: config, phaseSeconds: timings)), to: dir.appendingPathComponent("timings.json"))
    }
}
