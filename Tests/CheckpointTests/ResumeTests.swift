import Autograd
import Foundation
import Models
import TestSupport
import XCTest
@testable import Checkpoint

/// A miniature training run that checkpoints everything a real one must: weights, AdamW moments and
/// step, the data order (epoch, cursor and the shuffle generator's state at the epoch's start), and
/// the dropout generator.
struct MiniRun {
    static let sequences = 24, length = 8, batch = 4, vocab = 12

    let run: RunDirectory
    let model: CausalLM
    let optimizer: AdamW
    let schedule = WarmupCosineSchedule(peak: 5e-3, warmupSteps: 3, totalSteps: 12)
    var state = TrainerState()
    var epochStartRNG = RNG(seed: 1)  // shuffles the data at each epoch start
    var dropoutRNG = RNG(seed: 2)
    var order: [Int] = []
    let data: [[Int32]]

    init(directory: URL) throws {
        run = try RunDirectory(directory)
        var init_ = RNG(seed: 3)
        model = CausalLM(vocabSize: Self.vocab, numLayers: 1,
                         TransformerConfig(hiddenSize: 16, numHeads: 2, numKeyValueHeads: 1, intermediateSize: 32), rng: &init_)
        optimizer = AdamW(model.trainableParameters())
        data = (0..<Self.sequences).map { s in (0...Self.length).map { Int32((s * 7 + $0 * (1 + s % 3)) % Self.vocab) } }
        if let resume = try run.latestCheckpoint() {
            try model.load(resume.checkpoint.model)
            try optimizer.load(resume.checkpoint.optimizer!)
            state = resume.checkpoint.state
            epochStartRNG = try state.rng("epoch_start")
            dropoutRNG = try state.rng("dropout")
        }
        order = shuffled(epochStartRNG)
    }

    func shuffled(_ start: RNG) -> [Int] {
        var rng = start
        return Array(0..<Self.sequences).shuffled(using: &rng)
    }

    /// Trains until `step` updates are done, saving every `saveEvery`; returns the losses.
    mutating func train(until step: Int, saveEvery: Int) throws -> [Float] {
        var losses: [Float] = []
        while state.step < step {
            var cursor = state.dataLoader["cursor", default: 0]
            if cursor + Self.batch > Self.sequences {  // next epoch: advance the shuffle generator
                _ = epochStartRNG.next()
                order = shuffled(epochStartRNG)
                state.epoch += 1
                cursor = 0
            }
            let rows = order[cursor..<(cursor + Self.batch)].map { data[$0] }
            let ids = rows.flatMap { $0.prefix(Self.length) }, targets = rows.flatMap { $0.dropFirst() }
            let hidden = dropout(model.hiddenStates(ids, batch: Self.batch, length: Self.length), p: 0.1, rng: &dropoutRNG)
            let loss = crossEntropy(logits: model.logits(hidden), targets: Array(targets))
            optimizer.zeroGrad()
            loss.backward()
            clipGradNorm(model.parameters(), maxNorm: 1)
            optimizer.update(learningRate: schedule.learningRate(at: state.step))
            losses.append(loss.item())
            state.step += 1
            state.samplesSeen += Self.batch
            state.dataLoader["cursor"] = cursor + Self.batch
            if state.step % saveEvery == 0 { try save() }
        }
        return losses
    }

    mutating func save() throws {
        state.setRNG("epoch_start", epochStartRNG)
        state.setRNG("dropout", dropoutRNG)
        let state = state
        try run.save(step: state.step) { dir in
            try model.save(to: dir.appendingPathComponent(RunDirectory.modelFile))
            try optimizer.save(to: dir.appendingPathComponent(RunDirectory.optimizerFile))
            try state.write(to: dir.appendingPathComponent(RunDirectory.stateFile))
        }
    }

    /// SHA-256 over every parameter's bytes in name order.
    func parameterHash() -> String {
        var hasher = SHA256()
        for (_, p) in model.namedParameters() { hasher.update(UnsafeRawBufferPointer(p.storage.buffer)) }
        return hasher.finalize()
    }
}

final class ResumeTests: XCTestCase {
    /// Child-process entry: trains a MiniRun in INSTRUCTVLA_MINIRUN_DIR up to INSTRUCTVLA_MINIRUN_UNTIL
    /// steps (resuming if it can), then writes its losses and parameter hash and exits.
    func testChildMiniRun() throws {
        let env = ProcessInfo.processInfo.environment
        guard let dir = env["INSTRUCTVLA_MINIRUN_DIR"], let until = Int(env["INSTRUCTVLA_MINIRUN_UNTIL"] ?? "") else { return }
        var run = try MiniRun(directory: URL(fileURLWithPath: dir))
        let losses = try run.train(until: until, saveEvery: 5)
        let report: [String: Any] = ["losses": losses.map { Int($0.bitPattern) }, "hash": run.parameterHash()]
        try JSONSerialization.data(withJSONObject: report).write(to: URL(fileURLWithPath: dir + ".json"))
    }

    func runChild(_ dir: URL, until: Int) throws -> (losses: [Int], hash: String) {
        let (status, output) = try runTestInChildProcess("CheckpointTests.ResumeTests/testChildMiniRun",
                                                         environment: ["INSTRUCTVLA_MINIRUN_DIR": dir.path, "INSTRUCTVLA_MINIRUN_UNTIL": "\(until)"])
        XCTAssertEqual(status, 0, output)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + ".json"))) as! [String: Any]
        return (report["losses"] as! [Int], report["hash"] as! String)
    }

    /// 10 steps in one process == 5 steps, exit, resume in a new process, 5 more: identical loss
    /// sequence (bit for bit) and identical final parameters. The run crosses an epoch boundary
    /// after the resume, so the data order and the dropout stream must both be restored.
    func testInterruptedAndResumedRunEqualsUninterruptedBitForBit() throws {
        let root = try temporaryFolder()
        let straight = try runChild(root.appendingPathComponent("straight"), until: 10)
        let first = try runChild(root.appendingPathComponent("interrupted"), until: 5)
        let second = try runChild(root.appendingPathComponent("interrupted"), until: 10)
        XCTAssertEqual(straight.losses.count, 10)
        XCTAssertEqual(first.losses + second.losses, straight.losses, "loss sequence after resume")
        XCTAssertEqual(second.hash, straight.hash, "final parameters after resume")
        XCTAssertNotEqual(first.hash, straight.hash)
    }
}
