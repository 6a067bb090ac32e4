import TestSupport
import XCTest
@testable import Autograd

/// Low-rank adapters on `Linear`, the shared adapter switches, and row-frozen parameters.
final class LoRATests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    final class Block: Module {
        let qProj: Linear
        init(rng: inout RNG) { qProj = Linear(6, 5, rng: &rng) }
    }

    func testAdaptersUsePEFTKeysAndStartAsTheIdentityChange() {
        var rng = RNG(seed: 1)
        let block = Block(rng: &rng)
        let x = param([2, 3, 6], seed: 2)
        let before = block.qProj(x).toArray()
        let context = AdapterContext(seed: 3)
        let adapters = LoRAAdapters(context: context)
        adapters.add("action", inFeatures: 6, outFeatures: 5, rank: 2, alpha: 4, dropout: 0, rng: &rng)
        adapters.add("language", inFeatures: 6, outFeatures: 5, rank: 3, alpha: 6, dropout: 0, rng: &rng)
        block.qProj.adapters = adapters
        XCTAssertEqual(block.namedParameters().map(\.0), [
            "q_proj.weight", "q_proj.bias", "q_proj.lora_A.action.weight", "q_proj.lora_A.language.weight",
            "q_proj.lora_B.action.weight", "q_proj.lora_B.language.weight",
        ])
        XCTAssertEqual(block.qProj(x).toArray(), before, "B starts at zero, so a new adapter changes nothing")
        context.enabled = false
        XCTAssertEqual(block.qProj(x).toArray(), before)
    }

    /// W·x + b + Σ (α/r)·B·A·(λ ⊙ x), checked against finite differences in every input, and against
    /// the formula written out.
    func testGatedAdapterGradientsAndValue() {
        var rng = RNG(seed: 4)
        let linear = Linear(6, 5, rng: &rng)
        let context = AdapterContext(seed: 5)
        let adapters = LoRAAdapters(context: context)
        adapters.add("action", inFeatures: 6, outFeatures: 5, rank: 2, alpha: 4, dropout: 0, rng: &rng)
        linear.adapters = adapters
        let a = (adapters.loraA["action"] as! Linear).weight, b = (adapters.loraB["action"] as! Linear).weight
        for i in 0..<b.count { b.pointer[i] = Float(i % 7) * 0.1 - 0.3 }
        let x = param([2, 3, 6], seed: 6), gate = param([2, 3, 1], seed: 7, scale: 0.3, offset: 0.5)
        context.gates["action"] = gate
        let expected = Autograd.linear(x, weight: linear.weight, bias: linear.bias) + Autograd.linear(Autograd.linear(x * gate, weight: a), weight: b) * 2
        assertClose(linear(x).toArray(), expected.toArray(), tol: 1e-5)
        assertGradients([x, gate, a, b, linear.weight]) { linear(x) }
    }

    func testDropoutOnlyWhileTraining() {
        var rng = RNG(seed: 8)
        let linear = Linear(16, 4, rng: &rng)
        let context = AdapterContext(seed: 9)
        let adapters = LoRAAdapters(context: context)
        adapters.add("action", inFeatures: 16, outFeatures: 4, rank: 2, alpha: 4, dropout: 0.5, rng: &rng)
        let b = (adapters.loraB["action"] as! Linear).weight
        for i in 0..<b.count { b.pointer[i] = 1 }
        linear.adapters = adapters
        let x = param([1, 16], seed: 10)
        let evaluation = linear(x).toArray()
        XCTAssertEqual(linear(x).toArray(), evaluation, "no dropout outside training")
        context.training = true
        XCTAssertNotEqual(linear(x).toArray(), evaluation)
    }

    /// A tied LM head reaches every vocabulary row through a matmul: frozen rows must still end with
    /// exactly zero gradient (and so neither move nor count in the clipping norm).
    func testFrozenRowsGetZeroGradientThroughAnyOp() {
        let table = param([5, 3], seed: 11)
        table.trainableRows = [false, true, false, false, true]
        let hidden = embedding([0, 1, 2], shape: [3], weight: table)
        let logits = Autograd.linear(hidden, weight: table)
        crossEntropy(logits: logits, targets: [4, 0, 2]).backward()
        let grad = table.grad!.toArray()
        for row in [0, 2, 3] { XCTAssertEqual(Array(grad[(row * 3)..<(row * 3 + 3)]), [0, 0, 0], "row \(row)") }
        XCTAssertTrue(grad[3..<6].contains { $0 != 0 } && grad[12..<15].contains { $0 != 0 })
    }
}
