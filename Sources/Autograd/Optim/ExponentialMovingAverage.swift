import Foundation

/// An exponential moving average (Polyak average) of parameters, the weights diffusion and flow
/// policies are usually evaluated with. After each optimizer update n (1-based):
///   shadow ← d·shadow + (1 − d)·θ,   d = min(decay, (1 + n) / (10 + n))
/// The warm-up on d keeps the first shadows from being dominated by the initial weights
/// (TensorFlow's ExponentialMovingAverage with num_updates). Computed as shadow += (1 − d)·(θ − shadow),
/// which leaves a shadow bit-for-bit equal to a weight that has not moved; rows that do not train
/// (`trainableRows`, e.g. the vocabulary outside the query tokens) are not touched at all.
public final class ExponentialMovingAverage {
    public struct Entry {
        public let name: String
        public let parameter: Tensor
        public let shadow: TensorStorage
    }

    public let decay: Float
    /// Updates averaged so far (n above).
    public var updates: Int = 0
    public let entries: [Entry]

    /// Starts every shadow at its parameter's current value.
    public init(_ parameters: [(String, Tensor)], decay: Float) {
        precondition(decay > 0 && decay < 1, "ExponentialMovingAverage: decay must be in (0, 1), got \(decay)")
        self.decay = decay
        entries = parameters.map { name, p in
            Entry(name: name, parameter: p, shadow: TensorStorage(copying: UnsafeBufferPointer(start: p.pointer, count: p.count)))
        }
    }

    /// The decay used by the next `update()`.
    public var nextDecay: Float { min(decay, Float(1 + updates + 1) / Float(10 + updates + 1)) }

    /// Folds the parameters' current values into the shadows.
    public func update() {
        let d = nextDecay
        updates += 1
        let rate = 1 - d
        for entry in entries {
            entry.parameter.forEachTrainableSpan { start, n in
                let (s, p) = (entry.shadow.pointer + start, UnsafePointer(entry.parameter.pointer + start))
                for i in 0..<n { s[i] += rate * (p[i] - s[i]) }
            }
        }
    }

    /// The shadows as tensors named like their parameters, so a model can load them as weights.
    public func averagedTensors() -> [(String, Tensor)] {
        entries.map { ($0.name, Tensor(shape: $0.parameter.shape, storage: $0.shadow)) }
    }
}
