import Autograd
import Episodes
import Models

/// The frozen VLM's image tokens per image, filled as images are first seen: the vision tower and
/// projector never train after stage 0, so stages 1 and 2 compute each frame's tokens once. The
/// VLM reads the unaugmented frame; augmentation is for what trains on pixels (the expert's own
/// vision). Other images (stage 2's VQA examples) share the cache under keys past the frames.
final class ImageTokenCache {
    let vlm: VisionLanguageModel
    /// The first frame key of each episode; the last entry is the number of frames.
    private let frameOffsets: [Int]
    private var tokens: [Int: [Float]] = [:]

    init(vlm: VisionLanguageModel, dataset: EpisodeDataset) {
        self.vlm = vlm
        frameOffsets = dataset.episodes.reduce(into: [0]) { $0.append($0.last! + $1.length) }
    }

    /// Image tokens [B, n, C] of a batch's frames (the first camera's: the one view the VLM reads),
    /// from the unaugmented images [B, cameras, S, S, 3].
    func frames(of batch: EpisodeBatch) -> Tensor {
        self(ActionInputs.vlmView(batch.cleanImages ?? batch.images), keys: batch.frames.map { frameOffsets[$0.episode] + $0.step })
    }

    /// Image tokens [B, n, C] of other images, named by `indices` (e.g. VQA examples).
    func others(_ pixels: Tensor, indices: [Int]) -> Tensor {
        self(pixels, keys: indices.map { frameOffsets.last! + $0 })
    }

    /// `keys` name the images.
    private func callAsFunction(_ pixels: Tensor, keys: [Int]) -> Tensor {
        let vlm = vlm
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
