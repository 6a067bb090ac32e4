import Checkpoint
import Foundation
import TestSupport
import XCTest
@testable import Training

/// Stages 1 and 2 on the tiny fixture as MPI jobs of `pretrain-action` and `instruct-tune`:
/// equivalence with one process, failures that end the job, and two "hosts" (network namespaces)
/// talking TCP.
final class DataParallelTrainingTests: XCTestCase {
    static let fixture: Result<URL, Error> = Result {
        let dir = try TemporaryFolder.forProcess("dp")
        let demos = dir.appendingPathComponent("demos"), shapes = dir.appendingPathComponent("shapes.hdf5")
        try TinyFixtures.demonstrations("reach-v3,push-v3", perTask: 2, into: demos)
        try TinyFixtures.shapes(into: shapes)
        let vlmRecipe = dir.appendingPathComponent("vlm.yaml"), vlmRun = dir.appendingPathComponent("vlm")
        try TinyFixtures.vlmRecipe(shapes: shapes).write(to: vlmRecipe, atomically: true, encoding: .utf8)
        let (status, output) = try MPIJobs.run(try MPIJobs.executable("pretrain-vlm"), [vlmRecipe.path, "--run-dir", vlmRun.path],
                                               log: dir.appendingPathComponent("vlm.log"))
        guard status == 0 else { throw CommunicatorTestError("the stage-0 fixture run failed (\(status)):\n\(output)") }
        let recipe = dir.appendingPathComponent("stage1.yaml")
        try TinyFixtures.stage1Recipe(vlm: vlmRun, demos: demos).write(to: recipe, atomically: true, encoding: .utf8)
        return recipe
    }

    /// A stage-2 recipe over a stage-1 run of the fixture (trained once, as one process): plain
    /// commands only, so that every sample has the same number of LM targets (the queries), and no
    /// dropout in either LoRA (the action LoRA's comes from the stage-1 recipe) or the router.
    static let stage2Fixture: Result<URL, Error> = Result {
        let stage1Recipe = try fixture.get(), dir = stage1Recipe.deletingLastPathComponent()
        let stage1Run = dir.appendingPathComponent("stage1")
        let (status, output) = try MPIJobs.run(try MPIJobs.executable("pretrain-action"), [stage1Recipe.path, "--run-dir", stage1Run.path, "--set", "lora.dropout=0"],
                                               log: dir.appendingPathComponent("stage1.log"))
        guard status == 0 else { throw CommunicatorTestError("the stage-1 fixture run failed (\(status)):\n\(output)") }
        let recipe = dir.appendingPathComponent("stage2.yaml")
        try """
        task: instruct-tune
        model: {stage1: '\(stage1Run.path)'}
        lora: {rank: 2, dropout: 0}
        router: {width: 8, depth: 2, dropout: 0}
        mix: {plain: 1, dialogue: 0, context: 0, rewriting: 0, motion: 0}
        flow: {samples: 2}
        data: {files: ['\(dir.path)/demos/*-v3.hdf5'], horizon: 4}
        train: {steps: 4, batch_size: 4, learning_rate: 1.0e-3, save_every: 4, log_every: 1}
        """.write(to: recipe, atomically: true, encoding: .utf8)
        return recipe
    }

    /// Trains the stage-1 fixture in `run`: as one plain process (np nil) or as an mpirun job.
    func stage1(np: Int?, _ run: URL, _ settings: [String], environment: [String: String] = [:],
                mpirunArguments: [String] = []) throws -> (status: Int32, output: String) {
        try job("pretrain-action", recipe: try Self.fixture.get(), np: np, run, settings, environment: environment, mpirunArguments: mpirunArguments)
    }

    /// Trains `recipe` with `executable` in `run`: as one plain process (np nil) or as an mpirun job.
    func job(_ executable: String, recipe: URL, np: Int?, _ run: URL, _ settings: [String], environment: [String: String] = [:],
             mpirunArguments: [String] = []) throws -> (status: Int32, output: String) {
        let executable = try MPIJobs.executable(executable)
        let arguments = [recipe.path, "--run-dir", run.path] + settings.flatMap { ["--set", $0] }
        let log = run.deletingLastPathComponent().appendingPathComponent(run.lastPathComponent + "-\(UUID().uuidString.prefix(4)).log")
        guard let np else { return try MPIJobs.run(executable, arguments, log: log, environment: environment) }
        return try MPIJobs.run(try MPIJobs.mpirun(), MPIJobs.localArguments(np: np) + mpirunArguments + [executable.path] + arguments,
                               log: log, environment: environment)
    }

    /// 2 ranks × batch 4 end where 1 process × batch 8 ends: the same losses step for step, the same
    /// stream position, and parameters within 1e-6 relative: float sums grouped differently are all
    /// that separates them (Adam turns that noise into full steps where a gradient is zero but for
    /// rounding, such as key biases, so the difference scales with the learning rate: the tiny stage-1
    /// recipe's 1e-3 here). LoRA dropout is off and no sample gets a motion phrase, so every rank's mean
    /// loss weighs its samples as the single process does.
    func testTwoRanksMatchOneProcessWithTheDoubleBatch() throws {
        let root = try temporaryFolder("dp-equivalence")
        let common = ["train.steps=4", "train.save_every=4", "train.learning_rate=1e-3", "lora.dropout=0", "motion.fraction=0"]
        let one = try stage1(np: nil, root.appendingPathComponent("one"), common + ["train.batch_size=8"])
        XCTAssertEqual(one.status, 0, one.output)
        let two = try stage1(np: 2, root.appendingPathComponent("two"), common + ["train.batch_size=4"])
        XCTAssertEqual(two.status, 0, two.output)
        XCTAssertTrue(two.output.contains("effective batch: 4 × 1 accumulation × 2 processes = 8 samples per update"), two.output)

        try assertSameTraining(root.appendingPathComponent("one"), root.appendingPathComponent("two"), steps: 4, samples: 32)
    }

    /// Stage 2 as 2 ranks × batch 2 ends where 1 process × batch 4 ends, as stage 1 does above: each
    /// sample's text, flow time and noise follow from its place in the stream, and the adapters, the
    /// router and the query rows get the averaged gradient. (The multimodal batches are off here: their
    /// answers differ in length, and each rank's LM loss is the mean over its own tokens; that they
    /// split one process's batch is InstructTuningTests' to show.)
    func testStage2TwoRanksMatchOneProcessWithTheDoubleBatch() throws {
        let recipe = try Self.stage2Fixture.get()
        let root = try temporaryFolder("dp-stage2")
        let one = try job("instruct-tune", recipe: recipe, np: nil, root.appendingPathComponent("one"), ["train.batch_size=4"])
        XCTAssertEqual(one.status, 0, one.output)
        let two = try job("instruct-tune", recipe: recipe, np: 2, root.appendingPathComponent("two"), ["train.batch_size=2"])
        XCTAssertEqual(two.status, 0, two.output)
        XCTAssertTrue(two.output.contains("effective batch: 2 × 1 accumulation × 2 processes = 4 samples per update"), two.output)
        try assertSameTraining(root.appendingPathComponent("one"), root.appendingPathComponent("two"), steps: 4, samples: 16)
    }

    /// The runs in `one` (a single process) and `two` (a job) took the same losses step for step, ended
    /// at the same stream position after `samples` samples, and hold the same parameters within 1e-6.
    func assertSameTraining(_ one: URL, _ two: URL, steps: Int, samples: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let losses = try [one, two].map { try MetricsLog.read($0.appendingPathComponent("metrics.jsonl")).compactMap { $0.values["loss"] } }
        XCTAssertEqual(losses.map(\.count), [steps, steps], file: file, line: line)
        for (a, b) in zip(losses[0], losses[1]) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "loss per step", file: file, line: line) }

        let checkpoint = String(format: "step-%06d", steps)
        let states = try [one, two].map { try TrainerState.read(from: $0.appendingPathComponent("\(checkpoint)/trainer_state.json")) }
        XCTAssertEqual(states[0].dataLoader, states[1].dataLoader, "the same position in the same data stream", file: file, line: line)
        XCTAssertEqual(states.map(\.samplesSeen), [samples, samples], file: file, line: line)
        XCTAssertEqual(states.map(\.worldSize), [nil, 2], file: file, line: line)

        let models = try [one, two].map { try SafetensorsFile(path: $0.appendingPathComponent("\(checkpoint)/model.safetensors").path) }
        XCTAssertEqual(models[0].names, models[1].names)
        var difference = 0.0, norm = 0.0
        for name in models[0].names {
            let (a, b) = (try models[0].tensor(name).toArray(), try models[1].tensor(name).toArray())
            for (x, y) in zip(a, b) { difference += Double(x - y) * Double(x - y); norm += Double(x) * Double(x) }
        }
        XCTAssertLessThan((difference / norm).squareRoot(), 1e-6, "relative difference of the trained parameters", file: file, line: line)
        XCTAssertGreaterThan(norm, 0, file: file, line: line)
    }

    /// A rank killed mid-run ends the job within seconds with a non-zero status; the run resumes from
    /// its last checkpoint with the same number of processes, and refuses (naming both sizes) with another.
    /// A rank that stops answering (SIGSTOP) ends the job after INSTRUCTVLA_MPI_TIMEOUT.
    func testAKilledOrHungRankEndsTheJobAndTheRunResumes() throws {
        let root = try temporaryFolder("dp-kill")
        let run = root.appendingPathComponent("run")
        let executable = try MPIJobs.executable("pretrain-action")
        let long = [try Self.fixture.get().path, "--run-dir", run.path, "--set", "train.steps=100000", "--set", "train.save_every=2"]
        let job = try MPIJobs.start(try MPIJobs.mpirun(), MPIJobs.localArguments(np: 2) + [executable.path] + long, log: root.appendingPathComponent("killed.log"))
        defer { if job.isRunning { job.terminate() } }
        XCTAssertTrue(MPIJobs.poll(seconds: 60) { (try? RunDirectory(run).steps().count) ?? 0 >= 2 }, "no checkpoint within 60 s")
        let victims = MPIJobs.ranks(1, mentioning: run.path)
        XCTAssertEqual(victims.count, 1, "rank 1's process")
        let killed = Date()
        for pid in victims { kill(pid, SIGKILL) }
        XCTAssertTrue(MPIJobs.wait(job, seconds: 10), "the job outlived its killed rank by 10 s")
        XCTAssertNotEqual(job.terminationStatus, 0)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 10)
        print(String(format: "killed rank 1: mpirun exited with %d after %.2f s", job.terminationStatus, Date().timeIntervalSince(killed)))
        XCTAssertTrue(MPIJobs.poll(seconds: 5) { MPIJobs.ranks(0, mentioning: run.path).isEmpty }, "rank 0 lives on")

        let last = try XCTUnwrap(try RunDirectory(run).steps().max())
        let resumed = try stage1(np: 2, run, ["train.steps=\(last + 2)", "train.save_every=2"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resuming from step-\(String(format: "%06d", last))"), resumed.output)
        XCTAssertEqual(try RunDirectory(run).steps().max(), last + 2)

        let alone = try stage1(np: nil, run, ["train.steps=\(last + 4)", "train.save_every=2"])
        XCTAssertEqual(alone.status, 2, alone.output)
        XCTAssertTrue(alone.output.contains("was written by a job of 2 process(es), this job has 1"), alone.output)

        let hung = try MPIJobs.start(try MPIJobs.mpirun(), MPIJobs.localArguments(np: 2) + [executable.path] + long,
                                     log: root.appendingPathComponent("hung.log"), environment: ["INSTRUCTVLA_MPI_TIMEOUT": "3"])
        defer { if hung.isRunning { hung.terminate() } }
        XCTAssertTrue(MPIJobs.poll(seconds: 60) { (try? RunDirectory(run).steps().max() ?? 0) ?? 0 > last + 2 }, "the restarted job made no checkpoint")
        let stopped = Date()
        for pid in MPIJobs.ranks(1, mentioning: run.path) { kill(pid, SIGSTOP) }
        XCTAssertTrue(MPIJobs.wait(hung, seconds: 15), "the job outlived its hung rank by 15 s")
        XCTAssertNotEqual(hung.terminationStatus, 0)
        XCTAssertLessThan(Date().timeIntervalSince(stopped), 15)
        print(String(format: "stopped rank 1: mpirun exited with %d after %.2f s", hung.terminationStatus, Date().timeIntervalSince(stopped)))
        let log = try String(contentsOf: root.appendingPathComponent("hung.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("rank 0 of 2: no answer from the other ranks for 3 s"), log)
    }
}

struct CommunicatorTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
