import Checkpoint
import Episodes
import Foundation

/// `data:` for robot episodes: which files, in which layout, with which keys, and how samples are cut.
public struct EpisodeDataSection: Codable, Sendable, Equatable {
    /// Files or glob patterns (`Datasets/metaworld-mt10/*.hdf5`), relative to the working directory.
    public var files: [String] = []
    /// "robomimic" (also LIBERO) or "aloha".
    public var layout = "robomimic"
    /// The camera views, the first the VLM's. Stage 2 reads its Expert's: there `[]` (its default)
    /// means the stage-1 run's views.
    public var imageKeys = ["agentview_rgb"]
    public var proprioKeys = ["ee_pos", "gripper_state"]
    public var actionKey = "actions"
    /// robomimic `mask/<split>` names; "" uses every episode.
    public var trainSplit = "train"
    public var validSplit = "valid"
    /// Action chunk length H.
    public var horizon = 8
    /// Random resized crop and colour jitter of the frames that train on pixels.
    public var augment = true
    /// Random shift by up to this many pixels per axis (edge-padded; 0: off), independent of `augment`:
    /// what the CNN behaviour-cloning baseline trains with.
    public var augmentShift = 0
    public var prefetch = 4
    /// Times each frame of a file is seen per epoch, by file name (`push-v3.hdf5: 3`); files not
    /// named are seen once. Gives the tasks that learn slowest more of a fixed sample budget.
    public var repeats: [String: Int] = [:]
    /// How many times as often as their other steps the first `opening_steps` steps of each episode
    /// of a file are seen per epoch, by file name (`instruct-place-v3.hdf5: 4`; files not named: as
    /// often). The opening is where a policy must find in the image what the instruction names.
    public var openingRepeats: [String: Int] = [:]
    public var openingSteps = 16
    /// A (T, D) key of the episodes (robomimic `obs/<key>`, e.g. Meta-World's `env_state`) whose
    /// `auxiliary_dims` columns batches carry, standardised, as targets of an auxiliary loss (stage
    /// 1's `model.auxiliary_weight`): privileged simulator state that trains, never an input.
    public var auxiliaryKey = ""
    public var auxiliaryDims: [Int] = []

    public init() {}

    /// The default of the stages that start from a frozen VLM (stages 1 and 2): augmentation off.
    /// The VLM's image tokens are cached per clean frame either way; `augment: true` augments only
    /// what the expert's own vision sees (on MT10 it cost 6 points within the same step budget).
    public static var cachingImageTokens: EpisodeDataSection {
        var data = EpisodeDataSection()
        data.augment = false
        return data
    }

    /// - Parameter viewsInherited: whether `image_keys: []` stands for views given elsewhere (stage 2:
    ///   the stage-1 run's).
    public func validate(viewsInherited: Bool = false) throws {
        guard !files.isEmpty else { throw RecipeError("data.files: list the episode files (globs allowed)") }
        guard EpisodeLayout.Kind(rawValue: layout) != nil else { throw RecipeError("data.layout: expected one of robomimic, aloha; got '\(layout)'") }
        guard !imageKeys.isEmpty || viewsInherited, !actionKey.isEmpty else {
            throw RecipeError("data.image_keys and data.action_key: must not be empty")
        }
        guard horizon >= 1, prefetch >= 1 else { throw RecipeError("data.horizon and data.prefetch: must be at least 1") }
        guard augmentShift >= 0 else { throw RecipeError("data.augment_shift: pixels of random shift, 0 or more; got \(augmentShift)") }
        guard auxiliaryKey.isEmpty == auxiliaryDims.isEmpty else {
            throw RecipeError("data.auxiliary_key and data.auxiliary_dims: give both (the key and which of its columns) or neither")
        }
        guard auxiliaryDims.allSatisfy({ $0 >= 0 }), Set(auxiliaryDims).count == auxiliaryDims.count else {
            throw RecipeError("data.auxiliary_dims: \(auxiliaryDims) must be distinct column indices (0-based) of '\(auxiliaryKey)'")
        }
        for (name, count) in repeats.sorted(by: { $0.key < $1.key }) where count < 1 {
            throw RecipeError("data.repeats.\(name): a file is seen at least once per epoch, got \(count)")
        }
        for (name, count) in openingRepeats.sorted(by: { $0.key < $1.key }) where count < 1 {
            throw RecipeError("data.opening_repeats.\(name): an opening is seen at least once per epoch, got \(count)")
        }
        guard openingSteps >= 1 else { throw RecipeError("data.opening_steps: the opening's length in steps, at least 1; got \(openingSteps)") }
    }

    public var episodeLayout: EpisodeLayout {
        EpisodeLayout(kind: EpisodeLayout.Kind(rawValue: layout) ?? .robomimic, imageKeys: imageKeys, proprioKeys: proprioKeys, actionKey: actionKey,
                      auxiliaryKey: auxiliaryKey.isEmpty ? nil : auxiliaryKey)
    }

    /// The layout of what a trained model reads, without the auxiliary training targets: for acting on
    /// recorded frames (`vla act`, `vla probe`), which need not hold them.
    public var observationLayout: EpisodeLayout {
        var layout = episodeLayout
        layout.auxiliaryKey = nil
        return layout
    }

    /// The files the patterns name, sorted; a pattern matching nothing is an error.
    public func resolvedFiles() throws -> [String] { try Self.expand(files, key: "data.files") }

    /// Glob patterns → sorted file paths; `key` names the recipe key in errors.
    public static func expand(_ patterns: [String], key: String) throws -> [String] {
        var out: [String] = []
        for pattern in patterns {
            var g = glob_t()
            defer { globfree(&g) }
            guard glob(pattern, 0, nil, &g) == 0, g.gl_pathc > 0 else { throw RecipeError("\(key): '\(pattern)' matches no file") }
            out += (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }.sorted()
        }
        return out
    }

    /// The training split of the data files (every episode where `train_split` is empty).
    public func trainingDataset() throws -> EpisodeDataset {
        try EpisodeDataset(files: resolvedFiles(), layout: episodeLayout, split: trainSplit.isEmpty ? nil : trainSplit)
    }

    /// The training loader. Normalisation statistics come from the run folder's norm_stats.json when
    /// it exists (a resumed run keeps its statistics) and are computed over the training split and
    /// saved there otherwise.
    /// - Parameter inherited: normalisation statistics to keep (stage 2 acts through stage 1's frozen
    ///   expert, so it must see actions and proprio scaled exactly as stage 1 did); nil computes them
    ///   from this data.
    public func trainingLoader(run: RunDirectory, batchSize: Int, seed: Int, inherited: NormStats? = nil,
                               shard: DataShard = .whole) throws -> EpisodeLoader {
        let dataset = try trainingDataset()
        let statsURL = run.url.appendingPathComponent("norm_stats.json")
        if let inherited, inherited.schema != dataset.statsSchema {
            throw RecipeError("data: the episodes' action/proprio layout \(dataset.statsSchema) differs from the inherited statistics' \(inherited.schema)")
        }
        let fresh = try inherited ?? NormStats(dataset: dataset)
        let stats: NormStats
        if FileManager.default.fileExists(atPath: statsURL.path) {
            stats = try NormStats.read(from: statsURL, expecting: dataset.statsSchema)
            guard stats.dataHash == fresh.dataHash else {
                throw RecipeError("\(statsURL.path): the training data changed since this run started (data hash differs); " +
                                  "restore the files, or start a new run with --overwrite or another --run-dir")
            }
        } else {
            stats = fresh
            try stats.write(to: statsURL)
        }
        var options = LoaderOptions()
        (options.batchSize, options.horizon, options.augment, options.seed, options.prefetch) = (batchSize, horizon, augment, UInt64(seed), prefetch)
        options.shift = augmentShift
        options.auxiliaryDims = auxiliaryDims
        options.shard = shard
        options.repeats = try perEpisode(repeats, "repeats", dataset)
        options.openingRepeats = try perEpisode(openingRepeats, "opening_repeats", dataset)
        options.openingSteps = openingSteps
        return try EpisodeLoader(dataset: dataset, stats: stats, options: options)
    }

    /// A by-file-name count (`repeats`, `opening_repeats`) per episode of `dataset`, 1 for files not
    /// named; a name that is none of the data files is an error.
    func perEpisode(_ counts: [String: Int], _ key: String, _ dataset: EpisodeDataset) throws -> [Int] {
        guard !counts.isEmpty else { return [] }
        let names = dataset.episodes.map { URL(fileURLWithPath: $0.file).lastPathComponent }
        for name in counts.keys.sorted() where !names.contains(name) {
            throw RecipeError("data.\(key).\(name): no such file among data.files (\(Array(Set(names)).sorted().joined(separator: ", ")))")
        }
        return names.map { counts[$0] ?? 1 }
    }
}
