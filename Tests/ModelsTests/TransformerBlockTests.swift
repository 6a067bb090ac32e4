import Autograd
import TestSupport
import XCTest
@testable import Models

final class TransformerBlockTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    let config = TransformerConfig(hiddenSize: 32, numHeads: 4, numKeyValueHeads: 2, intermediateSize: 48,
                                   rmsNormEps: 1e-6, ropeTheta: 10_000)

    func testParameterNamesFollowHuggingFace() {
        var rng = RNG(seed: 0)
        let names = TransformerBlock(config, rng: &rng).namedParameters().map(\.0)
        XCTAssertEqual(names, [
            "input_layernorm.weight",
            "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
            "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
            "post_attention_layernorm.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
        ])
        let lm = CausalLM(vocabSize: 11, numLayers: 2, config, rng: &rng)
        let lmNames = lm.namedParameters().map(\.0)
        XCTAssertEqual(lmNames.first, "model.embed_tokens.weight")
        XCTAssertTrue(lmNames.contains("model.layers.1.mlp.down_proj.weight"))
        XCTAssertEqual(lmNames.suffix(2), ["model.norm.weight", "lm_head.weight"])
    }

    /// Forward output and every gradient (all parameters and the input) of one pre-norm block
    /// against an independent numpy + autograd implementation in float64.
    func testBlockMatchesNumpyReference() throws {
        var rng = RNG(seed: 123)
        let block = TransformerBlock(config, rng: &rng)
        // Non-trivial norm weights, so their gradients are exercised away from 1.
        for (name, p) in block.namedParameters() where name.hasSuffix("layernorm.weight") {
            for i in 0..<p.count { p.pointer[i] = 1 + 0.1 * rng.normal() }
        }
        let (b, t) = (2, 7)
        let x = Tensor.randomNormal([b, t, config.hiddenSize], rng: &rng, requiresGrad: true)
        let r = Tensor.randomNormal([b, t, config.hiddenSize], rng: &rng)
        let positions = [3, 4, 5, 6, 7, 8, 9]

        let out = block(x, positions: positions, mask: .causal)
        out.backward(r)

        func encode(_ t: Tensor) -> [String: Any] { ["shape": t.shape, "data": t.toArray().map(Double.init)] }
        var params: [String: Any] = [:]
        for (name, p) in block.namedParameters() { params[name] = encode(p) }
        let reference = try PythonReference.run("Tests/ModelsTests/Parity/transformer_block.py", input: [
            "config": ["num_heads": config.numHeads, "num_kv_heads": config.numKeyValueHeads,
                       "eps": Double(config.rmsNormEps), "rope_theta": Double(config.ropeTheta)],
            "params": params, "x": encode(x), "r": encode(r), "positions": positions,
        ])

        /// max |swift − reference| / max |reference| over the tensor.
        func relativeError(_ swift: [Float], _ ref: [Double]) -> Double {
            XCTAssertEqual(swift.count, ref.count)
            let scale = ref.map(abs).max() ?? 1
            return zip(swift, ref).map { abs(Double($0) - $1) }.max()! / max(scale, 1e-12)
        }
        XCTAssertLessThan(relativeError(out.toArray(), reference["out"] as! [Double]), 1e-4, "forward output")
        let grads = reference["grads"] as! [String: [Double]]
        XCTAssertLessThan(relativeError(x.grad!.toArray(), grads["x"]!), 1e-4, "input gradient")
        for (name, p) in block.namedParameters() {
            let err = relativeError(p.grad!.toArray(), grads[name]!)
            XCTAssertLessThan(err, 1e-4, "gradient of \(name)")
        }
        XCTAssertEqual(grads.count, block.namedParameters().count + 1)
    }
}
