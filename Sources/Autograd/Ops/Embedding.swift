// Embedding lookup (row gather) with a scatter-add backward that respects frozen rows.

/// Rows of `weight` [V, C] picked by `ids` (laid out as `idsShape`) → [idsShape..., C].
///
/// The backward adds each output row's gradient into its vocabulary row, skipping rows that
/// `weight.trainableRows` marks frozen: those receive exactly zero gradient.
public func embedding(_ ids: [Int32], shape idsShape: [Int], weight: Tensor) -> Tensor {
    precondition(weight.rank == 2, "embedding: weight must be [vocab, dim], got \(weight.shape)")
    precondition(ids.count == elementCount(idsShape), "embedding: \(ids.count) ids for shape \(idsShape)")
    let (vocab, dim) = (weight.shape[0], weight.shape[1])
    if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= vocab }) {
        preconditionFailure("embedding: id \(ids[bad]) at position \(bad) is outside the vocabulary [0, \(vocab))")
    }
    let out = TensorStorage(uninitializedCount: ids.count * dim)
    for (i, id) in ids.enumerated() { (out.pointer + i * dim).update(from: weight.pointer + Int(id) * dim, count: dim) }
    return .result(shape: idsShape + [dim], storage: out, inputs: [weight]) { g in
        let gw = weight.gradPointer()
        let rows = weight.trainableRows
        for (i, id) in ids.enumerated() where rows?[Int(id)] ?? true {
            addInPlace(gw + Int(id) * dim, g.pointer + i * dim, dim)
        }
    }
}
