import Foundation

// Softmax and log-softmax over one axis (rows of the last axis; other axes go through a transpose).

/// For each row of n: y = e^(x - max) / Σ e^(x - max). A row that is all -inf (fully masked) gives 0s.
@inline(__always) func softmaxRow(_ x: ConstFloatPtr, _ y: FloatPtr, _ n: Int) {
    let m = maxElement(x, n)
    if m == -.infinity { y.update(repeating: 0, count: n); return }
    // Two in-place passes: with x and y possibly aliased, a fused loop compiled to scalar code.
    for i in 0..<n { y[i] = x[i] - m }
    for i in 0..<n { y[i] = fastExp(y[i]) }
    scaleInPlace(y, 1 / sum(y, n), n)
}

/// Runs `body` on x moved so that `axis` is last, and moves the result back.
private func alongLastAxis(_ x: Tensor, _ axis: Int, _ op: String, _ body: (Tensor) -> Tensor) -> Tensor {
    let ax = normalizeAxis(axis, rank: x.rank, op)
    if ax == x.rank - 1 { return body(x) }
    return body(x.transposed(ax, -1)).transposed(ax, -1)
}

public func softmax(_ x: Tensor, axis: Int = -1) -> Tensor {
    alongLastAxis(x, axis, "softmax") { x in
        let n = x.shape.last!, rows = x.count / max(n, 1)
        let out = TensorStorage(uninitializedCount: x.count)
        for r in 0..<rows { softmaxRow(x.pointer + r * n, out.pointer + r * n, n) }
        return .result(shape: x.shape, storage: out, inputs: [x]) { g in
            // dx = y ⊙ (g − Σ g⊙y)
            let gx = x.gradPointer()
            for r in 0..<rows {
                let y = out.pointer + r * n, gr = g.pointer + r * n, d = gx + r * n
                let s = dot(gr, y, n)
                for i in 0..<n { d[i] += y[i] * (gr[i] - s) }
            }
        }
    }
}

/// log Σ e^x of a row, stable.
@inline(__always) func logSumExp(_ x: ConstFloatPtr, _ n: Int) -> Float {
    let m = maxElement(x, n)
    if m == -.infinity { return m }
    var acc = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= n {
        var e = SIMD16<Float>()
        for j in 0..<16 { e[j] = fastExp(x[i + j] - m) }
        acc += e
        i += 16
    }
    var s = acc.sum()
    while i < n { s += fastExp(x[i] - m); i += 1 }
    return m + Foundation.log(s)
}

public func logSoftmax(_ x: Tensor, axis: Int = -1) -> Tensor {
    alongLastAxis(x, axis, "logSoftmax") { x in
        let n = x.shape.last!, rows = x.count / max(n, 1)
        let out = TensorStorage(uninitializedCount: x.count)
        for r in 0..<rows {
            let lse = logSumExp(x.pointer + r * n, n)
            let src = x.pointer + r * n, dst = out.pointer + r * n
            for i in 0..<n { dst[i] = src[i] - lse }
        }
        return .result(shape: x.shape, storage: out, inputs: [x]) { g in
            // dx = g − e^y · Σg
            let gx = x.gradPointer()
            for r in 0..<rows {
                let y = out.pointer + r * n, gr = g.pointer + r * n, d = gx + r * n
                let s = sum(gr, n)
                for i in 0..<n { d[i] += gr[i] - fastExp(y[i]) * s }
            }
        }
    }
}
