import Autograd
import Foundation
import TestSupport
import XCTest
@testable import Checkpoint

/// A stand-in model whose every value equals the step it was saved at, so a checkpoint's
/// consistency can be verified from its contents alone.
final class StampModel: Module {
    let a = Tensor.zeros([512, 256], requiresGrad: true)
    let b = Tensor.zeros([256], requiresGrad: true)
    func stamp(_ value: Float) { for p in parameters() { p.pointer.update(repeating: value, count: p.count) } }
}

/// Saves checkpoint `step` of a StampModel (model, optimizer moments, trainer state all stamped).
func saveStamped(_ run: RunDirectory, step: Int) throws {
    let model = StampModel()
    model.stamp(Float(step))
    let optimizer = AdamW(model.namedParameters())
    for slot in optimizer.slots { slot.m.pointer.update(repeating: Float(step), count: slot.m.count) }
    optimizer.step = step
    try run.save(step: step) { dir in
        try model.save(to: dir.appendingPathComponent(RunDirectory.modelFile))
        try optimizer.save(to: dir.appendingPathComponent(RunDirectory.optimizerFile))
        try TrainerState(step: step).write(to: dir.appendingPathComponent(RunDirectory.stateFile))
    }
}

/// Throws unless the checkpoint is whole and every part belongs to the same step; loads it into a model.
func verifyStamped(_ files: CheckpointFiles) throws {
    let step = Float(files.state.step)
    let model = StampModel()
    try model.load(files.model)
    for p in model.parameters() where p.toArray().contains(where: { $0 != step }) {
        throw StateDictError(message: "\(files.url.path): model values differ from step \(step)")
    }
    let optimizer = AdamW(model.namedParameters())
    guard let file = files.optimizer else { throw StateDictError(message: "\(files.url.path): no optimizer state") }
    try optimizer.load(file)
    guard optimizer.step == files.state.step, optimizer.slots.allSatisfy({ $0.m.buffer.allSatisfy { $0 == step } }) else {
        throw StateDictError(message: "\(files.url.path): optimizer state differs from step \(step)")
    }
}

final class RunDirectoryTests: XCTestCase {
    func testSaveLastPointerRetentionAndResave() throws {
        let run = try RunDirectory(try temporaryFolder())
        XCTAssertNil(try run.latestCheckpoint())
        for step in stride(from: 10, through: 80, by: 10) {
            try saveStamped(run, step: step)
            try run.applyRetention(keepLast: 2, keepEvery: 40)
        }
        XCTAssertEqual(run.steps(), [40, 70, 80])
        XCTAssertEqual(run.lastStep(), 80)
        try saveStamped(run, step: 80)  // re-saving a step replaces it
        let resume = try XCTUnwrap(try run.latestCheckpoint())
        XCTAssertEqual(resume.checkpoint.state.step, 80)
        try verifyStamped(resume.checkpoint)
        let names = try FileManager.default.contentsOfDirectory(atPath: run.url.path)
        XCTAssertFalse(names.contains { $0.hasPrefix(".tmp") || $0.hasPrefix(".trash") }, "no temporary leftovers: \(names)")
    }

    func testOneWriterPerRunFolder() throws {
        let run = try RunDirectory(try temporaryFolder())
        try FileManager.default.createDirectory(at: run.url.appendingPathComponent(".tmp-step-000009-1"), withIntermediateDirectories: true)
        let lock = try run.lockForWriting()
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.url.appendingPathComponent(".tmp-step-000009-1").path), "leftovers cleared")
        // flock is per open file description, so a second lock in this process conflicts like another process would.
        XCTAssertThrowsError(try run.lockForWriting()) { XCTAssertTrue("\($0)".contains("another process (pid \(getpid()))"), "\($0)") }
        lock.release()
        XCTAssertNoThrow(try run.lockForWriting())
    }

    func testResumeFallsBackPastABrokenNewestCheckpoint() throws {
        let run = try RunDirectory(try temporaryFolder())
        try saveStamped(run, step: 1)
        try saveStamped(run, step: 2)
        // Damage the newest checkpoint behind the toolkit's back.
        let model = run.stepURL(2).appendingPathComponent(RunDirectory.modelFile)
        try Data(try Data(contentsOf: model).prefix(100)).write(to: model)
        let resume = try XCTUnwrap(try run.latestCheckpoint())
        XCTAssertEqual(resume.checkpoint.state.step, 1)
        XCTAssertEqual(resume.skipped.count, 1)
        XCTAssertTrue(resume.skipped[0].contains("step-000002"), resume.skipped[0])
    }

    func testStrictAndPartialModelLoads() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("m.safetensors")
        try Safetensors.save([("a", .full([512, 256], 3)), ("extra", .zeros([2]))], to: url)
        let model = StampModel()
        XCTAssertThrowsError(try model.load(SafetensorsFile(url: url))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("missing from the file: b") && message.contains("not in the model: extra"), message)
        }
        XCTAssertEqual(model.a.pointer[0], 0, "a failed strict load writes nothing")
        let report = try model.load(SafetensorsFile(url: url), mode: .partial)
        XCTAssertEqual(report, LoadReport(loaded: ["a"], missing: ["b"], unexpected: ["extra"]))
        XCTAssertEqual(model.a.pointer[0], 3)
        model.stamp(0)
        XCTAssertThrowsError(try model.load(SafetensorsFile(url: url), mode: .subset)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("subset load failed; not in the model: extra") && !message.contains("missing"), message)
        }
        XCTAssertEqual(model.a.pointer[0], 0, "a failed subset load writes nothing")
        try Safetensors.save([("a", .full([512, 256], 3))], to: url)
        XCTAssertEqual(try model.load(SafetensorsFile(url: url), mode: .subset), LoadReport(loaded: ["a"], missing: ["b"], unexpected: []))
        XCTAssertEqual(model.a.pointer[0], 3)

        try Safetensors.save([("a", .zeros([256, 512])), ("b", .zeros([256]))], to: url)
        XCTAssertThrowsError(try model.load(SafetensorsFile(url: url), mode: .partial)) { error in
            XCTAssertTrue("\(error)".contains("'a' has shape [256, 512] in the file, the model expects [512, 256]"), "\(error)")
        }
    }

    /// ema.safetensors holds only the averaged (trainable) weights under their parameters' names: it
    /// round-trips with its update count, loads over a model partially, and names what does not fit.
    func testEMAWeightsRoundTripAndRejectWhatDoesNotFit() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent(RunDirectory.emaFile)
        let model = StampModel()
        model.a.pointer.update(repeating: 2, count: model.a.count)
        let ema = ExponentialMovingAverage([("a", model.a)], decay: 0.9)
        model.a.pointer.update(repeating: 12, count: model.a.count)
        ema.update()  // d = 2/11: 2·2/11 + 12·9/11
        try ema.save(to: url)

        let restored = ExponentialMovingAverage([("a", model.a)], decay: 0.9)
        try restored.load(SafetensorsFile(url: url))
        XCTAssertEqual(restored.updates, 1)
        XCTAssertEqual(restored.entries[0].shadow.pointer[7], 2 * 2 / 11 + 12 * 9 / 11, accuracy: 1e-5)
        XCTAssertEqual(try model.load(SafetensorsFile(url: url), mode: .partial).missing, ["b"])
        XCTAssertEqual(model.a.pointer[0], restored.entries[0].shadow.pointer[0], "the average loads in place of the weights")

        let both = ExponentialMovingAverage([("a", model.a), ("b", model.b)], decay: 0.9)
        XCTAssertThrowsError(try both.load(SafetensorsFile(url: url))) { XCTAssertTrue("\($0)".contains("EMA file lacks 'b'"), "\($0)") }
        let bOnly = ExponentialMovingAverage([("b", model.b)], decay: 0.9)
        try Safetensors.save([("b", .zeros([256])), ("a", .zeros([512, 256]))], to: url, metadata: ["updates": "1"])
        XCTAssertThrowsError(try bOnly.load(SafetensorsFile(url: url))) { XCTAssertTrue("\($0)".contains("EMA file for parameters that do not train: a"), "\($0)") }
        try Safetensors.save([("b", .zeros([255]))], to: url, metadata: ["updates": "1"])
        XCTAssertThrowsError(try bOnly.load(SafetensorsFile(url: url))) { XCTAssertTrue("\($0)".contains("'b' has shape [255], the parameter has [256]"), "\($0)") }
        try Safetensors.save([("b", .zeros([256]))], to: url)
        XCTAssertThrowsError(try bOnly.load(SafetensorsFile(url: url))) { XCTAssertTrue("\($0)".contains("no integer 'updates'"), "\($0)") }
    }

    func testExportBundleManifestVerifiesAndDetectsTampering() throws {
        let dir = try temporaryFolder()
        let bundle = dir.appendingPathComponent("export")
        let config = Data(#"{"hidden_size": 8}"#.utf8)
        try ExportBundle.write(to: bundle, weights: [("w", .ones([2, 2]))], files: ["config.json": config, "norm_stats.json": Data("{}".utf8)])
        try ExportBundle.verify(bundle)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: bundle.appendingPathComponent("manifest.json"))) as! [String: Any]
        XCTAssertEqual(Set((manifest["files"] as! [String: Any]).keys), ["model.safetensors", "config.json", "norm_stats.json"])
        try Data(#"{"hidden_size": 9}"#.utf8).write(to: bundle.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ExportBundle.verify(bundle)) { XCTAssertTrue("\($0)".contains("config.json")) }
        XCTAssertThrowsError(try ExportBundle.write(to: bundle, weights: [], files: ["manifest.json": config]))
    }

    // MARK: crash safety

    /// Child-process entry: saves checkpoints in a loop with retention until killed.
    func testChildSaveLoop() throws {
        guard let path = ProcessInfo.processInfo.environment["INSTRUCTVLA_SAVE_LOOP_DIR"] else { return }
        let run = try RunDirectory(URL(fileURLWithPath: path))
        let lock = try run.lockForWriting()  // as a trainer does; also clears what the last kill left
        defer { lock.release() }
        var step = (run.steps().last ?? 0) + 1
        while true {
            try saveStamped(run, step: step)
            try run.applyRetention(keepLast: 2)
            step += 1
        }
    }

    /// SIGKILL at random moments during a loop of saves, 24 times: afterwards every checkpoint folder
    /// is complete and consistent, and the newest one resumes.
    func testKilledDuringSavesLeavesOnlyCompleteCheckpoints() throws {
        let dir = try temporaryFolder()
        var rng = RNG(seed: 77)
        var killedWithCheckpoints = 0
        for trial in 0..<24 {
            let child = try startTestInChildProcess("CheckpointTests.RunDirectoryTests/testChildSaveLoop",
                                                    environment: ["INSTRUCTVLA_SAVE_LOOP_DIR": dir.path])
            // Once the loop is saving (a new checkpoint appeared), kill it at a random moment. (Only
            // look: opening a RunDirectory here would clear the child's in-progress temporary folder.)
            func newest() -> Int {
                ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
                    .compactMap { $0.hasPrefix("step-") ? Int($0.dropFirst(5)) : nil }.max() ?? 0
            }
            let before = newest()
            let deadline = Date().addingTimeInterval(30)
            while newest() <= before && Date() < deadline { usleep(2_000) }
            usleep(UInt32(rng.next() % 150_000))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal, "trial \(trial): the child should have been killed mid-loop")

            let run = try RunDirectory(dir)
            for step in run.steps() {
                XCTAssertNoThrow(try verifyStamped(CheckpointFiles(run.stepURL(step))), "trial \(trial): step \(step) incomplete")
            }
            if let resume = try run.latestCheckpoint() {
                killedWithCheckpoints += 1
                XCTAssertEqual(resume.skipped, [], "trial \(trial)")
                XCTAssertEqual(resume.checkpoint.state.step, run.lastStep() ?? -1, "trial \(trial): last names the newest")
                try verifyStamped(resume.checkpoint)
            }
        }
        XCTAssertEqual(killedWithCheckpoints, 24)
    }
}
