import Autograd
import Checkpoint
import Distributed
import Foundation

/// How a training run ended.
public enum TrainingOutcome: Equatable, Sendable {
    case completed(step: Int)
    /// Stopped by SIGINT/SIGTERM after saving a checkpoint at `step`.
    case interrupted(signal: Int32, step: Int)
    /// A non-finite loss or gradient at `step`; nothing was saved after the last good checkpoint.
    case diverged(step: Int, reason: String)
}

/// The loop every stage runs: micro-batches with gradient accumulation, clipping, AdamW on the
/// recipe's trainable parameters, the LR schedule, an optional moving average of the weights,
/// validation and evaluation hooks, checkpoints with retention, resume from the run folder, a NaN
/// guard, and clean stops on Ctrl-C / SIGTERM.
public final class Trainer {
    public let train: TrainSection
    public let task: TrainingTask
    public let run: RunDirectory
    let log: (String) -> Void
    private var hooks: [(every: Int, name: String, body: (Int) throws -> [String: Double])] = []

    private let heldLock: RunLock?
    private let parallel: DataParallel

    /// - Parameter lock: the run folder's write lock when the caller already holds it (`RunSetup`
    ///   takes it before touching the folder); otherwise `run()` takes it.
    /// - Parameter communicator: the data-parallel job this process is a rank of; only rank 0 logs
    ///   and writes the run folder.
    public init(train: TrainSection, task: TrainingTask, run: RunDirectory, lock: RunLock? = nil,
                communicator: Communicator = SingleProcess(), log: @escaping (String) -> Void = { print($0); fflush(nil) }) {
        (self.train, self.task, self.run, self.heldLock) = (train, task, run, lock)
        parallel = DataParallel(communicator: communicator)
        self.log = communicator.isRoot ? log : { _ in }
    }

    /// Runs `body(step)` every `every` updates (on rank 0 alone in a data-parallel job); its scalars
    /// are logged under "<name>/<key>".
    public func addEvaluationHook(every: Int, name: String, _ body: @escaping (Int) throws -> [String: Double]) {
        hooks.append((every, name, body))
    }

    public func run(header: [String] = []) throws -> TrainingOutcome {
        let lock = try heldLock ?? run.lockForWriting()
        defer { lock.release() }
        let model = task.model
        try applyTrainability(model, trainable: train.trainable, frozen: train.frozen)
        let optimizer = AdamW(model.trainableParameters(), betas: (Float(train.beta1), Float(train.beta2)),
                              eps: Float(train.eps), weightDecay: Float(train.weightDecay))
        let schedule: any LearningRateSchedule = train.schedule == "constant"
            ? ConstantSchedule(Float(train.learningRate))
            : WarmupCosineSchedule(peak: Float(train.learningRate), warmupSteps: train.warmupSteps,
                                   totalSteps: train.steps, minRatio: Float(train.minLrRatio))

        var state = TrainerState()
        var resumedFrom: String?
        var savedAverage: SafetensorsFile?
        if let resume = try run.latestCheckpoint() {
            for skipped in resume.skipped { log("warning: skipping unreadable checkpoint \(skipped)") }
            try model.load(resume.checkpoint.model)
            guard let optimizerFile = resume.checkpoint.optimizer else {
                throw StateDictError(message: "\(resume.checkpoint.url.path): no optimizer state to resume from")
            }
            try optimizer.load(optimizerFile)
            if train.emaDecay > 0 {
                guard let file = resume.checkpoint.ema else {
                    throw StateDictError(message: "\(resume.checkpoint.url.path): train.ema_decay is set but the checkpoint has no \(RunDirectory.emaFile)")
                }
                savedAverage = file
            }
            state = resume.checkpoint.state
            try task.restore(from: state)
            resumedFrom = resume.checkpoint.url.lastPathComponent
        }
        try parallel.synchronize(model: model, optimizer: optimizer, task: task, state: &state, resumedFrom: &resumedFrom, run: run)
        // replicas hold identical weights, so only rank 0, which saves, keeps the average
        let average = train.emaDecay > 0 && parallel.isRoot ? ExponentialMovingAverage(model.trainableParameters(), decay: Float(train.emaDecay)) : nil
        if let average, let savedAverage { try average.load(savedAverage) }
        let metrics = parallel.isRoot ? try MetricsLog(url: run.url.appendingPathComponent("metrics.jsonl"), resumeStep: resumedFrom == nil ? nil : state.step) : nil
        let tensorboard = parallel.isRoot ? try TensorBoardWriter(directory: run.url) : nil

        for line in header { log(line) }
        log("run: \(run.url.path) (\(resumedFrom.map { "resuming from \($0)" } ?? "new run"))")
        let ranks = parallel.size > 1 ? " × \(parallel.size) processes" : ""
        log("effective batch: \(train.batchSize) × \(train.gradientAccumulation) accumulation\(ranks) = \(train.batchSize * train.gradientAccumulation * parallel.size) samples per update")
        log("parameters (trainable / frozen):")
        for g in parameterGroupSummary(model) {
            log("  " + g.group.padding(toLength: 30, withPad: " ", startingAt: 0) + String(format: "%12d %12d", g.trainable, g.frozen))
        }
        guard !optimizer.slots.isEmpty else { throw RecipeError("train.trainable/frozen: no parameter is trainable") }
        if let average { log("EMA of the trainable weights: decay \(average.decay), in each checkpoint's \(RunDirectory.emaFile); serving and export use it") }

        StopSignal.install()
        defer { StopSignal.uninstall() }
        let progress = ProgressLine(totalSteps: train.steps, silent: !parallel.isRoot)
        var window = (loss: 0.0, samples: 0, seconds: 0.0, dataSeconds: 0.0, steps: 0)
        var lastSaved = resumedFrom == nil ? -1 : state.step

        func save() throws {
            try parallel.requireIdenticalReplicas(model, step: state.step)
            task.save(into: &state)
            let snapshot = state
            if parallel.isRoot {
                try run.save(step: snapshot.step) { dir in
                    try model.save(to: dir.appendingPathComponent(RunDirectory.modelFile))
                    try optimizer.save(to: dir.appendingPathComponent(RunDirectory.optimizerFile))
                    try average?.save(to: dir.appendingPathComponent(RunDirectory.emaFile))
                    try snapshot.write(to: dir.appendingPathComponent(RunDirectory.stateFile))
                }
                try run.applyRetention(keepLast: train.keepLast, keepEvery: train.keepEvery > 0 ? train.keepEvery : nil)
            }
            lastSaved = snapshot.step
        }

        while state.step < train.steps {
            if let signal = try parallel.pendingStopSignal() {
                progress.finish()
                if lastSaved != state.step { try save() }
                log("stopped by signal \(signal) after step \(state.step); checkpoint saved, run again to resume")
                return .interrupted(signal: signal, step: state.step)
            }
            let started = Date()
            optimizer.zeroGrad()
            task.willTrain(step: state.step)
            var stepLoss = 0.0, samples = 0, dataSeconds = 0.0
            var extra: [String: Double] = [:]
            for _ in 0..<train.gradientAccumulation {
                let batch = try task.trainingLoss()
                let value = Double(batch.loss.item())
                (train.gradientAccumulation == 1 ? batch.loss : batch.loss * (1 / Float(train.gradientAccumulation))).backward()
                stepLoss += value / Double(train.gradientAccumulation)
                samples += batch.samples
                dataSeconds += batch.dataSeconds
                for (k, v) in batch.metrics { extra[k, default: 0] += v / Double(train.gradientAccumulation) }
            }
            stepLoss = try parallel.mean(stepLoss)  // a non-finite loss on any rank stops every rank
            guard stepLoss.isFinite else {
                progress.finish()
                return diverged(step: state.step + 1, reason: "loss is \(stepLoss)", lastSaved: lastSaved)
            }
            let parameters = optimizer.slots.map(\.parameter)
            /// Averages the gradients over ranks and clips them; the norm before clipping.
            func averagedClippedNorm() throws -> Double {
                try parallel.averageGradients(parameters)
                return Double(clipGradNorm(parameters, maxNorm: train.clipNorm > 0 ? Float(train.clipNorm) : .infinity))
            }
            let gradNorm = try averagedClippedNorm()
            guard gradNorm.isFinite else {
                progress.finish()
                return diverged(step: state.step + 1, reason: "gradient norm is \(gradNorm)", lastSaved: lastSaved)
            }
            let lr = Double(schedule.learningRate(at: state.step))
            optimizer.update(learningRate: Float(lr))
            if let auxiliary = try task.auxiliaryLoss() {
                optimizer.zeroGrad()
                let value = try parallel.mean(Double(auxiliary.loss.item()))
                guard value.isFinite else {
                    progress.finish()
                    return diverged(step: state.step + 1, reason: "auxiliary loss is \(value)", lastSaved: lastSaved)
                }
                auxiliary.loss.backward()
                let norm = try averagedClippedNorm()
                guard norm.isFinite else {
                    progress.finish()
                    return diverged(step: state.step + 1, reason: "auxiliary gradient norm is \(norm)", lastSaved: lastSaved)
                }
                optimizer.update(learningRate: Float(lr))
                samples += auxiliary.samples
                dataSeconds += auxiliary.dataSeconds
                extra["aux/loss", default: 0] += value
                for (k, v) in auxiliary.metrics { extra["aux/" + k, default: 0] += v }
            }
            average?.update()
            samples = try parallel.total(samples)
            state.step += 1
            state.samplesSeen += samples
            state.learningRate = lr

            let seconds = Date().timeIntervalSince(started)
            window.loss += stepLoss; window.samples += samples; window.seconds += seconds
            window.dataSeconds += dataSeconds; window.steps += 1
            if state.step % train.logEvery == 0 || state.step == train.steps {
                let n = Double(window.steps)
                var scalars = try parallel.mean(extra.merging(["data_share": window.dataSeconds / max(window.seconds, 1e-9)]) { $1 })
                    .merging(["loss": window.loss / n, "lr": lr, "grad_norm": gradNorm,
                              "samples_per_second": Double(window.samples) / window.seconds]) { $1 }
                if let share = parallel.communicationShare() { scalars["communication_share"] = share }
                progress.show(progress.render(step: state.step, loss: window.loss / n, lr: lr,
                                              samplesPerSecond: scalars["samples_per_second"]!, dataShare: scalars["data_share"]!,
                                              secondsPerStep: window.seconds / n))
                state.metrics = scalars.filter { $0.value.isFinite }  // JSON has no NaN/Inf
                try metrics?.append(step: state.step, scalars)
                try tensorboard?.scalars(scalars, step: state.step)
                window = (0, 0, 0, 0, 0)
                scalars = [:]
            }
            if parallel.isRoot && train.evalEvery > 0 && state.step % train.evalEvery == 0, let validation = try withoutGrad({ try task.validationLoss(batches: train.evalBatches) }) {
                progress.finish()
                log(String(format: "step %d: validation loss %.4f", state.step, validation))
                try metrics?.append(step: state.step, ["val_loss": validation])
                try tensorboard?.scalars(["val_loss": validation], step: state.step)
            }
            for hook in hooks where parallel.isRoot && state.step % hook.every == 0 {
                let values = try hook.body(state.step)
                let named = Dictionary(uniqueKeysWithValues: values.map { ("\(hook.name)/\($0.key)", $0.value) })
                try metrics?.append(step: state.step, named)
                try tensorboard?.scalars(named, step: state.step)
            }
            if state.step % train.saveEvery == 0 || state.step == train.steps { try save() }
        }
        progress.finish()
        log("done: \(state.step) steps, checkpoint \(run.stepURL(state.step).lastPathComponent)")
        return .completed(step: state.step)
    }

    private func diverged(step: Int, reason: String, lastSaved: Int) -> TrainingOutcome {
        let kept = lastSaved >= 0 ? run.stepURL(lastSaved).lastPathComponent : "none"
        log("error: \(reason) at step \(step); stopping without saving (last good checkpoint: \(kept))")
        return .diverged(step: step, reason: reason)
    }
}
