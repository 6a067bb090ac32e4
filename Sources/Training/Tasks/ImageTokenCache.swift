import Autograd
import Episodes
import Models

/// The frozen VLM's image tokens per image, filled as images are first seen: the vision tower and
/// projector never train after stage 0, so stages 1 and 2 compute each frame's tokens once (unless
/// frames are augmented, when every batch is new). Other images (stage 2's VQA examples) share the
/// cache under keys past the frames.
final class ImageTokenCache {
    let vlm: VisionLanguageModel
    /// The first frame key of each episode; the last entry is the number of frames.
    private let frameOffsets: [Int]
    private let augmented: Bool
    private var tokens: [Int: [Float]] = [:]

    init(vlm: VisionLanguageModel, dataset: EpisodeDataset, augmented: Bool) {
        self.vlm = vlm
        frameOffsets = dataset.episodes.reduce(into: [0]) { $0.append($0.last! + $1.length) }
        self.augmented = augmented
    }

    /// Image tokens [B, n, C] of a batch's frames (pixels [B, S, S, 3]).
    func frames(_ pixels: Tensor, of batch: EpisodeBatch) -> Tensor {
        self(pixels, keys: augmented ? nil : batch.frames.map { frameOffsets[$0.episode] + $0.step })
    }

    /// Image tokens [B, n, C] of other images, named by `indices` (e.g. VQA examples).
    func others(_ pixels: Tensor, indices: [Int]) -> Tensor {
        self(pixels, keys: indices.map { frameOffsets.last! + $0 })
    }

    /// `keys` name the images; nil: do not cache.
    private func callAsFunction(_ pixels: Tensor, keys: [Int]?) -> Tensor {
        let vlm = vlm
        guard let keys else { return withoutGrad { vlm.imageTokens(pixels) } }
        let missing = keys.indices.filter { tokens[keys[$0]] == nil }
        if !missing.isEmpty {
            let rows = gatherRows(pixels.reshaped([pixels.shape[0], -1]), missing).reshaped([-1] + Array(pixels.shape.dropFirst()))
            let fresh = withoutGrad { vlm.imageTokens(rows) }
            let size = fresh.count / missing.count, values = fresh.toArray()
            for (k, i) in missing.enumerated() { tokens[keys[i]] = Array(values[(k * size)..<((k + 1) * size)]) }
        }
        return Tensor(keys.flatMap { tokens[$0]! }, shape: [keys.count, vlm.tokensPerImage, vlm.languageModel.config.hiddenSize])
    }
}
