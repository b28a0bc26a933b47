import Foundation

/// The files of an experiment: `results.csv`, `results.md` (in the shape of the paper's
/// Tables 1–2), `plot.svg` (accuracy against bits per pixel) and `timings.json`.
public enum ExperimentReport {
    static let columns = ["method", "mask", "alpha", "quality", "seed", "bpp", "bpp_payload", "uplink_bytes", "raw_bytes",
                          "bandwidth_reduction", "accuracy", "accuracy_raw_test", "accuracy_loss", "seconds"]

    public static func csv(_ rows: [ExperimentRow]) -> String {
        var s = columns.joined(separator: ",") + "\n"
        for r in rows {
            let fields: [String] = [
                r.method, r.mask.map(String.init) ?? "", r.alpha.map { String(format: "%g", $0) } ?? "",
                r.quality.map(String.init) ?? "", "\(r.seed)", String(format: "%.4f", r.bpp), String(format: "%.4f", r.bppPayload),
                "\(r.uplinkBytes)", "\(r.rawBytes)", String(format: "%.2f", Double(r.rawBytes) / Double(max(r.uplinkBytes, 1))),
                String(format: "%.4f", r.accuracy), String(format: "%.4f", r.accuracyRawTest), String(format: "%.4f", r.accuracyLoss),
                String(format: "%.1f", r.seconds),
            ]
            s += fields.joined(separator: ",") + "\n"
        }
        return s
    }

    public static func markdown(_ rows: [ExperimentRow], config: ExperimentConfig) -> String {
        var s = """
        | method | m | α | quality | seed | bpp (total uplink) | bpp (payload) | bandwidth reduction | accuracy | accuracy (raw test) | accuracy loss (pp) |
        | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |

        """
        for r in rows {
            s += "| \(r.method) | \(r.mask.map(String.init) ?? "") | \(r.alpha.map { String(format: "%g", $0) } ?? "") | "
                + "\(r.quality.map(String.init) ?? "") | \(r.seed) | " + String(format: "%.3f | %.3f | %.1f× | %.2f%% | %.2f%% | %.2f |\n",
                r.bpp, r.bppPayload, Double(r.rawBytes) / Double(max(r.uplinkBytes, 1)), 100 * r.accuracy,
                100 * r.accuracyRawTest, 100 * r.accuracyLoss)
        }
        s += "\nbpp (total uplink): every uplink byte (codes or files, labels, decoder, headers) × 8 / pixel positions; "
        s += "bpp (payload): CDC codes alone (5 − m) or JPEG/WebP whole files. Accuracy: the cloud classifier on the test set "
        s += "passed through the same codec; loss against the raw-data classifier.\n"
        return s
    }

    /// Accuracy (y) against total-uplink bits per pixel (x, log scale), one series per method.
    public static func svg(_ rows: [ExperimentRow]) -> String {
        let w = 640.0, h = 420.0, left = 60.0, right = 150.0, top = 20.0, bottom = 50.0
        let pts = rows.filter { $0.method != "raw" }
        let xs = pts.map { log2(max($0.bpp, 1e-3)) }, ys = rows.map { Double($0.accuracy) }
        let x0 = (xs.min() ?? -1) - 0.2, x1 = (xs.max() ?? 3) + 0.2
        let y0 = max(0, (ys.min() ?? 0) - 0.02), y1 = min(1, (ys.max() ?? 1) + 0.02)
        func px(_ v: Double) -> Double { left + (v - x0) / max(x1 - x0, 1e-9) * (w - left - right) }
        func py(_ v: Double) -> Double { top + (1 - (v - y0) / max(y1 - y0, 1e-9)) * (h - top - bottom) }
        let colors = ["cdc": "#d62728", "ae": "#1f77b4", "jpeg": "#2ca02c", "webp": "#9467bd", "raw": "#444444"]
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
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\">bits per pixel (total uplink, log scale)</text>\n"
        s += "<text x=\"15\" y=\"\((top + h - bottom) / 2)\" transform=\"rotate(-90 15 \((top + h - bottom) / 2))\" text-anchor=\"middle\">test accuracy</text>\n"
        if let raw = rows.first(where: { $0.method == "raw" }) {
            let y = py(Double(raw.accuracy))
            s += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(w - right)\" y2=\"\(y)\" stroke=\"#444\" stroke-dasharray=\"4 3\"/>\n"
        }
        var legendY = top + 10
        for method in ["cdc", "ae", "jpeg", "webp", "raw"] {
            let series = pts.filter { $0.method == method && ($0.method != "cdc" || $0.alpha == rows.first { $0.method == "cdc" }?.alpha) }
                .sorted { $0.bpp < $1.bpp }
            guard !series.isEmpty || (method == "raw" && rows.contains { $0.method == "raw" }) else { continue }
            let c = colors[method] ?? "black"
            if series.count > 1 {
                let path = series.map { "\(px(log2($0.bpp))),\(py(Double($0.accuracy)))" }.joined(separator: " ")
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\"/>\n"
            }
            for p in series {
                s += "<circle cx=\"\(px(log2(p.bpp)))\" cy=\"\(py(Double(p.accuracy)))\" r=\"3.5\" fill=\"\(c)\"/>\n"
            }
            let name = method == "raw" ? "raw data (dashed)" : method.uppercased()
            s += "<rect x=\"\(w - right + 15)\" y=\"\(legendY - 9)\" width=\"10\" height=\"10\" fill=\"\(c)\"/>"
            s += "<text x=\"\(w - right + 30)\" y=\"\(legendY)\">\(name)</text>\n"
            legendY += 18
        }
        return s + "</svg>\n"
    }

    /// Writes all four files (each atomically).
    public static func write(rows: [ExperimentRow], config: ExperimentConfig, timings: [String: Double], to dir: URL) throws {
        try Data(csv(rows).utf8).write(to: dir.appendingPathComponent("results.csv"), options: .atomic)
        try Data(markdown(rows, config: config).utf8).write(to: dir.appendingPathComponent("results.md"), options: .atomic)
        try Data(svg(rows).utf8).write(to: dir.appendingPathComponent("plot.svg"), options: .atomic)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Meta: Encodable { var config: ExperimentConfig; var phaseSeconds: [String: Double] }
        try enc.encode(Meta(config: config, phaseSeconds: timings)).write(to: dir.appendingPathComponent("timings.json"), options: .atomic)
    }
}
