import Autograd

/// Shell-style match where `*` is any run of characters (dots included).
func globMatch(_ pattern: String, _ name: String) -> Bool {
    let p = Array(pattern), n = Array(name)
    var (pi, ni, star, mark) = (0, 0, -1, 0)
    while ni < n.count {
        if pi < p.count && (p[pi] == n[ni] || p[pi] == "?") { pi += 1; ni += 1 }
        else if pi < p.count && p[pi] == "*" { star = pi; mark = ni; pi += 1 }
        else if star >= 0 { pi = star + 1; mark += 1; ni = mark }
        else { return false }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}

/// Applies the recipe's trainable/frozen patterns to a model's parameters. Every pattern must match
/// something, so a typo cannot silently freeze or train the wrong weights.
func applyTrainability(_ model: Module, trainable: [String], frozen: [String]) throws {
    let named = model.namedParameters()
    for (key, patterns) in [("train.trainable", trainable), ("train.frozen", frozen)] {
        for pattern in patterns where !named.contains(where: { globMatch(pattern, $0.0) }) {
            throw RecipeError("\(key): pattern '\(pattern)' matches no parameter (names look like '\(named.first?.0 ?? "")')")
        }
    }
    for (name, p) in named {
        p.requiresGrad = trainable.contains { globMatch($0, name) } && !frozen.contains { globMatch($0, name) }
    }
}

/// Parameter counts per group, trainable and frozen. A group is the name up to its first layer index,
/// at most two components: `model.layers`, `model.embed_tokens`, `lm_head`.
func parameterGroupSummary(_ model: Module) -> [(group: String, trainable: Int, frozen: Int)] {
    var order: [String] = []
    var counts: [String: (Int, Int)] = [:]
    for (name, p) in model.namedParameters() {
        let group = name.split(separator: ".").dropLast().prefix { Int($0) == nil }.prefix(2).joined(separator: ".")
        if counts[group] == nil { order.append(group); counts[group] = (0, 0) }
        if p.requiresGrad { counts[group]!.0 += p.count } else { counts[group]!.1 += p.count }
    }
    return order.map { ($0, counts[$0]!.0, counts[$0]!.1) }
}
