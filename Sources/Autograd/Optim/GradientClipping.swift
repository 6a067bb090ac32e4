/// Scales all gradients down so their global L2 norm is at most `maxNorm`, as PyTorch's
/// `clip_grad_norm_` (coefficient maxNorm / (norm + 1e-6)). Returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters { if let g = p.grad { total += Double(dot(g.pointer, g.pointer, g.count)) } }
    let norm = Float(total.squareRoot())
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        for p in parameters { if let g = p.grad { scaleInPlace(g.pointer, coefficient, g.count) } }
    }
    return norm
}
