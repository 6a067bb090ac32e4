import Autograd
import Foundation

// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
// of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then
// the data, little-endian and row-major, offsets relative to the end of the header.

/// Element types of the format that this reader converts; F8 and complex types are refused by name.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"

    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8: 1
        case .i16, .u16, .f16, .bf16: 2
        case .i32, .u32, .f32: 4
        case .f64, .i64, .u64: 8
        }
    }

    var isFloatingPoint: Bool { [.f16, .bf16, .f32, .f64].contains(self) }
}

/// A malformed or unusable safetensors file; the message names the file and, where there is one,
/// the tensor and what was expected.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// Largest accepted header, as in the reference implementation.
let maximumHeaderBytes = 100_000_000

/// One tensor's place in a file.
public struct SafetensorsEntry: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range within the data section.
    public let range: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped, fully validated safetensors file. Validation follows the reference
/// implementation: known dtypes, byte spans equal to shape × element size, spans that tile the data
/// section from 0 to its end without gaps or overlaps, string-only metadata, header ≤ 100 MB.
public final class SafetensorsFile {
    public let path: String
    public let metadata: [String: String]
    /// Entries in file order (by offset).
    public let entries: [SafetensorsEntry]
    private let index: [String: Int]
    private let mapping: MappedFile
    private let dataStart: Int

    public convenience init(url: URL) throws { try self.init(path: url.path) }

    public init(path: String) throws {
        self.path = path
        func fail(_ message: String) -> SafetensorsError { SafetensorsError(path: path, message: message) }
        mapping = try MappedFile(path: path)
        let size = mapping.count
        guard size >= 8 else { throw fail("file is \(size) bytes, shorter than the 8-byte header length") }
        let headerLength = UInt64(littleEndian: mapping.base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(maximumHeaderBytes) else {
            throw fail("header length \(headerLength) exceeds the \(maximumHeaderBytes)-byte limit")
        }
        guard 8 + Int(headerLength) <= size else {
            throw fail("header length \(headerLength) runs past the end of the \(size)-byte file (truncated?)")
        }
        dataStart = 8 + Int(headerLength)
        let headerBytes = Data(bytes: mapping.base + 8, count: Int(headerLength))
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw fail("header is not valid JSON (\(headerLength) bytes)")
        }
        guard let object = json as? [String: Any] else { throw fail("header JSON is not an object") }

        var metadata: [String: String] = [:]
        var entries: [SafetensorsEntry] = []
        let dataSize = size - dataStart
        for (name, value) in object {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in dict {
                    guard let s = v as? String else { throw fail("__metadata__[\(k)] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw fail("tensor '\(name)': entry is not an object") }
            guard let dtypeName = info["dtype"] as? String else { throw fail("tensor '\(name)': missing dtype") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw fail("tensor '\(name)': unknown or unsupported dtype '\(dtypeName)' (supported: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shapeValues = info["shape"] as? [Any], let shape = exactIntegers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor '\(name)': shape must be a list of non-negative integers")
            }
            guard let offsetValues = info["data_offsets"] as? [Any], let offsets = exactIntegers(offsetValues), offsets.count == 2 else {
                throw fail("tensor '\(name)': data_offsets must be [begin, end]")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data section")
            }
            var bytes = dtype.byteSize
            for d in shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor '\(name)': shape \(shape) overflows") }
                bytes = product
            }
            guard end - begin == bytes else {
                throw fail("tensor '\(name)': shape \(shape) of \(dtypeName) needs \(bytes) bytes but data_offsets span \(end - begin)")
            }
            entries.append(SafetensorsEntry(name: name, dtype: dtype, shape: shape, range: begin..<end))
        }
        entries.sort { ($0.range.lowerBound, $0.range.upperBound, $0.name) < ($1.range.lowerBound, $1.range.upperBound, $1.name) }
        var cursor = 0
        for e in entries {
            guard e.range.lowerBound == cursor else {
                throw fail(e.range.lowerBound < cursor
                    ? "tensor '\(e.name)': data_offsets [\(e.range.lowerBound), \(e.range.upperBound)] overlap the previous tensor"
                    : "tensor '\(e.name)': \(e.range.lowerBound - cursor) unused bytes before it (tensors must tile the data section)")
            }
            cursor = e.range.upperBound
        }
        guard cursor == dataSize else {
            throw fail("data section is \(dataSize) bytes but the tensors cover \(cursor)")
        }
        self.metadata = metadata
        self.entries = entries
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public var names: [String] { entries.map(\.name) }

    public func entry(_ name: String) -> SafetensorsEntry? { index[name].map { entries[$0] } }

    private func require(_ name: String) throws -> SafetensorsEntry {
        guard let e = entry(name) else { throw SafetensorsError(path: path, message: "no tensor named '\(name)'") }
        return e
    }

    /// The raw little-endian bytes of a tensor (valid while this file object lives).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let e = try require(name)
        return UnsafeRawBufferPointer(start: mapping.base + dataStart + e.range.lowerBound, count: e.range.count)
    }

    /// A tensor's values converted to Float32 (integers and booleans included), in a new Tensor.
    public func tensor(_ name: String) throws -> Tensor {
        let e = try require(name)
        let out = Tensor.zeros(e.shape)
        decodeFloats(e.dtype, from: try bytes(name), count: e.count, into: out.pointer)
        return out
    }

    /// An integer tensor's values (I64, I32, U8, BOOL, …), exactly.
    public func integers(_ name: String) throws -> [Int64] {
        let e = try require(name)
        guard !e.dtype.isFloatingPoint else {
            throw SafetensorsError(path: path, message: "tensor '\(name)' is \(e.dtype.rawValue), expected an integer dtype")
        }
        let raw = try bytes(name)
        return (0..<e.count).map { i in decodeInteger(e.dtype, raw, i) }
    }
}

/// JSON numbers that are exact integers, or nil. (Foundation bridges 0 and 1 to Bool too, so JSON
/// `true` is told apart by its NSNumber type code "c".)
private func exactIntegers(_ values: [Any]) -> [Int]? {
    var out: [Int] = []
    for v in values {
        guard let number = v as? NSNumber, String(cString: number.objCType) != "c", let i = v as? Int else { return nil }
        out.append(i)
    }
    return out
}

private func decodeInteger(_ dtype: SafetensorsDType, _ raw: UnsafeRawBufferPointer, _ i: Int) -> Int64 {
    let p = raw.baseAddress! + i * dtype.byteSize
    switch dtype {
    case .bool, .u8: return Int64(p.load(as: UInt8.self))
    case .i8: return Int64(p.load(as: Int8.self))
    case .i16: return Int64(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
    case .u16: return Int64(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
    case .i32: return Int64(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
    case .u32: return Int64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
    case .i64: return Int64(littleEndian: p.loadUnaligned(as: Int64.self))
    case .u64: return Int64(truncatingIfNeeded: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
    case .f16, .bf16, .f32, .f64: return 0
    }
}

/// Converts `count` elements of `dtype` to Float32. Reads are unaligned: writers such as mlx do not pad.
func decodeFloats(_ dtype: SafetensorsDType, from raw: UnsafeRawBufferPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
    guard count > 0, let base = raw.baseAddress else { return }
    switch dtype {
    case .f32:
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: (base + 4 * i).loadUnaligned(as: UInt32.self))) }
    case .f64:
        for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: (base + 8 * i).loadUnaligned(as: UInt64.self)))) }
    case .f16:
        for i in 0..<count { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: (base + 2 * i).loadUnaligned(as: UInt16.self)))) }
    case .bf16:  // the upper half of a Float32
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: (base + 2 * i).loadUnaligned(as: UInt16.self))) << 16) }
    default:
        for i in 0..<count { out[i] = Float(decodeInteger(dtype, raw, i)) }
    }
}

/// Float32 → bfloat16 with round-to-nearest-even (NaN stays NaN), as PyTorch converts.
func bfloat16Bits(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    let bits = x.bitPattern
    let rounding = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// A read-only memory mapping of a whole file, unmapped on deinit.
final class MappedFile {
    let base: UnsafeRawPointer
    let count: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SafetensorsError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafetensorsError(path: path, message: "cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SafetensorsError(path: path, message: "not a regular file") }
        count = Int(st.st_size)
        if count == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8))
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw SafetensorsError(path: path, message: "cannot map: \(String(cString: strerror(errno)))") }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if count == 0 { UnsafeMutableRawPointer(mutating: base).deallocate() } else { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }
}
