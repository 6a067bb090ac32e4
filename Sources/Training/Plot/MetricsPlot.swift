import Foundation

/// `vla plot`: one panel per metric of a run's metrics.jsonl (loss with val_loss overlaid, then
/// learning rate, gradient norm, throughput, …), written as a PNG.
public enum MetricsPlot {
    static let colors: [(UInt8, UInt8, UInt8)] = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]

    /// Renders the metrics of `run` (a run folder or a metrics.jsonl) to `output`. Returns the panel titles.
    @discardableResult
    public static func render(run: URL, to output: URL) throws -> [String] {
        let source = run.pathExtension == "jsonl" ? run : run.appendingPathComponent("metrics.jsonl")
        let records = try MetricsLog.read(source)
        var series: [String: [(Int, Double)]] = [:]
        for r in records { for (k, v) in r.values where v.isFinite { series[k, default: []].append((r.step, v)) } }
        guard !series.isEmpty else { throw RecipeError("\(source.path): no metrics to plot") }
        // Panels: loss (with val_loss), then the remaining metrics alphabetically, at most six.
        var panels: [[String]] = []
        if series["loss"] != nil { panels.append(["loss"] + (series["val_loss"] != nil ? ["val_loss"] : [])) }
        for key in series.keys.sorted() where key != "loss" && !(key == "val_loss" && series["loss"] != nil) { panels.append([key]) }
        panels = Array(panels.prefix(6))

        let (panelW, panelH, columns) = (560, 300, 2)
        let rows = (panels.count + columns - 1) / columns
        var canvas = Canvas(width: panelW * columns, height: panelH * rows)
        for (i, keys) in panels.enumerated() {
            draw(&canvas, keys: keys, series: series, x0: (i % columns) * panelW, y0: (i / columns) * panelH, width: panelW, height: panelH)
        }
        try canvas.png().write(to: output, options: .atomic)
        return panels.map { $0.joined(separator: " + ") }
    }

    private static func draw(_ canvas: inout Canvas, keys: [String], series: [String: [(Int, Double)]],
                             x0: Int, y0: Int, width: Int, height: Int) {
        let (left, right, top, bottom) = (x0 + 120, x0 + width - 20, y0 + 40, y0 + height - 40)
        let points = keys.flatMap { series[$0] ?? [] }
        let steps = points.map(\.0), values = points.map(\.1)
        let (sMin, sMax) = (steps.min()!, max(steps.max()!, steps.min()! + 1))
        // A positive series spanning more than two decades (a loss, typically) reads better in log scale.
        let logScale = values.min()! > 0 && values.max()! / values.min()! > 100
        let y: (Double) -> Double = logScale ? { Foundation.log10($0) } : { $0 }
        var (vMin, vMax) = (y(values.min()!), y(values.max()!))
        if vMax - vMin < 1e-12 { vMin -= 0.5; vMax += 0.5 }
        let gray: (UInt8, UInt8, UInt8) = (90, 90, 90)
        canvas.rectangle(left, top, right, bottom, gray)
        var titleX = left
        for (k, key) in keys.enumerated() {
            canvas.text(key, x: titleX, y: y0 + 12, colors[k % colors.count])
            titleX += (key.count + 2) * 12
        }
        if logScale { canvas.text("(log scale)", x: titleX, y: y0 + 12, gray) }
        canvas.text(label(values.max()!), x: x0 + 6, y: top - 4, gray)
        canvas.text(label(values.min()!), x: x0 + 6, y: bottom - 10, gray)
        canvas.text("step \(sMin)", x: left, y: bottom + 10, gray)
        let endLabel = "\(sMax)"
        canvas.text(endLabel, x: right - endLabel.count * 12, y: bottom + 10, gray)
        for (k, key) in keys.enumerated() {
            guard let s = series[key] else { continue }
            let color = colors[k % colors.count]
            func px(_ p: (Int, Double)) -> (Int, Int) {
                (left + Int(Double(p.0 - sMin) / Double(sMax - sMin) * Double(right - left)),
                 bottom - Int((y(p.1) - vMin) / (vMax - vMin) * Double(bottom - top)))
            }
            for (a, b) in zip(s, s.dropFirst()) {
                let (p, q) = (px(a), px(b))
                canvas.line(p.0, p.1, q.0, q.1, color, thickness: 2)
            }
            if s.count == 1 { let p = px(s[0]); canvas.line(p.0 - 2, p.1, p.0 + 2, p.1, color, thickness: 3) }
        }
    }

    static func label(_ v: Double) -> String {
        abs(v) >= 1e4 || (abs(v) < 1e-2 && v != 0) ? String(format: "%.2e", v) : String(format: "%.3g", v)
    }
}
