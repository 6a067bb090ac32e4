// Row gather and row replacement over the first axis: picking hidden states at chosen positions
// (latent queries) and splicing image tokens into a text embedding sequence.

/// Rows `indices` of x [N, ...] → [K, ...]. Backward scatters (adds) into those rows.
public func gatherRows(_ x: Tensor, _ indices: [Int]) -> Tensor {
    let n = x.shape.first ?? 0, row = x.count / max(n, 1)
    if let bad = indices.first(where: { $0 < 0 || $0 >= n }) { preconditionFailure("gatherRows: index \(bad) outside 0..<\(n)") }
    let out = TensorStorage(uninitializedCount: indices.count * row)
    for (k, i) in indices.enumerated() { (out.pointer + k * row).update(from: x.pointer + i * row, count: row) }
    return .result(shape: [indices.count] + x.shape.dropFirst(), storage: out, inputs: [x]) { g in
        let gx = x.gradPointer()
        for (k, i) in indices.enumerated() { addInPlace(gx + i * row, g.pointer + k * row, row) }
    }
}

/// x [N, ...] with rows `indices` (distinct) replaced by `rows` [K, ...]. The replaced rows of x
/// get no gradient; `rows` gets the gradient of the places it went to.
public func replacingRows(_ x: Tensor, at indices: [Int], with rows: Tensor) -> Tensor {
    let n = x.shape.first ?? 0, row = x.count / max(n, 1)
    precondition(rows.shape.first == indices.count && Array(rows.shape.dropFirst()) == Array(x.shape.dropFirst()),
                 "replacingRows: \(indices.count) indices but rows \(rows.shape) for x \(x.shape)")
    precondition(Set(indices).count == indices.count, "replacingRows: indices must be distinct")
    if let bad = indices.first(where: { $0 < 0 || $0 >= n }) { preconditionFailure("replacingRows: index \(bad) outside 0..<\(n)") }
    let out = TensorStorage(copying: UnsafeBufferPointer(x.storage.buffer))
    for (k, i) in indices.enumerated() { (out.pointer + i * row).update(from: rows.pointer + k * row, count: row) }
    let replaced = Set(indices)
    return .result(shape: x.shape, storage: out, inputs: [x, rows]) { g in
        if x.requiresGrad {
            let gx = x.gradPointer()
            for i in 0..<n where !replaced.contains(i) { addInPlace(gx + i * row, g.pointer + i * row, row) }
        }
        if rows.requiresGrad {
            let gr = rows.gradPointer()
            for (k, i) in indices.enumerated() { addInPlace(gr + k * row, g.pointer + i * row, row) }
        }
    }
}
