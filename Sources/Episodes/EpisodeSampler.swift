import Autograd
import Checkpoint

/// Every (episode, step) pair of a dataset in a seeded order, reshuffled at each epoch. Its position
/// (epoch, cursor, and the generator state the epoch's order came from) saves into a checkpoint and
/// restores exactly, so a resumed run continues the same data stream.
public struct EpisodeSampler: Sendable {
    public let lengths: [Int]
    public private(set) var epoch = 0
    public private(set) var cursor = 0
    private var epochStart: RNG
    private var order: [Int] = []
    private let starts: [Int]

    public init(lengths: [Int], seed: UInt64) {
        precondition(!lengths.isEmpty && lengths.allSatisfy { $0 > 0 }, "EpisodeSampler: needs non-empty episodes")
        self.lengths = lengths
        var starts: [Int] = [], s = 0
        for length in lengths { starts.append(s); s += length }
        self.starts = starts
        epochStart = RNG(seed: seed)
        order = shuffledOrder()
    }

    public var count: Int { starts.last! + lengths.last! }

    private func shuffledOrder() -> [Int] {
        var rng = epochStart
        return Array(0..<count).shuffled(using: &rng)
    }

    /// The next pair, moving to a freshly shuffled epoch when this one is used up.
    public mutating func next() -> (episode: Int, step: Int) {
        if cursor == count {
            _ = epochStart.next()
            order = shuffledOrder()
            epoch += 1
            cursor = 0
        }
        let flat = order[cursor]
        cursor += 1
        var lo = 0, hi = starts.count - 1  // the last episode starting at or before `flat`
        while lo < hi { let mid = (lo + hi + 1) / 2; if starts[mid] <= flat { lo = mid } else { hi = mid - 1 } }
        return (lo, flat - starts[lo])
    }

    public func save(into state: inout TrainerState, name: String = "sampler") {
        state.setRNG("\(name).epoch_start", epochStart)
        state.dataLoader["\(name).epoch"] = epoch
        state.dataLoader["\(name).cursor"] = cursor
        state.dataLoader["\(name).steps"] = count
    }

    public mutating func restore(from state: TrainerState, name: String = "sampler") throws {
        guard let e = state.dataLoader["\(name).epoch"], let c = state.dataLoader["\(name).cursor"], c >= 0, c <= count else {
            throw EpisodeError("trainer state has no valid position for data sampler '\(name)' (dataset of \(count) steps)")
        }
        if let saved = state.dataLoader["\(name).steps"], saved != count {
            throw EpisodeError("the data changed since the checkpoint: sampler '\(name)' had \(saved) steps, the dataset now has \(count)")
        }
        epochStart = try state.rng("\(name).epoch_start")
        order = shuffledOrder()
        (epoch, cursor) = (e, c)
    }
}
