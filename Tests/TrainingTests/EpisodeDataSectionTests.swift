import Checkpoint
import Episodes
import Foundation
import XCTest
@testable import Training

/// A recipe's `data:` section maps keys for either layout and builds the loader, with its norm stats.
final class EpisodeDataSectionTests: XCTestCase {
    struct EpisodeRecipe: RecipeSchema {
        var data = EpisodeDataSection()
        init() {}
        func validate() throws { try data.validate() }
    }

    func testAlohaKeyMappingFromARecipeBuildsALoaderAndSavesStats() throws {
        let dir = try recipeFolder([:])
        let file = dir.appendingPathComponent("episode_0.hdf5").path
        do {
            let w = try HDF5Writer(path: file)
            try w.write("action", shape: [10, 14], floats: (0..<140).map { Float($0 % 14) / 7 - 1 })
            try w.write("observations/qpos", shape: [10, 14], floats: (0..<140).map { Float($0) / 140 })
            try w.write("observations/images/cam_high", shape: [10, 8, 8, 3], bytes: (0..<1920).map { UInt8($0 % 256) }, chunkRows: 5, zstdLevel: 1)
        }
        try """
        data:
          files: ['\(dir.path)/episode_*.hdf5']
          layout: aloha
          image_keys: [cam_high]
          proprio_keys: [qpos]
          action_key: action
          train_split: ''
          horizon: 4
          augment: false
        """.write(to: dir.appendingPathComponent("r.yaml"), atomically: true, encoding: .utf8)
        let url = dir.appendingPathComponent("r.yaml")
        let recipe = try RecipeValidator.resolve(RecipeLoader.load(url), as: EpisodeRecipe.self, source: url.path).recipe
        let run = try RunDirectory(dir.appendingPathComponent("run"))
        let loader = try recipe.data.trainingLoader(run: run, batchSize: 3, seed: 0)
        let batch = try loader.next()
        XCTAssertEqual(batch.images.shape, [3, 1, 8, 8, 3])
        XCTAssertEqual(batch.actions.shape, [3, 4, 14])
        XCTAssertEqual(batch.proprio.shape, [3, 14])
        let stats = try NormStats.read(from: run.url.appendingPathComponent("norm_stats.json"), expecting: loader.stats.schema)
        XCTAssertEqual(stats.schema.proprioKeys, ["qpos"])

        let shifted = try RecipeValidator.resolve(RecipeLoader.load(url, overrides: ["data.augment_shift=2"]), as: EpisodeRecipe.self, source: url.path).recipe
        let shiftedBatch = try shifted.data.trainingLoader(run: run, batchSize: 3, seed: 0).next()
        XCTAssertNotNil(shiftedBatch.cleanImages, "data.augment_shift reaches the loader: its images are augmented")
        assertRecipeError("data.augment_shift: pixels of random shift, 0 or more; got -1") {
            _ = try RecipeValidator.resolve(RecipeLoader.load(url, overrides: ["data.augment_shift=-1"]), as: EpisodeRecipe.self, source: url.path)
        }

        // A new file matching the glob changes the data under a run that already has statistics.
        do {
            let w = try HDF5Writer(path: dir.appendingPathComponent("episode_1.hdf5").path)
            try w.write("action", shape: [3, 14], floats: [Float](repeating: 0.5, count: 42))
            try w.write("observations/qpos", shape: [3, 14], floats: [Float](repeating: 0, count: 42))
            try w.write("observations/images/cam_high", shape: [3, 8, 8, 3], bytes: [UInt8](repeating: 7, count: 576))
        }
        assertRecipeError("the training data changed since this run started") {
            _ = try recipe.data.trainingLoader(run: run, batchSize: 3, seed: 0)
        }

        assertRecipeError("data.files: 'nothing/*.hdf5' matches no file") {
            var data = recipe.data
            data.files = ["nothing/*.hdf5"]
            _ = try data.trainingLoader(run: run, batchSize: 1, seed: 0)
        }
        assertRecipeError("data.layout: expected one of robomimic, aloha; got 'lerobot'") {
            _ = try RecipeValidator.resolve(RecipeLoader.load(url, overrides: ["data.layout=lerobot"]), as: EpisodeRecipe.self, source: url.path)
        }
    }

    /// Two one-episode files of 10 and 3 steps.
    func twoEpisodeData() throws -> (EpisodeDataSection, URL) {
        let dir = try recipeFolder([:])
        for (index, length) in [10, 3].enumerated() {
            let w = try HDF5Writer(path: dir.appendingPathComponent("episode_\(index).hdf5").path)
            try w.write("action", shape: [length, 2], floats: (0..<(2 * length)).map { Float($0) / Float(2 * length) })
            try w.write("observations/qpos", shape: [length, 2], floats: [Float](repeating: Float(index), count: 2 * length))
            try w.write("observations/images/cam_high", shape: [length, 4, 4, 3], bytes: [UInt8](repeating: 9, count: 48 * length))
        }
        var data = EpisodeDataSection()
        (data.files, data.layout, data.imageKeys, data.proprioKeys, data.actionKey) = (["\(dir.path)/episode_*.hdf5"], "aloha", ["cam_high"], ["qpos"], "action")
        (data.trainSplit, data.horizon, data.augment) = ("", 2, false)
        return (data, dir)
    }

    /// `data.repeats` makes one epoch show a file's frames that many times, and nothing else changes.
    func testRepeatsGiveAFileMoreOfEachEpoch() throws {
        var (data, dir) = try twoEpisodeData()
        data.repeats = ["episode_1.hdf5": 3]
        let loader = try data.trainingLoader(run: try RunDirectory(dir.appendingPathComponent("run")), batchSize: 19, seed: 3)
        let frames = try loader.next().frames  // one epoch: 10 + 3 × 3 frames
        var counts: [String: Int] = [:]
        for frame in frames { counts["\(frame.episode)/\(frame.step)", default: 0] += 1 }
        XCTAssertEqual(counts, Dictionary(uniqueKeysWithValues: (0..<10).map { ("0/\($0)", 1) } + (0..<3).map { ("1/\($0)", 3) }))
        XCTAssertEqual(loader.consumed.epoch, 0)
        XCTAssertEqual(loader.consumed.cursor, 19)

        data.repeats = ["episode_2.hdf5": 2]
        assertRecipeError("data.repeats.episode_2.hdf5: no such file among data.files (episode_0.hdf5, episode_1.hdf5)") {
            _ = try data.trainingLoader(run: try RunDirectory(dir.appendingPathComponent("run2")), batchSize: 1, seed: 0)
        }
        data.repeats = ["episode_1.hdf5": 0]
        assertRecipeError("data.repeats.episode_1.hdf5: a file is seen at least once per epoch, got 0") { try data.validate() }
    }

    /// `data.opening_repeats` shows the first `opening_steps` steps of a file's episodes that many
    /// times as often as its other steps, `data.repeats` included.
    func testOpeningRepeatsShowTheFirstStepsMoreOften() throws {
        var (data, dir) = try twoEpisodeData()
        (data.openingRepeats, data.openingSteps, data.repeats) = (["episode_0.hdf5": 3, "episode_1.hdf5": 2], 4, ["episode_1.hdf5": 2])
        let loader = try data.trainingLoader(run: try RunDirectory(dir.appendingPathComponent("run")), batchSize: 30, seed: 3)
        // One epoch: episode 0 whole (10) and 2 openings of 4 steps; episode 1 (3 steps, all opening) twice, and twice more.
        let frames = try loader.next().frames
        var counts: [String: Int] = [:]
        for frame in frames { counts["\(frame.episode)/\(frame.step)", default: 0] += 1 }
        XCTAssertEqual(counts, Dictionary(uniqueKeysWithValues: (0..<10).map { ("0/\($0)", $0 < 4 ? 3 : 1) } + (0..<3).map { ("1/\($0)", 4) }))
        XCTAssertEqual(loader.consumed.epoch, 0)
        XCTAssertEqual(loader.consumed.cursor, 30)
        data.repeats = [:]

        data.openingRepeats = ["episode_2.hdf5": 2]
        assertRecipeError("data.opening_repeats.episode_2.hdf5: no such file among data.files (episode_0.hdf5, episode_1.hdf5)") {
            _ = try data.trainingLoader(run: try RunDirectory(dir.appendingPathComponent("run2")), batchSize: 1, seed: 0)
        }
        data.openingRepeats = ["episode_1.hdf5": 0]
        assertRecipeError("data.opening_repeats.episode_1.hdf5: an opening is seen at least once per epoch, got 0") { try data.validate() }
        (data.openingRepeats, data.openingSteps) = ([:], 0)
        assertRecipeError("data.opening_steps: the opening's length in steps, at least 1; got 0") { try data.validate() }
    }
}
