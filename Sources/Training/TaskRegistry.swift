import Autograd
import Distributed
import Episodes
import Foundation

/// Recipe `task:` names and how to train them. Each stage registers its recipe type and task here.
public enum TaskRegistry {
    public static let names = ["sequence-lm", "vlm", "pretrain-action", "instruct-tune"]

    /// Resolves the recipe, prepares the run folder and trains; returns how the run ended.
    /// - Parameter requiredTask: the task a stage executable runs (e.g. "vlm" for `pretrain-vlm`).
    /// - Parameter job: the data-parallel job this process is a rank of: rank 0 reads the recipe and
    ///   the run folder, and every rank trains on its shard of the data.
    public static func train(recipe url: URL, overrides: [String], runDirectory: URL?, mode: ResumeMode,
                             command: String, requiredTask: String? = nil, job: Communicator = SingleProcess()) throws -> TrainingOutcome {
        let task = try String(decoding: job.broadcast(Data((job.isRoot ? try taskName(url, overrides: overrides, requiredTask: requiredTask) : "").utf8)),
                              as: UTF8.self)
        let header = RunHeader.lines(command: command, recipe: url.path) + (job.size > 1 ? ["data parallel: \(job.size) processes (MPI)"] : [])
        let shard = DataShard(rank: job.rank, count: job.size)
        func prepare<R: RecipeSchema>(_ type: R.Type) throws -> PreparedRun<R> {
            try RunSetup.prepare(type, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode, job: job)
        }
        switch task {
        case "sequence-lm":
            let prepared = try prepare(SequenceLMRecipe.self)
            let trainer = Trainer(train: prepared.recipe.train, task: SequenceLMTask(prepared.recipe, shard: shard), run: prepared.run,
                                  lock: prepared.lock, communicator: job)
            return try trainer.run(header: header + prepared.notes)
        case "vlm":
            let prepared = try prepare(VLMRecipe.self)
            let task = try DataParallel.makeTask(job, run: prepared.run) { try VLMTask(prepared.recipe, run: prepared.run, shard: shard) }
            let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock, communicator: job)
            let (every, examples) = (prepared.recipe.train.evalEvery, prepared.recipe.data.evalExamples)
            if every > 0 && examples > 0 {
                trainer.addEvaluationHook(every: every, name: "vqa") { step in
                    let score = try withoutGrad { try task.exactMatch(split: prepared.recipe.data.testSplit, limit: examples) }
                    print(String(format: "step %d: held-out exact match %.1f%% on %d examples", step, score.accuracy * 100, examples))
                    fflush(nil)
                    return ["exact_match": score.accuracy]
                }
            }
            return try trainer.run(header: header + prepared.notes)
        case "pretrain-action":
            let prepared = try prepare(ActionPretrainingRecipe.self)
            let task = try DataParallel.makeTask(job, run: prepared.run) { try ActionPretrainingTask(prepared.recipe, run: prepared.run, shard: shard) }
            let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock, communicator: job)
            return try trainer.run(header: header + prepared.notes + ["stage 0: \(prepared.recipe.model.vlm)"])
        case "instruct-tune":
            let prepared = try prepare(InstructTuningRecipe.self)
            let task = try DataParallel.makeTask(job, run: prepared.run) { try InstructTuningTask(prepared.recipe, run: prepared.run, shard: shard) }
            let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock, communicator: job)
            let mode = prepared.recipe.model.fullFinetune ? "full LM fine-tune (ablation)" : "MoE-LoRA (language + action adapters, per-token router)"
            let warnings = task.unannotatedFiles.map {
                "warning: \($0) has no VLA-IT annotations (Datasets/metaworld/annotate.py adds them): its samples train as plain commands only"
            }
            let tokenizer = task.stage1.prompt.tokenizer
            let vocabulary = task.unseenTokens.isEmpty ? [] : [
                "vocabulary: the query rows and \(task.unseenTokens.count) rows of tokens the VLM never read train: " +
                task.unseenTokens.map { tokenizer.decode([$0]).debugDescription }.joined(separator: " "),
            ]
            return try trainer.run(header: header + prepared.notes + ["stage 1: \(task.stage1.source.path)", "stage 2: \(mode)"] + vocabulary + warnings)
        default:
            let hint = RecipeValidator.closest(task, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            throw RecipeError("\(url.path): task: unknown task '\(task)'\(hint); known: \(names.joined(separator: ", "))")
        }
    }

    /// The recipe's `task:`, checked against the one the command trains.
    static func taskName(_ url: URL, overrides: [String], requiredTask: String?) throws -> String {
        let raw = try RecipeLoader.load(url, overrides: overrides)
        guard case .map(let top) = raw, case .string(let task)? = top["task"] else {
            throw RecipeError("\(url.path): missing 'task:' (one of \(names.joined(separator: ", ")))")
        }
        if let requiredTask, task != requiredTask {
            throw RecipeError("\(url.path): task is '\(task)', but this command trains '\(requiredTask)' recipes")
        }
        return task
    }
}
