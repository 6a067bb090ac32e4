import Foundation

/// A training run's folder:
///
///     <run>/recipe.yaml, norm_stats.json, tokenizer.json   run-level files
///     <run>/step-000500/{model,optimizer}.safetensors, trainer_state.json
///                      ema.safetensors                      with train.ema_decay: averaged weights
///     <run>/last -> step-000500                             moved last, atomically
///
/// Saves are atomic: files go into a hidden temporary folder, are fsynced, and the folder is renamed
/// to `step-N` only when complete; then `last` is replaced by a rename. Deletion (retention) first
/// renames a folder out of the `step-N` namespace. So at any instant, killed or not, every `step-N`
/// folder is complete and `last` names one of them.
public struct RunDirectory: Sendable {
    public let url: URL
    public static let modelFile = "model.safetensors"
    public static let optimizerFile = "optimizer.safetensors"
    /// The exponential moving average of the trainable weights (only those), when the run keeps one.
    public static let emaFile = "ema.safetensors"
    public static let stateFile = "trainer_state.json"

    /// Opens (creating when needed) a run folder. Reading needs nothing more; writing checkpoints
    /// should hold `lockForWriting()`.
    public init(_ url: URL) throws {
        self.url = url
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw FileSystemError(path: url.path, message: "cannot create the run folder: \(error.localizedDescription)")
        }
    }

    /// Makes this process the run folder's only writer (an advisory lock on `<run>/.lock`, released
    /// when the returned object goes away or the process dies), then clears leftovers of saves a
    /// killed writer left behind. A second trainer on the same folder gets an error naming the first.
    public func lockForWriting() throws -> RunLock {
        let path = url.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw FileSystemError.errno(path, "cannot open the run lock") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw FileSystemError(path: url.path, message: "another process (pid \(holder)) is training in this run folder")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { Foundation.write(fd, $0, strlen($0)) }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        where name.hasPrefix(".tmp-") || name.hasPrefix(".trash-") {
            try? FileManager.default.removeItem(at: url.appendingPathComponent(name))
        }
        return RunLock(fd: fd)
    }

    public func stepURL(_ step: Int) -> URL { url.appendingPathComponent(String(format: "step-%06d", step)) }

    /// Steps that have a checkpoint folder, ascending.
    public func steps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.compactMap { name in name.hasPrefix("step-") ? Int(name.dropFirst(5)) : nil }.sorted()
    }

    /// The step `last` points to, if it points to an existing checkpoint.
    public func lastStep() -> Int? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: url.appendingPathComponent("last").path),
              target.hasPrefix("step-"), let step = Int(target.dropFirst(5)),
              FileManager.default.fileExists(atPath: stepURL(step).path) else { return nil }
        return step
    }

    /// Writes checkpoint `step`: `body` fills a temporary folder (each file written atomically),
    /// which then becomes `step-N` and the target of `last`. Re-saving a step replaces it.
    @discardableResult
    public func save(step: Int, _ body: (URL) throws -> Void) throws -> URL {
        let temporary = url.appendingPathComponent(".tmp-\(String(format: "step-%06d", step))-\(getpid())")
        try? FileManager.default.removeItem(at: temporary)
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: false)
        do {
            try body(temporary)
            try fsyncDirectory(temporary.path)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        let final = stepURL(step)
        if FileManager.default.fileExists(atPath: final.path) { try discard(final) }
        guard rename(temporary.path, final.path) == 0 else {
            throw FileSystemError.errno(final.path, "cannot move the finished checkpoint into place")
        }
        try fsyncDirectory(url.path)
        try pointLast(at: final.lastPathComponent)
        return final
    }

    /// Keeps the newest `keepLast` checkpoints, plus every one whose step is a multiple of
    /// `keepEvery`, plus whatever `last` points to; removes the others.
    public func applyRetention(keepLast: Int, keepEvery: Int? = nil) throws {
        let all = steps()
        let last = lastStep()
        for step in all.dropLast(max(keepLast, 0)) where step != last {
            if let every = keepEvery, every > 0, step % every == 0 { continue }
            try discard(stepURL(step))
        }
    }

    /// Writes a run-level file (resolved recipe, norm stats, tokenizer) atomically.
    public func writeFile(_ name: String, _ data: Data) throws {
        try writeAtomically(url.appendingPathComponent(name)) { try $0.write(data) }
    }

    private func pointLast(at target: String) throws {
        let link = url.appendingPathComponent("last").path
        let temporary = url.appendingPathComponent(".tmp-last-\(getpid())").path
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw FileSystemError.errno(temporary, "cannot create symlink") }
        guard rename(temporary, link) == 0 else { throw FileSystemError.errno(link, "cannot replace the last pointer") }
        try fsyncDirectory(url.path)
    }

    /// Renames out of the step namespace first (atomic), then deletes.
    private func discard(_ folder: URL) throws {
        let trash = url.appendingPathComponent(".trash-\(folder.lastPathComponent)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard rename(folder.path, trash.path) == 0 else { throw FileSystemError.errno(folder.path, "cannot retire checkpoint") }
        try fsyncDirectory(url.path)
        try? FileManager.default.removeItem(at: trash)
    }
}

/// Holds a run folder's write lock until released or deinitialised.
public final class RunLock {
    private var fd: Int32
    init(fd: Int32) { self.fd = fd }
    public func release() { if fd >= 0 { close(fd); fd = -1 } }
    deinit { release() }
}

/// The files of one checkpoint folder, opened and validated.
public struct CheckpointFiles {
    public let url: URL
    public let model: SafetensorsFile
    public let optimizer: SafetensorsFile?
    public let ema: SafetensorsFile?
    public let state: TrainerState

    /// Opens `step-N` (or any folder with the three files, and the EMA weights where the run keeps
    /// them); throws if any part is missing or invalid.
    public init(_ url: URL) throws {
        self.url = url
        model = try SafetensorsFile(url: url.appendingPathComponent(RunDirectory.modelFile))
        let optimizerURL = url.appendingPathComponent(RunDirectory.optimizerFile)
        optimizer = FileManager.default.fileExists(atPath: optimizerURL.path) ? try SafetensorsFile(url: optimizerURL) : nil
        let emaURL = url.appendingPathComponent(RunDirectory.emaFile)
        ema = FileManager.default.fileExists(atPath: emaURL.path) ? try SafetensorsFile(url: emaURL) : nil
        state = try TrainerState.read(from: url.appendingPathComponent(RunDirectory.stateFile))
    }
}

/// Where a resumed run starts, and any newer checkpoint folders that could not be opened.
public struct ResumePoint {
    public let checkpoint: CheckpointFiles
    /// "path: reason" for each newer folder that was skipped.
    public let skipped: [String]
}

extension RunDirectory {
    /// The checkpoint to resume from: `last` if it opens, else the newest step folder that opens.
    /// Returns nil for a run with no checkpoint; throws if there are checkpoints and none opens.
    public func latestCheckpoint() throws -> ResumePoint? {
        var candidates = Array(steps().reversed())
        if let last = lastStep() { candidates.removeAll { $0 == last }; candidates.insert(last, at: 0) }
        var skipped: [String] = []
        var firstError: Error?
        for step in candidates {
            do {
                return ResumePoint(checkpoint: try CheckpointFiles(stepURL(step)), skipped: skipped)
            } catch {
                firstError = firstError ?? error
                skipped.append("\(stepURL(step).path): \(error)")
            }
        }
        if let firstError { throw firstError }
        return nil
    }
}
