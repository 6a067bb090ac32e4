import Foundation

// Losses: token cross-entropy with an ignore index, and mean squared error.

/// Mean cross-entropy of `logits` [..., V] against integer `targets` (one per row), skipping rows
/// whose target is `ignoreIndex`. With no counted row the loss is 0 (and so is its gradient),
/// rather than PyTorch's NaN, so an all-padding batch cannot poison a run.
public func crossEntropy(logits: Tensor, targets: [Int32], ignoreIndex: Int32 = -100) -> Tensor {
    let v = logits.shape.last ?? 0
    let rows = logits.count / max(v, 1)
    precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
    if let bad = targets.firstIndex(where: { $0 != ignoreIndex && ($0 < 0 || Int($0) >= v) }) {
        preconditionFailure("crossEntropy: target \(targets[bad]) at row \(bad) is outside [0, \(v)) and is not the ignore index \(ignoreIndex)")
    }
    var lse = [Float](repeating: 0, count: rows)
    var total: Double = 0
    var counted = 0
    for r in 0..<rows where targets[r] != ignoreIndex {
        let row = logits.pointer + r * v
        lse[r] = logSumExp(row, v)
        total += Double(lse[r] - row[Int(targets[r])])
        counted += 1
    }
    let loss = counted == 0 ? 0 : Float(total / Double(counted))
    return .result(shape: [], storage: Tensor(scalar: loss).storage, inputs: [logits]) { g in
        guard counted > 0 else { return }
        // d/dlogits = (softmax − onehot(target)) / counted
        let scale = g.item() / Float(counted)
        let gl = logits.gradPointer()
        for r in 0..<rows where targets[r] != ignoreIndex {
            let x = logits.pointer + r * v, d = gl + r * v, m = lse[r]
            for i in 0..<v { d[i] += scale * fastExp(x[i] - m) }
            d[Int(targets[r])] -= scale
        }
    }
}

/// Mean of (prediction − target)² over all elements; shapes must match.
public func mseLoss(_ prediction: Tensor, _ target: Tensor) -> Tensor {
    precondition(prediction.shape == target.shape, "mseLoss: prediction \(prediction.shape) vs target \(target.shape)")
    let n = prediction.count
    let diff = TensorStorage(uninitializedCount: n)
    let pp = prediction.pointer, pt = target.pointer, pd = diff.pointer
    for i in 0..<n { pd[i] = pp[i] - pt[i] }
    let loss = n == 0 ? 0 : dot(diff.pointer, diff.pointer, n) / Float(n)
    return .result(shape: [], storage: Tensor(scalar: loss).storage, inputs: [prediction, target]) { g in
        let scale = 2 * g.item() / Float(max(n, 1))
        if prediction.requiresGrad { addScaledInPlace(prediction.gradPointer(), diff.pointer, scale, n) }
        if target.requiresGrad { addScaledInPlace(target.gradPointer(), diff.pointer, -scale, n) }
    }
}
