/// The outcome of comparing backward-pass gradients with central finite differences.
public struct GradCheckReport: CustomStringConvertible {
    /// max over elements of |analytic − numeric| / (atol + rtol·|numeric|); ≤ 1 passes.
    public var worstRatio: Double = 0
    public var worst: (input: Int, index: Int, analytic: Double, numeric: Double) = (0, 0, 0, 0)
    public var checked = 0
    public var passed: Bool { worstRatio <= 1 }
    public var description: String {
        "grad check over \(checked) elements: worst ratio \(worstRatio) at input \(worst.input)[\(worst.index)] " +
            "(analytic \(worst.analytic), numeric \(worst.numeric))"
    }
}

/// Checks the gradients of `f` with respect to each of `inputs` against central differences of the
/// scalar L = Σ f(inputs) ⊙ R, R a fixed random tensor (so every output element matters).
/// Inputs must be leaves with `requiresGrad`; they are perturbed in place and restored.
public func checkGradients(wrt inputs: [Tensor], eps: Float = 1e-3, atol: Double = 1e-3, rtol: Double = 1e-2,
                           seed: UInt64 = 0, _ f: () -> Tensor) -> GradCheckReport {
    for x in inputs { x.zeroGrad() }
    let out = f()
    var rng = RNG(seed: seed)
    let r = Tensor.randomNormal(out.shape, rng: &rng)
    out.backward(r)
    let analytic = inputs.map { $0.grad?.toArray() ?? [Float](repeating: 0, count: $0.count) }

    func objective() -> Double {
        let y = withoutGrad { f() }
        precondition(y.shape == r.shape, "checkGradients: output shape changed from \(r.shape) to \(y.shape)")
        var s: Double = 0
        for i in 0..<y.count { s += Double(y.pointer[i]) * Double(r.pointer[i]) }
        return s
    }
    var report = GradCheckReport()
    for (k, x) in inputs.enumerated() {
        for i in 0..<x.count {
            let saved = x.pointer[i]
            x.pointer[i] = saved + eps
            let plus = objective()
            x.pointer[i] = saved - eps
            let minus = objective()
            x.pointer[i] = saved
            let numeric = (plus - minus) / (2 * Double(eps))
            let a = Double(analytic[k][i])
            let ratio = abs(a - numeric) / (atol + rtol * abs(numeric))
            report.checked += 1
            if ratio > report.worstRatio { report.worstRatio = ratio; report.worst = (k, i, a, numeric) }
        }
    }
    return report
}
