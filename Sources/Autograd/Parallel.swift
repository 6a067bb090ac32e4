import Dispatch
import Foundation

/// Runs `body(i)` for i in 0..<count on all cores, in contiguous chunks. For work items whose BLAS
/// calls are too small for OpenBLAS to thread (it runs M·N·K ≤ 2^18 on the calling thread), such
/// as per-head attention products. `body` must only write memory no other index writes.
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    let workers = min(ProcessInfo.processInfo.activeProcessorCount, count)
    if workers <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let unchecked = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in (count * w / workers)..<(count * (w + 1) / workers) { unchecked.value(i) }
        }
    }
}

/// Carries a value into a concurrent region whose disjoint-writes contract is checked by the caller.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
