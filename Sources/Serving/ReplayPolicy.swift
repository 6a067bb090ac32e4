import Episodes
import Foundation

/// Replays recorded episodes: for each observation it finds the recorded frame whose image is nearest
/// (sum of absolute pixel differences; the state breaks ties) among the episodes whose instruction
/// is the prompt (all episodes when none is), and returns the recorded action chunk that followed it.
///
/// It tests the evaluation plumbing, not a model. Given the scripted expert's recordings of the
/// evaluation layouts (`generate.py --all-attempts --seed 1000000`), a closed-loop run must reproduce
/// the expert's success: a flipped or transposed image matches the wrong frames, and whatever the
/// transport, the quantile normalisation round trip or the chunk execution loses lowers the rate.
public final class ReplayPolicy: Policy {
    public let name = "replay"
    public let schema: ObservationSchema
    public let actionHorizon: Int
    public let actionDim: Int
    public let extraMetadata: [String: MsgPackValue]

    private let dataset: EpisodeDataset
    private let stats: NormStats
    private let frameBytes: Int
    /// Per episode: all frames (T × H × W × 3), proprio (T × D) and quantile-normalised actions (T × A),
    /// as a trained policy would produce them before un-normalisation.
    private var images: [[UInt8]] = []
    private var states: [[Float]] = []
    private var normalizedActions: [[Float]] = []
    private let episodesByInstruction: [String: [Int]]

    public init(files: [String], horizon: Int) throws {
        guard horizon >= 1 else { throw EpisodeError("--horizon must be at least 1, got \(horizon)") }
        let dataset = try EpisodeDataset(files: files, layout: .metaworld)
        self.dataset = dataset
        self.stats = try NormStats(dataset: dataset)
        self.actionHorizon = horizon
        self.actionDim = dataset.actionDim
        let (height, width) = (dataset.imageShape[0], dataset.imageShape[1])
        self.frameBytes = height * width * 3
        self.schema = ObservationSchema(imageHeight: height, imageWidth: width, stateDim: dataset.proprioDim)
        var byInstruction: [String: [Int]] = [:]
        for (e, info) in dataset.episodes.enumerated() {
            var frames: [UInt8] = [], proprio: [Float] = [], actions: [Float] = []
            for t in 0..<info.length {
                let sample = try dataset.sample(episode: e, step: t, horizon: 1)
                frames += sample.images[0]
                proprio += sample.proprio
                actions += sample.actions
            }
            NormStats.normalize(&actions, stats.actions)
            images.append(frames)
            states.append(proprio)
            normalizedActions.append(actions)
            byInstruction[info.instruction, default: []].append(e)
        }
        self.episodesByInstruction = byInstruction
        let file = try HDF5File(path: dataset.episodes[0].file)
        var extra: [String: MsgPackValue] = ["episodes": .int(Int64(dataset.episodes.count))]
        if let camera = try file.stringAttribute("camera", of: "data") { extra["camera"] = .string(camera) }
        self.extraMetadata = extra
    }

    public func infer(_ observation: Observation) throws -> PolicyOutput {
        let candidates = episodesByInstruction[observation.prompt] ?? Array(dataset.episodes.indices)
        var best = (episode: 0, step: 0, image: Int.max, state: Float.infinity)
        let image = observation.images[0]
        for e in candidates {
            for t in 0..<dataset.episodes[e].length {
                let d = Self.absoluteDifference(image, images[e], offset: t * frameBytes, count: frameBytes)
                guard d <= best.image else { continue }
                let s = zip(observation.state, states[e][(t * schema.stateDim)..<((t + 1) * schema.stateDim)]).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                if d < best.image || s < best.state { best = (e, t, d, s) }
            }
        }
        let length = dataset.episodes[best.episode].length
        var chunk: [Float] = []
        for k in 0..<actionHorizon {
            let row = min(best.step + k, length - 1)  // past the end the last action repeats, as in training samples
            chunk += normalizedActions[best.episode][(row * actionDim)..<((row + 1) * actionDim)]
        }
        NormStats.unnormalize(&chunk, stats.actions)
        let info = dataset.episodes[best.episode]
        return PolicyOutput(actions: chunk, extra: ["replay": .map([
            MsgPackEntry(.string("episode"), .string("\((info.file as NSString).lastPathComponent):\(info.name)")),
            MsgPackEntry(.string("step"), .int(Int64(best.step))),
            MsgPackEntry(.string("image_mean_abs_diff"), .float(Double(best.image) / Double(frameBytes))),
        ])])
    }

    static func absoluteDifference(_ a: [UInt8], _ b: [UInt8], offset: Int, count: Int) -> Int {
        a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                var total = 0
                var i = 0
                // Blocks of 1024 bytes sum into Int32 lanes, which the compiler vectorises; 1024 × 255 cannot overflow.
                while i < count {
                    let end = min(i + 1024, count)
                    var block: Int32 = 0
                    for j in i..<end { block &+= Int32(abs(Int16(x[j]) - Int16(y[offset + j]))) }
                    total += Int(block)
                    i = end
                }
                return total
            }
        }
    }
}
