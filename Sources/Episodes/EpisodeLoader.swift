import Autograd
import Checkpoint
import Foundation

/// A training batch, assembled straight into tensors.
public struct EpisodeBatch {
    /// [B, cameras, H, W, 3] in [0, 1].
    public var images: Tensor
    /// [B, P], quantile-normalised.
    public var proprio: Tensor
    /// [B, horizon, A], quantile-normalised.
    public var actions: Tensor
    /// [B, horizon]: 1 for real steps, 0 for the repeated last action past an episode's end.
    public var actionMask: Tensor
    public var instructions: [String]
    /// Seconds the consumer waited for this batch (0 when prefetch kept up).
    public var waitSeconds: Double
}

public struct LoaderOptions: Sendable {
    public var batchSize = 32
    public var horizon = 8
    public var augment = true
    public var seed: UInt64 = 0
    /// Batches decoded ahead on the worker thread.
    public var prefetch = 4
    public init() {}
}

/// Batches in sampler order, decoded and augmented on a background thread. Augmentation draws
/// depend only on (seed, epoch, cursor), never on timing, so a resumed run gets identical batches.
public final class EpisodeLoader: @unchecked Sendable {
    public let dataset: EpisodeDataset
    public let stats: NormStats
    public let options: LoaderOptions
    /// The position after the last batch handed out: what a checkpoint saves.
    public private(set) var consumed: EpisodeSampler

    private var producer: EpisodeSampler
    private let condition = NSCondition()
    private var queue: [(batch: EpisodeBatch, after: EpisodeSampler)] = []
    private var failure: Error?
    private var generation = 0
    private let augmentation = ImageAugmentation()

    public init(dataset: EpisodeDataset, stats: NormStats, options: LoaderOptions) throws {
        guard stats.schema == dataset.statsSchema else { throw EpisodeError("norm stats are for \(stats.schema), the dataset is \(dataset.statsSchema)") }
        (self.dataset, self.stats, self.options) = (dataset, stats, options)
        consumed = EpisodeSampler(lengths: dataset.episodes.map(\.length), seed: options.seed)
        producer = consumed
        start()
    }

    deinit { stop() }

    /// The next batch; rethrows a read error from the worker (naming file, episode and key).
    public func next() throws -> EpisodeBatch {
        let started = Date()
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && failure == nil { condition.wait() }
        if let failure { throw failure }
        var (batch, after) = queue.removeFirst()
        consumed = after
        condition.signal()
        batch.waitSeconds = Date().timeIntervalSince(started)
        return batch
    }

    public func save(into state: inout TrainerState) { consumed.save(into: &state) }

    /// Moves the stream to a saved position; batches already prefetched are discarded.
    public func restore(from state: TrainerState) throws {
        var sampler = consumed
        try sampler.restore(from: state)
        stop()
        consumed = sampler
        producer = sampler
        start()
    }

    private func start() {
        condition.lock()
        generation += 1
        let mine = generation
        queue.removeAll()
        failure = nil
        condition.unlock()
        // The worker holds the loader only while it assembles a batch, so a loader nobody uses any
        // more is freed, and its deinit stops the worker.
        let thread = Thread { [weak self, condition] in
            while true {
                condition.lock()
                while true {  // wait for room without holding the loader
                    let full: Bool? = { guard let me = self, me.generation == mine else { return nil }; return me.queue.count >= me.options.prefetch }()
                    guard let full else { condition.unlock(); return }
                    if !full { break }
                    condition.wait()
                }
                guard let me = self else { condition.unlock(); return }
                var sampler = me.producer
                condition.unlock()
                let result = Result { try me.assemble(&sampler) }
                condition.lock()
                if me.generation == mine {
                    switch result {
                    case .success(let batch):
                        me.producer = sampler
                        me.queue.append((batch, sampler))
                    case .failure(let error):
                        me.failure = error
                    }
                    condition.broadcast()
                }
                let failed = me.failure != nil
                condition.unlock()
                if failed { return }
            }
        }
        thread.name = "episode-loader"
        thread.start()
    }

    private func stop() {
        condition.lock()
        generation += 1
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// Reads, augments and normalises one batch, advancing `sampler`.
    public func assemble(_ sampler: inout EpisodeSampler) throws -> EpisodeBatch {
        let (b, horizon, a, p) = (options.batchSize, options.horizon, dataset.actionDim, dataset.proprioDim)
        let cameras = dataset.layout.imageKeys.count
        let (h, w) = (dataset.imageShape[0], dataset.imageShape[1])
        let images = Tensor.zeros([b, cameras, h, w, 3])
        var proprio: [Float] = [], actions: [Float] = [], mask: [Float] = [], instructions: [String] = []
        for i in 0..<b {
            let (epoch, cursor) = (sampler.epoch, sampler.cursor)
            let (episode, step) = sampler.next()
            let sample = try dataset.sample(episode: episode, step: step, horizon: horizon)
            var rng = RNG(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch) << 32 &+ UInt64(cursor))
            for (c, image) in sample.images.enumerated() {
                let out = images.pointer + ((i * cameras + c) * h * w * 3)
                if options.augment {
                    augmentation.apply(image, height: h, width: w, rng: &rng, into: out)
                } else {
                    for j in 0..<image.count { out[j] = Float(image[j]) / 255 }
                }
            }
            proprio += sample.proprio
            actions += sample.actions
            mask += sample.actionMask
            instructions.append(sample.instruction)
        }
        NormStats.normalize(&proprio, stats.proprio)
        NormStats.normalize(&actions, stats.actions)
        return EpisodeBatch(images: images, proprio: Tensor(proprio, shape: [b, p]), actions: Tensor(actions, shape: [b, horizon, a]),
                            actionMask: Tensor(mask, shape: [b, horizon]), instructions: instructions, waitSeconds: 0)
    }
}
