/// A model component whose parameters are found by reflection: every stored `Tensor` is a
/// parameter, every stored `Module` (or array of modules, or optional module) a child.
///
/// Names are dotted paths in the Hugging Face style: a property `qProj` of the child `selfAttn` of
/// element 0 of `layers` is `layers.0.self_attn.q_proj.weight`. Property names are converted from
/// camelCase to snake_case; a subclass overrides `parameterKeys` where a counterpart's name differs.
open class Module {
    public init() {}

    /// Property name → key, for names that do not follow the camelCase → snake_case rule.
    open class var parameterKeys: [String: String] { [:] }

    /// All parameters with their dotted names, in declaration order.
    public func namedParameters() -> [(String, Tensor)] {
        var result: [(String, Tensor)] = []
        visit(prefix: "") { name, tensor in result.append((name, tensor)) }
        return result
    }

    public func parameters() -> [Tensor] { namedParameters().map(\.1) }

    /// Parameters with `requiresGrad`, i.e. the ones an optimizer should see.
    public func trainableParameters() -> [(String, Tensor)] { namedParameters().filter { $0.1.requiresGrad } }

    public func freeze() { for p in parameters() { p.requiresGrad = false } }
    public func unfreeze() { for p in parameters() { p.requiresGrad = true } }

    public func zeroGrad() { for p in parameters() { p.zeroGrad() } }

    /// Number of scalars, optionally only the trainable ones.
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        parameters().filter { !trainableOnly || $0.requiresGrad }.reduce(0) { $0 + $1.count }
    }

    private func visit(prefix: String, _ body: (String, Tensor) -> Void) {
        var mirrors: [Mirror] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        while let m = mirror { mirrors.insert(m, at: 0); mirror = m.superclassMirror }
        let keys = Self.parameterKeys
        for m in mirrors {
            for child in m.children {
                guard let label = child.label else { continue }
                let name = keys[label] ?? snakeCased(label)
                // An empty key flattens a child into its parent (e.g. a Linear's adapters: `q_proj.lora_A…`).
                if name.isEmpty, let m = child.value as? Module { m.visit(prefix: prefix, body); continue }
                Module.visitValue(child.value, key: prefix + name, body)
            }
        }
    }

    private static func visitValue(_ value: Any, key: String, _ body: (String, Tensor) -> Void) {
        switch value {
        case let t as Tensor: body(key, t)
        case let m as Module: m.visit(prefix: key + ".", body)
        case let ms as [Module]: for (i, m) in ms.enumerated() { m.visit(prefix: "\(key).\(i).", body) }
        case let ts as [Tensor]: for (i, t) in ts.enumerated() { body("\(key).\(i)", t) }
        case let named as NamedModules: for (name, m) in named.entries { m.visit(prefix: "\(key).\(name).", body) }
        default:
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value {
                visitValue(wrapped, key: key, body)
            }
        }
    }
}

/// "postAttentionLayernorm" → "post_attention_layernorm"
func snakeCased(_ name: String) -> String {
    var out = ""
    for ch in name {
        if ch.isUppercase { if !out.isEmpty { out.append("_") }; out.append(contentsOf: ch.lowercased()) } else { out.append(ch) }
    }
    return out
}

/// Child modules under names rather than indices, in insertion order (PyTorch's `nn.ModuleDict`):
/// `lora_A.action.weight`.
public struct NamedModules {
    public private(set) var entries: [(String, Module)] = []
    public init() {}

    public subscript(name: String) -> Module? {
        get { entries.first { $0.0 == name }?.1 }
        set {
            entries.removeAll { $0.0 == name }
            if let newValue { entries.append((name, newValue)) }
        }
    }

    public var names: [String] { entries.map(\.0) }
}
