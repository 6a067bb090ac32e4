// LayerNorm and RMSNorm over the last dimension, fused: one pass forward, one pass backward.

/// LayerNorm: (x − mean) / √(var + eps) · weight + bias over the last dimension (C).
/// x: [..., C], weight and bias: [C] (either may be nil).
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
    let c = x.shape.last ?? 0, rows = x.count / max(c, 1)
    if let weight { precondition(weight.shape == [c], "layerNorm: weight \(weight.shape) for input \(x.shape)") }
    if let bias { precondition(bias.shape == [c], "layerNorm: bias \(bias.shape) for input \(x.shape)") }
    let out = TensorStorage(uninitializedCount: x.count)
    let xhat = TensorStorage(uninitializedCount: x.count)
    var rstd = [Float](repeating: 0, count: rows)
    for r in 0..<rows {
        let xr = x.pointer + r * c, hr = xhat.pointer + r * c, yr = out.pointer + r * c
        let mu = sum(xr, c) / Float(c)
        for i in 0..<c { hr[i] = xr[i] - mu }
        let s = 1 / (dot(hr, hr, c) / Float(c) + eps).squareRoot()
        rstd[r] = s
        scaleInPlace(hr, s, c)
        switch (weight?.pointer, bias?.pointer) {
        case let (w?, b?): for i in 0..<c { yr[i] = hr[i] * w[i] + b[i] }
        case let (w?, nil): for i in 0..<c { yr[i] = hr[i] * w[i] }
        case let (nil, b?): for i in 0..<c { yr[i] = hr[i] + b[i] }
        case (nil, nil): yr.update(from: hr, count: c)
        }
    }
    let inputs = [x] + [weight, bias].compactMap { $0 }
    return .result(shape: x.shape, storage: out, inputs: inputs) { g in
        normBackward(g: g, x: x, xhat: xhat.pointer, rstd: rstd, weight: weight, bias: bias, subtractMean: true)
    }
}

/// RMSNorm as in Llama/Qwen2: x / √(mean(x²) + eps) · weight. x: [..., C], weight: [C].
public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float = 1e-6) -> Tensor {
    let c = x.shape.last ?? 0, rows = x.count / max(c, 1)
    precondition(weight.shape == [c], "rmsNorm: weight \(weight.shape) for input \(x.shape)")
    let out = TensorStorage(uninitializedCount: x.count)
    let xhat = TensorStorage(uninitializedCount: x.count)
    var rstd = [Float](repeating: 0, count: rows)
    let w = weight.pointer
    for r in 0..<rows {
        let xr = x.pointer + r * c, hr = xhat.pointer + r * c, yr = out.pointer + r * c
        let s = 1 / (dot(xr, xr, c) / Float(c) + eps).squareRoot()
        rstd[r] = s
        for i in 0..<c { hr[i] = xr[i] * s; yr[i] = hr[i] * w[i] }
    }
    return .result(shape: x.shape, storage: out, inputs: [x, weight]) { g in
        normBackward(g: g, x: x, xhat: xhat.pointer, rstd: rstd, weight: weight, bias: nil, subtractMean: false)
    }
}

/// Shared backward of both norms, per row with ĝ = g ⊙ weight:
///   LayerNorm: dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))
///   RMSNorm:   dx = rstd · (ĝ − x̂ · mean(ĝ ⊙ x̂))
/// dweight = Σ_rows g ⊙ x̂, dbias = Σ_rows g.
private func normBackward(g: Tensor, x: Tensor, xhat: ConstFloatPtr, rstd: [Float], weight: Tensor?, bias: Tensor?,
                          subtractMean: Bool) {
    let c = x.shape.last ?? 0, rows = x.count / max(c, 1)
    let gw = weight?.requiresGrad == true ? weight!.gradPointer() : nil
    let gb = bias?.requiresGrad == true ? bias!.gradPointer() : nil
    let gx = x.requiresGrad ? x.gradPointer() : nil
    let ghat = TensorStorage(uninitializedCount: c)
    let w = weight?.pointer
    for r in 0..<rows {
        let gr = g.pointer + r * c, hr = xhat + r * c
        if let gw { for i in 0..<c { gw[i] += gr[i] * hr[i] } }
        if let gb { addInPlace(gb, gr, c) }
        guard let gx else { continue }
        let gh = ghat.pointer
        if let w { for i in 0..<c { gh[i] = gr[i] * w[i] } } else { gh.update(from: gr, count: c) }
        let meanG = subtractMean ? sum(gh, c) / Float(c) : 0
        let meanGX = dot(gh, hr, c) / Float(c)
        let s = rstd[r], d = gx + r * c
        for i in 0..<c { d[i] += s * (gh[i] - meanG - hr[i] * meanGX) }
    }
}
