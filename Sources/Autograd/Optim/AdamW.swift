import Foundation

/// AdamW with decoupled weight decay and bias correction, step for step as PyTorch's `AdamW`
/// (`foreach=False`): p ← p·(1 − lr·wd); m, v updated; p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
///
/// Parameters are held by name so the moments can be checkpointed. Frozen parameters and those
/// without a gradient this step are skipped entirely (no decay either); rows a tensor marks frozen
/// through `trainableRows` are left untouched.
public final class AdamW {
    public struct Slot {
        public let name: String
        public let parameter: Tensor
        public let decays: Bool
        public let m: TensorStorage
        public let v: TensorStorage
    }

    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// Number of updates applied so far (t in the bias corrections).
    public var step: Int = 0
    public let slots: [Slot]

    /// - Parameter noDecay: parameters exempt from weight decay; by default every tensor of rank < 2
    ///   (biases and norm weights), the usual convention.
    public init(_ parameters: [(String, Tensor)], betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0.01, noDecay: (String, Tensor) -> Bool = { $1.rank < 2 }) {
        (beta1, beta2, self.eps, self.weightDecay) = (betas.0, betas.1, eps, weightDecay)
        var seen = Set<String>()
        slots = parameters.map { name, p in
            precondition(seen.insert(name).inserted, "AdamW: parameter name \(name) appears twice")
            return Slot(name: name, parameter: p, decays: !noDecay(name, p),
                        m: TensorStorage(zeros: p.count), v: TensorStorage(zeros: p.count))
        }
    }

    /// Applies one update with learning rate `lr` from the gradients currently held.
    public func update(learningRate lr: Float) {
        step += 1
        let bc1 = 1 - Foundation.pow(beta1, Float(step)), bc2 = 1 - Foundation.pow(beta2, Float(step))
        let stepSize = lr / bc1, bc2Root = bc2.squareRoot()
        let decay = 1 - lr * weightDecay
        for slot in slots {
            let p = slot.parameter
            guard p.requiresGrad, let g = p.grad else { continue }
            p.forEachTrainableSpan { start, n in
                let pp = p.pointer + start, pg = g.pointer + start, pm = slot.m.pointer + start, pv = slot.v.pointer + start
                let d = slot.decays ? decay : 1
                let (b1, b2, e) = (beta1, beta2, eps)
                for i in 0..<n {
                    let gi = pg[i]
                    pm[i] = b1 * pm[i] + (1 - b1) * gi
                    pv[i] = b2 * pv[i] + (1 - b2) * gi * gi
                    pp[i] = pp[i] * d - stepSize * pm[i] / (pv[i].squareRoot() / bc2Root + e)
                }
            }
        }
    }

    /// Clears the gradients of every parameter this optimizer updates.
    public func zeroGrad() { for slot in slots { slot.parameter.zeroGrad() } }
}
