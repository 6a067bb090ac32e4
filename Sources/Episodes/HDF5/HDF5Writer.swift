import CHDF5
import Foundation
import HDF5Zstd

/// A minimal HDF5 writer for episode files in the robomimic layout (benchmarks, conversions, tests):
/// groups, float32 and uint8 datasets (optionally chunked and zstd-compressed), string attributes.
public final class HDF5Writer {
    public let path: String
    let file: HDF5Object

    /// Creates (truncating) `path`.
    public init(path: String) throws {
        self.path = path
        let id = HDF5.locked { H5Fcreate(path, chdf5_acc_trunc(), chdf5_p_default(), chdf5_p_default()) }
        guard id >= 0 else { throw HDF5Error(path: path, message: "cannot create" + HDF5.locked { HDF5.errorStack() }) }
        file = HDF5Object(id, H5Fclose)
    }

    /// Writes a dataset at a slash path (parent groups are created). `chunkRows` > 0 chunks along the
    /// first axis; `zstdLevel` adds filter 32015 (requires chunking).
    public func write(_ key: String, shape: [Int], floats: [Float]? = nil, bytes: [UInt8]? = nil,
                      chunkRows: Int = 0, zstdLevel: Int? = nil) throws {
        precondition((floats == nil) != (bytes == nil), "HDF5Writer.write: give floats or bytes")
        precondition((floats?.count ?? bytes!.count) == shape.reduce(1, *), "HDF5Writer.write: \(key) data does not fill \(shape)")
        try HDF5.locked {
            let lcpl = chdf5_link_create_plist()
            defer { H5Pclose(lcpl) }
            H5Pset_create_intermediate_group(lcpl, 1)
            let dims = shape.map { hsize_t($0) }
            let space = H5Screate_simple(Int32(shape.count), dims, nil)
            defer { H5Sclose(space) }
            let dcpl = chdf5_dataset_create_plist()
            defer { H5Pclose(dcpl) }
            if chunkRows > 0, let first = shape.first, first > 0 {
                var chunk = dims
                chunk[0] = hsize_t(min(chunkRows, first))
                H5Pset_chunk(dcpl, Int32(shape.count), chunk)
                if let zstdLevel {
                    var level = UInt32(zstdLevel)
                    guard H5Pset_filter(dcpl, H5Z_filter_t(VLA_ZSTD_FILTER_ID), UInt32(H5Z_FLAG_MANDATORY), 1, &level) >= 0 else {
                        throw HDF5Error(path: path, message: "cannot add the zstd filter to '\(key)'" + HDF5.errorStack())
                    }
                }
            }
            let type = floats != nil ? chdf5_native_float() : chdf5_native_uint8()
            let d = H5Dcreate2(file.id, key, type, space, lcpl, dcpl, chdf5_p_default())
            guard d >= 0 else { throw HDF5Error(path: path, message: "cannot create dataset '\(key)'" + HDF5.errorStack()) }
            defer { H5Dclose(d) }
            let status = floats.map { f in f.withUnsafeBytes { H5Dwrite(d, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress) } }
                ?? bytes!.withUnsafeBytes { H5Dwrite(d, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress) }
            guard status >= 0 else { throw HDF5Error(path: path, message: "cannot write '\(key)'" + HDF5.errorStack()) }
        }
    }

    /// A variable-length UTF-8 string attribute on an existing object (or "/").
    public func setAttribute(_ name: String, _ value: String, on key: String = "/") throws {
        try HDF5.locked {
            let type = H5Tcopy(chdf5_c_s1())
            defer { H5Tclose(type) }
            H5Tset_size(type, chdf5_variable())
            H5Tset_cset(type, H5T_CSET_UTF8)
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let a = H5Acreate_by_name(file.id, key, name, type, space, chdf5_p_default(), chdf5_p_default(), chdf5_p_default())
            guard a >= 0 else { throw HDF5Error(path: path, message: "cannot create attribute '\(key)@\(name)'" + HDF5.errorStack()) }
            defer { H5Aclose(a) }
            let status = value.withCString { cstr -> herr_t in
                var pointer: UnsafePointer<CChar>? = cstr
                return H5Awrite(a, type, &pointer)
            }
            guard status >= 0 else { throw HDF5Error(path: path, message: "cannot write attribute '\(key)@\(name)'" + HDF5.errorStack()) }
        }
    }
}
