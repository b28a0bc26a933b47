import CDCFileIO
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// The files of `cdc experiment co-inference`: `results.csv` (test rows), `search.csv` (the
/// DISC-like grid on validation images), `results.md`, `plot.svg` (accuracy against bits per
/// sample, every system), `channel-awgn.svg` and `channel-bec.svg` (BottleNet++ accuracy
/// against SNR and against erasure probability) and `timings.json`.
public enum CoInferenceReport {
    static let columns = ["system", "split", "config", "channel", "bits_per_sample", "one_off_bytes", "accuracy",
                          "accuracy_loss", "device_ms", "server_ms", "seed", "bits_per_pixel", "samples", "feature_values",
                          "train_channel", "restored_psnr_db"]

    public static func csv(_ rows: [CoInferenceRow]) -> String {
        var s = columns.joined(separator: ",") + "\n"
        for r in rows {
            let fields: [String] = [r.system, r.split, r.config, r.channel, String(format: "%.2f", r.bitsPerSample), "\(r.oneOffBytes)",
                                    String(format: "%.4f", r.accuracy), String(format: "%.4f", r.accuracyLoss),
                                    String(format: "%.4f", r.deviceMs), String(format: "%.4f", r.serverMs), "\(r.seed)",
                                    String(format: "%.6f", r.bitsPerPixel), "\(r.samples)", r.featureValues.map(String.init) ?? "",
                                    r.trainChannel ?? "", r.restoredPSNR.map { String(format: "%.2f", $0) } ?? ""]
            s += fields.map { $0.contains(",") ? "\"\($0)\"" : $0 }.joined(separator: ",") + "\n"
        }
        return s
    }

    /// Rows of a `results.csv` or `search.csv` written by ``csv(_:)``.
    public static func rows(fromCSV text: String) throws -> [CoInferenceRow] {
        var lines = text.split(separator: "\n").map(String.init)
        guard !lines.isEmpty else { return [] }
        let header = lines.removeFirst().split(separator: ",").map(String.init)
        // Files written before the PSNR column lack only it.
        guard header == columns || header == Array(columns.dropLast()) else {
            throw SplitError("not a co-inference results file (columns \(header))")
        }
        return try lines.map { line in
            var f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if header.count == columns.count - 1 && f.count == header.count { f.append("") }
            guard f.count == columns.count, let bits = Double(f[4]), let oneOff = Int(f[5]), let acc = Float(f[6]),
                  let loss = Float(f[7]), let dev = Double(f[8]), let srv = Double(f[9]), let seed = UInt64(f[10]),
                  let bpp = Double(f[11]), let n = Int(f[12]) else {
                throw SplitError("a malformed co-inference row: \(line)")
            }
            return CoInferenceRow(system: f[0], split: f[1], config: f[2], channel: f[3], bitsPerSample: bits, bitsPerPixel: bpp,
                                  oneOffBytes: oneOff, accuracy: acc, accuracyLoss: loss, deviceMs: dev, serverMs: srv, seed: seed,
                                  samples: n, featureValues: Int(f[13]), trainChannel: f[14].isEmpty ? nil : f[14])
                .withRestoredPSNR(Double(f[15]))
        }
    }

    /// The search's reference accuracy: the raw classifier's row of `search.csv` (validation
    /// images), or the best searched point if there is none.
    public static func reference(_ search: [CoInferenceRow]) -> Float {
        search.first { $0.system == "raw" }?.accuracy ?? search.map(\.accuracy).max() ?? 0
    }

    /// The raw row's accuracy (the reference of every loss).
    static func rawAccuracy(_ rows: [CoInferenceRow]) -> Float? { rows.first { $0.system == "raw" }?.accuracy }

    static func pct(_ v: Float) -> String { String(format: "%.2f%%", 100 * v) }

    public static func markdown(_ rows: [CoInferenceRow], searchRows: [CoInferenceRow], config: CoInferenceConfig) -> String {
        let raw = rawAccuracy(rows)
        let rawBits = rows.first { $0.system == "raw" }?.bitsPerSample
        var s = "# Co-inference: every system on real coded bytes\n\n"
        s += "Written by `cdc experiment co-inference`. Classifiers trained on \(config.trainSubset == 0 ? "all" : "\(config.trainSubset)") training images"
        s += " (\(config.classifier.epochs) epochs), seed \(config.seed); every row measured on the same \(rows.first?.samples ?? 0) test images. "
        s += "Bits per sample are 8 × the real payload bytes of each sample coded on its own (rANS, zlib, JPEG scans, WebP bitstreams), "
        s += "never an estimate; one-off bytes (decoders, histograms, JPEG tables) are counted apart. Device and server times are "
        s += "per sample, measured in batches of 250 on this machine (2 cores). Losses are against the raw-data classifier (`raw`).\n\n"
        s += "| system | split | config | channel | bits/sample | bpp | one-off bytes | accuracy | loss (pp) | device ms | server ms | test images |\n"
        s += "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for r in rows {
            s += "| \(r.system) | \(r.split) | \(r.config) | \(r.channel)\(r.trainChannel.map { " (trained \($0))" } ?? "") | "
            s += String(format: "%.0f | %.3f | %d | %@ | %.2f | %.3f | %.3f | %d |\n", r.bitsPerSample, r.bitsPerPixel, r.oneOffBytes,
                        pct(r.accuracy), 100 * r.accuracyLoss, r.deviceMs, r.serverMs, r.samples)
        }
        // Matched rates: per system, the most accurate row at or below each budget (noiseless channels).
        s += "\n## Matched rates\n\nThe most accurate row of each system at or below the budget (noiseless channel; 10 % slack).\n\n"
        let positions = rows.first.map { $0.bitsPerSample / max($0.bitsPerPixel, 1e-9) } ?? 784
        s += "| system | ≤ \(Int(positions)) bits (1 bpp) | ≤ \(Int(2 * positions)) bits (2 bpp) |\n|---|---|---|\n"
        for system in orderedSystems(rows) where system != "raw" {
            let cells = [1.0, 2.0].map { bpp -> String in
                let fit = rows.filter { $0.system == system && $0.channel == "none" && $0.bitsPerSample <= bpp * positions * 1.1 }
                guard let best = fit.max(by: { $0.accuracy < $1.accuracy }) else { return "—" }
                return String(format: "%@ at %.0f bits (%@ %@)", pct(best.accuracy), best.bitsPerSample, best.split, best.config)
            }
            s += "| \(system) | \(cells[0]) | \(cells[1]) |\n"
        }
        s += "\n## The papers' claims against these numbers\n\n"
        s += claims(rows, raw: raw, rawBits: rawBits, maxLoss: config.maxLoss).map { "- \($0)" }.joined(separator: "\n") + "\n"
        s += searchSection(searchRows, rows: rows, config: config)
        return s
    }

    static func orderedSystems(_ rows: [CoInferenceRow]) -> [String] {
        var seen: [String] = []
        for r in rows where !seen.contains(r.system) { seen.append(r.system) }
        return seen
    }

    /// Each paper's headline claim, said against our rows: holds or not, with numbers.
    static func claims(_ rows: [CoInferenceRow], raw: Float?, rawBits: Double?, maxLoss: Float) -> [String] {
        guard let raw, let rawBits else { return ["no raw row: nothing to compare against"] }
        var out: [String] = []
        // CDC: 14.9× less bandwidth than raw data at ≤ 1.06 pp loss (a claim about the training
        // upload; here its deployment case, test images through the edge's codec).
        let paper = "CDC (14.9× less than raw at ≤ 1.06 pp loss; the paper's claim is about the training upload, this is its deployment case)"
        if let best = rows.filter({ $0.system == "cdc" && raw - $0.accuracy <= 0.0106 }).min(by: { $0.bitsPerSample < $1.bitsPerSample }) {
            out.append(String(format: "%@: %.1f× at %.2f pp (%@) — %@.", paper, rawBits / best.bitsPerSample,
                              100 * (raw - best.accuracy), best.config, rawBits / best.bitsPerSample >= 14.9 ? "holds" : "holds only at a smaller ratio"))
        } else if let best = rows.filter({ $0.system == "cdc" }).max(by: { $0.accuracy < $1.accuracy }) {
            out.append(String(format: "%@: does not hold here — its most accurate row loses %.2f pp at %.1f× (%@).", paper,
                              100 * (raw - best.accuracy), rawBits / best.bitsPerSample, best.config))
        }
        // BottleNet++: ≤ 256× bit compression against 32-bit features with < 2 % accuracy drop.
        let control = rows.first { $0.system == "raw-finetuned" }
        if let control {
            out.append(String(format: "BottleNet++'s phase 3 trains the backbone further: the raw classifier fine-tuned the same way, with no "
                              + "bottleneck (`raw-finetuned`), reaches %@ (%+.2f pp). Against it, the BottleNet++ losses below are the bottleneck's.",
                              pct(control.accuracy), 100 * (control.accuracy - raw)))
        }
        for r in rows where r.system == "bottlenet++" && r.channel == "none" {
            guard let values = r.featureValues else { continue }
            let k = r.config.split(separator: " ").first.map(String.init) ?? r.config
            let coded = rows.first { $0.system == "bottlenet++-coded" && $0.split == r.split && $0.channel == "none"
                && $0.trainChannel == r.trainChannel && $0.config.hasPrefix(k + " ") }
            out.append(String(format: "BottleNet++ %@ %@ trained %@ (paper: up to 256× against 32-bit features, < 2 %% drop): %.0f× against the "
                              + "fp32 feature but %.1f× against the 8-bit image (%.0f bits%@); loss %.2f pp%@ — the drop %@.", r.split, k,
                              r.trainChannel ?? "none", Double(values * 32) / r.bitsPerSample, rawBits / r.bitsPerSample, r.bitsPerSample,
                              coded.map { String(format: ", %.0f rANS-coded", $0.bitsPerSample) } ?? "", 100 * (raw - r.accuracy),
                              control.map { String(format: " (%.2f pp against raw-finetuned)", 100 * ($0.accuracy - r.accuracy)) } ?? "",
                              max(raw, control?.accuracy ?? raw) - r.accuracy < 0.02 ? "holds" : "does not hold"))
        }
        // BottleNet++: up to 3× less device compute than the whole classifier on the device.
        if let whole = rows.filter({ $0.split == "G" }).map(\.deviceMs).min(),
           let early = rows.filter({ $0.system == "bottlenet++" && $0.channel == "none" }).min(by: { $0.deviceMs < $1.deviceMs }) {
            out.append(String(format: "BottleNet++ (up to 3× less device compute than the whole classifier on the device): at %@ the device "
                              + "spends %.3f ms per sample against %.3f ms for the whole classifier (split G), %.1f× less, at %.2f pp loss.",
                              early.split, early.deviceMs, whole, whole / max(early.deviceMs, 1e-9), 100 * (raw - early.accuracy)))
        }
        out += vaeClsClaims(rows, raw: raw)
        // DISC: > 98 % data-size reduction with < 1 % accuracy loss.
        let disc = rows.filter { $0.system == "disc-like" && raw - $0.accuracy < 0.01 }
        if let best = disc.min(by: { $0.bitsPerSample < $1.bitsPerSample }), let values = best.featureValues {
            let red = 1 - best.bitsPerSample / Double(values * 32)
            let vsImage = best.bitsPerSample < rawBits ? String(format: "%.2f× smaller", rawBits / best.bitsPerSample)
                                                       : String(format: "%.2f× larger", best.bitsPerSample / rawBits)
            out.append(String(format: "DISC (> 98 %% smaller than the features at < 1 %% loss), our DISC-like codec: %.2f %% smaller than the fp32 feature "
                              + "at %@ (%@), loss %.2f pp — %@; against the 8-bit image it is %@.", 100 * red, best.split, best.config,
                              100 * (raw - best.accuracy), red > 0.98 ? "holds" : "does not hold", vsImage))
        } else {
            out.append("DISC (> 98 % reduction at < 1 % loss): no DISC-like test row within 1 pp.")
        }
        return out
    }

    /// The VAE codec's claims (Chamain et al.): more accurate than JPEG at about 0.8 bpp (by more
    /// than 10 pp on CIFAR-10), and a smaller, faster device encoder than the classifier's front.
    static func vaeClsClaims(_ rows: [CoInferenceRow], raw: Float) -> [String] {
        let vae = rows.filter { $0.system == "vae-cls" && $0.channel == "none" }
        guard !vae.isEmpty else { return [] }
        var out: [String] = []
        if let jpeg = rows.filter({ $0.system == "jpeg" }).min(by: { abs($0.bitsPerPixel - 0.8) < abs($1.bitsPerPixel - 0.8) }) {
            if let best = vae.filter({ $0.bitsPerSample <= jpeg.bitsPerSample * 1.1 }).max(by: { $0.accuracy < $1.accuracy }) {
                let gain = best.accuracy - jpeg.accuracy
                out.append(String(format: "vae-cls (more accurate than JPEG at about 0.8 bpp, by more than 10 pp on CIFAR-10): at %.0f bits "
                                  + "(%.3f bpp, %@) %@ against JPEG's %@ at %.0f bits (%.3f bpp, %@), %+.2f pp — %@.", best.bitsPerSample,
                                  best.bitsPerPixel, best.config, pct(best.accuracy), pct(jpeg.accuracy), jpeg.bitsPerSample,
                                  jpeg.bitsPerPixel, jpeg.config, 100 * gain,
                                  gain > 0.10 ? "holds, by the paper's margin" : gain > 0 ? "more accurate, but by less than the paper's 10 pp" : "does not hold"))
            } else {
                out.append(String(format: "vae-cls against JPEG at about 0.8 bpp: no vae-cls row at or below JPEG's %.0f bits.", jpeg.bitsPerSample))
            }
        }
        // The anchor's context model against the per-channel prior at the same rate points.
        let pairs = rows.filter { $0.system == "vae-cls-ctx3d" && $0.channel == "none" }.compactMap { c in
            vae.first { $0.config == c.config }.map { (c, $0) }
        }
        if !pairs.isEmpty {
            out.append("vae-cls-ctx3d (trained and coded with the anchor's 3-D masked context model) against vae-cls (per-channel prior): "
                       + pairs.map { c, f in
                           String(format: "%@: %.0f vs %.0f bits per sample (%.0f %%), %@ vs %@, device %.3f vs %.3f ms, server %.3f vs %.3f ms",
                                  c.config, c.bitsPerSample, f.bitsPerSample, 100 * c.bitsPerSample / max(f.bitsPerSample, 1),
                                  pct(c.accuracy), pct(f.accuracy), c.deviceMs, f.deviceMs, c.serverMs, f.serverMs)
                       }.joined(separator: "; ") + ".")
        }
        // The decoder branch (EncClassRec): images restored from the same codes.
        let restored = vae.filter { $0.restoredPSNR != nil }
        if !restored.isEmpty {
            out.append("vae-cls's optional decoder branch (trained on the same latents, detached, so the codes do not change) restores images at "
                       + restored.map { String(format: "%.2f dB PSNR (%@, %@ classified from the latents)", $0.restoredPSNR!, $0.config, pct($0.accuracy)) }
                           .joined(separator: "; ") + ".")
        }
        // The device's side against the classifier's front (what a split system runs on the device).
        let (encoderParams, encoderFlops, frontParams, frontFlops) = Self.encoderAndFront()
        let fastest = vae.map(\.deviceMs).min() ?? 0
        let fronts = ["S2", "S3"].compactMap { split in
            rows.filter { $0.split == split && $0.channel == "none" && ($0.system == "disc-like" || $0.system == "bottlenet++") }
                .map(\.deviceMs).min().map { (split, $0) }
        }
        let measured = fronts.map { String(format: "%@ %.3f ms", $0.0, $0.1) }.joined(separator: ", ")
        let smallerBy = 1 - Double(encoderParams) / Double(max(frontParams.s2, 1))
        let speedups = fronts.map { $0.1 / max(fastest, 1e-9) }
        let verdict: String
        if fronts.isEmpty {
            verdict = "speed not measured (no split rows)"
        } else if smallerBy >= 0.65 && speedups.allSatisfy({ $0 >= 1.5 }) {
            verdict = "holds"
        } else if smallerBy > 0 && speedups.allSatisfy({ $0 > 1 }) {
            verdict = String(format: "faster holds (%.0f–%.0f×); smaller only by %.0f %%, not the paper's 65–99 %% (the S2 front has few parameters but many FLOPs)",
                             speedups.min()!, speedups.max()!, 100 * smallerBy)
        } else {
            verdict = "does not hold"
        }
        out.append(String(format: "vae-cls (a smaller and faster encoder than the classifier's front: 65–99 %% smaller, 1.5–13.1× faster): its encoder has "
                          + "%d parameters and %.1f MFLOP per image; resnext-11's front up to S2 has %d parameters and %.1f MFLOP "
                          + "(up to S3: %d / %.1f MFLOP), %.1f× the encoder's FLOPs. Measured per image on the device: %.3f ms for vae-cls "
                          + "(encoder, quantizer, rANS) against %@ for the fronts (the fastest DISC-like/BottleNet++ row at each split, "
                          + "coding included) — %@.",
                          encoderParams, Double(encoderFlops) / 1e6, frontParams.s2, Double(frontFlops.s2) / 1e6, frontParams.s3,
                          Double(frontFlops.s3) / 1e6, Double(frontFlops.s2) / Double(max(encoderFlops, 1)), fastest,
                          measured.isEmpty ? "no split rows" : measured, verdict))
        return out
    }

    /// Parameters and FLOPs per 1×28×28 image of the vae-cls encoder and of resnext-11's device
    /// front up to S2 and up to S3.
    static func encoderAndFront() -> (Int, Int, (s2: Int, s3: Int), (s2: Int, s3: Int)) {
        let x = Tensor.zeros([1, 1, 28, 28])
        let vae = VAEClassifier(levels: 2).eval()
        let net = ResNeXt.resnext11().eval()
        let encoderFlops = FlopCounter.count { _ = vae.encoder(x) }
        guard let split = try? SplitClassifier(net) else { return (vae.encoder.parameterCount, encoderFlops, (0, 0), (0, 0)) }
        func front(_ point: String) -> (Int, Int) {
            let modules = (try? split.deviceModules(to: point)) ?? []
            return (modules.reduce(0) { $0 + $1.parameterCount }, FlopCounter.count { _ = try? split.device(x, to: point) })
        }
        let s2 = front("S2"), s3 = front("S3")
        return (vae.encoder.parameterCount, encoderFlops, (s2.0, s3.0), (s2.1, s3.1))
    }

    /// The partition search: the chosen points per objective and the frontier on validation images.
    static func searchSection(_ search: [CoInferenceRow], rows: [CoInferenceRow], config: CoInferenceConfig) -> String {
        let disc = search.filter { $0.system == "disc-like" }
        guard !disc.isEmpty else { return "" }
        var s = "\n## DISC-like partition search (validation images)\n\n"
        s += "Grid: splits \(config.discSplits.joined(separator: ", ")) × τ \(config.discTaus.map { String(format: "%g", $0) }.joined(separator: ", "))"
        s += " × b \(config.discBits.map(String.init).joined(separator: ", ")) (\(disc.count) points, `search.csv`). The reference is the raw classifier on the "
        s += "same validation images; the bound is \(String(format: "%g", 100 * config.maxLoss)) pp. Latency = device ms + bits / bandwidth + server ms "
        s += "per sample (one request at a time).\n\n"
        let reference = Self.reference(search)
        s += String(format: "Reference (the raw classifier on the validation images): %@.\n\n", pct(reference))
        s += "| objective | split | config | bits/sample | validation accuracy | latency ms |\n|---|---|---|---:|---:|---:|\n"
        if let b = PartitionSearch.fewestBits(disc, reference: reference, maxLoss: config.maxLoss) {
            s += String(format: "| fewest bits | %@ | %@ | %.0f | %@ | — |\n", b.split, b.config, b.bitsPerSample, pct(b.accuracy))
        }
        let cloudOnly = search.first { $0.system == "raw" }
        for bw in config.bandwidths {
            if let b = PartitionSearch.lowestLatency(disc, bitsPerSecond: bw, reference: reference, maxLoss: config.maxLoss) {
                s += String(format: "| lowest latency at %g Mbit/s | %@ | %@ | %.0f | %@ | %.3f |\n", bw / 1e6, b.split, b.config,
                            b.bitsPerSample, pct(b.accuracy), b.latencyMs(bitsPerSecond: bw))
            }
            if let r = cloudOnly {
                s += String(format: "| cloud-only (raw image) at %g Mbit/s | input | 8-bit | %.0f | %@ | %.3f |\n", bw / 1e6,
                            r.bitsPerSample, pct(r.accuracy), r.latencyMs(bitsPerSecond: bw))
            }
        }
        if let r = cloudOnly {
            let cuts = config.bandwidths.compactMap { bw -> String? in
                guard let b = PartitionSearch.lowestLatency(disc, bitsPerSecond: bw, reference: reference, maxLoss: config.maxLoss) else { return nil }
                let base = r.latencyMs(bitsPerSecond: bw)
                return String(format: "%.1f %% at %g Mbit/s", 100 * (base - b.latencyMs(bitsPerSecond: bw)) / base, bw / 1e6)
            }
            if !cuts.isEmpty {
                s += "\nAgainst cloud-only, the search's choice cuts the modelled latency by \(cuts.joined(separator: ", ")) (DISC's abstract: "
                s += "AGLOP cuts end-to-end latency by more than 91.2 %). The model uses this machine's compute on both sides; the latencies "
                s += "measured over the service, with a weaker edge, are in docs/co-inference.md.\n"
            }
        }
        s += "\nBits frontier (no point has fewer bits and more accuracy):\n\n| split | config | bits/sample | validation accuracy |\n|---|---|---:|---:|\n"
        for r in PartitionSearch.bitsFrontier(disc) {
            s += String(format: "| %@ | %@ | %.0f | %@ |\n", r.split, r.config, r.bitsPerSample, pct(r.accuracy))
        }
        return s
    }

    static let palette = ["raw": "#444444", "jpeg": "#2ca02c", "webp": "#9467bd", "cdc": "#d62728", "disc-like": "#1f77b4",
                          "disc-like-zlib": "#17becf", "bottlenet++": "#ff7f0e", "bottlenet++-coded": "#8c564b"]

    /// Accuracy against bits per sample (log scale), one colour per system; noiseless channels.
    public static func svg(_ rows: [CoInferenceRow]) -> String {
        let series = orderedSystems(rows).map { system -> LinePlot.Series in
            let pts = rows.filter { $0.system == system && $0.channel == "none" }.sorted { $0.bitsPerSample < $1.bitsPerSample }
            return LinePlot.Series(name: system, color: palette[system] ?? "black", points: pts.map { ($0.bitsPerSample, Double($0.accuracy)) },
                                   connect: false)
        }
        return LinePlot.svg(series, xLabel: "bits per sample (payload, log scale)", yLabel: "test accuracy", logX: true)
    }

    /// BottleNet++ accuracy against the test channel of one kind, a line per trained
    /// configuration of that kind (its noiseless row included): `awgn` against SNR in dB
    /// (20·log10(1/σ), the sigmoid code's peak being 1; noiseless drawn at 40 dB), `bec` against
    /// −log10 p (noiseless drawn at 4, i.e. p = 10⁻⁴).
    public static func channelSVG(_ rows: [CoInferenceRow], kind: String) -> String {
        let colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        let bn = rows.filter { $0.system == "bottlenet++" && ($0.trainChannel ?? "").hasPrefix(kind) }
        var keys: [String] = []
        for r in bn where !keys.contains("\(r.split) \(r.config) trained \(r.trainChannel!)") { keys.append("\(r.split) \(r.config) trained \(r.trainChannel!)") }
        let series = keys.enumerated().map { i, key in
            let pts = bn.filter { "\($0.split) \($0.config) trained \($0.trainChannel!)" == key }.compactMap { r -> (Double, Double)? in
                channelAxis(r.channel, kind: kind).map { ($0, Double(r.accuracy)) }
            }.sorted { $0.0 < $1.0 }
            return LinePlot.Series(name: key, color: colors[i % colors.count], points: pts, connect: true)
        }
        return LinePlot.svg(series, xLabel: kind == "awgn" ? "SNR of the test channel, dB (40: noiseless)"
                                                           : "−log10 of the test erasure probability p (4: noiseless)",
                            yLabel: "test accuracy", logX: false)
    }

    /// The x position of a test channel: AWGN SNR in dB (noiseless 40), BEC −log10 p (noiseless 4).
    static func channelAxis(_ channel: String, kind: String) -> Double? {
        if channel == "none" { return kind == "awgn" ? 40 : 4 }
        let parts = channel.split(separator: "=")
        guard channel.hasPrefix(kind), parts.count == 2, let v = Double(parts[1]), v > 0 else { return nil }
        return kind == "awgn" ? 20 * log10(1 / v) : -log10(v)
    }

    /// Writes every file (each atomically); losses are measured against the raw row first.
    public static func write(rows: [CoInferenceRow], searchRows: [CoInferenceRow], config: CoInferenceConfig,
                             timings: [String: Double], to dir: URL) throws {
        var rows = rows
        if let raw = rawAccuracy(rows) { for i in rows.indices { rows[i].accuracyLoss = raw - rows[i].accuracy } }
        try DurableFile.write(Data(csv(rows).utf8), to: dir.appendingPathComponent("results.csv"))
        try DurableFile.write(Data(csv(searchRows).utf8), to: dir.appendingPathComponent("search.csv"))
        try DurableFile.write(Data(markdown(rows, searchRows: searchRows, config: config).utf8), to: dir.appendingPathComponent("results.md"))
        try DurableFile.write(Data(svg(rows).utf8), to: dir.appendingPathComponent("plot.svg"))
        try DurableFile.write(Data(channelSVG(rows, kind: "awgn").utf8), to: dir.appendingPathComponent("channel-awgn.svg"))
        try DurableFile.write(Data(channelSVG(rows, kind: "bec").utf8), to: dir.appendingPathComponent("channel-bec.svg"))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Meta: Encodable { var config: CoInferenceConfig; var phaseSeconds: [String: Double] }
        try DurableFile.write(enc.encode(Meta(config: config, phaseSeconds: timings)), to: dir.appendingPathComponent("timings.json"))
    }
}

/// A small SVG line/scatter plot: series of (x, y) points, y a fraction shown in percent.
public enum LinePlot {
    public struct Series {
        public var name: String, color: String, points: [(Double, Double)], connect: Bool
        public init(name: String, color: String, points: [(Double, Double)], connect: Bool) {
            self.name = name; self.color = color; self.points = points; self.connect = connect
        }
    }

    public static func svg(_ series: [Series], xLabel: String, yLabel: String, logX: Bool) -> String {
        let w = 760.0, h = 440.0, left = 60.0, right = 230.0, top = 20.0, bottom = 50.0
        let all = series.flatMap(\.points)
        func fx(_ v: Double) -> Double { logX ? log2(max(v, 1e-9)) : v }
        let xs = all.map { fx($0.0) }, ys = all.map(\.1)
        let x0 = (xs.min() ?? 0) - 0.3, x1 = (xs.max() ?? 1) + 0.3
        let y0 = max(0, (ys.min() ?? 0) - 0.02), y1 = min(1, (ys.max() ?? 1) + 0.02)
        func px(_ v: Double) -> Double { left + (fx(v) - x0) / max(x1 - x0, 1e-9) * (w - left - right) }
        func py(_ v: Double) -> Double { top + (1 - (v - y0) / max(y1 - y0, 1e-9)) * (h - top - bottom) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        // Ticks: powers of two on a log axis, else five even steps.
        let ticks: [Double] = logX ? Array(Int(ceil(x0))...max(Int(ceil(x0)), Int(floor(x1)))).map { pow(2, Double($0)) }
                                   : (0...5).map { x0 + (x1 - x0) * Double($0) / 5 }
        for t in ticks {
            let x = px(t)
            s += "<line x1=\"\(x)\" y1=\"\(h - bottom)\" x2=\"\(x)\" y2=\"\(h - bottom + 5)\" stroke=\"black\"/>"
            s += "<text x=\"\(x)\" y=\"\(h - bottom + 18)\" text-anchor=\"middle\">\(String(format: "%g", logX ? t : (t * 10).rounded() / 10))</text>\n"
        }
        for i in 0...4 {
            let v = y0 + (y1 - y0) * Double(i) / 4, y = py(v)
            s += "<line x1=\"\(left - 5)\" y1=\"\(y)\" x2=\"\(left)\" y2=\"\(y)\" stroke=\"black\"/>"
            s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.1f%%", 100 * v))</text>\n"
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\">\(xLabel)</text>\n"
        s += "<text x=\"15\" y=\"\((top + h - bottom) / 2)\" transform=\"rotate(-90 15 \((top + h - bottom) / 2))\" text-anchor=\"middle\">\(yLabel)</text>\n"
        var legendY = top + 10
        for sr in series where !sr.points.isEmpty {
            if sr.connect && sr.points.count > 1 {
                s += "<polyline points=\"\(sr.points.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(sr.color)\" stroke-width=\"1.5\"/>\n"
            }
            for p in sr.points { s += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"3.5\" fill=\"\(sr.color)\"/>\n" }
            s += "<rect x=\"\(w - right + 15)\" y=\"\(legendY - 9)\" width=\"10\" height=\"10\" fill=\"\(sr.color)\"/>"
            s += "<text x=\"\(w - right + 30)\" y=\"\(legendY)\">\(sr.name)</text>\n"
            legendY += 18
        }
        return s + "</svg>\n"
    }
}
