import Autograd
import Models

/// The frozen VLM's image tokens per frame, filled as frames are first seen: the vision tower and
/// projector never train after stage 0, so stages 1 and 2 compute each frame's tokens once (unless
/// frames are augmented, when every batch is new).
final class ImageTokenCache {
    let vlm: VisionLanguageModel
    private var tokens: [Int: [Float]] = [:]

    init(vlm: VisionLanguageModel) { self.vlm = vlm }

    /// Image tokens [B, n, C] of `pixels` [B, S, S, 3]; `keys` name the frames (nil: do not cache).
    func callAsFunction(_ pixels: Tensor, keys: [Int]?) -> Tensor {
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
