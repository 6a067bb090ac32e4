// Sum and mean over axes. Forward is the backward of broadcasting and vice versa.

/// The shape of a reduction over `axes` with the reduced dimensions kept as 1.
private func keptShape(_ shape: [Int], _ axes: [Int], _ op: String) -> (kept: [Int], axes: Set<Int>) {
    let set = Set(axes.map { normalizeAxis($0, rank: shape.count, op) })
    return (shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }, set)
}

/// Σ over `axes` (all axes when nil). `keepDims` keeps reduced dimensions as size 1.
public func sum(_ x: Tensor, axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
    let (kept, set) = keptShape(x.shape, axes ?? Array(0..<x.rank), "sum")
    let outShape = keepDims ? kept : x.shape.enumerated().filter { !set.contains($0.offset) }.map(\.element)
    let out = TensorStorage(zeros: elementCount(kept))
    sumToShape(x.pointer, x.shape, into: out.pointer, kept)
    return .result(shape: outShape, storage: out, inputs: [x]) { g in
        // Every input element receives the gradient of the sum it went into.
        let gx = x.gradPointer()
        let (shape, strides) = coalesce(x.shape, [contiguousStrides(x.shape), broadcastStrides(kept, to: x.shape)])
        let sg = strides[1].last!
        forEachRow(shape, strides) { off, n in
            let d = gx + off[0], s = g.pointer + off[1]
            if sg == 0 { let v = s[0]; for i in 0..<n { d[i] += v } } else { for i in 0..<n { d[i] += s[i * sg] } }
        }
    }
}

/// Mean over `axes` (all axes when nil).
public func mean(_ x: Tensor, axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
    let (kept, _) = keptShape(x.shape, axes ?? Array(0..<x.rank), "mean")
    let reduced = x.count / max(elementCount(kept), 1)
    return mulScalar(sum(x, axes: axes, keepDims: keepDims), 1 / Float(max(reduced, 1)))
}
