// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know recent CPUs and falls back to a generic
// kernel ("Prescott") that runs sgemm 5-10x slower. It picks its kernel in a load-time constructor
// from OPENBLAS_CORETYPE, so setting the variable from Swift's main is too late. This constructor
// runs after OpenBLAS has initialised (dependencies initialise first): if the choice was generic,
// the user did not pin one, and the CPU has AVX-512 (or AVX2), it re-executes the process with the
// variable set. An explicit OPENBLAS_CORETYPE is always respected.
#define _GNU_SOURCE
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "openblas_runtime.h"

static const char *const generic_cores[] = {
    "Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2", "Penryn", "Dunnington",
    "Nehalem", "Atom", "Opteron", "Opteron(SSE3)", "Barcelona", "Nano", "Bobcat", "Unknown", NULL,
};

static const char *const reexec_marker = "INSTRUCTVLA_OPENBLAS_REEXEC_FROM";
static char core_source[160] = "auto-detected";

int vla_openblas_core_is_generic(const char *core) {
    for (int i = 0; generic_cores[i]; i++)
        if (strcasecmp(core, generic_cores[i]) == 0) return 1;
    return 0;
}

static const char *best_core_for_this_cpu(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

__attribute__((constructor)) static void vla_openblas_select_core(int argc, char **argv, char **envp) {
    (void)argc; (void)envp;
    const char *from = getenv(reexec_marker);
    if (from) {
        snprintf(core_source, sizeof core_source,
                 "re-executed with OPENBLAS_CORETYPE=%s (auto-detection gave %s)",
                 getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "?", from);
        unsetenv(reexec_marker);  // children inherit the pinned core, not the claim of a re-exec
        return;
    }
    const char *pinned = getenv("OPENBLAS_CORETYPE");
    if (pinned && *pinned) {  // an empty value means "unset", as OpenBLAS itself reads it
        snprintf(core_source, sizeof core_source, "OPENBLAS_CORETYPE set by the environment");
        return;
    }
    const char *core = openblas_get_corename();
    const char *best = best_core_for_this_cpu();
    // INSTRUCTVLA_OPENBLAS_ASSUME_GENERIC lets a test exercise this path on a CPU OpenBLAS knows.
    int generic = core && (vla_openblas_core_is_generic(core) || getenv("INSTRUCTVLA_OPENBLAS_ASSUME_GENERIC"));
    if (!generic || !best || !argv) return;
    setenv("OPENBLAS_CORETYPE", best, 1);
    setenv(reexec_marker, core, 1);
    execv("/proc/self/exe", argv);
    // exec failed: carry on with the slow kernel, but say so.
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(reexec_marker);
    snprintf(core_source, sizeof core_source, "auto-detected (re-exec to %s failed)", best);
}

const char *vla_openblas_core(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

const char *vla_openblas_core_source(void) { return core_source; }
