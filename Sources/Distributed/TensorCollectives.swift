import Autograd

/// Floats per message when tensors travel together (8 MiB): large enough that per-message latency
/// vanishes, small enough that the staging buffer stays modest.
public let defaultBucketSize = 1 << 21

extension Communicator {
    /// Replaces every gradient with its mean over ranks. Gradients are packed in the order of
    /// `parameters` into buckets of at most `bucketSize` floats, so a job always reduces the same
    /// numbers in the same grouping. A parameter that has a gradient on no rank keeps none (the
    /// optimizer skips it, as in one process); one with a gradient on some ranks counts zeros for the others.
    public func averageGradients(_ parameters: [Tensor], bucketSize: Int = defaultBucketSize) throws {
        guard size > 1 else { return }
        let present = try allReduce(parameters.map { $0.grad == nil ? 0 : 1 }, .sum)
        var segments: [UnsafeMutableBufferPointer<Float>] = []
        for (p, ranks) in zip(parameters, present) where ranks > 0 {
            if p.grad == nil { p.grad = Tensor.zeros(p.shape) }
            segments.append(UnsafeMutableBufferPointer(start: p.grad!.pointer, count: p.count))
        }
        let scale = 1 / Float(size)
        try inBuckets(segments, bucketSize) { bucket in
            try allReduce(bucket, .sum)
            for i in bucket.indices { bucket[i] *= scale }
        }
    }

    /// Root's values of every segment on every rank, in buckets.
    public func broadcast(_ segments: [UnsafeMutableBufferPointer<Float>], root: Int = 0, bucketSize: Int = defaultBucketSize) throws {
        guard size > 1 else { return }
        try inBuckets(segments, bucketSize) { try broadcast(UnsafeMutableRawBufferPointer($0), root: root) }
    }

    /// Root's values of `tensors` on every rank.
    public func broadcast(_ tensors: [Tensor], root: Int = 0) throws {
        try broadcast(tensors.map { UnsafeMutableBufferPointer(start: $0.pointer, count: $0.count) }, root: root)
    }

    /// Fails on every rank unless `tensors` hold bit-identical values on all of them: data-parallel
    /// replicas that drift apart would otherwise go unnoticed until results stop reproducing.
    public func requireIdentical(_ tensors: [Tensor], _ what: String) throws {
        guard size > 1 else { return }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a over the float bit patterns
        for t in tensors {
            for i in 0..<t.count { hash = (hash ^ UInt64(t.pointer[i].bitPattern)) &* 0x100_0000_01b3 }
        }
        try requireSame(hash, what)
    }
}

/// Runs `body` on consecutive windows (at most `bucketSize` floats) of the concatenation of
/// `segments`, staged in one buffer, and copies each window's result back where it came from.
func inBuckets(_ segments: [UnsafeMutableBufferPointer<Float>], _ bucketSize: Int,
               _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
    precondition(bucketSize > 0, "bucket size must be positive")
    let total = segments.reduce(0) { $0 + $1.count }
    guard total > 0 else { return }
    let capacity = min(bucketSize, total)
    let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: capacity)
    defer { buffer.deallocate() }
    var pieces: [(source: UnsafeMutablePointer<Float>, count: Int, at: Int)] = []
    var filled = 0
    func flush() throws {
        try body(UnsafeMutableBufferPointer(rebasing: buffer[0..<filled]))
        for piece in pieces { piece.source.update(from: buffer.baseAddress! + piece.at, count: piece.count) }
        pieces.removeAll(keepingCapacity: true)
        filled = 0
    }
    for segment in segments {
        var offset = 0
        while offset < segment.count {
            let n = min(segment.count - offset, capacity - filled)
            let source = segment.baseAddress! + offset
            (buffer.baseAddress! + filled).update(from: source, count: n)
            pieces.append((source, n, filled))
            (filled, offset) = (filled + n, offset + n)
            if filled == capacity { try flush() }
        }
    }
    if filled > 0 { try flush() }
}
