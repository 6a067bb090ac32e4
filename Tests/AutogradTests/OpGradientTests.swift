import TestSupport
import XCTest
@testable import Autograd

/// A finite-difference gradient check for every op, on shapes that exercise broadcasting and masks.
final class OpGradientTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    // MARK: elementwise with broadcasting

    func testAddSubMulDivBroadcast() {
        let shapes: [([Int], [Int])] = [([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [4]), ([2, 1, 4], [3, 1]), ([1], [2, 3]), ([3, 1, 2], [1, 4, 1])]
        for (sa, sb) in shapes {
            let a = param(sa, seed: 1), b = param(sb, seed: 2)
            let bPos = param(sb, seed: 3, scale: 0.2, offset: 2)  // keep divisors away from 0
            assertGradients([a, b]) { a + b }
            assertGradients([a, b]) { a - b }
            assertGradients([a, b]) { a * b }
            assertGradients([a, bPos]) { a / bPos }
        }
    }

    func testScalarOpsAndUnaryMath() {
        let x = param([3, 5], seed: 4)
        let pos = param([3, 5], seed: 5, scale: 0.3, offset: 2)
        assertGradients([x]) { x * 2.5 + 1 }
        assertGradients([x]) { 3 - x / 2 }
        assertGradients([x]) { -x }
        assertGradients([x]) { exp(x) }
        assertGradients([pos]) { log(pos) }
        assertGradients([pos]) { sqrt(pos) }
    }

    // MARK: reductions and shapes

    func testSumAndMeanOverAxes() {
        let x = param([2, 3, 4], seed: 6)
        assertGradients([x]) { sum(x) }
        assertGradients([x]) { sum(x, axes: [1]) }
        assertGradients([x]) { sum(x, axes: [0, 2], keepDims: true) }
        assertGradients([x]) { mean(x, axes: [-1]) }
        assertGradients([x]) { mean(x) }
        XCTAssertEqual(sum(x, axes: [0, 2], keepDims: true).shape, [1, 3, 1])
        XCTAssertEqual(mean(x, axes: [1]).shape, [2, 4])
    }

    func testReshapePermuteTransposeConcatSplitSlice() {
        let x = param([2, 3, 4], seed: 7), y = param([2, 2, 4], seed: 8)
        assertGradients([x]) { x.reshaped([6, -1]) * x.reshaped([6, 4]) }
        assertGradients([x]) { x.permuted([2, 0, 1]) }
        assertGradients([x]) { x.transposed() }
        assertGradients([x, y]) { concat([x, y, x], axis: 1) }
        assertGradients([x]) { concat(split(x, sizes: [1, 3], axis: 2).reversed(), axis: 2) }
        assertGradients([x]) { x.slice(axis: 1, 1..<3) }
        XCTAssertEqual(x.permuted([2, 0, 1]).shape, [4, 2, 3])
        XCTAssertEqual(x.slice(axis: -1, 0..<1).shape, [2, 3, 1])
    }

    // MARK: matrix products

    func testMatmulAllTransposesAndBatching() {
        for transA in [false, true] {
            for transB in [false, true] {
                let a = param(transA ? [2, 5, 3] : [2, 3, 5], seed: 9), b = param(transB ? [2, 4, 5] : [2, 5, 4], seed: 10)
                assertGradients([a, b]) { matmul(a, b, transposeA: transA, transposeB: transB) }
                let shared = param(transB ? [4, 5] : [5, 4], seed: 11)  // one matrix for every batch entry
                assertGradients([a, shared]) { matmul(a, shared, transposeA: transA, transposeB: transB) }
                let sharedA = param(transA ? [5, 3] : [3, 5], seed: 12)
                assertGradients([sharedA, b]) { matmul(sharedA, b, transposeA: transA, transposeB: transB) }
            }
        }
    }

    func testLinearWithAndWithoutBias() {
        let x = param([2, 3, 5], seed: 13), w = param([4, 5], seed: 14), b = param([4], seed: 15)
        assertGradients([x, w, b]) { linear(x, weight: w, bias: b) }
        assertGradients([x, w]) { linear(x, weight: w) }
    }

    // MARK: embedding

    func testEmbeddingGradientAndFrozenRows() {
        let w = param([6, 3], seed: 16)
        let ids: [Int32] = [0, 2, 2, 5, 1, 0]
        assertGradients([w]) { embedding(ids, shape: [2, 3], weight: w) }

        // Only rows 1 and 5 train; rows 0 and 2 are looked up (twice each) but frozen.
        w.trainableRows = [false, true, false, false, false, true]
        w.zeroGrad()
        sum(embedding(ids, shape: [2, 3], weight: w) * 2).backward()
        let g = w.grad!.toArray()
        XCTAssertEqual(Array(g[0..<3]) + Array(g[6..<9]), [Float](repeating: 0, count: 6), "frozen rows must get exactly zero gradient")
        XCTAssertEqual(Array(g[3..<6]), [2, 2, 2], "row 1 appears once")
        XCTAssertEqual(Array(g[15..<18]), [2, 2, 2], "row 5 appears once")
    }

    func testGatherAndReplaceRows() {
        let x = param([6, 2, 3], seed: 50), rows = param([2, 2, 3], seed: 51)
        assertGradients([x]) { gatherRows(x, [4, 0, 4, 2]) }
        assertGradients([x, rows]) { replacingRows(x, at: [5, 1], with: rows) }
        let replaced = replacingRows(x, at: [5, 1], with: rows).toArray()
        XCTAssertEqual(Array(replaced[30..<36]), Array(rows.toArray()[0..<6]))
        XCTAssertEqual(Array(replaced[0..<6]), Array(x.toArray()[0..<6]))
    }

    // MARK: softmax and losses

    func testSoftmaxAndLogSoftmaxOnAnyAxis() {
        let x = param([2, 3, 5], seed: 17)
        assertGradients([x]) { softmax(x) }
        assertGradients([x]) { softmax(x, axis: 1) }
        assertGradients([x]) { logSoftmax(x) }
        assertGradients([x]) { logSoftmax(x, axis: 0) }
        let rowSums = sum(softmax(x, axis: 1), axes: [1]).toArray()
        assertClose(rowSums, [Float](repeating: 1, count: 10))
    }

    func testCrossEntropyWithIgnoreIndex() {
        let logits = param([2, 3, 7], seed: 18)
        let targets: [Int32] = [1, -100, 6, 0, -100, 3]
        assertGradients([logits]) { crossEntropy(logits: logits, targets: targets) }
        // Value against a direct computation over the counted rows.
        let lsm = logSoftmax(logits).toArray()
        let expected = -[0, 2, 3, 5].map { r in lsm[r * 7 + Int(targets[r])] }.reduce(0, +) / 4
        XCTAssertEqual(crossEntropy(logits: logits, targets: targets).item(), expected, accuracy: 1e-5)
        XCTAssertEqual(crossEntropy(logits: logits, targets: [Int32](repeating: -100, count: 6)).item(), 0)
    }

    func testMSE() {
        let a = param([3, 4], seed: 19), b = param([3, 4], seed: 20)
        assertGradients([a, b]) { mseLoss(a, b) }
    }

    // MARK: normalisation and activations

    func testLayerNormAndRMSNorm() {
        let x = param([2, 3, 8], seed: 21), w = param([8], seed: 22, offset: 1), b = param([8], seed: 23)
        assertGradients([x, w, b]) { layerNorm(x, weight: w, bias: b) }
        assertGradients([x]) { layerNorm(x, weight: nil, bias: nil) }
        assertGradients([x, w]) { rmsNorm(x, weight: w) }
    }

    func testActivations() {
        let x = param([4, 37], seed: 24, scale: 2)  // 148 elements: SIMD body and tail
        assertGradients([x]) { gelu(x) }
        assertGradients([x]) { gelu(x, approximation: .tanh) }
        assertGradients([x]) { silu(x) }
        // ReLU's kink at 0 breaks finite differences: keep inputs away from it.
        let away = param([4, 37], seed: 25)
        for i in 0..<away.count where abs(away.pointer[i]) < 0.05 { away.pointer[i] = 0.5 }
        assertGradients([away]) { relu(away) }
    }

    func testDropoutIsSeededAndScaled() {
        let x = param([8, 16], seed: 26)
        assertGradients([x]) { var rng = RNG(seed: 3); return dropout(x, p: 0.3, rng: &rng) }
        var r1 = RNG(seed: 3), r2 = RNG(seed: 3)
        XCTAssertEqual(dropout(x, p: 0.3, rng: &r1).toArray(), dropout(x, p: 0.3, rng: &r2).toArray())
        let ones = Tensor.ones([10_000])
        var r = RNG(seed: 4)
        let kept = dropout(ones, p: 0.25, rng: &r).toArray()
        XCTAssertEqual(Double(kept.filter { $0 == 0 }.count) / 10_000, 0.25, accuracy: 0.02)
        XCTAssertEqual(kept.first { $0 != 0 }!, 1 / 0.75, accuracy: 1e-6)
    }

    // MARK: position and attention

    func testRoPE() {
        let x = param([2, 3, 2, 8], seed: 27)
        assertGradients([x]) { rope(x, positions: [0, 1, 2]) }
        assertGradients([x]) { rope(x, positions: [5, 6, 7, 0, 3, 9], base: 100) }
        // Position 0 is the identity; rotations preserve norms.
        let r = rope(x, positions: [0, 4, 9]).toArray(), v = x.toArray()
        assertClose(Array(r[0..<16]), Array(v[0..<16]))
        let n0 = v[16..<32].map { $0 * $0 }.reduce(0, +), n1 = r[16..<32].map { $0 * $0 }.reduce(0, +)
        XCTAssertEqual(n0, n1, accuracy: 1e-4)
    }

    func testAttentionMasksAndGroupedQueryHeads() {
        let q = param([2, 4, 4, 3], seed: 28), k = param([2, 4, 2, 3], seed: 29), v = param([2, 4, 2, 5], seed: 30)
        assertGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v) }
        assertGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v, mask: .causal) }
        assertGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v, mask: .blockCausal(groups: [0, 0, 1, 2])) }
        let padding = AttentionMask.padding(keyValid: [true, true, true, false, true, true, false, false], batch: 2)
        assertGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v, mask: padding.combined(with: .causal)) }
        let additive = param([2, 4, 4], seed: 31)
        assertGradients([q, k, v]) { scaledDotProductAttention(query: q, key: k, value: v, mask: .additive(additive), scale: 0.7) }
        // More keys than queries (a cache): the causal diagonal shifts right.
        let q2 = param([2, 2, 4, 3], seed: 32)
        assertGradients([q2, k, v]) { scaledDotProductAttention(query: q2, key: k, value: v, mask: .causal) }
    }

    func testAttentionMatchesExplicitComposition() {
        let q = param([1, 5, 2, 4], seed: 33), k = param([1, 5, 1, 4], seed: 34), v = param([1, 5, 1, 4], seed: 35)
        let fused = scaledDotProductAttention(query: q, key: k, value: v, mask: .causal).toArray()
        // Head by head with the generic ops: softmax(Q Kᵀ / 2 + causal) V, the single KV head shared.
        let kh = k.reshaped([5, 4]), vh = v.reshaped([5, 4])
        var causal = [Float](repeating: 0, count: 25)
        for i in 0..<5 { for j in (i + 1)..<5 { causal[i * 5 + j] = -.infinity } }
        for h in 0..<2 {
            let qh = q.reshaped([5, 2, 4]).slice(axis: 1, h..<(h + 1)).reshaped([5, 4])
            let scores = matmul(qh, kh, transposeB: true) * 0.5 + Tensor(causal, shape: [5, 5])
            let o = matmul(softmax(scores), vh).toArray()
            for t in 0..<5 { assertClose(Array(fused[(t * 2 + h) * 4..<(t * 2 + h) * 4 + 4]), Array(o[t * 4..<t * 4 + 4])) }
        }
    }

    func testFullyMaskedQueryAttendsToNothing() {
        let q = param([1, 2, 1, 3], seed: 36), k = param([1, 2, 1, 3], seed: 37), v = param([1, 2, 1, 3], seed: 38)
        let mask = AttentionMask.boolean([false, false, true, true], shape: [2, 2])
        let out = scaledDotProductAttention(query: q, key: k, value: v, mask: mask)
        XCTAssertEqual(Array(out.toArray()[0..<3]), [0, 0, 0])
        XCTAssertFalse(out.toArray().contains { $0.isNaN })
    }
}
