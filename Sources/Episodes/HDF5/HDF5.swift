import CHDF5
import Foundation
import HDF5Zstd

/// A libhdf5 failure, with the file, the object and HDF5's own error stack (innermost first).
public struct HDF5Error: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// libhdf5 process state: errors are collected instead of printed, the zstd filter is registered,
/// and every call goes through one lock (Debian's libhdf5 is not built thread-safe).
enum HDF5 {
    static let lock = NSLock()
    nonisolated(unsafe) private static var ready = false

    static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if !ready {
            H5open()
            H5Eset_auto2(chdf5_error_default(), nil, nil)
            _ = vla_register_zstd_filter()
            ready = true
        }
        return try body()
    }

    /// The messages on HDF5's error stack (then cleared), for error reports.
    static func errorStack() -> String {
        var messages: [String] = []
        withUnsafeMutablePointer(to: &messages) { box in
            _ = H5Ewalk2(chdf5_error_default(), H5E_WALK_DOWNWARD, { _, error, data in
                guard let error, let data else { return 0 }
                let list = data.assumingMemoryBound(to: [String].self)
                if let desc = error.pointee.desc { list.pointee.append(String(cString: desc)) }
                return 0
            }, box)
        }
        H5Eclear2(chdf5_error_default())
        return messages.isEmpty ? "" : " (HDF5: \(messages.prefix(3).joined(separator: "; ")))"
    }
}

/// The text of a NUL-terminated C buffer.
func cString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// An HDF5 identifier closed when the object goes away.
final class HDF5Object {
    let id: hid_t
    private let closer: (hid_t) -> herr_t
    init(_ id: hid_t, _ closer: @escaping (hid_t) -> herr_t) { (self.id, self.closer) = (id, closer) }
    deinit { HDF5.locked { _ = closer(id) } }
}

/// A read-only HDF5 file.
public final class HDF5File {
    public let path: String
    let file: HDF5Object

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.isReadableFile(atPath: path) else { throw HDF5Error(path: path, message: "file not found or not readable") }
        let id = HDF5.locked { H5Fopen(path, chdf5_acc_rdonly(), chdf5_p_default()) }
        guard id >= 0 else { throw HDF5Error(path: path, message: "not a readable HDF5 file (truncated or corrupt?)" + HDF5.locked { HDF5.errorStack() }) }
        file = HDF5Object(id, H5Fclose)
    }

    /// Whether every component of a slash-separated path exists.
    public func exists(_ key: String) -> Bool {
        HDF5.locked {
            var prefix = ""
            for part in key.split(separator: "/") {
                prefix += (prefix.isEmpty ? "" : "/") + part
                if H5Lexists(file.id, prefix, chdf5_p_default()) <= 0 { H5Eclear2(chdf5_error_default()); return false }
            }
            return true
        }
    }

    /// Names of the links inside a group, in name order.
    public func children(_ group: String) throws -> [String] {
        guard exists(group) || group == "/" else { throw HDF5Error(path: path, message: "missing group '\(group)'") }
        return try HDF5.locked {
            let g = H5Gopen2(file.id, group, chdf5_p_default())
            guard g >= 0 else { throw HDF5Error(path: path, message: "'\(group)' is not a group" + HDF5.errorStack()) }
            defer { H5Gclose(g) }
            var info = H5G_info_t()
            H5Gget_info(g, &info)
            return (0..<info.nlinks).map { i in
                let size = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, chdf5_p_default())
                var buffer = [CChar](repeating: 0, count: max(Int(size) + 1, 1))
                H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, buffer.count, chdf5_p_default())
                return cString(buffer)
            }
        }
    }

    public func dataset(_ key: String) throws -> HDF5Dataset {
        guard exists(key) else { throw HDF5Error(path: path, message: "missing key '\(key)'") }
        return try HDF5Dataset(file: self, key: key)
    }

    /// A string attribute of an object (fixed or variable length), or nil when absent.
    public func stringAttribute(_ name: String, of key: String) throws -> String? {
        try HDF5.locked {
            guard H5Aexists_by_name(file.id, key, name, chdf5_p_default()) > 0 else { H5Eclear2(chdf5_error_default()); return nil }
            let a = H5Aopen_by_name(file.id, key, name, chdf5_p_default(), chdf5_p_default())
            guard a >= 0 else { throw HDF5Error(path: path, message: "cannot open attribute '\(key)@\(name)'" + HDF5.errorStack()) }
            defer { H5Aclose(a) }
            let type = H5Aget_type(a)
            defer { H5Tclose(type) }
            guard H5Tget_class(type) == H5T_STRING else { throw HDF5Error(path: path, message: "attribute '\(key)@\(name)' is not a string") }
            let space = H5Aget_space(a)
            let points = H5Sget_simple_extent_npoints(space)
            H5Sclose(space)
            guard points == 1 else {  // the reads below have room for exactly one string
                throw HDF5Error(path: path, message: "attribute '\(key)@\(name)' holds \(points) strings, expected one")
            }
            if H5Tis_variable_str(type) > 0 {
                let memType = H5Tcopy(chdf5_c_s1())
                defer { H5Tclose(memType) }
                H5Tset_size(memType, chdf5_variable())
                H5Tset_cset(memType, H5Tget_cset(type))
                var pointer: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(a, memType, &pointer) >= 0, let pointer else {
                    throw HDF5Error(path: path, message: "cannot read attribute '\(key)@\(name)'" + HDF5.errorStack())
                }
                defer { H5free_memory(pointer) }
                return String(cString: pointer)
            }
            let size = H5Tget_size(type)
            var buffer = [CChar](repeating: 0, count: size + 1)
            guard H5Aread(a, type, &buffer) >= 0 else { throw HDF5Error(path: path, message: "cannot read attribute '\(key)@\(name)'" + HDF5.errorStack()) }
            return cString(buffer)
        }
    }
}

/// One dataset: its shape and element type, and typed reads of all rows or a range of rows.
public final class HDF5Dataset {
    public enum ElementKind: Equatable, Sendable { case float, signedInteger, unsignedInteger, other }
    public let key: String
    public let shape: [Int]
    public let kind: ElementKind
    public let elementSize: Int
    let file: HDF5File
    let dataset: HDF5Object

    init(file: HDF5File, key: String) throws {
        (self.file, self.key) = (file, key)
        let (id, shape, kind, size): (hid_t, [Int], ElementKind, Int) = try HDF5.locked {
            let d = H5Dopen2(file.file.id, key, chdf5_p_default())
            guard d >= 0 else { throw HDF5Error(path: file.path, message: "'\(key)' is not a dataset" + HDF5.errorStack()) }
            let space = H5Dget_space(d)
            defer { H5Sclose(space) }
            let rank = Int(H5Sget_simple_extent_ndims(space))
            var dims = [hsize_t](repeating: 0, count: max(rank, 1))
            H5Sget_simple_extent_dims(space, &dims, nil)
            let type = H5Dget_type(d)
            defer { H5Tclose(type) }
            let kind: ElementKind = switch H5Tget_class(type) {
            case H5T_FLOAT: .float
            case H5T_INTEGER: H5Tget_sign(type) == H5T_SGN_NONE ? .unsignedInteger : .signedInteger
            default: .other
            }
            return (d, dims.prefix(rank).map { Int($0) }, kind, H5Tget_size(type))
        }
        dataset = HDF5Object(id, H5Dclose)
        (self.shape, self.kind, self.elementSize) = (shape, kind, size)
    }

    /// Elements per row (the product of all but the first dimension).
    public var rowSize: Int { shape.dropFirst().reduce(1, *) }
    public var rows: Int { shape.first ?? 1 }

    /// The filter ids of the dataset's pipeline (e.g. 32015 for zstd, 1 for gzip).
    public var filters: [Int] {
        HDF5.locked {
            let plist = H5Dget_create_plist(dataset.id)
            defer { H5Pclose(plist) }
            let n = H5Pget_nfilters(plist)
            return (0..<max(n, 0)).map { i in
                var flags: UInt32 = 0, nElements = 0, config: UInt32 = 0
                var name = [CChar](repeating: 0, count: 64)
                return Int(H5Pget_filter2(plist, UInt32(i), &flags, &nElements, nil, 64, &name, &config))
            }
        }
    }

    /// Rows `range` converted by HDF5 to `memoryType` into `buffer` (rowSize × range.count elements).
    func read(rows range: Range<Int>?, memoryType: hid_t, into buffer: UnsafeMutableRawPointer) throws {
        try HDF5.locked {
            var status: herr_t
            if let range, !shape.isEmpty {
                guard range.lowerBound >= 0, range.upperBound <= rows else {
                    throw HDF5Error(path: file.path, message: "'\(key)': rows \(range) outside 0..<\(rows)")
                }
                let fileSpace = H5Dget_space(dataset.id)
                defer { H5Sclose(fileSpace) }
                var start = [hsize_t](repeating: 0, count: shape.count), count = shape.map { hsize_t($0) }
                start[0] = hsize_t(range.lowerBound)
                count[0] = hsize_t(range.count)
                H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, nil, count, nil)
                let memSpace = H5Screate_simple(Int32(shape.count), count, nil)
                defer { H5Sclose(memSpace) }
                status = H5Dread(dataset.id, memoryType, memSpace, fileSpace, chdf5_p_default(), buffer)
            } else {
                status = H5Dread(dataset.id, memoryType, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), buffer)
            }
            guard status >= 0 else {
                throw HDF5Error(path: file.path, message: "cannot read '\(key)' (corrupt data or unsupported compression?)" + HDF5.errorStack())
            }
        }
    }

    /// All rows (or `range` of rows) as Float32, converted from any numeric type.
    public func floats(rows range: Range<Int>? = nil) throws -> [Float] {
        guard kind != .other else { throw HDF5Error(path: file.path, message: "'\(key)' is not numeric") }
        let n = (range?.count ?? rows) * rowSize
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBytes { try read(rows: range, memoryType: chdf5_native_float(), into: $0.baseAddress!) }
        return out
    }

    /// All rows (or `range` of rows) as bytes; the dataset must hold 8-bit unsigned integers (images).
    public func bytes(rows range: Range<Int>? = nil) throws -> [UInt8] {
        guard kind == .unsignedInteger, elementSize == 1 else {
            throw HDF5Error(path: file.path, message: "'\(key)' should be uint8, found \(kind) of \(elementSize) bytes")
        }
        let n = (range?.count ?? rows) * rowSize
        var out = [UInt8](repeating: 0, count: n)
        try out.withUnsafeMutableBytes { try read(rows: range, memoryType: chdf5_native_uint8(), into: $0.baseAddress!) }
        return out
    }
}

extension HDF5File {
    /// A 1-D dataset of strings (fixed-length bytes as h5py writes `np.array([b"demo_0", …])`, or
    /// variable-length), e.g. robomimic's `mask/train`.
    public func stringList(_ key: String) throws -> [String] {
        guard exists(key) else { throw HDF5Error(path: path, message: "missing key '\(key)'") }
        return try HDF5.locked {
            let d = H5Dopen2(file.id, key, chdf5_p_default())
            guard d >= 0 else { throw HDF5Error(path: path, message: "'\(key)' is not a dataset" + HDF5.errorStack()) }
            defer { H5Dclose(d) }
            let type = H5Dget_type(d)
            defer { H5Tclose(type) }
            guard H5Tget_class(type) == H5T_STRING else { throw HDF5Error(path: path, message: "'\(key)' should hold strings") }
            let space = H5Dget_space(d)
            defer { H5Sclose(space) }
            let n = Int(H5Sget_simple_extent_npoints(space))
            if H5Tis_variable_str(type) > 0 {
                var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
                guard H5Dread(d, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), &pointers) >= 0 else {
                    throw HDF5Error(path: path, message: "cannot read '\(key)'" + HDF5.errorStack())
                }
                defer { H5Dvlen_reclaim(type, space, chdf5_p_default(), &pointers) }
                return pointers.map { $0.map { String(cString: $0) } ?? "" }
            }
            let size = H5Tget_size(type)
            var buffer = [CChar](repeating: 0, count: n * size)
            guard H5Dread(d, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), &buffer) >= 0 else {
                throw HDF5Error(path: path, message: "cannot read '\(key)'" + HDF5.errorStack())
            }
            return (0..<n).map { cString(Array(buffer[($0 * size)..<(($0 + 1) * size)]) + [0]) }
        }
    }
}
