import COpenBLAS
import Foundation
import OpenBLASRuntime

/// The OpenBLAS runtime this process runs on. Every executable, test and benchmark logs `summary`.
public enum BLAS {
    /// The kernel OpenBLAS selected, e.g. "SkylakeX" or "Haswell".
    public static var core: String { String(cString: vla_openblas_core()) }

    /// How the kernel was chosen (auto-detected, pinned by OPENBLAS_CORETYPE, or fixed by a re-exec
    /// because auto-detection fell back to a generic kernel).
    public static var coreSource: String { String(cString: vla_openblas_core_source()) }

    /// Whether the kernel is a generic fallback (e.g. "Prescott"), 5-10x slower than this CPU allows.
    public static var coreIsGeneric: Bool { vla_openblas_core_is_generic(vla_openblas_core()) != 0 }

    /// Threads the toolkit computes on: one per core, or INSTRUCTVLA_THREADS. OpenBLAS itself is kept
    /// single-threaded and large products are split across these (see `sgemm`).
    public static let workers: Int = {
        openblas_set_num_threads(1)
        let requested = ProcessInfo.processInfo.environment["INSTRUCTVLA_THREADS"].flatMap(Int.init) ?? 0
        return requested > 0 ? requested : ProcessInfo.processInfo.activeProcessorCount
    }()

    /// FLOPs of all matrix products run so far (2·M·N·K each): with a step's time, the rate at which
    /// a training step keeps the cores on sgemm.
    public static var gemmFlops: Int { gemmFlopCounter.load(ordering: .relaxed) }

    /// One line for logs: "OpenBLAS core Haswell (OPENBLAS_CORETYPE set by the environment), 2 threads".
    public static var summary: String { "OpenBLAS core \(core) (\(coreSource)), \(workers) threads (OpenBLAS single-threaded, products split by the toolkit)" }
}
