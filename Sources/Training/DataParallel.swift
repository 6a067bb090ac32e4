import Autograd
import Checkpoint
import Distributed
import Episodes
import Foundation

/// What the trainer does as one rank of a data-parallel job (`mpirun -np N`): every rank trains a
/// replica on its shard of each batch, gradients are averaged before clipping and the update, and
/// rank 0 alone reads and writes the run folder. With one process every call here is the identity.
final class DataParallel {
    let communicator: Communicator
    var isRoot: Bool { communicator.isRoot }
    var size: Int { communicator.size }

    /// What rank 0 knows after reading the run folder, sent to the others.
    private struct Start: Codable {
        var state: TrainerState
        var resumedFrom: String?
        /// Rank 0's path of the checkpoint resumed from, for messages.
        var checkpoint: String?
        var optimizerStep: Int
    }

    /// Puts rank 0's parameters, optimizer moments and trainer state on every rank, and refuses to
    /// resume a checkpoint written by a job of another size: each rank reads 1/N of every batch of the
    /// stream, so the global batch (and with it the training) would silently change.
    func synchronize(model: Module, optimizer: AdamW, task: TrainingTask, state: inout TrainerState,
                     resumedFrom: inout String?, run: RunDirectory) throws {
        var checkpoint = resumedFrom.map { run.url.appendingPathComponent($0).path }
        if size > 1 {
            let mine = try JSONEncoder().encode(Start(state: state, resumedFrom: resumedFrom, checkpoint: checkpoint, optimizerStep: optimizer.step))
            let start = try JSONDecoder().decode(Start.self, from: try communicator.broadcast(mine))
            try communicator.broadcast(model.parameters())
            try communicator.broadcast(optimizer.slots.flatMap { [$0.m, $0.v] }.map { UnsafeMutableBufferPointer(start: $0.pointer, count: $0.count) })
            if !isRoot {
                (state, resumedFrom, checkpoint, optimizer.step) = (start.state, start.resumedFrom, start.checkpoint, start.optimizerStep)
            }
        }
        if let checkpoint, case let saved = state.worldSize ?? 1, saved != size {
            throw RecipeError("\(checkpoint) was written by a job of \(saved) process(es), this job has \(size): " +
                              "each process trains on 1/N of every batch, so resuming would change the global batch. " +
                              "Resume with \(saved) process(es) (mpirun -np \(saved), make … NP=\(saved)), " +
                              "or start a new run with --overwrite or another --run-dir")
        }
        if size > 1 && !isRoot && resumedFrom != nil { try task.restore(from: state) }
        state.worldSize = size > 1 ? size : nil
        (lastShareCall, lastCommunicationSeconds) = (Date(), communicator.communicationSeconds)  // shares count from the first step
    }

    /// The mean of `value` over ranks (a non-finite value on any rank makes it non-finite everywhere).
    func mean(_ value: Double) throws -> Double {
        size == 1 ? value : try communicator.allReduce([value], .sum)[0] / Double(size)
    }

    func total(_ value: Int) throws -> Int {
        size == 1 ? value : Int(try communicator.allReduce([Double(value)], .sum)[0])
    }

    /// Means over ranks of named scalars (every rank has the same names).
    func mean(_ values: [String: Double]) throws -> [String: Double] {
        guard size > 1 else { return values }
        let keys = values.keys.sorted()
        let sums = try communicator.allReduce(keys.map { values[$0]! }, .sum)
        return Dictionary(uniqueKeysWithValues: zip(keys, sums.map { $0 / Double(size) }))
    }

    /// The stop signal any rank has received, so that all ranks stop after the same step.
    func pendingStopSignal() throws -> Int32? {
        guard size > 1 else { return StopSignal.pending }
        let signal = try communicator.allReduce([Double(StopSignal.pending ?? 0)], .max)[0]
        return signal > 0 ? Int32(signal) : nil
    }

    func averageGradients(_ parameters: [Tensor]) throws {
        try communicator.averageGradients(parameters)
    }

    /// Fails unless the replicas are bit-identical (checked at every save).
    func requireIdenticalReplicas(_ model: Module, step: Int) throws {
        try communicator.requireIdentical(model.parameters(), "the model after step \(step)")
    }

    /// Fraction of the wall-clock time since the last call (or since the job started) spent in
    /// collectives, waiting for other ranks included; nil with one process.
    func communicationShare() -> Double? {
        guard size > 1 else { return nil }
        let (now, spent) = (Date(), communicator.communicationSeconds)
        defer { (lastShareCall, lastCommunicationSeconds) = (now, spent) }
        return (spent - lastCommunicationSeconds) / max(now.timeIntervalSince(lastShareCall), 1e-9)
    }
    private var lastShareCall = Date()
    private var lastCommunicationSeconds = 0.0

    init(communicator: Communicator) { self.communicator = communicator }

    /// The data a rank trains on.
    var shard: DataShard { DataShard(rank: communicator.rank, count: size) }

    /// Where a rank other than 0 keeps the files its task writes while setting up (tokenizer, norm
    /// statistics): the run folder is rank 0's alone.
    static func scratchFolder(rank: Int) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("instructvla-rank\(rank)-pid\(getpid())")
    }

    /// Removes the scratch folders of ranks whose process is gone (killed before it could clean up).
    static func removeStaleScratchFolders() {
        let temporary = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix("instructvla-rank") {
            guard let pid = name.split(separator: "-pid").last.flatMap({ pid_t($0) }), kill(pid, 0) != 0 && errno == ESRCH else { continue }
            try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
        }
    }
}

extension RunSetup {
    /// `prepare` for a data-parallel job: rank 0 resolves the recipe and prepares the run folder as one
    /// process would; the other ranks train on rank 0's resolved recipe (their own recipe files and
    /// overrides may differ or be absent) in a scratch folder.
    static func prepare<R: RecipeSchema>(_ type: R.Type, recipe url: URL, overrides: [String], runDirectory: URL?,
                                         mode: ResumeMode, job: Communicator) throws -> PreparedRun<R> {
        guard job.size > 1 else { return try prepare(type, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode) }
        let prepared = job.isRoot ? try prepare(type, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode) : nil
        let yaml = try job.broadcast(Data((try prepared?.resolved.yaml() ?? "").utf8))
        if let prepared { return prepared }
        let source = "the recipe resolved by rank 0 (\(url.path))"
        let (recipe, resolved) = try RecipeValidator.resolve(try parseYAML(String(decoding: yaml, as: UTF8.self), source: source),
                                                             as: type, source: source)
        DataParallel.removeStaleScratchFolders()
        let scratch = DataParallel.scratchFolder(rank: job.rank)
        let run = try RunDirectory(scratch)
        return PreparedRun(recipe: recipe, resolved: resolved, run: run, resuming: false, lock: try run.lockForWriting(), notes: [])
    }
}

extension DataParallel {
    /// Builds the task on rank 0, then on the other ranks over a copy of the files rank 0's run folder
    /// holds by then (tokenizer, norm statistics, ...): every rank's task reads what rank 0's read.
    static func makeTask<T>(_ job: Communicator, run: RunDirectory, _ make: () throws -> T) throws -> T {
        guard job.size > 1 else { return try make() }
        let task = job.isRoot ? try make() : nil
        let files = try job.broadcast(job.isRoot ? try JSONEncoder().encode(setupFiles(run.url)) : Data())
        if let task { return task }
        for (name, data) in try JSONDecoder().decode([String: Data].self, from: files) {
            try data.write(to: run.url.appendingPathComponent(name))
        }
        return try make()
    }

    /// The run folder's top-level files, less the logs and the lock.
    private static func setupFiles(_ folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path)
        where name != ".lock" && name != "metrics.jsonl" && !name.hasPrefix("events.out.tfevents") {
            let url = folder.appendingPathComponent(name)
            guard (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true else { continue }
            files[name] = try Data(contentsOf: url)
        }
        return files
    }
}
