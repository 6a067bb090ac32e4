/// The backward rule of one op result: its inputs and a closure that adds the gradient of each input
/// that requires one, given the gradient of the result. The closure must not capture the result
/// tensor itself (that would be a reference cycle); capture its `storage` when values are needed.
final class TapeNode {
    let parents: [Tensor]
    let backward: (Tensor) -> Void
    init(parents: [Tensor], backward: @escaping (Tensor) -> Void) {
        self.parents = parents
        self.backward = backward
    }
}

/// Whether op results record their history. Off inside `withoutGrad`.
public enum GradMode {
    @TaskLocal public static var isEnabled = true
}

/// Runs `body` without recording history: for evaluation, inference and frozen-model passes.
public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isEnabled.withValue(false) { try body() }
}

extension Tensor {
    /// Wraps freshly computed `storage` as the result of an op over `inputs`, recording `backward`
    /// when grad mode is on and some input requires grad. This is how every op, here or in another
    /// module, joins the tape.
    public static func result(shape: [Int], storage: TensorStorage, inputs: [Tensor],
                              backward: @escaping (_ gradOutput: Tensor) -> Void) -> Tensor {
        let out = Tensor(shape: shape, storage: storage)
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            out.requiresGrad = true
            out.producer = TapeNode(parents: inputs, backward: backward)
        }
        return out
    }

    /// Adds `gradient` (same shape) into this tensor's gradient.
    public func accumulateGrad(_ gradient: Tensor) {
        precondition(gradient.shape == shape, "accumulateGrad: gradient \(gradient.shape) for tensor \(shape)")
        guard requiresGrad else { return }
        if let g = grad { addInPlace(g.pointer, gradient.pointer, count) } else { grad = gradient.detached() }
    }

    /// Like `accumulateGrad`, for a gradient buffer that a backward rule has just made and holds no
    /// other reference to: the first one is adopted instead of copied.
    func accumulateGrad(adopting gradient: Tensor) {
        precondition(gradient.shape == shape, "accumulateGrad: gradient \(gradient.shape) for tensor \(shape)")
        guard requiresGrad else { return }
        if grad == nil { grad = gradient } else { addInPlace(gradPointer(), gradient.pointer, count) }
    }

    /// Reverse-mode differentiation from this tensor. A scalar result is seeded with 1; otherwise
    /// pass `gradient` of the same shape. Gradients of leaves accumulate (`+=`) across calls until
    /// `zeroGrad`; the recorded graph is released as it is consumed.
    public func backward(_ gradient: Tensor? = nil) {
        precondition(requiresGrad, "backward(): tensor does not require grad (no trainable input, or made inside withoutGrad)")
        if let gradient {
            precondition(gradient.shape == shape, "backward(): gradient shape \(gradient.shape) != tensor shape \(shape)")
        } else {
            precondition(count == 1, "backward(): a non-scalar tensor of shape \(shape) needs an explicit gradient")
        }

        // Iterative depth-first post-order over nodes that have a backward rule.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            guard visited.insert(ObjectIdentifier(t)).inserted else { continue }
            stack.append((t, true))
            for p in t.producer?.parents ?? [] where p.producer != nil && !visited.contains(ObjectIdentifier(p)) {
                stack.append((p, false))
            }
        }

        if let gradient { addInPlace(gradPointer(), gradient.pointer, count) } else { gradPointer()[0] += 1 }
        var rowMasked: [Tensor] = []
        for t in order.reversed() {
            guard let node = t.producer else { continue }
            t.producer = nil
            rowMasked += node.parents.filter { $0.producer == nil && $0.trainableRows != nil }
            if let g = t.grad {
                t.grad = nil  // intermediate gradients are not kept
                node.backward(g)
            }
        }
        // Frozen rows get exactly zero gradient whatever op reached them (e.g. a tied LM head's
        // matmul), so they neither move nor count in the gradient norm.
        for leaf in rowMasked { leaf.zeroFrozenRowGradients() }
    }

    func zeroFrozenRowGradients() {
        guard let rows = trainableRows, let g = grad else { return }
        let rowLength = count / max(shape[0], 1)
        for (r, trainable) in rows.enumerated() where !trainable { (g.pointer + r * rowLength).update(repeating: 0, count: rowLength) }
    }
}
