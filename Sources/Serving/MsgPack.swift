import Foundation

/// A decoded MessagePack value (https://github.com/msgpack/msgpack/blob/master/spec.md).
/// Maps keep their entries in wire order; Python's msgpack writes `bytes` as bin and `str` as str,
/// so a key may be either (openpi's numpy arrays use bin keys such as b"__ndarray__").
public enum MsgPackValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Double)
    case string(String)
    case binary([UInt8])
    case array([MsgPackValue])
    case map([MsgPackEntry])

    /// The value under a str or bin key equal to `key`, when this is a map.
    public subscript(key: String) -> MsgPackValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.key.keyString == key }?.value
    }

    /// The key as text: a str, or a bin holding UTF-8.
    public var keyString: String? {
        switch self {
        case .string(let s): return s
        case .binary(let b): return String(bytes: b, encoding: .utf8)
        default: return nil
        }
    }

    public var intValue: Int? {
        switch self {
        case .int(let v): return Int(exactly: v)
        case .uint(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// A short description of the kind, for error messages.
    public var kindName: String {
        switch self {
        case .null: return "nil"
        case .bool: return "bool"
        case .int, .uint: return "int"
        case .float: return "float"
        case .string: return "str"
        case .binary: return "bytes"
        case .array: return "array"
        case .map: return "map"
        }
    }
}

public struct MsgPackEntry: Equatable, Sendable {
    public var key: MsgPackValue
    public var value: MsgPackValue
    public init(_ key: MsgPackValue, _ value: MsgPackValue) { self.key = key; self.value = value }
}

public struct MsgPackError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum MsgPack {
    /// Nesting deeper than this is refused, so a hostile message cannot exhaust the stack.
    public static let maxDepth = 64

    public static func encode(_ value: MsgPackValue) -> [UInt8] {
        var out: [UInt8] = []
        encode(value, into: &out)
        return out
    }

    /// Decodes exactly one value that spans all of `bytes`.
    public static func decode(_ bytes: [UInt8]) throws -> MsgPackValue {
        var reader = Reader(bytes: bytes)
        let value = try reader.value(depth: 0)
        guard reader.offset == bytes.count else {
            throw MsgPackError("\(bytes.count - reader.offset) bytes left over after a complete msgpack value")
        }
        return value
    }

    private static func encode(_ value: MsgPackValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(0xc0)
        case .bool(let b): out.append(b ? 0xc3 : 0xc2)
        case .int(let v):
            if v >= 0 { encodeUnsigned(UInt64(v), into: &out) }
            else if v >= -32 { out.append(UInt8(bitPattern: Int8(v))) }
            else if v >= Int64(Int8.min) { out.append(0xd0); out.append(UInt8(bitPattern: Int8(v))) }
            else if v >= Int64(Int16.min) { out.append(0xd1); appendBigEndian(UInt16(bitPattern: Int16(v)), &out) }
            else if v >= Int64(Int32.min) { out.append(0xd2); appendBigEndian(UInt32(bitPattern: Int32(v)), &out) }
            else { out.append(0xd3); appendBigEndian(UInt64(bitPattern: v), &out) }
        case .uint(let v): encodeUnsigned(v, into: &out)
        case .float(let v): out.append(0xcb); appendBigEndian(v.bitPattern, &out)
        case .string(let s):
            let utf8 = Array(s.utf8)
            encodeLength(utf8.count, fix: (0xa0, 31), codes: (0xd9, 0xda, 0xdb), into: &out)
            out += utf8
        case .binary(let b):
            encodeLength(b.count, fix: nil, codes: (0xc4, 0xc5, 0xc6), into: &out)
            out += b
        case .array(let items):
            encodeLength(items.count, fix: (0x90, 15), codes: (nil, 0xdc, 0xdd), into: &out)
            for item in items { encode(item, into: &out) }
        case .map(let entries):
            encodeLength(entries.count, fix: (0x80, 15), codes: (nil, 0xde, 0xdf), into: &out)
            for entry in entries {
                encode(entry.key, into: &out)
                encode(entry.value, into: &out)
            }
        }
    }

    private static func encodeUnsigned(_ v: UInt64, into out: inout [UInt8]) {
        if v <= 0x7f { out.append(UInt8(v)) }
        else if v <= UInt64(UInt8.max) { out.append(0xcc); out.append(UInt8(v)) }
        else if v <= UInt64(UInt16.max) { out.append(0xcd); appendBigEndian(UInt16(v), &out) }
        else if v <= UInt64(UInt32.max) { out.append(0xce); appendBigEndian(UInt32(v), &out) }
        else { out.append(0xcf); appendBigEndian(v, &out) }
    }

    /// Length header: a fix form (base, max) when it fits, else the 8/16/32-bit form (nil = none).
    private static func encodeLength(_ n: Int, fix: (UInt8, Int)?, codes: (UInt8?, UInt8, UInt8), into out: inout [UInt8]) {
        if let (base, max) = fix, n <= max { out.append(base | UInt8(n)) }
        else if let c8 = codes.0, n <= Int(UInt8.max) { out.append(c8); out.append(UInt8(n)) }
        else if n <= Int(UInt16.max) { out.append(codes.1); appendBigEndian(UInt16(n), &out) }
        else { out.append(codes.2); appendBigEndian(UInt32(n), &out) }
    }

    private static func appendBigEndian<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.bigEndian) { out += $0 }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - offset else {
                throw MsgPackError("truncated msgpack: need \(n) bytes at offset \(offset), \(bytes.count - offset) left")
            }
            defer { offset += n }
            return bytes[offset..<(offset + n)]
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            try take(MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T(truncatingIfNeeded: $1) }
        }

        mutating func length(_ code: UInt8, small: UInt8, medium: UInt8) throws -> Int {
            switch code {
            case small: return Int(try integer(UInt8.self))
            case medium: return Int(try integer(UInt16.self))
            default: return Int(try integer(UInt32.self))
            }
        }

        mutating func string(_ n: Int) throws -> MsgPackValue {
            let slice = try take(n)
            guard let s = String(validating: slice, as: UTF8.self) else { throw MsgPackError("msgpack str at offset \(offset - n) is not valid UTF-8") }
            return .string(s)
        }

        /// Every element needs at least one byte, so a declared count beyond what is left is a lie.
        func checkCount(_ n: Int) throws {
            guard n <= bytes.count - offset else { throw MsgPackError("truncated msgpack: \(n) elements declared at offset \(offset), \(bytes.count - offset) bytes left") }
        }

        mutating func array(_ n: Int, depth: Int) throws -> MsgPackValue {
            try checkCount(n)
            var items: [MsgPackValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(depth: depth + 1)) }
            return .array(items)
        }

        mutating func map(_ n: Int, depth: Int) throws -> MsgPackValue {
            try checkCount(2 * n)
            var entries: [MsgPackEntry] = []
            entries.reserveCapacity(n)
            for _ in 0..<n { entries.append(MsgPackEntry(try value(depth: depth + 1), try value(depth: depth + 1))) }
            return .map(entries)
        }

        mutating func value(depth: Int) throws -> MsgPackValue {
            guard depth < MsgPack.maxDepth else { throw MsgPackError("msgpack nested deeper than \(MsgPack.maxDepth) levels") }
            let code = try integer(UInt8.self)
            switch code {
            case 0x00...0x7f: return .int(Int64(code))
            case 0x80...0x8f: return try map(Int(code & 0x0f), depth: depth)
            case 0x90...0x9f: return try array(Int(code & 0x0f), depth: depth)
            case 0xa0...0xbf: return try string(Int(code & 0x1f))
            case 0xc0: return .null
            case 0xc2: return .bool(false)
            case 0xc3: return .bool(true)
            case 0xc4, 0xc5, 0xc6: return .binary(Array(try take(try length(code, small: 0xc4, medium: 0xc5))))
            case 0xca: return .float(Double(Float(bitPattern: try integer(UInt32.self))))
            case 0xcb: return .float(Double(bitPattern: try integer(UInt64.self)))
            case 0xcc: return .int(Int64(try integer(UInt8.self)))
            case 0xcd: return .int(Int64(try integer(UInt16.self)))
            case 0xce: return .int(Int64(try integer(UInt32.self)))
            case 0xcf: let v = try integer(UInt64.self); return v <= UInt64(Int64.max) ? .int(Int64(v)) : .uint(v)
            case 0xd0: return .int(Int64(try integer(Int8.self)))
            case 0xd1: return .int(Int64(try integer(Int16.self)))
            case 0xd2: return .int(Int64(try integer(Int32.self)))
            case 0xd3: return .int(try integer(Int64.self))
            case 0xd9, 0xda, 0xdb: return try string(try length(code, small: 0xd9, medium: 0xda))
            case 0xdc: return try array(Int(try integer(UInt16.self)), depth: depth)
            case 0xdd: return try array(Int(try integer(UInt32.self)), depth: depth)
            case 0xde: return try map(Int(try integer(UInt16.self)), depth: depth)
            case 0xdf: return try map(Int(try integer(UInt32.self)), depth: depth)
            case 0xe0...0xff: return .int(Int64(Int8(bitPattern: code)))
            case 0xc7, 0xc8, 0xc9, 0xd4...0xd8: throw MsgPackError("msgpack extension types are not supported (type byte 0x\(String(code, radix: 16)) at offset \(offset - 1))")
            default: throw MsgPackError("invalid msgpack type byte 0x\(String(code, radix: 16)) at offset \(offset - 1)")
            }
        }
    }
}
