// HDF5 filter 32015 (zstd), compatible with hdf5plugin's: each chunk is one zstd frame; cd_values[0]
// is the compression level when writing. Buffers are swapped with H5allocate_memory/H5free_memory,
// as the HDF5 filter contract requires.
#include <hdf5.h>
#include <zstd.h>
#include "hdf5_zstd.h"

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    void *out = NULL;
    size_t written;
    if (flags & H5Z_FLAG_REVERSE) {  // decompress
        unsigned long long size = ZSTD_getFrameContentSize(*buf, nbytes);
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) return 0;
        out = H5allocate_memory(size ? (size_t)size : 1, 0);
        if (!out) return 0;
        written = ZSTD_decompress(out, (size_t)size, *buf, nbytes);
    } else {  // compress
        int level = cd_nelmts > 0 ? (int)cd_values[0] : 3;
        size_t bound = ZSTD_compressBound(nbytes);
        out = H5allocate_memory(bound, 0);
        if (!out) return 0;
        written = ZSTD_compress(out, bound, *buf, nbytes, level);
    }
    if (ZSTD_isError(written)) {
        H5free_memory(out);
        return 0;  // HDF5 reports a filter failure for the chunk
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = written;
    return written;
}

static const H5Z_class2_t zstd_class = {
    H5Z_CLASS_T_VERS, (H5Z_filter_t)VLA_ZSTD_FILTER_ID, 1, 1, "zstd (libzstd, InstructVLA-Swift)", NULL, NULL, zstd_filter,
};

int vla_register_zstd_filter(void) {
    if (H5Zfilter_avail(VLA_ZSTD_FILTER_ID) > 0) return 0;
    return H5Zregister(&zstd_class) < 0 ? -1 : 0;
}
