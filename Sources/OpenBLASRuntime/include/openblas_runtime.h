#ifndef OPENBLAS_RUNTIME_H
#define OPENBLAS_RUNTIME_H

/// The OpenBLAS kernel in use, e.g. "SkylakeX" (never NULL).
const char *vla_openblas_core(void);

/// How that kernel was chosen: "auto-detected", "OPENBLAS_CORETYPE set by the environment", or
/// "re-executed with OPENBLAS_CORETYPE=<core> (auto-detection gave <generic core>)".
const char *vla_openblas_core_source(void);

/// 1 when `core` is one of the generic kernels OpenBLAS falls back to on CPUs it does not know.
int vla_openblas_core_is_generic(const char *core);

#endif
