import Autograd
import Foundation
import TestSupport
import XCTest
@testable import Models

final class CausalLMTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    let config = TransformerConfig(hiddenSize: 32, numHeads: 4, numKeyValueHeads: 2, intermediateSize: 48)

    /// Logits of a 2-layer model with tied embeddings against the numpy reference, same weights.
    func testLogitsMatchNumpyReference() throws {
        var rng = RNG(seed: 31)
        let lm = CausalLM(vocabSize: 23, numLayers: 2, config, tieWordEmbeddings: true, rng: &rng)
        XCTAssertNil(lm.lmHead)
        XCTAssertFalse(lm.namedParameters().contains { $0.0.hasPrefix("lm_head") }, "tied: no lm_head key")
        for (name, p) in lm.namedParameters() where name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") {
            for i in 0..<p.count { p.pointer[i] = 1 + 0.1 * rng.normal() }
        }
        let embed = lm.model.embedTokens.weight
        for i in 0..<embed.count { embed.pointer[i] *= 20 }  // N(0, 0.4²): logits well away from 0
        let ids: [[Int32]] = [[1, 5, 22, 7, 7, 0], [3, 3, 9, 12, 21, 2]]
        let logits = lm(ids.flatMap { $0 }, batch: 2, length: 6)
        var params: [String: Any] = [:]
        for (name, p) in lm.namedParameters() { params[name] = ["shape": p.shape, "data": p.toArray().map(Double.init)] }
        let reference = try PythonReference.run("Tests/ModelsTests/Parity/causal_lm.py", input: [
            "config": ["num_heads": config.numHeads, "num_kv_heads": config.numKeyValueHeads,
                       "eps": Double(config.rmsNormEps), "rope_theta": Double(config.ropeTheta)],
            "params": params, "ids": ids.map { $0.map(Int.init) }, "num_layers": 2,
        ])["logits"] as! [Double]
        let ours = logits.toArray()
        let scale = reference.map(abs).max()!
        let error = zip(ours, reference).map { abs(Double($0) - $1) }.max()! / scale
        XCTAssertLessThan(error, 1e-4, "max |Δ| / max |logit| = \(error)")
    }

    /// Greedy decoding with the KV cache gives the tokens that full recomputation gives.
    func testCachedGenerationEqualsFullRecomputation() {
        var rng = RNG(seed: 5)
        let lm = CausalLM(vocabSize: 17, numLayers: 2, config, rng: &rng)
        for (_, p) in lm.namedParameters() { for i in 0..<p.count { p.pointer[i] *= 3 } }  // peaked logits
        let prompt: [Int32] = [4, 9, 1]
        var sampler = RNG(seed: 0)
        let cached = lm.generate(prompt: prompt, maxNewTokens: 8, rng: &sampler)
        var sequence = prompt
        var full: [Int32] = []
        withoutGrad {
            for _ in 0..<8 {
                let logits = lm(sequence, batch: 1, length: sequence.count).toArray()
                let last = Array(logits.suffix(17))
                let next = Int32(last.indices.max { last[$0] < last[$1] }!)
                full.append(next)
                sequence.append(next)
            }
        }
        XCTAssertEqual(cached, full)
        let stopAt = cached[2]
        XCTAssertEqual(lm.generate(prompt: prompt, maxNewTokens: 8, stop: [stopAt], rng: &sampler).last, stopAt)
        var a = RNG(seed: 9), b = RNG(seed: 9)
        XCTAssertEqual(lm.generate(prompt: prompt, maxNewTokens: 6, temperature: 1, rng: &a),
                       lm.generate(prompt: prompt, maxNewTokens: 6, temperature: 1, rng: &b), "sampling is seeded")
    }
}
