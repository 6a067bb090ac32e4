// Parameter initialisers. All draw from an explicit `RNG`, so a seed fixes a model exactly.

extension Tensor {
    /// Normal(0, std²) entries, e.g. Hugging Face's `initializer_range` init with std 0.02.
    public static func randomNormal(_ shape: [Int], std: Float = 1, rng: inout RNG, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor.empty(shape)
        for i in 0..<t.count { t.pointer[i] = rng.normal() * std }
        t.requiresGrad = requiresGrad
        return t
    }

    /// Uniform entries in [low, high).
    public static func randomUniform(_ shape: [Int], low: Float, high: Float, rng: inout RNG, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor.empty(shape)
        for i in 0..<t.count { t.pointer[i] = low + (high - low) * rng.uniform() }
        t.requiresGrad = requiresGrad
        return t
    }

    /// PyTorch's `nn.Linear` default for a [out, in] weight: U(−1/√in, 1/√in).
    public static func linearWeight(out: Int, in inFeatures: Int, rng: inout RNG) -> Tensor {
        let bound = 1 / Float(max(inFeatures, 1)).squareRoot()
        return randomUniform([out, inFeatures], low: -bound, high: bound, rng: &rng, requiresGrad: true)
    }
}
