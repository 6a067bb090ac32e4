import Autograd

/// Stage 2's per-token router (the paper's scale head, PEFT X-LoRA's classifier): from the last
/// hidden state of the base LM (adapters off, no gradient) an MLP with ReLU and dropout gives, per
/// token, a softmax over the adapters. Every adapted layer then computes
/// W0·x + Σ_i (α/r)·B_i·A_i·(λ_i·x) with the same λ (§1.5 of the method notes).
public final class ScaleHead: Module {
    public let layers: [Linear]
    public let adapterNames: [String]
    let dropout: Float

    /// `depth` linear layers (the paper: 4, width 128) ending in one logit per adapter.
    public init(inFeatures: Int, width: Int, depth: Int, adapterNames: [String], dropout: Float, rng: inout RNG) {
        precondition(depth >= 1 && !adapterNames.isEmpty, "ScaleHead: depth >= 1 and at least one adapter")
        let sizes = [inFeatures] + Array(repeating: width, count: depth - 1) + [adapterNames.count]
        layers = (0..<depth).map { Linear(sizes[$0], sizes[$0 + 1], rng: &rng) }
        self.adapterNames = adapterNames
        self.dropout = dropout
    }

    /// hidden [B, T, C] → λ [B, T, adapters], rows summing to 1.
    public func callAsFunction(_ hidden: Tensor, training: Bool, rng: inout RNG) -> Tensor {
        var h = hidden
        for (i, layer) in layers.enumerated() {
            h = layer(h)
            guard i < layers.count - 1 else { break }
            h = relu(h)
            if training && dropout > 0 { h = Autograd.dropout(h, p: dropout, rng: &rng) }
        }
        return softmax(h, axis: -1)
    }

    /// Sets each adapter's gate [B, T, 1] from λ [B, T, adapters].
    public func route(_ scales: Tensor, into context: AdapterContext) {
        let parts = split(scales, sizes: Array(repeating: 1, count: adapterNames.count), axis: -1)
        for (name, gate) in zip(adapterNames, parts) { context.gates[name] = gate }
    }
}
