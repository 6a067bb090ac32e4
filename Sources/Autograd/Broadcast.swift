// NumPy broadcasting: shapes are right-aligned and a dimension of 1 stretches to match.

/// The broadcast shape of two shapes, or a precondition failure naming both.
func broadcastShape(_ a: [Int], _ b: [Int], _ op: String) -> [Int] {
    let rank = max(a.count, b.count)
    let pa = [Int](repeating: 1, count: rank - a.count) + a
    let pb = [Int](repeating: 1, count: rank - b.count) + b
    return (0..<rank).map { i in
        precondition(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1,
                     "\(op): shapes \(a) and \(b) do not broadcast (dimension \(i - rank) is \(pa[i]) vs \(pb[i]))")
        return pa[i] == 1 ? pb[i] : pa[i]
    }
}

/// Strides for reading a tensor of `shape` at the indices of `outShape` (0 along broadcast dimensions).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let padded = [Int](repeating: 1, count: outShape.count - shape.count) + shape
    let strides = contiguousStrides(padded)
    return (0..<outShape.count).map { padded[$0] == 1 && outShape[$0] != 1 ? 0 : strides[$0] }
}

/// Merges adjacent dimensions along which every operand is laid out contiguously, so that the inner
/// loop runs as long as possible. Returns the merged shape and the strides of each operand.
func coalesce(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
    var outShape: [Int] = []
    var outStrides: [[Int]] = strides.map { _ in [] }
    for d in 0..<shape.count where shape[d] != 1 {
        if let last = outShape.last,
           strides.indices.allSatisfy({ strides[$0][d] * shape[d] == outStrides[$0].last! }) {
            outShape[outShape.count - 1] = last * shape[d]
            for k in strides.indices { outStrides[k][outStrides[k].count - 1] = strides[k][d] }
        } else {
            outShape.append(shape[d])
            for k in strides.indices { outStrides[k].append(strides[k][d]) }
        }
    }
    if outShape.isEmpty { return ([1], strides.map { _ in [1] }) }
    return (outShape, outStrides)
}

/// Calls `body(offsets, n)` once per innermost row of `shape`, with each operand's element offset
/// of that row; the row has `n = shape.last` elements read at the operands' last strides.
@inline(__always)
func forEachRow(_ shape: [Int], _ strides: [[Int]], _ body: ([Int], Int) -> Void) {
    let rank = shape.count
    let n = shape[rank - 1]
    var index = [Int](repeating: 0, count: rank)
    var offsets = [Int](repeating: 0, count: strides.count)
    let rows = shape.dropLast().reduce(1, *)
    for _ in 0..<rows {
        body(offsets, n)
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            for k in strides.indices { offsets[k] += strides[k][d] }
            if index[d] < shape[d] { break }
            for k in strides.indices { offsets[k] -= strides[k][d] * shape[d] }
            index[d] = 0
            d -= 1
        }
    }
}

/// Sums `source` (shape `fullShape`) down to `targetShape`, adding into `target`: the backward of a
/// broadcast. `targetShape` must broadcast to `fullShape`.
func sumToShape(_ source: ConstFloatPtr, _ fullShape: [Int], into target: FloatPtr, _ targetShape: [Int]) {
    let (shape, strides) = coalesce(fullShape, [contiguousStrides(fullShape), broadcastStrides(targetShape, to: fullShape)])
    let srcInner = strides[0].last!, dstInner = strides[1].last!
    forEachRow(shape, strides) { off, n in
        let s = source + off[0], d = target + off[1]
        if dstInner == 0 {
            d[0] += srcInner == 1 ? sum(s, n) : (0..<n).reduce(0) { $0 + s[$1 * srcInner] }
        } else if srcInner == 1 && dstInner == 1 {
            addInPlace(d, s, n)
        } else {
            for i in 0..<n { d[i * dstInner] += s[i * srcInner] }
        }
    }
}

/// The sum of `grad` over the dimensions along which `shape` was broadcast to `grad.shape`.
func reduceBroadcastGrad(_ grad: Tensor, to shape: [Int]) -> Tensor {
    if grad.shape == shape { return grad }
    let out = Tensor.zeros(shape)
    sumToShape(grad.pointer, grad.shape, into: out.pointer, shape)
    return out
}
