import Autograd
import Checkpoint
import Foundation

/// A training batch, assembled straight into tensors.
public struct EpisodeBatch {
    /// [B, cameras, H, W, 3] in [0, 1], augmented when the loader augments.
    public var images: Tensor
    /// The same frames unaugmented, when `images` are augmented (nil otherwise): what a frozen
    /// encoder reads, so that its outputs can be cached per frame.
    public var cleanImages: Tensor?
    /// [B, P], quantile-normalised.
    public var proprio: Tensor
    /// [B, horizon, A], quantile-normalised.
    public var actions: Tensor
    /// [B, horizon]: 1 for real steps, 0 for the repeated last action past an episode's end.
    public var actionMask: Tensor
    public var instructions: [String]
    /// [B, K]: the loader's `auxiliaryDims` columns of the layout's auxiliary key, standardised
    /// (nil when none are asked for).
    public var auxiliary: Tensor?
    /// Which frame each sample is: (episode index in the dataset, step).
    public var frames: [(episode: Int, step: Int)]
    /// Where each sample sits in the data stream (epoch << 32 | cursor): the key of its random draws
    /// (`sampleRNG`), the same whichever rank or batch size reads it.
    public var positions: [UInt64]
    /// Seconds the consumer waited for this batch (0 when prefetch kept up).
    public var waitSeconds: Double
}

public struct LoaderOptions: Sendable {
    /// Samples per batch on this rank; with a shard of `count` ranks, a batch of the stream is `count × batchSize`.
    public var batchSize = 32
    public var horizon = 8
    /// Random resized crop and colour jitter.
    public var augment = true
    /// Random shift of up to this many pixels (0: none); see `ImageAugmentation`.
    public var shift = 0
    /// Whether the batches' images are augmented at all (and so come with `cleanImages`).
    public var augmenting: Bool { augment || shift > 0 }
    public var seed: UInt64 = 0
    /// Batches decoded ahead on the worker thread.
    public var prefetch = 4
    public var shard = DataShard.whole
    /// Times each dataset episode appears per epoch (empty: once each): more samples for the tasks
    /// that need them, with the stream still an exact, resumable permutation.
    public var repeats: [Int] = []
    /// How many times as often as its other steps each dataset episode's first `openingSteps` steps
    /// appear per epoch (empty: as often): the episode's `repeats` copies come with that many times
    /// as many copies cut after the opening. In the instruct scene the opening is where the image
    /// and the instruction decide where the arm goes; later frames show the arm already on its way.
    public var openingRepeats: [Int] = []
    public var openingSteps = 0
    /// Columns of the layout's auxiliary key that batches carry (standardised over the dataset).
    public var auxiliaryDims: [Int] = []
    public init() {}
}

/// The queue between the loader's worker thread and its consumer. The worker holds this strongly
/// and never the loader, so dropping the loader ends the worker (its deinit closes the channel).
final class BatchChannel: @unchecked Sendable {
    let condition = NSCondition()
    var queue: [(batch: EpisodeBatch, after: EpisodeSampler)] = []
    var failure: Error?
    /// Bumped by every restart or close; a worker of an older generation exits and its batch is dropped.
    var generation = 0
    /// Workers assembling a batch right now: the only time a worker holds the loader's assembler.
    var assembling = 0
}

/// Batches in sampler order, decoded and augmented on a background thread. Augmentation draws
/// depend only on (seed, epoch, cursor), never on timing, so a resumed run gets identical batches.
public final class EpisodeLoader: @unchecked Sendable {
    public var dataset: EpisodeDataset { assembler.dataset }
    public var stats: NormStats { assembler.stats }
    public var options: LoaderOptions { assembler.options }
    /// Mean and standard deviation of each `auxiliaryDims` column over the dataset.
    public var auxiliaryMoments: (mean: [Float], std: [Float]) { assembler.auxiliaryMoments }
    /// The position after the last batch handed out: what a checkpoint saves.
    public private(set) var consumed: EpisodeSampler

    private let assembler: BatchAssembler
    private let channel = BatchChannel()

    public init(dataset: EpisodeDataset, stats: NormStats, options: LoaderOptions) throws {
        guard stats.schema == dataset.statsSchema else { throw EpisodeError("norm stats are for \(stats.schema), the dataset is \(dataset.statsSchema)") }
        guard options.prefetch >= 1, options.batchSize >= 1, options.horizon >= 1 else {
            throw EpisodeError("loader options: prefetch, batch size and horizon must be at least 1")
        }
        guard options.shift >= 0, options.shift < dataset.imageShape.prefix(2).min() ?? 0 else {
            throw EpisodeError("loader options: a random shift of \(options.shift) px for \(dataset.imageShape.prefix(2).map(String.init).joined(separator: "x")) frames; expected 0 up to less than the frame's side")
        }
        guard options.repeats.isEmpty || (options.repeats.count == dataset.episodes.count && options.repeats.allSatisfy { $0 >= 1 }) else {
            throw EpisodeError("loader options: \(options.repeats.count) repeat counts (each >= 1) for \(dataset.episodes.count) episodes")
        }
        guard options.openingRepeats.isEmpty
                || (options.openingRepeats.count == dataset.episodes.count && options.openingRepeats.allSatisfy { $0 >= 1 } && options.openingSteps >= 1) else {
            throw EpisodeError("loader options: \(options.openingRepeats.count) opening repeat counts (each >= 1) for \(dataset.episodes.count) " +
                               "episodes, over the first \(options.openingSteps) steps (at least 1)")
        }
        let whole = options.repeats.isEmpty
            ? Array(dataset.episodes.indices)
            : dataset.episodes.indices.flatMap { Array(repeating: $0, count: options.repeats[$0]) }
        let openings = options.openingRepeats.isEmpty ? [] : dataset.episodes.indices.flatMap { e in
            Array(repeating: e, count: (options.repeats.isEmpty ? 1 : options.repeats[e]) * (options.openingRepeats[e] - 1))
        }
        assembler = BatchAssembler(dataset: dataset, stats: stats, options: options, sampledEpisodes: whole + openings,
                                   auxiliaryMoments: try Self.moments(dataset, columns: options.auxiliaryDims))
        let lengths = whole.map { dataset.episodes[$0].length } + openings.map { min(dataset.episodes[$0].length, options.openingSteps) }
        consumed = EpisodeSampler(lengths: lengths, seed: options.seed)
        start(from: consumed)
    }

    deinit { close() }

    /// The next batch; rethrows a read error from the worker (naming file, episode and key).
    public func next() throws -> EpisodeBatch {
        let started = Date()
        let c = channel
        c.condition.lock()
        defer { c.condition.unlock() }
        while c.queue.isEmpty && c.failure == nil { c.condition.wait() }
        if let failure = c.failure { throw failure }
        var (batch, after) = c.queue.removeFirst()
        consumed = after
        c.condition.broadcast()
        batch.waitSeconds = Date().timeIntervalSince(started)
        return batch
    }

    public func save(into state: inout TrainerState) { consumed.save(into: &state) }

    /// Moves the stream to a saved position; batches already prefetched are discarded.
    public func restore(from state: TrainerState) throws {
        var sampler = consumed
        try sampler.restore(from: state)
        consumed = sampler
        start(from: sampler)
    }

    /// Retires the worker and waits for a batch it is assembling, so that once the loader is gone no
    /// thread reads its files: a process that exits right after dropping it (a refused resume) would
    /// otherwise tear HDF5 down under a read in flight and die of SIGILL instead of its exit status.
    private func close() {
        channel.condition.lock()
        channel.generation += 1
        channel.queue.removeAll()
        channel.condition.broadcast()
        while channel.assembling > 0 { channel.condition.wait() }
        channel.condition.unlock()
    }

    /// Starts a worker producing batches from `sampler` onwards (retiring any earlier worker).
    private func start(from sampler: EpisodeSampler) {
        let c = channel
        c.condition.lock()
        c.generation += 1
        let mine = c.generation
        c.queue.removeAll()
        c.failure = nil
        c.condition.broadcast()
        c.condition.unlock()
        let prefetch = options.prefetch
        // The worker holds the loader's assembler weakly and strongly only while `assembling` counts
        // it, and never the loader: so the loader's last owner runs its deinit, which waits for that
        // batch, and then frees the assembler (closing the files) on the owner's thread.
        let thread = Thread { [weak assembler] in
            var next = sampler
            while true {
                c.condition.lock()
                while c.generation == mine && c.queue.count >= prefetch { c.condition.wait() }
                guard c.generation == mine else { c.condition.unlock(); return }
                c.assembling += 1
                c.condition.unlock()
                var advanced = next
                let result: Result<EpisodeBatch, Error>? = {
                    guard let assembler else { return nil }
                    return Result { try assembler.assemble(&advanced) }
                }()
                c.condition.lock()
                defer { c.condition.unlock() }
                c.assembling -= 1
                c.condition.broadcast()
                guard c.generation == mine, let result else { return }
                switch result {
                case .success(let batch):
                    c.queue.append((batch, advanced))
                    next = advanced
                case .failure(let error):
                    c.failure = error
                }
                c.condition.broadcast()
                if c.failure != nil { return }
            }
        }
        thread.name = "episode-loader"
        thread.start()
    }

    /// Mean and population std of the auxiliary key's `columns` over the dataset (NormStats' per-column statistics).
    public static func moments(_ dataset: EpisodeDataset, columns: [Int]) throws -> (mean: [Float], std: [Float]) {
        guard !columns.isEmpty else { return ([], []) }
        let width = dataset.auxiliaryDim
        guard dataset.layout.auxiliaryKey != nil, columns.allSatisfy({ (0..<width).contains($0) }) else {
            throw EpisodeError("loader options: auxiliary columns \(columns) of " +
                               (dataset.layout.auxiliaryKey.map { "'\($0)' (\(width) wide)" } ?? "no auxiliary key"))
        }
        let rows = try dataset.allAuxiliary()
        let selected = stride(from: 0, to: rows.count, by: width).flatMap { row in columns.map { rows[row + $0] } }
        let stats = NormStats.stats(selected, dims: columns.count)
        // A constant column (an absent second object) comes out 0 instead of dividing by 0.
        return (stats.mean.map { Float($0) }, stats.std.map { $0 > 1e-6 ? Float($0) : 1 })
    }

    /// Reads, augments and normalises one batch, advancing `sampler` (on the caller's thread).
    public func assemble(_ sampler: inout EpisodeSampler) throws -> EpisodeBatch { try assembler.assemble(&sampler) }
}

/// What the worker needs to read one batch: the dataset and how to sample, augment and normalise it.
final class BatchAssembler: @unchecked Sendable {
    let dataset: EpisodeDataset
    let stats: NormStats
    let options: LoaderOptions
    /// The dataset episode behind each of the sampler's episodes: repeats and opening copies (cut
    /// after `openingSteps`, the last of them) name their episode again.
    let sampledEpisodes: [Int]
    let auxiliaryMoments: (mean: [Float], std: [Float])
    let augmentation: ImageAugmentation

    init(dataset: EpisodeDataset, stats: NormStats, options: LoaderOptions, sampledEpisodes: [Int], auxiliaryMoments: (mean: [Float], std: [Float])) {
        (self.dataset, self.stats, self.options, self.sampledEpisodes, self.auxiliaryMoments) = (dataset, stats, options, sampledEpisodes, auxiliaryMoments)
        augmentation = ImageAugmentation(cropAndJitter: options.augment, shift: options.shift)
    }

    /// Reads, augments and normalises one batch, advancing `sampler`.
    func assemble(_ sampler: inout EpisodeSampler) throws -> EpisodeBatch {
        let (b, horizon, a, p) = (options.batchSize, options.horizon, dataset.actionDim, dataset.proprioDim)
        let cameras = dataset.layout.imageKeys.count
        let (h, w) = (dataset.imageShape[0], dataset.imageShape[1])
        let images = Tensor.zeros([b, cameras, h, w, 3])
        let clean = options.augmenting ? Tensor.zeros([b, cameras, h, w, 3]) : nil
        var proprio: [Float] = [], actions: [Float] = [], mask: [Float] = [], instructions: [String] = [], auxiliary: [Float] = []
        var frames: [(episode: Int, step: Int)] = []
        let picks = options.shard.take(b) { () -> (position: UInt64, episode: Int, step: Int) in
            let position = UInt64(sampler.epoch) << 32 &+ UInt64(sampler.cursor)
            let (episode, step) = sampler.next()
            return (position, sampledEpisodes[episode], step)
        }
        for (i, (position, episode, step)) in picks.enumerated() {
            let sample = try dataset.sample(episode: episode, step: step, horizon: horizon)
            var rng = sampleRNG(seed: options.seed, position: position)
            for (c, image) in sample.images.enumerated() {
                let offset = (i * cameras + c) * h * w * 3
                let plain = (clean ?? images).pointer + offset
                for j in 0..<image.count { plain[j] = Float(image[j]) / 255 }
                if clean != nil { augmentation.apply(image, height: h, width: w, rng: &rng, into: images.pointer + offset) }
            }
            proprio += sample.proprio
            actions += sample.actions
            mask += sample.actionMask
            instructions.append(sample.instruction)
            frames.append((episode, step))
            for (k, c) in options.auxiliaryDims.enumerated() {
                auxiliary.append((sample.auxiliary[c] - auxiliaryMoments.mean[k]) / auxiliaryMoments.std[k])
            }
        }
        NormStats.normalize(&proprio, stats.proprio)
        NormStats.normalize(&actions, stats.actions)
        return EpisodeBatch(images: images, cleanImages: clean, proprio: Tensor(proprio, shape: [b, p]), actions: Tensor(actions, shape: [b, horizon, a]),
                            actionMask: Tensor(mask, shape: [b, horizon]), instructions: instructions,
                            auxiliary: options.auxiliaryDims.isEmpty ? nil : Tensor(auxiliary, shape: [b, options.auxiliaryDims.count]), frames: frames,
                            positions: picks.map(\.position), waitSeconds: 0)
    }
}
