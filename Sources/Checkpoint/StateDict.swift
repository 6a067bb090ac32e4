import Autograd
import Foundation

/// How strictly a file's tensors must match a model's parameters.
public enum LoadMode: Sendable {
    /// Every parameter present in the file and every tensor of the file a parameter.
    case strict
    /// Load the names both have (e.g. stage 2 starting from a stage-1 checkpoint); report the rest.
    case partial
    /// Every tensor of the file a parameter; parameters the file lacks keep their values (an
    /// ema.safetensors, which averages only the trainable weights).
    case subset
}

public struct LoadReport: Sendable, Equatable {
    public var loaded: [String] = []
    /// Parameters the file did not have (left as they were).
    public var missing: [String] = []
    /// Tensors of the file no parameter took.
    public var unexpected: [String] = []
}

/// A file that does not fit a model: the message names the keys and shapes.
public struct StateDictError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

func listed(_ names: [String], limit: Int = 8) -> String {
    names.prefix(limit).joined(separator: ", ") + (names.count > limit ? " … (\(names.count) in all)" : "")
}

extension Module {
    /// Copies tensors from `file` into this module's parameters by dotted name (in place, so an
    /// optimizer holding them stays valid). Everything is checked before anything is written: a
    /// failed load leaves the model untouched. Shape mismatches are errors in either mode.
    @discardableResult
    public func load(_ file: SafetensorsFile, mode: LoadMode = .strict) throws -> LoadReport {
        let parameters = namedParameters()
        var report = LoadReport()
        var plan: [(Tensor, SafetensorsEntry)] = []
        for (name, p) in parameters {
            guard let entry = file.entry(name) else { report.missing.append(name); continue }
            guard entry.shape == p.shape else {
                throw StateDictError(message: "\(file.path): '\(name)' has shape \(entry.shape) in the file, the model expects \(p.shape)")
            }
            plan.append((p, entry))
            report.loaded.append(name)
        }
        let known = Set(parameters.map(\.0))
        report.unexpected = file.names.filter { !known.contains($0) }
        var parts: [String] = []
        if mode == .strict && !report.missing.isEmpty { parts.append("missing from the file: \(listed(report.missing))") }
        if mode != .partial && !report.unexpected.isEmpty { parts.append("not in the model: \(listed(report.unexpected))") }
        if !parts.isEmpty { throw StateDictError(message: "\(file.path): \(mode) load failed; " + parts.joined(separator: "; ")) }
        for (p, entry) in plan {
            decodeFloats(entry.dtype, from: try file.bytes(entry.name), count: entry.count, into: p.pointer)
        }
        return report
    }

    /// Writes all parameters to a safetensors file (F32 unless `dtype` says otherwise).
    public func save(to url: URL, metadata: [String: String] = [:],
                     dtype: (String) -> SafetensorsDType = { _ in .f32 }) throws {
        try Safetensors.save(namedParameters(), to: url, metadata: metadata, dtype: dtype)
    }
}

/// Copies `file`'s tensors into `tensors` by name, once it is checked that the file has every one of
/// them with its shape and nothing else (the optimizer's and the EMA's state must match exactly).
private func copyExactly(_ tensors: [(String, Tensor)], from file: SafetensorsFile, contents: String, extra what: String) throws {
    for (name, t) in tensors {
        guard let entry = file.entry(name) else { throw StateDictError(message: "\(file.path): \(contents) lacks '\(name)'") }
        guard entry.shape == t.shape else {
            throw StateDictError(message: "\(file.path): '\(name)' has shape \(entry.shape), the parameter has \(t.shape)")
        }
    }
    let expected = Set(tensors.map(\.0))
    let extra = file.names.filter { !expected.contains($0) }
    guard extra.isEmpty else { throw StateDictError(message: "\(file.path): \(contents) for \(what): \(listed(extra))") }
    for (name, t) in tensors {
        let entry = file.entry(name)!
        decodeFloats(entry.dtype, from: try file.bytes(name), count: entry.count, into: t.pointer)
    }
}

extension AdamW {
    /// The moments as tensors named `<parameter>.exp_avg` and `<parameter>.exp_avg_sq` (PyTorch's names).
    public func stateTensors() -> [(String, Tensor)] {
        slots.flatMap { slot in
            [("\(slot.name).exp_avg", Tensor(shape: slot.parameter.shape, storage: slot.m)),
             ("\(slot.name).exp_avg_sq", Tensor(shape: slot.parameter.shape, storage: slot.v))]
        }
    }

    public func save(to url: URL) throws {
        try Safetensors.save(stateTensors(), to: url, metadata: [
            "step": String(step), "beta1": String(beta1), "beta2": String(beta2), "eps": String(eps),
            "weight_decay": String(weightDecay), "optimizer": "AdamW",
        ])
    }

    /// Restores moments and step exactly; every slot must be in the file with its parameter's shape.
    public func load(_ file: SafetensorsFile) throws {
        guard let stepText = file.metadata["step"], let savedStep = Int(stepText) else {
            throw StateDictError(message: "\(file.path): optimizer state has no integer 'step' in its metadata")
        }
        try copyExactly(stateTensors(), from: file, contents: "optimizer state", extra: "unknown parameters")
        step = savedStep
    }
}

extension ExponentialMovingAverage {
    /// Writes the shadows under their parameters' names, so `Module.load(_:mode: .partial)` can put
    /// them in place of the trained weights.
    public func save(to url: URL) throws {
        try Safetensors.save(averagedTensors(), to: url, metadata: [
            "updates": String(updates), "decay": String(decay), "format": "ema",
        ])
    }

    /// Restores the shadows and the update count; every averaged parameter must be in the file with
    /// its shape, and nothing else.
    public func load(_ file: SafetensorsFile) throws {
        guard let text = file.metadata["updates"], let savedUpdates = Int(text) else {
            throw StateDictError(message: "\(file.path): EMA file has no integer 'updates' in its metadata")
        }
        try copyExactly(averagedTensors(), from: file, contents: "EMA file", extra: "parameters that do not train")
        updates = savedUpdates
    }
}
