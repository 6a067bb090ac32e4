// Scaled dot-product attention with grouped-query heads and boolean/additive masks, fused:
// scores, mask, softmax and the value product per (batch, head) through sgemm, without transposes.

/// Which keys each query may attend to. Masks are constants: they receive no gradient.
///
/// Bias masks are additive (0 = attend, −∞ = blocked) with shape [batch or 1, queries or 1, keys],
/// broadcast over heads. `causal` is applied without materialising a matrix.
public struct AttentionMask: Sendable {
    var causal = false
    /// (batch, rows, keys) and the additive values, batch and rows 1 when broadcast.
    var bias: (shape: [Int], values: TensorStorage)?

    public static let none = AttentionMask()
    /// Query i attends keys j ≤ i + (S − T): with S = T the usual lower triangle; with a KV cache
    /// of S > T keys, the new queries see every cached key.
    public static let causal = AttentionMask(causal: true)

    /// An additive mask of shape [T, S], [Bm, T, S] or [Bm, 1, S] (Bm is 1 or the batch).
    public static func additive(_ bias: Tensor) -> AttentionMask {
        AttentionMask(bias: (normalizedMaskShape(bias.shape), bias.detached().storage))
    }

    /// `allowed[i] == true` where attending is allowed; shapes as for `additive`.
    public static func boolean(_ allowed: [Bool], shape: [Int]) -> AttentionMask {
        precondition(allowed.count == elementCount(shape), "AttentionMask.boolean: \(allowed.count) values for shape \(shape)")
        let values = allowed.map { $0 ? Float(0) : -Float.infinity }
        return AttentionMask(bias: (normalizedMaskShape(shape), values.withUnsafeBufferPointer { TensorStorage(copying: $0) }))
    }

    /// Token i attends token j iff `groups[j] <= groups[i]`: full attention within a group, and to
    /// every earlier group (e.g. vision 0, latents and proprio 1, noisy actions 2).
    public static func blockCausal(groups: [Int]) -> AttentionMask {
        let n = groups.count
        var allowed = [Bool](repeating: false, count: n * n)
        for i in 0..<n { for j in 0..<n { allowed[i * n + j] = groups[j] <= groups[i] } }
        return boolean(allowed, shape: [n, n])
    }

    /// Blocks padded keys: `keyValid` is [batch, S], true for real tokens.
    public static func padding(keyValid: [Bool], batch: Int) -> AttentionMask {
        precondition(batch > 0 && keyValid.count % batch == 0, "AttentionMask.padding: \(keyValid.count) flags for batch \(batch)")
        return boolean(keyValid, shape: [batch, 1, keyValid.count / batch])
    }

    /// Both masks at once (a key is blocked if either blocks it).
    public func combined(with other: AttentionMask) -> AttentionMask {
        var result = AttentionMask(causal: causal || other.causal)
        switch (bias, other.bias) {
        case let (a?, nil), let (nil, a?): result.bias = a
        case let (a?, b?):
            precondition(a.shape[2] == b.shape[2], "AttentionMask.combined: key lengths \(a.shape[2]) and \(b.shape[2]) differ")
            let shape = [max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1]), a.shape[2]]
            let values = TensorStorage(uninitializedCount: elementCount(shape))
            for i in 0..<shape[0] { for t in 0..<shape[1] { for s in 0..<shape[2] {
                values.pointer[(i * shape[1] + t) * shape[2] + s] =
                    a.values.pointer[maskIndex(a.shape, i, t) + s] + b.values.pointer[maskIndex(b.shape, i, t) + s]
            } } }
            result.bias = (shape, values)
        case (nil, nil): break
        }
        return result
    }
}

private func normalizedMaskShape(_ shape: [Int]) -> [Int] {
    precondition(shape.count == 2 || shape.count == 3, "AttentionMask: shape must be [T, S] or [B, T, S], got \(shape)")
    return shape.count == 2 ? [1] + shape : shape
}

/// Offset of row (b, t) in a bias of `shape`, honouring broadcast dimensions.
@inline(__always) private func maskIndex(_ shape: [Int], _ b: Int, _ t: Int) -> Int {
    ((shape[0] == 1 ? 0 : b) * shape[1] + (shape[1] == 1 ? 0 : t)) * shape[2]
}

/// softmax(scale · Q Kᵀ + mask) V per head.
///
/// query: [B, T, Hq, D], key: [B, S, Hkv, D], value: [B, S, Hkv, Dv] with Hq a multiple of Hkv
/// (grouped-query attention: query head h reads key/value head h / (Hq/Hkv)). Result: [B, T, Hq, Dv].
/// `scale` defaults to 1/√D. A query whose keys are all blocked attends to nothing (output 0).
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor,
                                      mask: AttentionMask = .none, scale: Float? = nil) -> Tensor {
    precondition(q.rank == 4 && k.rank == 4 && v.rank == 4,
                 "attention: query, key and value must be [batch, seq, heads, dim], got \(q.shape), \(k.shape), \(v.shape)")
    let (bsz, t, hq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (s, hkv, dv) = (k.shape[1], k.shape[2], v.shape[3])
    precondition(k.shape[0] == bsz && k.shape[3] == d, "attention: key \(k.shape) does not match query \(q.shape)")
    precondition(v.shape[0] == bsz && v.shape[1] == s && v.shape[2] == hkv, "attention: value \(v.shape) does not match key \(k.shape)")
    precondition(hkv > 0 && hq % hkv == 0, "attention: \(hq) query heads is not a multiple of \(hkv) key/value heads")
    precondition(!mask.causal || s >= t, "attention: causal mask needs at least as many keys (\(s)) as queries (\(t))")
    if let bias = mask.bias {
        precondition(bias.shape[2] == s && (bias.shape[1] == 1 || bias.shape[1] == t) && (bias.shape[0] == 1 || bias.shape[0] == bsz),
                     "attention: mask of shape \(bias.shape) does not fit batch \(bsz), \(t) queries, \(s) keys")
    }
    let alpha = scale ?? 1 / Float(d).squareRoot()
    let group = hq / hkv
    // Row strides of the [seq, heads·dim] layouts: one head's matrix is every (heads·dim)-th row.
    let ldq = hq * d, ldk = hkv * d, ldv = hkv * dv, ldo = hq * dv
    let probs = TensorStorage(uninitializedCount: bsz * hq * t * s)  // softmax, kept for backward
    let out = TensorStorage(uninitializedCount: bsz * t * hq * dv)
    let offset = s - t  // causal: query i sees keys ≤ i + offset

    // One task per (batch, key/value head): its query heads write disjoint rows of probs and out.
    parallelFor(bsz * hkv) { task in
        let (b, hk) = (task / hkv, task % hkv)
        for h in (hk * group)..<((hk + 1) * group) {
            let p = probs.pointer + (b * hq + h) * t * s
            let qbh = q.pointer + b * t * ldq + h * d, kbh = k.pointer + b * s * ldk + hk * d
            sgemm(transB: true, m: t, n: s, k: d, alpha: alpha, a: qbh, lda: ldq, b: kbh, ldb: ldk, c: p, ldc: s)
            for i in 0..<t {
                let row = p + i * s
                if let bias = mask.bias {
                    addInPlace(row, bias.values.pointer + maskIndex(bias.shape, b, i), s)
                }
                if mask.causal && i + offset + 1 < s {
                    (row + i + offset + 1).update(repeating: -.infinity, count: s - i - offset - 1)
                }
                softmaxRow(row, row, s)
            }
            sgemm(m: t, n: dv, k: s, a: p, lda: s, b: v.pointer + b * s * ldv + hk * dv, ldb: ldv,
                  c: out.pointer + b * t * ldo + h * dv, ldc: ldo)
        }
    }

    return .result(shape: [bsz, t, hq, dv], storage: out, inputs: [q, k, v]) { g in
        let gq = q.requiresGrad ? q.gradPointer() : nil
        let gk = k.requiresGrad ? k.gradPointer() : nil
        let gv = v.requiresGrad ? v.gradPointer() : nil
        // Tasks per (batch, key/value head) again: the query heads of one group accumulate into the
        // same dK/dV slice, so a group never spans two tasks.
        parallelFor(bsz * hkv) { task in
            let (b, hk) = (task / hkv, task % hkv)
            let dp = TensorStorage(uninitializedCount: t * s)
            for h in (hk * group)..<((hk + 1) * group) {
                let p = probs.pointer + (b * hq + h) * t * s
                let go = g.pointer + b * t * ldo + h * dv
                let qbh = q.pointer + b * t * ldq + h * d, kbh = k.pointer + b * s * ldk + hk * d
                let vbh = v.pointer + b * s * ldv + hk * dv
                if let gv {  // dV += Pᵀ dO
                    sgemm(transA: true, m: s, n: dv, k: t, a: p, lda: s, b: go, ldb: ldo, beta: 1,
                          c: gv + b * s * ldv + hk * dv, ldc: ldv)
                }
                guard gq != nil || gk != nil else { continue }
                // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)); blocked entries have P = 0.
                sgemm(transB: true, m: t, n: s, k: dv, a: go, lda: ldo, b: vbh, ldb: ldv, c: dp.pointer, ldc: s)
                for i in 0..<t {
                    let pr = p + i * s, dr = dp.pointer + i * s
                    let rowDot = dot(pr, dr, s)
                    for j in 0..<s { dr[j] = pr[j] * (dr[j] - rowDot) }
                }
                if let gq {  // dQ += scale · dS K
                    sgemm(m: t, n: d, k: s, alpha: alpha, a: dp.pointer, lda: s, b: kbh, ldb: ldk, beta: 1,
                          c: gq + b * t * ldq + h * d, ldc: ldq)
                }
                if let gk {  // dK += scale · dSᵀ Q
                    sgemm(transA: true, m: s, n: d, k: t, alpha: alpha, a: dp.pointer, lda: s, b: qbh, ldb: ldq, beta: 1,
                          c: gk + b * s * ldk + hk * d, ldc: ldk)
                }
            }
        }
    }
}
