// Matrix products through OpenBLAS sgemm: batched matmul with transposes, and the fused linear layer.

/// C = op(A)·op(B), batched over leading dimensions.
///
/// a: [..., M, K] ([..., K, M] when `transposeA`), b: [..., K, N] ([..., N, K] when `transposeB`).
/// The batch dimensions of a and b must be equal, or one side must be a plain matrix shared by
/// every batch entry. Result: [..., M, N].
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank >= 2, got \(a.shape) and \(b.shape)")
    let m = transposeA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
    let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
    let kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
    let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
    precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
    let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
    precondition(batchA == batchB || batchA.isEmpty || batchB.isEmpty,
                 "matmul: batch dimensions \(batchA) and \(batchB) differ (only equal or one-sided batches are supported)")
    let batchShape = batchA.isEmpty ? batchB : batchA
    let batch = elementCount(batchShape)
    let strideA = batchA.isEmpty ? 0 : m * k, strideB = batchB.isEmpty ? 0 : k * n
    let lda = transposeA ? m : k, ldb = transposeB ? k : n

    // A shared right-hand matrix under an untransposed A is one tall GEMM over all batch rows.
    let foldBatchIntoM = strideB == 0 && !transposeA
    let out = TensorStorage(uninitializedCount: batch * m * n)
    if foldBatchIntoM {
        sgemm(transB: transposeB, m: batch * m, n: n, k: k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, c: out.pointer, ldc: n)
    } else {
        for i in 0..<batch {
            sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, a: a.pointer + i * strideA, lda: lda,
                  b: b.pointer + i * strideB, ldb: ldb, c: out.pointer + i * m * n, ldc: n)
        }
    }

    return .result(shape: batchShape + [m, n], storage: out, inputs: [a, b]) { g in
        let pg = g.pointer
        if a.requiresGrad {
            let ga = a.gradPointer()
            if foldBatchIntoM {  // dA = dC · op(B)ᵀ over all rows at once
                sgemm(transB: !transposeB, m: batch * m, n: k, k: n, a: pg, lda: n, b: b.pointer, ldb: ldb, beta: 1, c: ga, ldc: k)
            } else {
                for i in 0..<batch {
                    let gC = pg + i * m * n, bi = b.pointer + i * strideB, gA = ga + i * strideA
                    if transposeA {  // A is K×M: dA = op(B) · dCᵀ
                        sgemm(transA: transposeB, transB: true, m: k, n: m, k: n, a: bi, lda: ldb, b: gC, ldb: n, beta: 1, c: gA, ldc: m)
                    } else {         // dA = dC · op(B)ᵀ
                        sgemm(transB: !transposeB, m: m, n: k, k: n, a: gC, lda: n, b: bi, ldb: ldb, beta: 1, c: gA, ldc: k)
                    }
                }
            }
        }
        if b.requiresGrad {
            let gb = b.gradPointer()
            if foldBatchIntoM {
                if transposeB {  // B is N×K: dB = dCᵀ · A
                    sgemm(transA: true, m: n, n: k, k: batch * m, a: pg, lda: n, b: a.pointer, ldb: lda, beta: 1, c: gb, ldc: k)
                } else {         // dB = Aᵀ · dC
                    sgemm(transA: true, m: k, n: n, k: batch * m, a: a.pointer, lda: lda, b: pg, ldb: n, beta: 1, c: gb, ldc: n)
                }
            } else {
                for i in 0..<batch {
                    let gC = pg + i * m * n, ai = a.pointer + i * strideA, gB = gb + i * strideB
                    if transposeB {  // dB = dCᵀ · op(A)
                        sgemm(transA: true, transB: transposeA, m: n, n: k, k: m, a: gC, lda: n, b: ai, ldb: lda, beta: 1, c: gB, ldc: k)
                    } else {         // dB = op(A)ᵀ · dC
                        sgemm(transA: !transposeA, m: k, n: n, k: m, a: ai, lda: lda, b: gC, ldb: n, beta: 1, c: gB, ldc: n)
                    }
                }
            }
        }
    }
}

/// y = x · Wᵀ + b, as PyTorch's `nn.Linear`: x [..., in], weight [out, in], bias [out] → [..., out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    precondition(weight.rank == 2, "linear: weight must be [out, in], got \(weight.shape)")
    let (outF, inF) = (weight.shape[0], weight.shape[1])
    precondition(x.rank >= 1 && x.shape.last == inF, "linear: input \(x.shape) does not end in \(inF) (weight \(weight.shape))")
    if let bias { precondition(bias.shape == [outF], "linear: bias \(bias.shape) for weight \(weight.shape) should be [\(outF)]") }
    let rows = x.count / max(inF, 1)
    let out = TensorStorage(uninitializedCount: rows * outF)
    if let bias {
        for r in 0..<rows { (out.pointer + r * outF).update(from: bias.pointer, count: outF) }
    }
    sgemm(transB: true, m: rows, n: outF, k: inF, a: x.pointer, lda: inF, b: weight.pointer, ldb: inF,
          beta: bias == nil ? 0 : 1, c: out.pointer, ldc: outF)
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    return .result(shape: Array(x.shape.dropLast()) + [outF], storage: out, inputs: inputs) { g in
        let pg = g.pointer
        if x.requiresGrad {      // dX = dY · W
            sgemm(m: rows, n: inF, k: outF, a: pg, lda: outF, b: weight.pointer, ldb: inF, beta: 1, c: x.gradPointer(), ldc: inF)
        }
        if weight.requiresGrad { // dW = dYᵀ · X
            sgemm(transA: true, m: outF, n: inF, k: rows, a: pg, lda: outF, b: x.pointer, ldb: inF, beta: 1,
                  c: weight.gradPointer(), ldc: inF)
        }
        if let bias, bias.requiresGrad {  // db = Σ_rows dY
            let gb = bias.gradPointer()
            for r in 0..<rows { addInPlace(gb, pg + r * outF, outF) }
        }
    }
}
