import Foundation
import Yams

/// A recipe document as plain values, between YAML and the typed recipe structs.
public indirect enum RecipeValue: Equatable, Sendable, CustomStringConvertible {
    case map([String: RecipeValue])
    case list([RecipeValue])
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case null

    /// From what Yams (or JSONSerialization) produces.
    init(any value: Any?) throws {
        // Exact type tests: with Foundation loaded, `as? Int` also matches a Bool or a Double.
        if let value {
            let t = type(of: value)
            if t == Bool.self { self = .bool(value as! Bool); return }
            if t == Int.self { self = .int(value as! Int); return }
            if t == Double.self { self = .double(value as! Double); return }
        }
        switch value {
        case nil, is NSNull: self = .null
        case let s as String: self = .string(s)
        case let m as [String: Any]: self = .map(try m.mapValues { try RecipeValue(any: $0) })
        case let m as [AnyHashable: Any]:
            var out: [String: RecipeValue] = [:]
            for (k, v) in m {
                guard let key = k.base as? String else { throw RecipeError("map key \(k) is not a string") }
                out[key] = try RecipeValue(any: v)
            }
            self = .map(out)
        case let l as [Any]: self = .list(try l.map { try RecipeValue(any: $0) })
        default: throw RecipeError("unsupported YAML value \(String(describing: value))")
        }
    }

    /// Plain Foundation values, for JSONSerialization and Yams.dump.
    var plain: Any {
        switch self {
        case .map(let m): m.mapValues(\.plain)
        case .list(let l): l.map(\.plain)
        case .string(let s): s
        case .int(let i): i
        case .double(let d): d
        case .bool(let b): b
        case .null: NSNull()
        }
    }

    /// Human name of the kind of value, for error messages.
    var kind: String {
        switch self {
        case .map: "a mapping"
        case .list: "a list"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }

    public var description: String {
        switch self {
        case .string(let s): "'\(s)'"
        case .int(let i): "\(i)"
        case .double(let d): "\(d)"
        case .bool(let b): "\(b)"
        case .null: "null"
        case .list(let l): "[" + l.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): "{" + m.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }

    /// Deep merge: maps merge key by key, anything else is replaced by `other`.
    func merged(with other: RecipeValue) -> RecipeValue {
        guard case .map(var mine) = self, case .map(let theirs) = other else { return other }
        for (k, v) in theirs { mine[k] = mine[k].map { $0.merged(with: v) } ?? v }
        return .map(mine)
    }

    /// The value at a dotted path, nil where the path leads nowhere.
    func value(at path: ArraySlice<String>) -> RecipeValue? {
        guard let head = path.first else { return self }
        guard case .map(let m) = self else { return nil }
        return m[head]?.value(at: path.dropFirst())
    }

    /// Sets the value at a dotted path, creating maps on the way.
    func setting(_ path: ArraySlice<String>, to value: RecipeValue) -> RecipeValue {
        guard let head = path.first else { return value }
        var map: [String: RecipeValue] = [:]
        if case .map(let m) = self { map = m }
        map[head] = (map[head] ?? .null).setting(path.dropFirst(), to: value)
        return .map(map)
    }

    /// YAML text with keys sorted, for the resolved recipe.
    func yaml() throws -> String { try Yams.dump(object: plain, sortKeys: true) }
}

/// A recipe problem: the message names the file or key and what was expected.
public struct RecipeError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Parses YAML text (a file's contents or an override's value).
func parseYAML(_ text: String, source: String) throws -> RecipeValue {
    do {
        return try RecipeValue(any: try Yams.load(yaml: text))
    } catch let error as RecipeError {
        throw RecipeError("\(source): \(error.message)")
    } catch {
        throw RecipeError("\(source): not valid YAML: \(error)")
    }
}
