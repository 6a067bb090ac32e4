// Inverted dropout with an explicit generator, so a run (and its resume) is reproducible.

/// Zeroes each element with probability `p` and scales the rest by 1/(1−p). Identity when `p == 0`.
/// The mask is drawn from `rng`, which advances by one draw per element.
public func dropout(_ x: Tensor, p: Float, rng: inout RNG) -> Tensor {
    precondition(p >= 0 && p < 1, "dropout: p must be in [0, 1), got \(p)")
    if p == 0 { return x }
    let keep = 1 / (1 - p)
    let mask = TensorStorage(uninitializedCount: x.count)
    for i in 0..<x.count { mask.pointer[i] = rng.uniform() < p ? 0 : keep }
    let out = TensorStorage(uninitializedCount: x.count)
    let px = x.pointer, pm = mask.pointer, po = out.pointer
    for i in 0..<x.count { po[i] = px[i] * pm[i] }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        let gx = x.gradPointer()
        for i in 0..<x.count { gx[i] += g.pointer[i] * mask.pointer[i] }
    }
}
