import Checkpoint
import Foundation
import TestSupport
import XCTest
@testable import Episodes

final class DataShardTests: XCTestCase {
    func testEachRankTakesItsBlockOfEveryBatchOfTheStream() {
        let taken = (0..<3).map { rank in
            var next = 0  // each rank reads the stream 0, 1, 2, … from the start
            return (0..<2).map { _ in DataShard(rank: rank, count: 3).take(2) { () -> Int in next += 1; return next - 1 } }
        }
        XCTAssertEqual(taken[0], [[0, 1], [6, 7]])
        XCTAssertEqual(taken[1], [[2, 3], [8, 9]])
        XCTAssertEqual(taken[2], [[4, 5], [10, 11]])
        XCTAssertEqual(DataShard.whole.take(3) { 7 }, [7, 7, 7])
    }

    /// Three ranks reading batches of 3 see, together and in order, exactly the single process's
    /// batches of 9 (across an epoch boundary, augmentation on), and save the same stream position.
    func testShardedLoadersTogetherReadTheSingleProcessStream() throws {
        let dataset = try EpisodeDataset(files: [Fixtures.shared.path("robomimic_zstd.hdf5")], layout: .metaworld)
        let stats = try NormStats(dataset: dataset)
        var options = LoaderOptions()
        (options.batchSize, options.horizon, options.seed) = (9, 3, 11)
        let single = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        options.batchSize = 3
        let ranks = try (0..<3).map { rank in
            options.shard = DataShard(rank: rank, count: 3)
            return try EpisodeLoader(dataset: dataset, stats: stats, options: options)
        }
        let batches = (dataset.episodes.map(\.length).reduce(0, +) + 8) / 9 + 1
        for b in 0..<batches {
            let whole = try single.next()
            let parts = try ranks.map { try $0.next() }
            XCTAssertEqual(parts.flatMap(\.positions), whole.positions, "batch \(b): stream positions")
            XCTAssertEqual(parts.flatMap { $0.frames.map { [$0.episode, $0.step] } }, whole.frames.map { [$0.episode, $0.step] }, "batch \(b): frames")
            XCTAssertEqual(parts.flatMap { $0.images.toArray() }, whole.images.toArray(), "batch \(b): augmented images")
            XCTAssertEqual(parts.flatMap { $0.actions.toArray() }, whole.actions.toArray(), "batch \(b): actions")
        }
        XCTAssertGreaterThan(single.consumed.epoch, 0, "the test should cross an epoch boundary")
        var wholeState = TrainerState(), rankState = TrainerState()
        single.save(into: &wholeState)
        for rank in ranks {
            rank.save(into: &rankState)
            XCTAssertEqual(rankState, wholeState, "every rank saves the single process's stream position")
        }
    }
}
