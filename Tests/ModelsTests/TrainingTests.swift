import Autograd
import TestSupport
import XCTest
@testable import Models

/// End-to-end: a tiny decoder learns a synthetic task that needs attention, through the same
/// autograd, AdamW, clipping and schedule a real run uses.
final class TrainingTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    /// Sequences count up from a random start by a random stride k ∈ {1, 2, 3} (mod V). From the
    /// third token on, the next token is determined by the context, so the loss on those targets
    /// can go to ~0 only if the model infers k by attending to earlier tokens.
    func testTinyTransformerLearnsStrideCounting() {
        let vocab = 16, length = 10, batch = 32, steps = 300
        var rng = RNG(seed: 2024)
        let config = TransformerConfig(hiddenSize: 32, numHeads: 4, numKeyValueHeads: 2, intermediateSize: 64)
        let model = CausalLM(vocabSize: vocab, numLayers: 2, config, rng: &rng)
        let optimizer = AdamW(model.trainableParameters(), weightDecay: 0.01)
        let schedule = WarmupCosineSchedule(peak: 1e-2, warmupSteps: 20, totalSteps: steps, minRatio: 0.1)

        func makeBatch() -> (ids: [Int32], targets: [Int32]) {
            var ids: [Int32] = [], targets: [Int32] = []
            for _ in 0..<batch {
                let start = Int(rng.next() % UInt64(vocab)), k = 1 + Int(rng.next() % 3)
                let seq = (0...length).map { Int32((start + $0 * k) % vocab) }
                ids += seq.prefix(length)
                // The first target (token 1) depends on the still unknown stride: ignored.
                targets += seq.dropFirst().enumerated().map { $0.offset < 1 ? -100 : $0.element }
            }
            return (ids, targets)
        }

        var losses: [Float] = []
        for step in 0..<steps {
            let (ids, targets) = makeBatch()
            let loss = crossEntropy(logits: model(ids, batch: batch, length: length), targets: targets)
            optimizer.zeroGrad()
            loss.backward()
            clipGradNorm(model.parameters(), maxNorm: 1)
            optimizer.update(learningRate: schedule.learningRate(at: step))
            losses.append(loss.item())
        }
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(20).reduce(0, +) / 20
        print("stride counting: loss \(first) → \(last) in \(steps) steps")
        XCTAssertGreaterThan(first, 2, "starts near ln(16) ≈ 2.77")
        XCTAssertLessThan(last, 0.05, "the model should predict determined tokens almost perfectly")
    }
}
