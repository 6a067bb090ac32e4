import Autograd
import Checkpoint
import Foundation
import TestSupport
import XCTest
@testable import Episodes

/// Fixture files written once per test process by h5py + hdf5plugin, with numpy's view of them.
final class Fixtures: @unchecked Sendable {
    static let shared = Fixtures()
    let dir: URL
    let expected: Result<[String: Any], Error>

    private init() {
        let folder = Result { try TemporaryFolder.forProcess("episodes") }
        dir = (try? folder.get()) ?? FileManager.default.temporaryDirectory.appendingPathComponent("instructvla-episodes-unavailable")
        expected = folder.flatMap { dir in Result { try PythonReference.run("Tests/EpisodesTests/Fixtures/make_fixtures.py", input: ["dir": dir.path]) } }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    func demo(_ name: String) throws -> [String: [Double]] {
        ((try expected.get())["demos"] as! [String: Any])[name] as! [String: [Double]]
    }
}

func assertEpisodeError(_ expected: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        for part in expected { XCTAssertTrue("\(error)".contains(part), "'\(error)' should contain '\(part)'", file: file, line: line) }
    }
}

final class EpisodeTests: XCTestCase {
    let fixtures = Fixtures.shared

    /// The same data written with zstd (filter 32015), gzip and no compression reads back exactly.
    func testReadsH5pyFilesWithZstdGzipAndNoCompression() throws {
        let demo1 = try fixtures.demo("demo_1")
        for (name, filter) in [("robomimic_zstd.hdf5", 32015), ("robomimic_gzip.hdf5", 1), ("robomimic_none.hdf5", nil)] {
            let file = try HDF5File(path: fixtures.path(name))
            let images = try file.dataset("data/demo_1/obs/agentview_rgb")
            XCTAssertEqual(images.filters, filter.map { [$0] } ?? [], name)
            XCTAssertEqual(images.shape, [9, 16, 12, 3])
            XCTAssertEqual(try images.bytes().map(Double.init), demo1["agentview_rgb"], name)
            XCTAssertEqual(try images.bytes(rows: 3..<5).map(Double.init), Array(demo1["agentview_rgb"]![(3 * 576)..<(5 * 576)]), "\(name) row range")
            // Compared as Float32: the values are float32 and Foundation's JSON parser can be off in a double's last digit.
            XCTAssertEqual(try file.dataset("data/demo_1/actions").floats(), demo1["actions"]!.map(Float.init), name)
            XCTAssertEqual(try file.stringAttribute("language_instruction", of: "data"), "push the puck to the goal")
            XCTAssertEqual(try file.stringList("mask/train"), ["demo_0", "demo_1"])
        }
    }

    func testSamplesChunksAndPadding() throws {
        let dataset = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: .metaworld)
        XCTAssertEqual(dataset.episodes.map(\.length), [5, 9, 7])
        XCTAssertEqual(dataset.imageShape, [16, 12, 3])
        XCTAssertEqual(dataset.proprioDim, 4)
        let demo0 = try fixtures.demo("demo_0")
        let s = try dataset.sample(episode: 0, step: 3, horizon: 4)  // steps 3, 4, then two repeats of 4
        XCTAssertEqual(s.actionMask, [1, 1, 0, 0])
        let a = demo0["actions"]!.map(Float.init)
        XCTAssertEqual(s.actions, Array(a[12..<20]) + Array(a[16..<20]) + Array(a[16..<20]))
        XCTAssertEqual(s.proprio, demo0["ee_pos"]![9..<12].map(Float.init) + [Float(demo0["gripper_state"]![3])])
        XCTAssertEqual(s.images[0].map(Double.init), Array(demo0["agentview_rgb"]![(3 * 576)..<(4 * 576)]))
        XCTAssertEqual(s.instruction, "push the puck to the goal")

        let train = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: .metaworld, split: "train")
        XCTAssertEqual(train.episodes.map(\.name), ["demo_0", "demo_1"])
        let valid = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: .metaworld, split: "valid")
        XCTAssertEqual(valid.episodes.map(\.name), ["demo_2"])
    }

    func testAlohaLayout() throws {
        let expected = (try fixtures.expected.get())["aloha"] as! [String: [Double]]
        let dataset = try EpisodeDataset(files: [fixtures.path("aloha.hdf5")], layout: .aloha)
        XCTAssertEqual(dataset.episodes.count, 1)
        XCTAssertEqual(dataset.actionDim, 14)
        let s = try dataset.sample(episode: 0, step: 5, horizon: 2)
        XCTAssertEqual(s.actions, (Array(expected["action"]![70..<84]) + Array(expected["action"]![70..<84])).map(Float.init))
        XCTAssertEqual(s.actionMask, [1, 0])
        XCTAssertEqual(s.proprio, expected["qpos"]![70..<84].map(Float.init), "float64 qpos converted to float32")
        XCTAssertEqual(s.images[0].map(Double.init), Array(expected["top"]![(5 * 576)..<(6 * 576)]))
    }

    /// Statistics over the training split equal numpy's (mean, population std, min, max, linear quantiles).
    func testNormStatsMatchNumpyAndGuardTheSchema() throws {
        let expected = ((try fixtures.expected.get())["stats"] as! [String: [String: [Double]]])
        let dataset = try EpisodeDataset(files: [fixtures.path("robomimic_gzip.hdf5")], layout: .metaworld, split: "train")
        let stats = try NormStats(dataset: dataset)
        for (name, ours) in [("actions", stats.actions), ("proprio", stats.proprio)] {
            let theirs = expected[name]!
            for (key, values) in [("mean", ours.mean), ("std", ours.std), ("min", ours.min), ("max", ours.max), ("q01", ours.q01), ("q99", ours.q99)] {
                for (a, b) in zip(values, theirs[key]!) { XCTAssertEqual(a, b, accuracy: 1e-9 * max(1, abs(b)), "\(name).\(key)") }
            }
        }
        XCTAssertEqual(stats.count, 14)
        let url = fixtures.dir.appendingPathComponent("norm_stats.json")
        try stats.write(to: url)
        XCTAssertEqual(try NormStats.read(from: url, expecting: stats.schema), stats)
        var other = stats.schema
        other.actionDim = 7
        assertEpisodeError(["statistics are for actions[4]", "this data is actions[7]"]) { _ = try NormStats.read(from: url, expecting: other) }

        var values: [Float] = [Float(stats.actions.q01[0]), Float(stats.actions.q99[0]), 5, -5]
        let constant = DimensionStats(mean: [2], std: [0], min: [2], max: [2], q01: [2], q99: [2])
        let single = DimensionStats(mean: [0], std: [0], min: [0], max: [0], q01: [stats.actions.q01[0]], q99: [stats.actions.q99[0]])
        NormStats.normalize(&values, single)
        XCTAssertEqual(values, [-1, 1, 1, -1])
        var flat: [Float] = [2, 2]
        NormStats.normalize(&flat, constant)
        XCTAssertEqual(flat, [0, 0], "a constant dimension normalises to 0")
        NormStats.unnormalize(&flat, constant)
        XCTAssertEqual(flat, [2, 2], "and back to its value")
    }

    func testSamplerPositionRoundTripsThroughTrainerState() {
        var sampler = EpisodeSampler(lengths: [5, 9, 7], seed: 11)
        for _ in 0..<30 { _ = sampler.next() }  // into the second epoch (21 steps per epoch)
        var state = TrainerState()
        sampler.save(into: &state)
        let expected = (0..<40).map { _ in sampler.next() }
        var restored = EpisodeSampler(lengths: [5, 9, 7], seed: 999)
        XCTAssertNoThrow(try restored.restore(from: state))
        XCTAssertEqual((0..<40).map { _ in restored.next() }.map { [$0.episode, $0.step] }, expected.map { [$0.episode, $0.step] })
        var other = EpisodeSampler(lengths: [5, 9, 8], seed: 11)
        assertEpisodeError(["the data changed since the checkpoint", "had 21 steps, the dataset now has 22"]) { try other.restore(from: state) }
        var fresh = EpisodeSampler(lengths: [5, 9, 7], seed: 11)
        let epoch = (0..<21).map { _ in fresh.next() }
        XCTAssertEqual(Set(epoch.map { "\($0.episode):\($0.step)" }).count, 21, "an epoch visits every step once")
    }

    /// Prefetched, augmented batches come out the same after a save/restore as without one.
    func testLoaderBatchesAreDeterministicAcrossRestore() throws {
        let dataset = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: .metaworld)
        let stats = try NormStats(dataset: dataset)
        var options = LoaderOptions()
        (options.batchSize, options.horizon, options.seed) = (4, 3, 5)
        let straight = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        let reference = try (0..<8).map { _ in try straight.next() }
        XCTAssertEqual(reference[0].images.shape, [4, 1, 16, 12, 3])
        XCTAssertEqual(reference[0].actions.shape, [4, 3, 4])
        XCTAssertTrue(reference.allSatisfy { $0.actions.toArray().allSatisfy { abs($0) <= 1 } }, "actions normalised into [-1, 1]")
        XCTAssertTrue(reference[0].images.toArray().allSatisfy { $0 >= 0 && $0 <= 1 })
        var first = EpisodeSampler(lengths: dataset.episodes.map(\.length), seed: 5)
        let (e0, t0) = first.next()
        let frame = try dataset.sample(episode: e0, step: t0, horizon: 3).images[0].map { Float($0) / 255 }
        let clean = try XCTUnwrap(reference[0].cleanImages, "augmented batches carry the clean frames for frozen encoders")
        XCTAssertEqual(Array(clean.toArray()[0..<frame.count]), frame)
        XCTAssertNotEqual(Array(reference[0].images.toArray()[0..<frame.count]), frame, "the batch's images are augmented")

        let interrupted = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        for _ in 0..<3 { _ = try interrupted.next() }
        var state = TrainerState()
        interrupted.save(into: &state)
        let resumed = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        try resumed.restore(from: state)
        for i in 3..<8 {
            let batch = try resumed.next()
            XCTAssertEqual(batch.images.toArray(), reference[i].images.toArray(), "batch \(i) images")
            XCTAssertEqual(batch.actions.toArray(), reference[i].actions.toArray(), "batch \(i) actions")
        }

        options.augment = false
        let plain = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        let batch = try plain.next()
        var sampler = EpisodeSampler(lengths: dataset.episodes.map(\.length), seed: 5)
        let (e, t) = sampler.next()
        let raw = try dataset.sample(episode: e, step: t, horizon: 3).images[0].map { Float($0) / 255 }
        XCTAssertEqual(Array(batch.images.toArray()[0..<raw.count]), raw, "augmentation off: pixels / 255")
        XCTAssertNil(batch.cleanImages, "unaugmented images are the clean ones")
    }

    /// A shift-only loader translates each frame by at most `shift` pixels per axis with edge pixels
    /// filling in, keeps the clean frames for frozen encoders, and varies the offsets.
    func testShiftAugmentationTranslatesFramesWithEdgePadding() throws {
        let dataset = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: .metaworld)
        let stats = try NormStats(dataset: dataset)
        var options = LoaderOptions()
        (options.batchSize, options.horizon, options.seed, options.augment, options.shift) = (8, 2, 3, false, 2)
        let loader = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        let (h, w) = (dataset.imageShape[0], dataset.imageShape[1])
        var offsets = Set<[Int]>()
        for _ in 0..<4 {
            let batch = try loader.next()
            let clean = try XCTUnwrap(batch.cleanImages, "shifted batches carry the clean frames").toArray()
            let shifted = batch.images.toArray()
            for i in 0..<options.batchSize {
                let (frame, moved) = (Array(clean[(i * h * w * 3)..<((i + 1) * h * w * 3)]), Array(shifted[(i * h * w * 3)..<((i + 1) * h * w * 3)]))
                let matches = (-2...2).flatMap { dy in (-2...2).map { dx in [dy, dx] } }.filter { d in
                    (0..<h).allSatisfy { y in (0..<w).allSatisfy { x in
                        let (sy, sx) = (max(0, min(h - 1, y + d[0])), max(0, min(w - 1, x + d[1])))
                        return (0..<3).allSatisfy { moved[(y * w + x) * 3 + $0] == frame[(sy * w + sx) * 3 + $0] }
                    } }
                }
                XCTAssertFalse(matches.isEmpty, "sample \(i): the augmented frame is the clean one shifted by at most 2 px")
                if let first = matches.first { offsets.insert(first) }
            }
        }
        XCTAssertGreaterThan(offsets.count, 5, "32 samples draw many of the 25 offsets")
        options.shift = h
        assertEpisodeError(["random shift of \(h) px", "\(h)x\(w) frames"]) { _ = try EpisodeLoader(dataset: dataset, stats: stats, options: options) }
    }

    /// Auxiliary targets: the chosen columns of the layout's auxiliary key at each sample's step,
    /// standardised with the dataset's own moments; a missing key or column is a clear error.
    func testAuxiliaryTargetsAreTheStandardisedColumnsAtEachStep() throws {
        var layout = EpisodeLayout.metaworld
        layout.auxiliaryKey = "ee_pos"
        let dataset = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: layout)
        XCTAssertEqual(dataset.auxiliaryDim, 3)
        var options = LoaderOptions()
        (options.batchSize, options.horizon, options.seed, options.augment, options.auxiliaryDims) = (6, 2, 4, false, [2, 0])
        let loader = try EpisodeLoader(dataset: dataset, stats: try NormStats(dataset: EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: .metaworld)), options: options)
        let rows = try dataset.allAuxiliary()
        let column = { (c: Int) in stride(from: c, to: rows.count, by: 3).map { Double(rows[$0]) } }
        let moments = [2, 0].map { c -> (Double, Double) in
            let v = column(c), mean = v.reduce(0, +) / Double(v.count)
            return (mean, (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot())
        }
        let batch = try loader.next()
        let targets = try XCTUnwrap(batch.auxiliary)
        XCTAssertEqual(targets.shape, [6, 2])
        for (i, frame) in batch.frames.enumerated() {
            let raw = try dataset.sample(episode: frame.episode, step: frame.step, horizon: 1).auxiliary
            XCTAssertEqual(raw.count, 3)
            for (k, c) in [2, 0].enumerated() {
                XCTAssertEqual(Double(targets.toArray()[i * 2 + k]), (Double(raw[c]) - moments[k].0) / moments[k].1, accuracy: 1e-4, "sample \(i), column \(c)")
            }
        }
        options.auxiliaryDims = [3]
        assertEpisodeError(["auxiliary columns [3]", "'ee_pos' (3 wide)"]) {
            _ = try EpisodeLoader(dataset: dataset, stats: loader.stats, options: options)
        }
        layout.auxiliaryKey = "object_pos"
        assertEpisodeError(["robomimic_zstd.hdf5: demo_0", "missing auxiliary key 'data/demo_0/obs/object_pos'"]) {
            _ = try EpisodeDataset(files: [fixtures.path("robomimic_zstd.hdf5")], layout: layout)
        }
    }

    /// Files written here (zstd-compressed images) read back here and in h5py + hdf5plugin.
    func testWriterRoundTripAndH5pyReadsOurZstd() throws {
        let path = fixtures.dir.appendingPathComponent("written.hdf5").path
        let frames = (0..<(6 * 8 * 8 * 3)).map { UInt8($0 % 251) }
        do {  // the writer closes the file when it goes away
            let writer = try HDF5Writer(path: path)
            try writer.write("data/demo_0/obs/agentview_rgb", shape: [6, 8, 8, 3], bytes: frames, chunkRows: 4, zstdLevel: 3)
            try writer.write("data/demo_0/actions", shape: [6, 4], floats: (0..<24).map { Float($0) * 0.25 - 2 })
            try writer.write("data/demo_0/obs/ee_pos", shape: [6, 3], floats: [Float](repeating: 0.5, count: 18))
            try writer.write("data/demo_0/obs/gripper_state", shape: [6, 1], floats: [Float](repeating: 1, count: 6))
            try writer.setAttribute("language_instruction", "open the drawer", on: "data")
        }
        let dataset = try EpisodeDataset(files: [path], layout: .metaworld)
        XCTAssertEqual(dataset.episodes.first?.instruction, "open the drawer")
        XCTAssertEqual(try dataset.sample(episode: 0, step: 5, horizon: 1).images[0], Array(frames[(5 * 192)...]))
        let h5py = try PythonReference.run("Tests/EpisodesTests/Fixtures/read_dataset.py", input: ["path": path, "key": "data/demo_0/obs/agentview_rgb"])
        XCTAssertEqual(h5py["filters"] as? [Int], [32015])
        XCTAssertEqual((h5py["values"] as! [Int]).map(UInt8.init), frames)
    }

    /// The real thing: Meta-World's scripted experts through Datasets/metaworld/generate.py, read here.
    func testGeneratedMetaWorldDemonstrationsLoad() throws {
        let out = fixtures.dir.appendingPathComponent("metaworld")
        try PythonReference.runScript("Datasets/metaworld/generate.py", arguments: [
            "--tasks", "reach-v3", "--demos-per-task", "3", "--image-size", "16", "--workers", "1", "--out", out.path,
        ])
        let file = out.appendingPathComponent("reach-v3.hdf5").path
        let train = try EpisodeDataset(files: [file], layout: .metaworld, split: "train")
        let valid = try EpisodeDataset(files: [file], layout: .metaworld, split: "valid")
        XCTAssertEqual(train.episodes.count + valid.episodes.count, 3)
        XCTAssertEqual(valid.episodes.count, 1)
        XCTAssertEqual(train.imageShape, [16, 16, 3])
        XCTAssertEqual(train.actionDim, 4)
        XCTAssertEqual(train.proprioDim, 4, "ee_pos (3) + gripper_state (1)")
        let instructions = try JSONSerialization.jsonObject(with: Data(contentsOf: PythonReference.repoRoot
            .appendingPathComponent("Datasets/metaworld/instructions.json"))) as! [String: String]
        XCTAssertEqual(train.episodes[0].instruction, instructions["reach-v3"])
        let s = try train.sample(episode: 0, step: 0, horizon: 4)
        XCTAssertGreaterThan(Set(s.images[0]).count, 10, "a rendered frame, not a blank one")
        XCTAssertTrue(s.actions.allSatisfy { abs($0) <= 1 }, "Meta-World actions lie in [-1, 1]")
        let card = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("dataset_card.json"))) as! [String: Any]
        let packages = try XCTUnwrap(card["packages"] as? [String: String], "the card records package versions")
        XCTAssertNotNil(packages["metaworld"])
        XCTAssertNotNil(packages["mujoco"])

        // Scene questions from the same demonstrations' ground truth, test split from held-out demos.
        let qa = out.appendingPathComponent("scene_qa.hdf5")
        try PythonReference.runScript("Datasets/vqa/scene_qa.py", arguments: ["--episodes", file, "--out", qa.path, "--per-demo", "4"])
        let scenes = try VQADataset(files: [qa.path], split: "train"), heldOut = try VQADataset(files: [qa.path], split: "test")
        XCTAssertEqual(scenes.imageShape, [16, 16, 3])
        XCTAssertGreaterThanOrEqual(heldOut.examples.count, 2, "first and last frame of the held-out demo at least")
        for e in scenes.examples + heldOut.examples {
            switch e.type {
            case "object": XCTAssertEqual(e.answer, "puck")
            case "gripper": XCTAssertTrue(["open", "closed"].contains(e.answer))
            case "height": XCTAssertTrue(["high", "low"].contains(e.answer))
            case "touching", "lifted": XCTAssertTrue(["yes", "no"].contains(e.answer))
            case "caption": XCTAssertTrue(e.answer.hasSuffix("the puck"), e.answer)
            default: XCTFail("unexpected question type \(e.type) for reach-v3")
            }
        }
    }

    /// A loader nobody holds any more stops its worker thread (no deadlock, no leaked thread).
    /// A second camera (generate.py --extra-cameras side) changes nothing else in the data, is stored
    /// as obs/side_rgb, and evaluate.py sends it as observation/side_image when the server asks for it
    /// (checks in check_extra_cameras.py); the loader gives both views, in the recipe's order. Each
    /// evaluation episode has its own server connection, so no per-connection state carries over.
    func testExtraCameraViewsLeaveTheMainViewUnchangedAndReachTheServer() throws {
        try PythonReference.runChecks("Tests/EpisodesTests/Fixtures/check_extra_cameras.py") { report, dir in
            XCTAssertGreaterThan(report["requests_checked"] as? Int ?? 0, 0)
            XCTAssertEqual(report["requests_per_connection"] as? [Int], [3, 3], "2 episodes of 3 steps")
            XCTAssertEqual(report["extra_cameras_attr"] as? [String: String], ["plain": "[]", "side": "[\"side\"]"])

            let layout = EpisodeLayout(kind: .robomimic, imageKeys: ["agentview_rgb", "side_rgb"], proprioKeys: ["ee_pos", "gripper_state"],
                                       actionKey: "actions")
            let file = dir.appendingPathComponent("side/reach-v3.hdf5").path
            let both = try EpisodeDataset(files: [file], layout: layout).sample(episode: 0, step: 3, horizon: 2)
            let main = try EpisodeDataset(files: [file], layout: .metaworld).sample(episode: 0, step: 3, horizon: 2)
            XCTAssertEqual(both.images.count, 2)
            XCTAssertEqual(both.images[0], main.images[0], "the first view is agentview_rgb")
            XCTAssertNotEqual(both.images[1], both.images[0])
        }
    }

    /// generate.py --hand-jitter: each MT episode's hand starts at its own pose near Meta-World's, the
    /// layouts stay the seeds', and evaluation envs go back to the fixed start (check_hand_jitter.py).
    func testHandJitterMovesOnlyTheStartAndEvaluationKeepsTheFixedOne() throws {
        try PythonReference.runChecks("Tests/EpisodesTests/Fixtures/check_hand_jitter.py") { report, _ in
            XCTAssertEqual(report["demos"] as? Int, 6)
        }
    }

    /// `--demos-per-task 2,push=3`: per-task counts, each task's demos its attempts in order; `--steps-after-success
    /// 0,reach=20`: the same reach demos, each 20 frames longer; `--action-noise 0.5`: perturbed states, the expert's
    /// own actions recorded; `--reach-aim fingertips`: 20 steps past success the reach expert's fingertips are within
    /// 2.5 cm of the goal instead of near the success ball's 5 cm edge; bad values refused before any work (check_generate_options.py).
    func testGeneratorOptionsKeepTheSameAttemptsAndTheExpertsActions() throws {
        try PythonReference.runChecks("Tests/EpisodesTests/Fixtures/check_generate_options.py") { report, _ in
            XCTAssertEqual(report["demos"] as? [String: Int], ["reach-v3": 2, "push-v3": 3])
            XCTAssertEqual(report["extra_frames"] as? [String: [Int]], ["reach-v3": [20], "push-v3": [0]])
            XCTAssertGreaterThan(report["noisy_steps_checked"] as? Int ?? 0, 100)
            let rest = report["reach_rest_cm"] as? [String: [Double]] ?? [:]
            XCTAssertEqual(rest["hand"]?.count, 2)
            XCTAssertEqual(rest["fingertips"]?.count, 2)
            for cm in rest["hand"] ?? [] { XCTAssertGreaterThan(cm, 3.5, "the hand-aimed expert rests near the 5 cm edge") }
            for cm in rest["fingertips"] ?? [] { XCTAssertLessThan(cm, 2.5, "the fingertip-aimed expert closes in on the goal") }
        }
    }

    /// Dropping a loader frees it and its dataset (closing the files) on the spot, also while its
    /// worker is assembling a batch: a process that exits right after, as a refused resume does, must
    /// have no thread left reading, or HDF5's teardown at exit kills it with SIGILL.
    func testDroppedLoadersFreeTheirFilesAtOnceEvenMidBatch() throws {
        let file = fixtures.path("robomimic_none.hdf5")
        let stats = try NormStats(dataset: EpisodeDataset(files: [file], layout: .metaworld))
        var options = LoaderOptions()
        (options.batchSize, options.prefetch) = (64, 1)  // a batch long enough to be dropped in the middle of
        for round in 0..<40 {
            weak var freedLoader: EpisodeLoader?
            weak var freedDataset: EpisodeDataset?
            do {
                let dataset = try EpisodeDataset(files: [file], layout: .metaworld)
                let loader = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
                if round.isMultiple(of: 2) { _ = try loader.next() }  // also while the worker waits on a full queue
                freedLoader = loader
                freedDataset = dataset
            }
            XCTAssertNil(freedLoader, "round \(round): the loader outlived its last owner")
            XCTAssertNil(freedDataset, "round \(round): the dataset's files stayed open")
        }
        options.prefetch = 0
        XCTAssertThrowsError(try EpisodeLoader(dataset: EpisodeDataset(files: [file], layout: .metaworld), stats: stats, options: options))
    }

    func testBadInputsGiveErrorsNamingFileEpisodeAndKey() throws {
        let p = fixtures.path
        assertEpisodeError([p("missing_key.hdf5"), "demo_1", "missing proprio key 'data/demo_1/obs/ee_pos'"]) {
            _ = try EpisodeDataset(files: [p("missing_key.hdf5")], layout: .metaworld)
        }
        assertEpisodeError([p("rank_actions.hdf5"), "demo_0", "'data/demo_0/actions' should be a (T, A) float array"]) {
            _ = try EpisodeDataset(files: [p("rank_actions.hdf5")], layout: .metaworld)
        }
        assertEpisodeError([p("float_images.hdf5"), "should be (T, H, W, 3) uint8"]) {
            _ = try EpisodeDataset(files: [p("float_images.hdf5")], layout: .metaworld)
        }
        assertEpisodeError([p("length_mismatch.hdf5"), "demo_2", "has 6 frames but there are 7 actions"]) {
            _ = try EpisodeDataset(files: [p("length_mismatch.hdf5")], layout: .metaworld)
        }
        assertEpisodeError([p("empty_demo.hdf5"), "demo_0", "empty episode"]) {
            _ = try EpisodeDataset(files: [p("empty_demo.hdf5")], layout: .metaworld)
        }
        assertEpisodeError([p("truncated.hdf5"), "not a readable HDF5 file"]) { _ = try EpisodeDataset(files: [p("truncated.hdf5")], layout: .metaworld) }
        assertEpisodeError([p("not_hdf5.hdf5"), "not a readable HDF5 file"]) { _ = try EpisodeDataset(files: [p("not_hdf5.hdf5")], layout: .metaworld) }
        assertEpisodeError(["nope.hdf5", "file not found"]) { _ = try EpisodeDataset(files: [p("nope.hdf5")], layout: .metaworld) }
        assertEpisodeError([p("robomimic_none.hdf5"), "missing split 'mask/test'"]) {
            _ = try EpisodeDataset(files: [p("robomimic_none.hdf5")], layout: .metaworld, split: "test")
        }
        assertEpisodeError([p("array_instruction.hdf5"), "attribute 'data@language_instruction' holds 2 strings, expected one"]) {
            _ = try EpisodeDataset(files: [p("array_instruction.hdf5")], layout: .metaworld)
        }
        assertEpisodeError([p("aloha.hdf5"), "missing group 'data'"]) { _ = try EpisodeDataset(files: [p("aloha.hdf5")], layout: .metaworld) }

        // NaN/Inf actions: the episode is skipped and counted, the rest loads.
        let nan = try EpisodeDataset(files: [p("nan_actions.hdf5")], layout: .metaworld)
        XCTAssertEqual(nan.episodes.map(\.name), ["demo_0", "demo_2"])
        XCTAssertEqual(nan.skippedNonFinite, ["\(p("nan_actions.hdf5")):demo_1"])
    }
}
