import Autograd
import Checkpoint

/// What a stage plugs into the shared loop: its model, its batches and losses, and the state of its
/// data stream. Everything else (optimizer, schedule, accumulation, clipping, checkpoints, resume,
/// logging, signals) is the trainer's.
public protocol TrainingTask: AnyObject {
    var model: Module { get }

    /// The loss of the next training micro-batch (with its graph), advancing the data stream.
    func trainingLoss() throws -> MicroBatch

    /// Mean loss over `batches` validation micro-batches, or nil when the task has no validation data.
    func validationLoss(batches: Int) throws -> Double?

    /// Saves the data stream's position and generator states.
    func save(into state: inout TrainerState)

    /// Restores what `save(into:)` wrote.
    func restore(from state: TrainerState) throws

    /// A second batch trained with its own optimizer step right after each update, or nil (the
    /// default). Stage 2 interleaves its multimodal VQA batches this way, as the paper's code does.
    /// Its metrics are logged under "aux/".
    func auxiliaryLoss() throws -> MicroBatch?

    /// Called before the micro-batches of update `step` (0-based, also after a resume), for
    /// schedules a task keeps itself. The default does nothing.
    func willTrain(step: Int)
}

extension TrainingTask {
    public func auxiliaryLoss() throws -> MicroBatch? { nil }
    public func willTrain(step: Int) {}
}

public struct MicroBatch {
    public var loss: Tensor
    public var samples: Int
    /// Seconds spent producing the batch (loading, decoding), as opposed to computing on it.
    public var dataSeconds: Double
    /// Extra scalars to log (e.g. separate loss terms).
    public var metrics: [String: Double]

    public init(loss: Tensor, samples: Int, dataSeconds: Double = 0, metrics: [String: Double] = [:]) {
        (self.loss, self.samples, self.dataSeconds, self.metrics) = (loss, samples, dataSeconds, metrics)
    }
}
