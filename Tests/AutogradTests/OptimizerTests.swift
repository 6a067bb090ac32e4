import Foundation
import TestSupport
import XCTest
@testable import Autograd

final class OptimizerTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    /// Three AdamW steps against the PyTorch update rule written out in double precision.
    func testAdamWMatchesPyTorchRule() {
        let p = Tensor([0.5, -1.0, 2.0, 0.1], shape: [2, 2], requiresGrad: true)
        let bias = Tensor([0.3, -0.2], shape: [2], requiresGrad: true)
        let opt = AdamW([("w", p), ("b", bias)], betas: (0.9, 0.95), eps: 1e-8, weightDecay: 0.1)
        var ref = p.toArray().map(Double.init), refB = bias.toArray().map(Double.init)
        var m = [Double](repeating: 0, count: 4), v = m, mb = [0.0, 0.0], vb = mb
        let grads: [[Float]] = [[0.1, -0.2, 0.3, 0.0], [1.0, 0.5, -0.5, 2.0], [-0.3, 0.0, 0.2, 0.1]]
        let lr = 0.01
        for (t, g) in grads.enumerated() {
            p.grad = Tensor(g, shape: [2, 2])
            bias.grad = Tensor([g[0], g[1]], shape: [2])
            opt.update(learningRate: Float(lr))
            let step = Double(t + 1), bc1 = 1 - pow(0.9, step), bc2 = 1 - pow(0.95, step)
            func rule(_ x: inout Double, _ m: inout Double, _ v: inout Double, _ g: Double, decay: Bool) {
                if decay { x *= 1 - lr * 0.1 }
                m = 0.9 * m + 0.1 * g
                v = 0.95 * v + 0.05 * g * g
                x -= (lr / bc1) * m / (v.squareRoot() / bc2.squareRoot() + 1e-8)
            }
            for i in 0..<4 { rule(&ref[i], &m[i], &v[i], Double(g[i]), decay: true) }
            for i in 0..<2 { rule(&refB[i], &mb[i], &vb[i], Double(g[i]), decay: false) }  // rank 1: no decay
        }
        for i in 0..<4 { XCTAssertEqual(Double(p.pointer[i]), ref[i], accuracy: 1e-6) }
        for i in 0..<2 { XCTAssertEqual(Double(bias.pointer[i]), refB[i], accuracy: 1e-6) }
        XCTAssertEqual(opt.step, 3)
    }

    /// Three updates against shadow = d·shadow + (1 − d)·θ with d = min(decay, (1 + n)/(10 + n)),
    /// written out in double precision: the warm-up decides d at n = 1, the cap from n = 2 on.
    func testExponentialMovingAverageFollowsItsWarmedUpDecay() {
        let p = Tensor([1, -2, 4], shape: [3], requiresGrad: true)
        let ema = ExponentialMovingAverage([("p", p)], decay: 0.2)
        var shadow = p.toArray().map(Double.init)
        let values: [[Float]] = [[3, 0, 1], [-1, 5, 2], [0.5, 0.25, -8]]
        for (i, value) in values.enumerated() {
            p.pointer.update(from: value, count: 3)
            let n = Double(i + 1), d = min(0.2, (1 + n) / (10 + n))
            XCTAssertEqual(Double(ema.nextDecay), d, accuracy: 1e-7)
            ema.update()
            for j in 0..<3 { shadow[j] = d * shadow[j] + (1 - d) * Double(value[j]) }
        }
        XCTAssertEqual(ema.updates, 3)
        let averaged = ema.averagedTensors()
        XCTAssertEqual(averaged.map(\.0), ["p"])
        for j in 0..<3 { XCTAssertEqual(Double(averaged[0].1.toArray()[j]), shadow[j], accuracy: 1e-6) }
        XCTAssertEqual(p.toArray(), values[2], "averaging leaves the parameter itself alone")
    }

    func testAdamWLeavesFrozenTensorsAndRowsUntouched() {
        let table = Tensor.ones([3, 2], requiresGrad: true)
        table.trainableRows = [false, true, false]
        let frozen = Tensor.ones([2, 2], requiresGrad: false)
        frozen.grad = Tensor.ones([2, 2])
        let opt = AdamW([("table", table), ("frozen", frozen)], weightDecay: 0.5)
        table.grad = Tensor.ones([3, 2])
        opt.update(learningRate: 0.1)
        let t = table.toArray()
        XCTAssertEqual([t[0], t[1], t[4], t[5]], [1, 1, 1, 1], "frozen rows neither step nor decay")
        XCTAssertLessThan(t[2], 1)
        XCTAssertEqual(frozen.toArray(), [1, 1, 1, 1])
    }

    func testClipGradNormScalesToMaxNormAndReportsTheOriginal() {
        let a = Tensor.zeros([2], requiresGrad: true), b = Tensor.zeros([1], requiresGrad: true)
        a.grad = Tensor([3, 0], shape: [2])
        b.grad = Tensor([4], shape: [1])
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 1), 5, accuracy: 1e-6)
        let norm = (a.grad!.toArray() + b.grad!.toArray()).map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertEqual(norm, 1, accuracy: 1e-5)
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 10), norm, accuracy: 1e-6)  // under the limit: untouched
        XCTAssertEqual(a.grad!.toArray()[0], 0.6, accuracy: 1e-5)
    }

    /// Two half-batches with the loss halved accumulate to the full-batch gradient.
    func testGradientAccumulationEqualsTheFullBatch() {
        let w = param([3, 4], seed: 40), x = param([6, 4], seed: 41), y = param([6, 3], seed: 42)
        w.zeroGrad()
        mseLoss(linear(x, weight: w), y).backward()
        let full = w.grad!.toArray()
        w.zeroGrad()
        for half in 0..<2 {
            let xs = x.slice(axis: 0, half * 3..<(half * 3 + 3)), ys = y.slice(axis: 0, half * 3..<(half * 3 + 3))
            (mseLoss(linear(xs, weight: w), ys) * 0.5).backward()
        }
        assertClose(w.grad!.toArray(), full, tol: 1e-5)
    }

    func testSchedules() {
        XCTAssertEqual(ConstantSchedule(0.3).learningRate(at: 1000), 0.3)
        let s = WarmupCosineSchedule(peak: 1, warmupSteps: 4, totalSteps: 14, minRatio: 0.1)
        XCTAssertEqual(s.learningRate(at: 0), 0.25, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 3), 1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 4), 1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 9), 0.55, accuracy: 1e-6)  // halfway down the cosine
        XCTAssertEqual(s.learningRate(at: 14), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 100), 0.1, accuracy: 1e-6)
        for step in 4..<14 { XCTAssertGreaterThanOrEqual(s.learningRate(at: step), s.learningRate(at: step + 1)) }
    }
}

final class RNGTests: XCTestCase {
    func testSameSeedSameStreamAndStateRoundTrips() {
        var a = RNG(seed: 42), b = RNG(seed: 42)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
        let saved = a.stateWords
        let expected = (0..<10).map { _ in a.normal() }
        var restored = RNG(stateWords: saved)
        XCTAssertEqual((0..<10).map { _ in restored.normal() }, expected)
        var c = RNG(seed: 43), d = RNG(seed: 42)
        XCTAssertNotEqual((0..<4).map { _ in c.next() }, (0..<4).map { _ in d.next() })
    }

    func testUniformAndNormalMoments() {
        var rng = RNG(seed: 1)
        let n = 200_000
        let u = (0..<n).map { _ in Double(rng.uniform()) }
        XCTAssertEqual(u.reduce(0, +) / Double(n), 0.5, accuracy: 0.005)
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let z = (0..<n).map { _ in Double(rng.normal()) }
        let mean = z.reduce(0, +) / Double(n)
        let variance = z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
    }
}
