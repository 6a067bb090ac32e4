import Autograd
import Checkpoint
import Foundation
import TestSupport
import XCTest
@testable import Training

/// Fits y = 3x with one weight; its loss turns NaN from update `nanAfter` on, if set.
final class LineFitTask: TrainingTask {
    final class Line: Module { let weight = Tensor([0.5], shape: [1, 1], requiresGrad: true) }
    let line = Line()
    var model: Module { line }
    var calls = 0
    let nanAfter: Int?

    var extraMetrics: [String: Double] = [:]
    init(nanAfter: Int? = nil) { self.nanAfter = nanAfter }

    func trainingLoss() throws -> MicroBatch {
        calls += 1
        let x = Tensor([1, 2, 3, 4], shape: [4, 1])
        var loss = mseLoss(linear(x, weight: line.weight), x * 3)
        if let nanAfter, calls > nanAfter { loss = loss * Float.nan }
        return MicroBatch(loss: loss, samples: 4, metrics: extraMetrics)
    }
    func validationLoss(batches: Int) throws -> Double? { nil }
    func save(into state: inout TrainerState) { state.dataLoader["calls"] = calls }
    func restore(from state: TrainerState) throws { calls = state.dataLoader["calls"] ?? 0 }
}

extension XCTestCase {
    /// A run folder removed when the test ends.
    func temporaryRun(_ name: String = #function) throws -> RunDirectory {
        try RunDirectory(try temporaryFolder("run-\(name)"))
    }
}

final class TrainerTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    func testNaNLossStopsWithoutSavingAndKeepsTheLastGoodCheckpoint() throws {
        let run = try temporaryRun()
        var train = TrainSection()
        (train.steps, train.saveEvery, train.logEvery, train.keepLast) = (20, 5, 1, 5)
        var lines: [String] = []
        let outcome = try Trainer(train: train, task: LineFitTask(nanAfter: 7), run: run, log: { lines.append($0) }).run()
        XCTAssertEqual(outcome, .diverged(step: 8, reason: "loss is nan"))
        XCTAssertEqual(run.steps(), [5])
        XCTAssertEqual(run.lastStep(), 5)
        XCTAssertTrue(lines.last!.contains("last good checkpoint: step-000005"), lines.last!)
        let logged = try MetricsLog.read(run.url.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(logged.map(\.step), Array(1...7), "nothing is logged for the diverged step")
    }

    func testAccumulationAndTrainabilityPatterns() throws {
        let run = try temporaryRun()
        var train = TrainSection()
        (train.steps, train.gradientAccumulation, train.batchSize, train.learningRate) = (40, 3, 4, 0.2)
        var lines: [String] = []
        let task = LineFitTask()
        XCTAssertEqual(try Trainer(train: train, task: task, run: run, log: { lines.append($0) }).run(), .completed(step: 40))
        XCTAssertEqual(task.calls, 120, "three micro-batches per update")
        XCTAssertTrue(lines.contains("effective batch: 4 × 3 accumulation = 12 samples per update"), "\(lines)")
        XCTAssertEqual(task.line.weight.item(), 3, accuracy: 0.05, "the line is fitted")

        train.frozen = ["weight"]
        XCTAssertThrowsError(try Trainer(train: train, task: LineFitTask(), run: try temporaryRun(), log: { _ in }).run()) {
            XCTAssertTrue("\($0)".contains("no parameter is trainable"), "\($0)")
        }
        train.frozen = ["wieght"]
        XCTAssertThrowsError(try Trainer(train: train, task: LineFitTask(), run: try temporaryRun(), log: { _ in }).run()) {
            XCTAssertTrue("\($0)".contains("train.frozen: pattern 'wieght' matches no parameter"), "\($0)")
        }
    }

    /// A task metric that is NaN (0/0 accuracy on an empty batch, say) is logged but cannot break saving.
    func testNonFiniteMetricsDoNotBreakCheckpoints() throws {
        let run = try temporaryRun()
        var train = TrainSection()
        (train.steps, train.logEvery, train.saveEvery) = (4, 1, 2)
        let task = LineFitTask()
        task.extraMetrics = ["accuracy": .nan]
        XCTAssertEqual(try Trainer(train: train, task: task, run: run, log: { _ in }).run(), .completed(step: 4))
        XCTAssertEqual(run.lastStep(), 4)
    }

    /// A stop request ends that run only: the next run in the same process trains normally.
    func testAStopRequestDoesNotOutliveItsRun() throws {
        let run = try temporaryRun()
        var train = TrainSection()
        (train.steps, train.logEvery, train.saveEvery) = (10, 100, 100)
        let first = Trainer(train: train, task: LineFitTask(), run: run, log: { _ in })
        first.addEvaluationHook(every: 3, name: "stop") { _ in raise(SIGTERM); return [:] }
        XCTAssertEqual(try first.run(), .interrupted(signal: SIGTERM, step: 3))
        XCTAssertEqual(run.lastStep(), 3, "saved on the way out")
        XCTAssertEqual(try Trainer(train: train, task: LineFitTask(), run: run, log: { _ in }).run(), .completed(step: 10))
    }

    func testEvaluationHooksRunOnScheduleAndAreLogged() throws {
        let run = try temporaryRun()
        var train = TrainSection()
        (train.steps, train.logEvery) = (9, 100)
        let trainer = Trainer(train: train, task: LineFitTask(), run: run, log: { _ in })
        var calledAt: [Int] = []
        trainer.addEvaluationHook(every: 4, name: "closed_loop") { step in calledAt.append(step); return ["success": Double(step) / 10] }
        XCTAssertEqual(try trainer.run(), .completed(step: 9))
        XCTAssertEqual(calledAt, [4, 8])
        let logged = try MetricsLog.read(run.url.appendingPathComponent("metrics.jsonl")).filter { $0.values["closed_loop/success"] != nil }
        XCTAssertEqual(logged.map(\.step), [4, 8])
        XCTAssertEqual(logged.last?.values["closed_loop/success"], 0.8)
    }

    func testTensorBoardEventsReadBackWithTheTensorboardPackage() throws {
        let run = try temporaryRun()
        let writer = try TensorBoardWriter(directory: run.url)
        try writer.scalars(["loss": 2.5, "lr": 1e-3], step: 1)
        try writer.scalars(["loss": 1.25, "lr": 5e-4], step: 2)
        try writer.scalars(["val_loss": 0.75], step: 2)
        let read = try PythonReference.run("Tests/TrainingTests/Interop/read_tensorboard.py", input: ["dir": run.url.path]) as! [String: [[Double]]]
        XCTAssertEqual(read["loss"], [[1, 2.5], [2, 1.25]])
        XCTAssertEqual(read["val_loss"], [[2, 0.75]])
        XCTAssertEqual(read["lr"]?.map { $0[0] }, [1, 2])
        XCTAssertEqual(read["lr"]![0][1], Double(Float(1e-3)), accuracy: 1e-12)
    }

    /// The tiny model through `vla train`: SIGTERM mid-run saves and exits 143, the rerun resumes
    /// where it stopped and finishes, the metrics log has no gap or duplicate, and the plot renders.
    func testSigtermSavesThenResumeFinishesAndThePlotRenders() throws {
        guard FileManager.default.isExecutableFile(atPath: vlaExecutable.path) else {
            XCTFail(missingVLAMessage)
            return
        }
        let runDir = try temporaryRun().url
        let recipe = PythonReference.repoRoot.appendingPathComponent("Recipes/tiny/lm.yaml").path
        let common = ["train", recipe, "--run-dir", runDir.path, "--set", "train.log_every=1", "--set", "train.save_every=100000"]
        let process = Process()
        process.executableURL = vlaExecutable
        process.arguments = common + ["--set", "train.steps=1000000"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait until it is training (a few steps logged), then ask it to stop.
        let metrics = runDir.appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(60)
        while ((try? MetricsLog.read(metrics).count) ?? 0) < 20 && Date() < deadline { usleep(20_000) }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 128 + SIGTERM, "exit status after SIGTERM")
        let run = try RunDirectory(runDir)
        let stopped = try XCTUnwrap(run.lastStep(), "a checkpoint was saved on SIGTERM")
        XCTAssertGreaterThanOrEqual(stopped, 20)

        let resume = Process()
        resume.executableURL = vlaExecutable
        resume.arguments = common + ["--set", "train.steps=\(stopped + 15)", "--resume"]
        let out = Pipe()
        resume.standardOutput = out
        try resume.run()
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        resume.waitUntilExit()
        XCTAssertEqual(resume.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("resuming from step-\(String(format: "%06d", stopped))"), log)
        XCTAssertTrue(log.contains("OpenBLAS core"), "the run header names the BLAS kernel")
        XCTAssertEqual(run.lastStep(), stopped + 15)
        let steps = try MetricsLog.read(metrics).filter { $0.values["loss"] != nil }.map(\.step)
        XCTAssertEqual(steps, Array(1...(stopped + 15)), "one loss line per step, none lost or repeated across the resume")

        let plot = Process()
        plot.executableURL = vlaExecutable
        plot.arguments = ["plot", runDir.path]
        plot.standardOutput = FileHandle.nullDevice
        try plot.run()
        plot.waitUntilExit()
        XCTAssertEqual(plot.terminationStatus, 0)
        let png = try Data(contentsOf: runDir.appendingPathComponent("metrics.png"))
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertGreaterThan(png.count, 2000)
    }
}
