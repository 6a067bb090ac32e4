import Foundation

/// Reads a recipe file, follows its `extends:` chain, and applies `key.path=value` overrides.
///
/// `extends: base.yaml` (relative to the file) or `extends: [a.yaml, b.yaml]`: bases are merged
/// first, in order, then the file itself on top (maps merge key by key; lists and scalars replace).
public enum RecipeLoader {
    public static func load(_ url: URL, overrides: [String] = []) throws -> RecipeValue {
        var tree = try loadWithBases(url.standardizedFileURL, chain: [])
        for override in overrides { tree = try apply(override, to: tree) }
        return tree
    }

    private static func loadWithBases(_ url: URL, chain: [String]) throws -> RecipeValue {
        guard !chain.contains(url.path) else {
            throw RecipeError("\(url.path): extends cycle: \((chain + [url.path]).joined(separator: " -> "))")
        }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw RecipeError(chain.isEmpty ? "recipe file not found: \(url.path)" : "\(chain.last!): extends a missing file: \(url.path)")
        }
        var tree = try parseYAML(text, source: url.path)
        if case .null = tree { tree = .map([:]) }
        guard case .map(var map) = tree else { throw RecipeError("\(url.path): a recipe must be a mapping of sections") }
        var bases: [String] = []
        switch map.removeValue(forKey: "extends") {
        case nil: break
        case .string(let s)?: bases = [s]
        case .list(let l)?:
            bases = try l.map { v in
                guard case .string(let s) = v else { throw RecipeError("\(url.path): extends must list file names, found \(v)") }
                return s
            }
        case let other?: throw RecipeError("\(url.path): extends must be a file name or a list of them, found \(other.kind)")
        }
        var merged = RecipeValue.map([:])
        for base in bases {
            let baseURL = URL(fileURLWithPath: base, relativeTo: url.deletingLastPathComponent()).standardizedFileURL
            merged = merged.merged(with: try loadWithBases(baseURL, chain: chain + [url.path]))
        }
        return merged.merged(with: .map(map))
    }

    /// `train.steps=200`: the value is read as YAML, so numbers, booleans and lists keep their types.
    static func apply(_ override: String, to tree: RecipeValue) throws -> RecipeValue {
        guard let eq = override.firstIndex(of: "="), eq != override.startIndex else {
            throw RecipeError("override '\(override)' must look like key.path=value")
        }
        let path = override[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard path.allSatisfy({ !$0.isEmpty }) else { throw RecipeError("override '\(override)': empty key in the dotted path") }
        let value = try parseYAML(String(override[override.index(after: eq)...]), source: "override '\(override)'")
        return tree.setting(path[...], to: value)
    }
}
