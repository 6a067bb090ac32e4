import Foundation

/// A typed recipe: a Codable struct whose `init()` is the complete set of defaults. Its shape is
/// the schema: keys are the properties in snake_case, types are the properties' types. Sections are
/// nested structs; lists and free-keyed maps hold scalars (Int, Double, String, Bool).
public protocol RecipeSchema: Codable, Sendable {
    init()
    /// Semantic checks after decoding (ranges, choices), throwing `RecipeError`s that name the key.
    func validate() throws
    /// Fills in, on the resolved tree (every default in), what the recipe leaves to the runs it names,
    /// so that the recipe saved beside a run states what trained. Default: nothing.
    static func completing(_ resolved: RecipeValue) -> RecipeValue
}

extension RecipeSchema {
    public func validate() throws {}
    public static func completing(_ resolved: RecipeValue) -> RecipeValue { resolved }
}

/// What a key accepts, read off the default instance.
indirect enum SchemaNode {
    case int, double, string, bool
    case list(element: SchemaNode)
    case map(value: SchemaNode)
    case section([String: SchemaNode])

    var expected: String {
        switch self {
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .bool: "a boolean (true/false)"
        case .list(let e): "a list of \(e.expected.replacingOccurrences(of: "an ", with: "").replacingOccurrences(of: "a ", with: ""))s"
        case .map: "a mapping"
        case .section: "a section (mapping)"
        }
    }
}

enum SchemaReader {
    /// The schema and the default values of a recipe type.
    static func read(_ value: Any) throws -> (SchemaNode, RecipeValue) {
        // Exact type tests: with Foundation loaded, `as? Int` also matches a Bool or a Double.
        let t = type(of: value)
        if t == Int.self { return (.int, .int(value as! Int)) }
        if t == Double.self { return (.double, .double(value as! Double)) }
        if t == Float.self { return (.double, .double(Double(value as! Float))) }
        if t == Bool.self { return (.bool, .bool(value as! Bool)) }
        switch value {
        case let v as String: return (.string, .string(v))
        // Exact types again: an empty array casts to every element type.
        case let v as [Int] where t == [Int].self: return (.list(element: .int), .list(v.map { .int($0) }))
        case let v as [Double] where t == [Double].self: return (.list(element: .double), .list(v.map { .double($0) }))
        case let v as [String] where t == [String].self: return (.list(element: .string), .list(v.map { .string($0) }))
        case let v as [Bool] where t == [Bool].self: return (.list(element: .bool), .list(v.map { .bool($0) }))
        case let v as [String: Int] where t == [String: Int].self: return (.map(value: .int), .map(v.mapValues { .int($0) }))
        case let v as [String: Double] where t == [String: Double].self: return (.map(value: .double), .map(v.mapValues { .double($0) }))
        case let v as [String: String] where t == [String: String].self: return (.map(value: .string), .map(v.mapValues { .string($0) }))
        default:
            let mirror = Mirror(reflecting: value)
            guard mirror.displayStyle == .struct else {
                throw RecipeError("recipe schema: unsupported property type \(type(of: value))")
            }
            var nodes: [String: SchemaNode] = [:], defaults: [String: RecipeValue] = [:]
            for child in mirror.children {
                guard let label = child.label else { continue }
                let key = snakeCase(label)
                (nodes[key], defaults[key]) = try read(child.value)
            }
            return (.section(nodes), .map(defaults))
        }
    }

    static func snakeCase(_ name: String) -> String {
        var out = ""
        for ch in name {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }
}

extension RecipeValidator {
    /// Checks `value` at `path` against `node`, normalising numbers (an integer where a number is
    /// expected becomes a double; an integral number where an integer is expected becomes one).
    static func check(_ value: RecipeValue, _ node: SchemaNode, _ path: String, _ errors: inout [String]) -> RecipeValue {
        func mismatch() -> RecipeValue {
            errors.append("\(path): expected \(node.expected), got \(value.kind) \(value)")
            return value
        }
        switch (node, value) {
        case (.int, .int), (.double, .double), (.string, .string), (.bool, .bool): return value
        case (.double, .int(let i)): return .double(Double(i))
        case (.int, .double(let d)) where d == d.rounded() && abs(d) < 9e15: return .int(Int(d))
        case (.list(let element), .list(let items)):
            return .list(items.enumerated().map { check($0.element, element, "\(path)[\($0.offset)]", &errors) })
        case (.map(let valueNode), .map(let entries)):
            return .map(Dictionary(uniqueKeysWithValues: entries.map { ($0.key, check($0.value, valueNode, "\(path).\($0.key)", &errors)) }))
        case (.section(let fields), .map(let entries)):
            var out: [String: RecipeValue] = [:]
            for (key, v) in entries.sorted(by: { $0.key < $1.key }) {
                let keyPath = path.isEmpty ? key : "\(path).\(key)"
                guard let field = fields[key] else {
                    let suggestion = closest(key, among: Array(fields.keys)).map { " (did you mean '\(path.isEmpty ? $0 : "\(path).\($0)")'?)" } ?? ""
                    errors.append("\(keyPath): unknown key\(suggestion)")
                    continue
                }
                out[key] = check(v, field, keyPath, &errors)
            }
            return .map(out)
        default: return mismatch()
        }
    }

    /// The candidate nearest to `word` by edit distance, if near enough to be a plausible typo.
    static func closest(_ word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.min { ($0.1, $0.0) < ($1.1, $1.0) }
        guard let (best, distance) = scored, distance <= max(2, word.count / 3) else { return nil }
        return best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

/// Turns a recipe tree into a typed recipe: strict key and type checks against the schema, defaults
/// filled in, semantic validation.
public enum RecipeValidator {
    /// A resolved recipe saved beside a run (or in a bundle), read back; `hint` says what the folder
    /// should have been when the file is missing.
    public static func read<R: RecipeSchema>(_ url: URL, as type: R.Type, hint: String) throws -> R {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw RecipeError("\(url.path): missing (\(hint))") }
        return try resolve(parseYAML(text, source: url.path), as: type, source: url.path).recipe
    }

    /// - Returns: the recipe and the resolved tree (every default filled in) to save with the run.
    public static func resolve<R: RecipeSchema>(_ tree: RecipeValue, as type: R.Type, source: String) throws -> (recipe: R, resolved: RecipeValue) {
        let (schema, defaults) = try SchemaReader.read(R())
        var errors: [String] = []
        let checked = check(tree, schema, "", &errors)
        guard errors.isEmpty else {
            throw RecipeError("\(source): " + (errors.count == 1 ? errors[0] : "\(errors.count) problems:\n  " + errors.joined(separator: "\n  ")))
        }
        let resolved = R.completing(defaults.merged(with: checked))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let recipe: R
        do {
            recipe = try decoder.decode(R.self, from: JSONSerialization.data(withJSONObject: resolved.plain))
        } catch {
            throw RecipeError("\(source): cannot build the recipe: \(error)")
        }
        do { try recipe.validate() } catch let error as RecipeError { throw RecipeError("\(source): \(error.message)") }
        return (recipe, resolved)
    }
}
