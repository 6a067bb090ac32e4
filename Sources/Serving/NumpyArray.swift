import Foundation

/// A numpy array as openpi's `msgpack_numpy` writes it: a map with bin keys
/// {__ndarray__: true, data: raw bytes, dtype: numpy's dtype.str ("<f4", "|u1"), shape: [dims]}.
public struct NumpyArray: Equatable, Sendable {
    public enum Kind: Character, Sendable { case float = "f", signed = "i", unsigned = "u", bool = "b" }

    public var kind: Kind
    public var itemSize: Int
    public var shape: [Int]
    /// Little-endian element bytes, C order.
    public var data: [UInt8]

    public var count: Int { shape.reduce(1, *) }
    /// numpy's spelling, e.g. "float32", "uint8", for messages.
    public var dtypeName: String {
        kind == .bool ? "bool" : "\(["f": "float", "i": "int", "u": "uint"][String(kind.rawValue)]!)\(itemSize * 8)"
    }

    public init(floats: [Float], shape: [Int]) {
        precondition(floats.count == shape.reduce(1, *), "NumpyArray: \(floats.count) values for shape \(shape)")
        self.kind = .float
        self.itemSize = 4
        self.shape = shape
        self.data = floats.withUnsafeBytes { Array($0) }
    }

    public init(bytes: [UInt8], shape: [Int]) {
        precondition(bytes.count == shape.reduce(1, *), "NumpyArray: \(bytes.count) bytes for shape \(shape)")
        self.kind = .unsigned
        self.itemSize = 1
        self.shape = shape
        self.data = bytes
    }

    /// Reads the openpi encoding; nil when `value` is not an ndarray map at all.
    public init?(msgpack value: MsgPackValue) throws {
        guard value["__ndarray__"] == .bool(true) else { return nil }
        guard case .binary(let data)? = value["data"] else { throw MsgPackError("ndarray without a bytes 'data' field") }
        guard let dtype = value["dtype"]?.keyString else { throw MsgPackError("ndarray without a str 'dtype' field") }
        guard case .array(let dims)? = value["shape"] else { throw MsgPackError("ndarray without a list 'shape' field") }
        let shape = dims.compactMap(\.intValue)
        guard shape.count == dims.count, shape.allSatisfy({ $0 >= 0 }) else { throw MsgPackError("ndarray 'shape' must be a list of non-negative ints") }
        let chars = Array(dtype)
        guard chars.count >= 3, "<|=".contains(chars[0]), let kind = Kind(rawValue: chars[1]), let size = Int(String(chars[2...])),
              [1, 2, 4, 8].contains(size), kind != .float || size >= 2 else {
            throw MsgPackError("unsupported ndarray dtype '\(dtype)' (little-endian bool, int, uint or float expected)")
        }
        // Overflow-checked: a hostile shape must not wrap around to a small product.
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw MsgPackError("ndarray shape \(shape) is too large") }
            count = product
        }
        let bytes = count.multipliedReportingOverflow(by: size)
        guard !bytes.overflow, bytes.partialValue == data.count else {
            throw MsgPackError("ndarray of shape \(shape) and dtype \(dtype) needs \(count * size) bytes, got \(data.count)")
        }
        self.kind = kind
        self.itemSize = size
        self.shape = shape
        self.data = data
    }

    public var msgpack: MsgPackValue {
        let dtype = (itemSize == 1 ? "|" : "<") + String(kind.rawValue) + String(itemSize)
        return .map([
            MsgPackEntry(.binary(Array("__ndarray__".utf8)), .bool(true)),
            MsgPackEntry(.binary(Array("data".utf8)), .binary(data)),
            MsgPackEntry(.binary(Array("dtype".utf8)), .string(dtype)),
            MsgPackEntry(.binary(Array("shape".utf8)), .array(shape.map { .int(Int64($0)) })),
        ])
    }

    /// The elements as Float, from any float, int or bool dtype.
    public func floats() -> [Float] {
        data.withUnsafeBytes { raw -> [Float] in
            func load<T>(_: T.Type, _ convert: (T) -> Float) -> [Float] {
                (0..<count).map { convert(raw.loadUnaligned(fromByteOffset: $0 * itemSize, as: T.self)) }
            }
            switch (kind, itemSize) {
            case (.float, 4): return load(Float.self) { $0 }
            case (.float, 8): return load(Double.self) { Float($0) }
            case (.float, _): return load(Float16.self) { Float($0) }
            case (.signed, 1): return load(Int8.self) { Float($0) }
            case (.signed, 2): return load(Int16.self) { Float($0) }
            case (.signed, 4): return load(Int32.self) { Float($0) }
            case (.signed, _): return load(Int64.self) { Float($0) }
            case (.unsigned, 1), (.bool, _): return load(UInt8.self) { Float($0) }
            case (.unsigned, 2): return load(UInt16.self) { Float($0) }
            case (.unsigned, 4): return load(UInt32.self) { Float($0) }
            case (.unsigned, _): return load(UInt64.self) { Float($0) }
            }
        }
    }
}
