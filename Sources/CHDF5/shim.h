#include <hdf5.h>

// H5T_NATIVE_* and H5F_ACC_* are macros that call H5open() and read library globals; Swift can't
// import them, and Swift 6 rejects the globals themselves as not concurrency-safe. These accessors
// are the Swift-visible spelling.
static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_int64(void) { return H5T_NATIVE_INT64; }
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t chdf5_error_default(void) { return H5E_DEFAULT; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }
static inline hid_t chdf5_p_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_s_all(void) { return H5S_ALL; }
static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }
static inline hid_t chdf5_link_create_plist(void) { return H5Pcreate(H5P_LINK_CREATE); }
static inline hid_t chdf5_dataset_create_plist(void) { return H5Pcreate(H5P_DATASET_CREATE); }
