import Dispatch
import Foundation
import Synchronization

/// Runs `body(i)` for i in 0..<count on the toolkit's threads (`BLAS.workers`), in contiguous chunks. For many small work items,
/// such as per-head attention products. `body` must only write memory no other index writes.
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    let workers = min(BLAS.workers, count)
    if workers <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let unchecked = UncheckedSendable(body)
        parallelDepth.add(1, ordering: .relaxed)
        defer { parallelDepth.subtract(1, ordering: .relaxed) }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in (count * w / workers)..<(count * (w + 1) / workers) { unchecked.value(i) }
        }
    }
}

/// Work items already run on every core inside `parallelFor`: BLAS calls made there stay on their thread.
private let parallelDepth = Atomic<Int>(0)
var insideParallelRegion: Bool { parallelDepth.load(ordering: .relaxed) > 0 }

/// Carries a value into a concurrent region whose disjoint-writes contract is checked by the caller.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
