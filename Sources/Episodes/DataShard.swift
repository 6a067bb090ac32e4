import Autograd

/// Which part of a data stream one rank of a data-parallel job trains on. The stream is the one a
/// single process reads; of every `count × B` consecutive samples, rank r takes the r-th block of B.
/// So the ranks' micro-batches together are exactly the single process's micro-batch of `count × B`,
/// and the stream's position (what a checkpoint saves) is the same on every rank.
public struct DataShard: Sendable, Equatable, CustomStringConvertible {
    public let rank: Int
    public let count: Int

    public static let whole = DataShard(rank: 0, count: 1)

    public init(rank: Int, count: Int) {
        precondition(count >= 1 && (0..<count).contains(rank), "DataShard: rank \(rank) of \(count)")
        (self.rank, self.count) = (rank, count)
    }

    public var description: String { count == 1 ? "the whole stream" : "block \(rank) of every \(count)" }

    /// Draws `batch × count` items with `next`, in stream order, and keeps this shard's block of `batch`.
    public func take<T>(_ batch: Int, _ next: () throws -> T) rethrows -> [T] {
        var kept: [T] = []
        kept.reserveCapacity(batch)
        for i in 0..<(batch * count) {
            let item = try next()
            if i / batch == rank { kept.append(item) }
        }
        return kept
    }
}

/// The generator of one sample's random draws (augmentation, noise, prompt choices), keyed by the
/// sample's place in the data stream rather than by the batch it lands in: a sample draws the same
/// numbers whichever rank or batch size trains on it.
public func sampleRNG(seed: UInt64, position: UInt64) -> RNG {
    RNG(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ position)
}
