/// Switches shared by every adapter of a model: whether adapters run at all (stage 2's scaling pass
/// reads the base model), whether dropout is active, and the per-token gates λ of a mixture.
public final class AdapterContext {
    public var enabled = true
    public var training = false
    public var rng: RNG
    /// λ per adapter name, [B, T, 1], multiplying that adapter's input (stage 2's scale head); an
    /// adapter without a gate runs at λ = 1.
    public var gates: [String: Tensor] = [:]

    public init(seed: UInt64) { rng = RNG(seed: seed) }
}

/// The LoRA adapters of one `Linear` (Hu et al. 2021, in PEFT's layout): for each adapter i,
/// Δy = (αᵢ/rᵢ)·Bᵢ·Aᵢ·dropout(λᵢ·x), with A [r, in] Kaiming-uniform and B [out, r] zero, so a new
/// adapter starts as the identity change.
public final class LoRAAdapters: Module {
    public var loraA = NamedModules()
    public var loraB = NamedModules()
    private var scaling: [String: Float] = [:]
    private var dropout: [String: Float] = [:]
    let context: AdapterContext

    override public class var parameterKeys: [String: String] { ["loraA": "lora_A", "loraB": "lora_B"] }

    public init(context: AdapterContext) { self.context = context }

    public var names: [String] { loraA.names }

    public func add(_ name: String, inFeatures: Int, outFeatures: Int, rank: Int, alpha: Float, dropout p: Float, rng: inout RNG) {
        precondition(rank >= 1, "LoRA: rank must be at least 1, got \(rank)")
        loraA[name] = Linear(inFeatures, rank, bias: false, rng: &rng)
        let b = Linear(rank, outFeatures, bias: false, rng: &rng)
        b.weight.pointer.update(repeating: 0, count: b.weight.count)
        loraB[name] = b
        scaling[name] = alpha / Float(rank)
        dropout[name] = p
    }

    /// The summed change of all adapters, or nil when adapters are off.
    func callAsFunction(_ x: Tensor) -> Tensor? {
        guard context.enabled else { return nil }
        var total: Tensor?
        for (name, a) in loraA.entries {
            var h = x
            if let gate = context.gates[name] { h = h * gate }
            if context.training, let p = dropout[name], p > 0 { h = Autograd.dropout(h, p: p, rng: &context.rng) }
            let delta = (loraB[name] as! Linear)((a as! Linear)(h)) * scaling[name]!
            total = total.map { $0 + delta } ?? delta
        }
        return total
    }
}
