import Autograd
import Episodes
import Foundation
import Models

/// "Does the policy look at the image?" (`vla probe`): on recorded frames, the noise-free action
/// chunk (the flow integrated from zero noise) is compared with the recorded one, with the chunk
/// predicted when each frame's image is swapped for another episode's at the same step, and with
/// the spread of the recorded chunks themselves. A policy that ignores the layout in the image
/// scores about the spread, and swapping images barely changes what it does. The same swap of the
/// instruction alone tells whether it reads the language (in a file with one instruction for every
/// episode, as Meta-World's tasks, that change is zero by construction).
public struct ImageSensitivity: Codable, Sendable, Equatable {
    public var file: String
    public var step: Int
    public var episodes: Int
    /// Mean |predicted − recorded| over every action value (environment units).
    public var error: Double
    /// The same with each frame's image swapped for another episode's.
    public var swappedError: Double
    /// Mean |predicted − predicted with the swapped image|.
    public var swapChange: Double
    /// Mean |predicted − predicted with the instruction swapped for another episode's|.
    public var instructionChange: Double
    /// Mean |recorded − mean recorded chunk|: what always predicting the average would score.
    public var spread: Double
    /// For a model trained with an auxiliary loss, on a file that records its targets: mean
    /// |head's prediction − recorded| over the target columns (environment units, e.g. metres),
    /// the same for always predicting the mean recorded row, and the change of the prediction
    /// when the instruction is swapped. Does the expert's vision locate what it was taught to?
    public var auxiliaryError: Double?
    public var auxiliarySpread: Double?
    public var auxiliaryInstructionChange: Double?
    /// `auxiliaryError` and `auxiliarySpread` per target column (`data.auxiliary_dims` order): which
    /// of the things it was taught to locate the head finds.
    public var auxiliaryColumnErrors: [Double]?
    public var auxiliaryColumnSpreads: [Double]?

    enum CodingKeys: String, CodingKey {
        case file, step, episodes, error, spread
        case swappedError = "swapped_error", swapChange = "swap_change", instructionChange = "instruction_change"
        case auxiliaryError = "auxiliary_error", auxiliarySpread = "auxiliary_spread", auxiliaryInstructionChange = "auxiliary_instruction_change"
        case auxiliaryColumnErrors = "auxiliary_column_errors", auxiliaryColumnSpreads = "auxiliary_column_spreads"
    }

    /// Mean and std of the auxiliary target columns over the policy's training episodes (what its
    /// head was standardised with), or nil for a policy without an auxiliary head.
    public static func auxiliaryMoments(_ policy: ActionPolicy) throws -> (mean: [Float], std: [Float])? {
        let data = policy.recipe.data
        guard policy.vla.actionModel.auxiliaryHead != nil, !data.auxiliaryDims.isEmpty else { return nil }
        return try EpisodeLoader.moments(data.trainingDataset(), columns: data.auxiliaryDims)
    }

    /// Probes `policy` at `step` of the first `episodes` episodes of `file` (shorter episodes use
    /// their last full chunk); images (and, separately, instructions) are swapped with the episode
    /// `episodes / 2` further on.
    /// `split` ("train", "valid") takes the episodes of that robomimic mask only: the held-out ones
    /// tell whether what the policy learnt of the image carries over to layouts it never saw.
    /// With `auxiliaryMoments` (from `auxiliaryMoments(policy)`) and a file that records the
    /// auxiliary key, the auxiliary head is probed as well.
    public static func probe(_ policy: ActionPolicy, file: String, step: Int, episodes: Int, split: String? = nil,
                             auxiliaryMoments: (mean: [Float], std: [Float])? = nil) throws -> ImageSensitivity {
        // A file without the auxiliary key (no simulator state) is probed on its observations alone.
        let withTargets = auxiliaryMoments == nil ? nil : try? EpisodeDataset(files: [file], layout: policy.recipe.data.episodeLayout, split: split)
        let data = try withTargets ?? EpisodeDataset(files: [file], layout: policy.recipe.data.observationLayout, split: split)
        let n = min(episodes, data.episodes.count)
        guard n >= 2 else { throw EpisodeError("\(file): probing needs at least 2 episodes, it has \(data.episodes.count)") }
        let samples = try (0..<n).map { e in
            try data.sample(episode: e, step: max(0, min(step, data.episodes[e].length - policy.horizon)), horizon: policy.horizon)
        }
        let shift = max(1, n / 2)
        var own: [[Float]] = [], swapped: [[Float]] = [], reworded: [[Float]] = []
        for (i, s) in samples.enumerated() {
            let other = samples[(i + shift) % n]
            // Every camera view is swapped together: the other episode's whole observation.
            own.append(try policy.meanAction(images: s.images, proprio: s.proprio, instruction: s.instruction))
            swapped.append(try policy.meanAction(images: other.images, proprio: s.proprio, instruction: s.instruction))
            reworded.append(try policy.meanAction(images: s.images, proprio: s.proprio, instruction: other.instruction))
        }
        let recorded = samples.map(\.actions)
        var result = ImageSensitivity(file: file, step: step, episodes: n, error: meanAbsolute(own, recorded),
                                      swappedError: meanAbsolute(swapped, recorded), swapChange: meanAbsolute(own, swapped),
                                      instructionChange: meanAbsolute(own, reworded), spread: spread(recorded))
        if let withTargets, let (mean, std) = auxiliaryMoments {
            let columns = policy.recipe.data.auxiliaryDims
            guard columns.allSatisfy({ $0 < withTargets.auxiliaryDim }) else {
                throw EpisodeError("\(file): '\(withTargets.layout.auxiliaryKey ?? "")' has \(withTargets.auxiliaryDim) columns, but the " +
                                   "auxiliary head predicts columns \(columns)")
            }
            func located(_ s: EpisodeSample, instruction: String) throws -> [Float] {
                let z = try policy.auxiliary(images: s.images, proprio: s.proprio, instruction: instruction)!
                return z.indices.map { z[$0] * std[$0] + mean[$0] }
            }
            let targets = samples.map { s in columns.map { s.auxiliary[$0] } }
            let predicted = try samples.map { try located($0, instruction: $0.instruction) }
            let rephrased = try samples.indices.map { try located(samples[$0], instruction: samples[($0 + shift) % n].instruction) }
            result.auxiliaryError = meanAbsolute(predicted, targets)
            result.auxiliarySpread = spread(targets)
            result.auxiliaryInstructionChange = meanAbsolute(predicted, rephrased)
            let column = { (rows: [[Float]], k: Int) in rows.map { [$0[k]] } }
            result.auxiliaryColumnErrors = columns.indices.map { meanAbsolute(column(predicted, $0), column(targets, $0)) }
            result.auxiliaryColumnSpreads = columns.indices.map { spread(column(targets, $0)) }
        }
        return result
    }

    /// Mean |row − mean row|: what always predicting the average row would err.
    static func spread(_ rows: [[Float]]) -> Double {
        let average = rows[0].indices.map { j in rows.map { $0[j] }.reduce(0, +) / Float(rows.count) }
        return meanAbsolute(rows, Array(repeating: average, count: rows.count))
    }

    static func meanAbsolute(_ a: [[Float]], _ b: [[Float]]) -> Double {
        var total = 0.0, count = 0
        for (x, y) in zip(a, b) { for (u, v) in zip(x, y) { total += Double(abs(u - v)); count += 1 } }
        return total / Double(max(count, 1))
    }
}

extension ActionPolicy {
    /// The chunk the flow gives from zero noise (the plain command, no thinking): the policy's
    /// central prediction, free of sampling noise.
    public func meanAction(images: [[UInt8]], proprio: [Float], instruction: String) throws -> [Float] {
        try act(images: images, proprio: proprio, instruction: instruction, noise: Array(repeating: 0, count: horizon * actionDim))
    }
}
