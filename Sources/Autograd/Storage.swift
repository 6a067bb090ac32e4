import Synchronization

/// A 64-byte aligned Float32 buffer owned by one or more tensors (views such as `reshaped` share it).
///
/// Kernels borrow `pointer` once and loop over it; indexing through a class property inside a hot
/// loop is two orders of magnitude slower in Swift (code-and-performance-anchors.md §2.4).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised storage: the caller must write every element before reading.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        pointer = BufferPool.shared.allocate(floats: count)
        self.count = count
    }

    public convenience init(zeros count: Int) {
        self.init(uninitializedCount: count)
        pointer.update(repeating: 0, count: count)
    }

    public convenience init(copying values: UnsafeBufferPointer<Float>) {
        self.init(uninitializedCount: values.count)
        if let base = values.baseAddress { pointer.update(from: base, count: values.count) }
    }

    deinit { BufferPool.shared.release(pointer, floats: count) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

/// Keeps freed large buffers for reuse. A training step allocates the same activation and gradient
/// shapes every iteration; handing them back from a free list avoids the page faults (and kernel
/// zeroing) that fresh multi-megabyte allocations cost on every step.
final class BufferPool: Sendable {
    static let shared = BufferPool()

    /// Buffers below this size come straight from malloc, which is fast for them.
    static let minimumPooledBytes = 64 << 10
    /// Upper bound on idle pooled memory; beyond it freed buffers go back to the system.
    static let maximumIdleBytes = 2 << 30

    private struct State: ~Copyable {
        /// byte size → addresses of idle buffers (as integers: raw pointers are not Sendable)
        var free: [Int: [UInt]] = [:]
        var idleBytes = 0
    }
    private let state = Mutex(State())

    /// Pooled sizes are rounded up to size classes (eight per power of two, ≤ 12.5% slack), so that
    /// tensors whose shapes vary a little from step to step (e.g. sequence lengths) reuse buffers
    /// instead of each taking fresh pages from the system, which the kernel must zero.
    private static func byteSize(floats: Int) -> Int {
        let bytes = max(floats, 1) * MemoryLayout<Float>.stride
        guard bytes >= minimumPooledBytes else { return bytes }
        let step = 1 << (Int.bitWidth - bytes.leadingZeroBitCount - 1 - 3)
        return (bytes + step - 1) / step * step
    }

    func allocate(floats: Int) -> UnsafeMutablePointer<Float> {
        let bytes = Self.byteSize(floats: floats)
        if bytes >= Self.minimumPooledBytes {
            let reused: UInt? = state.withLock { s in
                guard let address = s.free[bytes]?.popLast() else { return nil }
                s.idleBytes -= bytes
                return address
            }
            if let reused, let p = UnsafeMutablePointer<Float>(bitPattern: reused) { return p }
        }
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Float.self, capacity: bytes / 4)
    }

    func release(_ pointer: UnsafeMutablePointer<Float>, floats: Int) {
        let bytes = Self.byteSize(floats: floats)
        if bytes >= Self.minimumPooledBytes {
            let address = UInt(bitPattern: pointer)
            let kept = state.withLock { s in
                guard s.idleBytes + bytes <= Self.maximumIdleBytes else { return false }
                s.free[bytes, default: []].append(address)
                s.idleBytes += bytes
                return true
            }
            if kept { return }
        }
        UnsafeMutableRawPointer(pointer).deallocate()
    }
}
