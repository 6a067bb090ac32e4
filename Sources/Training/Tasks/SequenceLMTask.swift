import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// Recipe of `sequence-lm`: the foundation's tiny decoder learning stride counting, a synthetic
/// task that needs attention (see `SequenceLMTask`). The smallest end-to-end use of the trainer.
public struct SequenceLMRecipe: RecipeSchema {
    public struct Model: Codable, Sendable, Equatable {
        public var vocabSize = 16
        public var hiddenSize = 32
        public var numLayers = 2
        public var numHeads = 4
        public var numKeyValueHeads = 2
        public var intermediateSize = 64
    }
    public struct Data: Codable, Sendable, Equatable {
        public var sequenceLength = 10
        /// Strides are drawn from 1...max_stride.
        public var maxStride = 3
        public var validationSeed = 12345
    }

    public var task = "sequence-lm"
    public var model = Model()
    public var data = Data()
    public var train = TrainSection()

    public init() {}

    public func validate() throws {
        guard task == "sequence-lm" else { throw RecipeError("task: this recipe type is 'sequence-lm', got '\(task)'") }
        try train.validate()
        guard model.hiddenSize % model.numHeads == 0, model.numHeads % model.numKeyValueHeads == 0 else {
            throw RecipeError("model: hidden_size must divide by num_heads, and num_heads by num_key_value_heads")
        }
        guard data.sequenceLength >= 3, data.maxStride >= 1, data.maxStride < model.vocabSize, data.validationSeed >= 0 else {
            throw RecipeError("data: need sequence_length >= 3, 1 <= max_stride < model.vocab_size and validation_seed >= 0")
        }
    }
}

/// Sequences count up from a random start by a random stride k (mod V). From the second target on,
/// the next token is determined by the context, so the loss can approach 0 only through attention.
/// Batches come from a generator whose state is checkpointed, so a resumed run sees the same data.
public final class SequenceLMTask: TrainingTask {
    public let recipe: SequenceLMRecipe
    let lm: CausalLM
    var dataRNG: RNG
    let shard: DataShard
    public var model: Module { lm }

    public init(_ recipe: SequenceLMRecipe, shard: DataShard = .whole) {
        (self.recipe, self.shard) = (recipe, shard)
        let m = recipe.model
        var rng = RNG(seed: UInt64(recipe.train.seed))
        lm = CausalLM(vocabSize: m.vocabSize, numLayers: m.numLayers,
                      TransformerConfig(hiddenSize: m.hiddenSize, numHeads: m.numHeads, numKeyValueHeads: m.numKeyValueHeads,
                                        intermediateSize: m.intermediateSize), rng: &rng)
        dataRNG = rng.split()
    }

    /// `size` sequences of the stream `rng`; with a shard, this rank's block of `size` out of the next `shard.count × size`.
    func batch(_ rng: inout RNG, size: Int, shard: DataShard = .whole) -> (ids: [Int32], targets: [Int32]) {
        let (v, length) = (recipe.model.vocabSize, recipe.data.sequenceLength)
        let draws = shard.take(size) { (start: Int(rng.next() % UInt64(v)), stride: 1 + Int(rng.next() % UInt64(recipe.data.maxStride))) }
        var ids: [Int32] = [], targets: [Int32] = []
        for (start, k) in draws {
            let seq = (0...length).map { Int32((start + $0 * k) % v) }
            ids += seq.prefix(length)
            targets += seq.dropFirst().enumerated().map { $0.offset == 0 ? -100 : $0.element }  // stride unknown yet
        }
        return (ids, targets)
    }

    func loss(_ ids: [Int32], _ targets: [Int32], size: Int) -> Tensor {
        crossEntropy(logits: lm(ids, batch: size, length: recipe.data.sequenceLength), targets: targets)
    }

    public func trainingLoss() throws -> MicroBatch {
        let started = Date()
        let (ids, targets) = batch(&dataRNG, size: recipe.train.batchSize, shard: shard)
        let dataSeconds = Date().timeIntervalSince(started)
        return MicroBatch(loss: loss(ids, targets, size: recipe.train.batchSize), samples: recipe.train.batchSize, dataSeconds: dataSeconds)
    }

    public func validationLoss(batches: Int) throws -> Double? {
        var rng = RNG(seed: UInt64(recipe.data.validationSeed))
        var total = 0.0
        for _ in 0..<batches {
            let (ids, targets) = batch(&rng, size: recipe.train.batchSize)
            total += Double(loss(ids, targets, size: recipe.train.batchSize).item())
        }
        return total / Double(max(batches, 1))
    }

    public func save(into state: inout TrainerState) { state.setRNG("data", dataRNG) }

    public func restore(from state: TrainerState) throws { dataRNG = try state.rng("data") }
}
