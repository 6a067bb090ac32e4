import Foundation
import Checkpoint

/// `metrics.jsonl`: one JSON object per logged step (`{"step": 10, "loss": …, "lr": …}`), the same
/// scalars TensorBoard gets, for scripts and `vla plot`.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    /// Opens the log for appending. When resuming from `resumeStep`, lines past it (written after the
    /// checkpoint by the interrupted run) are dropped first, so the log matches the resumed run.
    public init(url: URL, resumeStep: Int?) throws {
        self.url = url
        if let resumeStep, let text = try? String(contentsOf: url, encoding: .utf8) {
            let kept = text.split(separator: "\n").filter { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = object["step"] as? Int else { return false }
                return step <= resumeStep
            }
            let data = Data(kept.map { $0 + "\n" }.joined().utf8)
            try writeAtomically(url) { try $0.write(data) }
        } else if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)  // a failure surfaces as the open below failing
        }
        guard let handle = FileHandle(forWritingAtPath: url.path) else { throw RecipeError("cannot open metrics log \(url.path)") }
        try handle.seekToEnd()
        self.handle = handle
    }

    deinit { try? handle.close() }

    public func append(step: Int, _ values: [String: Double]) throws {
        var object: [String: Any] = ["step": step, "time": Date().timeIntervalSince1970]
        for (k, v) in values { object[k] = v.isFinite ? v : String(v) }
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    /// Every line of a metrics log as (step, values), for plotting.
    public static func read(_ url: URL) throws -> [(step: Int, values: [String: Double])] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw RecipeError("cannot read metrics log \(url.path)")
        }
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = object["step"] as? Int else { return nil }
            var values: [String: Double] = [:]
            for (k, v) in object where k != "step" && k != "time" { if let d = v as? Double { values[k] = d } }
            return (step, values)
        }
    }
}
