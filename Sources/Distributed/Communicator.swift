import Foundation

public enum ReduceOperation: Sendable {
    case sum, max
}

/// The processes of one data-parallel job and the collectives the trainer needs between them. Every
/// rank must make the same calls in the same order; each call returns the same result on every rank.
public protocol Communicator: AnyObject {
    /// This process's index, 0..<size; rank 0 writes the run folder and logs.
    var rank: Int { get }
    var size: Int { get }
    /// Seconds spent inside collectives so far (waiting for other ranks included).
    var communicationSeconds: Double { get }

    /// Element-wise reduction over all ranks, in place.
    func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws
    func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws
    /// Overwrites `bytes` on every rank with `root`'s.
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws
    func barrier() throws
    /// Ends every process of the job with `status`, now.
    func abort(status: Int32) -> Never
    /// Orderly shutdown before a normal exit.
    func finalize()
}

public struct CommunicatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One process and nobody to talk to: every collective is the identity, so code written for a job
/// runs unchanged without MPI.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var communicationSeconds: Double { 0 }
    public func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) {}
    public func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) {}
    public func barrier() {}
    public func abort(status: Int32) -> Never { exit(status) }
    public func finalize() {}
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// `values` reduced over all ranks (a convenience for a handful of scalars).
    public func allReduce(_ values: [Double], _ operation: ReduceOperation) throws -> [Double] {
        var out = values
        try out.withUnsafeMutableBufferPointer { try allReduce($0, operation) }
        return out
    }

    /// Root's `data` on every rank (other ranks' arguments are ignored).
    public func broadcast(_ data: Data, root: Int = 0) throws -> Data {
        var count = Int64(data.count)
        try withUnsafeMutableBytes(of: &count) { try broadcast($0, root: root) }
        var bytes = rank == root ? [UInt8](data) : [UInt8](repeating: 0, count: Int(count))
        try bytes.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return Data(bytes)
    }

    /// Fails on every rank, naming `what`, unless `value` is the same on all of them.
    public func requireSame(_ value: UInt64, _ what: String) throws {
        var rootValue = value
        try withUnsafeMutableBytes(of: &rootValue) { try broadcast($0, root: 0) }
        let mismatched = try allReduce([rootValue == value ? 0 : Double(rank)], .max)[0]
        guard mismatched == 0 else {
            throw CommunicatorError("\(what) differs between rank 0 and rank \(Int(mismatched)) of \(size)")
        }
    }
}

/// The job this process belongs to: MPI when started by Open MPI's `mpirun`, otherwise one process.
public enum Job {
    /// Whether Open MPI's launcher started this process.
    public static var launchedByMPI: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    public static func communicator() throws -> Communicator {
        launchedByMPI ? try MPICommunicator() : SingleProcess()
    }
}
