import Autograd

/// InternVL's `mlp1`: pixel shuffle (2×2 neighbouring patches → one token of 4× the channels),
/// LayerNorm, Linear, GELU, Linear into the language model's width. Keys `mlp1.0`, `mlp1.1`, `mlp1.3`.
public final class Projector: Module {
    public let norm: LayerNorm
    public let fc1: Linear
    public let fc2: Linear

    override public class var parameterKeys: [String: String] { ["norm": "0", "fc1": "1", "fc2": "3"] }

    public init(visionWidth: Int, languageWidth: Int, rng: inout RNG) {
        norm = LayerNorm(4 * visionWidth)
        fc1 = Linear(4 * visionWidth, languageWidth, rng: &rng)
        fc2 = Linear(languageWidth, languageWidth, rng: &rng)
    }

    /// Patch features [B, N, D] of a square grid → image tokens [B, N/4, languageWidth].
    public func callAsFunction(_ features: Tensor) -> Tensor {
        fc2(gelu(fc1(norm(pixelShuffle(features)))))
    }
}

/// InternVL's `pixel_shuffle(x, 0.5)` on a square grid, step for step (so real InternVL weights
/// see tokens in the order they were trained on): [B, N, D] → [B, N/4, 4D].
func pixelShuffle(_ x: Tensor) -> Tensor {
    let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
    let side = Int(Double(n).squareRoot())
    precondition(side * side == n && side % 2 == 0, "pixelShuffle: \(n) tokens are not an even square grid")
    let (w, h) = (side, side)
    var y = x.reshaped([b, w, h / 2, c * 2])       // view(n, w, h*s, c/s)
    y = y.permuted([0, 2, 1, 3])                    // (n, h*s, w, c/s)
    y = y.reshaped([b, h / 2, w / 2, c * 4])       // view(n, h*s, w*s, c/s²)
    y = y.permuted([0, 2, 1, 3])                    // (n, w*s, h*s, c/s²)
    return y.reshaped([b, n / 4, c * 4])
}
