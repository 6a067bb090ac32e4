#ifndef HDF5_ZSTD_H
#define HDF5_ZSTD_H

/// The filter id h5py + hdf5plugin write for zstd (registered with The HDF Group).
#define VLA_ZSTD_FILTER_ID 32015

/// Registers the zstd filter (id 32015) with libhdf5 in this process, backed by libzstd, so files
/// written by h5py + hdf5plugin read without HDF5_PLUGIN_PATH. Idempotent; returns < 0 on failure.
int vla_register_zstd_filter(void);

#endif
