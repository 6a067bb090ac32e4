import CMPI
import Foundation

/// MPI_COMM_WORLD of a job started by `mpirun`. MPI errors come back as thrown errors instead of
/// aborting inside the library, and a collective that gets no answer for `timeout` seconds (a peer
/// that hangs, or a host gone without a TCP reset) ends this process, which makes mpirun end the job.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public private(set) var communicationSeconds = 0.0
    /// INSTRUCTVLA_MPI_TIMEOUT, in seconds (default 900: rank 0 may validate or save meanwhile).
    public let timeout: Double
    private let watchdog: Watchdog

    init() throws {
        let environment = ProcessInfo.processInfo.environment
        let timeoutText = environment["INSTRUCTVLA_MPI_TIMEOUT"] ?? "900"
        guard let timeout = Double(timeoutText), timeout > 0 else {
            throw CommunicatorError("INSTRUCTVLA_MPI_TIMEOUT: expected a positive number of seconds, got '\(timeoutText)'")
        }
        Self.shareCoresAmongLocalRanks(environment)
        guard MPI_Init(nil, nil) == cmpi_success() else { throw CommunicatorError("MPI_Init failed") }
        MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(cmpi_comm_world(), &rank)
        MPI_Comm_size(cmpi_comm_world(), &size)
        (self.rank, self.size, self.timeout) = (Int(rank), Int(size), timeout)
        watchdog = Watchdog(rank: Int(rank), size: Int(size), timeout: timeout)
    }

    /// Ranks on one host would each start a thread per core; unless INSTRUCTVLA_THREADS says
    /// otherwise they split the cores (this runs before the first kernel reads the setting).
    static func shareCoresAmongLocalRanks(_ environment: [String: String]) {
        guard environment["INSTRUCTVLA_THREADS"] == nil, let local = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init), local > 1 else { return }
        setenv("INSTRUCTVLA_THREADS", String(max(1, ProcessInfo.processInfo.activeProcessorCount / local)), 1)
    }

    public func allReduce(_ values: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {
        try collective("all-reduce of \(values.count) floats") {
            MPI_Allreduce(cmpi_in_place(), values.baseAddress, Int32(values.count), cmpi_float(), mpiOp(operation), cmpi_comm_world())
        }
    }

    public func allReduce(_ values: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {
        try collective("all-reduce of \(values.count) doubles") {
            MPI_Allreduce(cmpi_in_place(), values.baseAddress, Int32(values.count), cmpi_double(), mpiOp(operation), cmpi_comm_world())
        }
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        try collective("broadcast of \(bytes.count) bytes from rank \(root)") {
            MPI_Bcast(bytes.baseAddress, Int32(bytes.count), cmpi_byte(), Int32(root), cmpi_comm_world())
        }
    }

    public func barrier() throws {
        try collective("barrier") { MPI_Barrier(cmpi_comm_world()) }
    }

    public func abort(status: Int32) -> Never {
        fflush(nil)
        MPI_Abort(cmpi_comm_world(), status)
        exit(status)
    }

    public func finalize() {
        watchdog.stop()
        MPI_Finalize()
    }

    private func mpiOp(_ operation: ReduceOperation) -> MPI_Op {
        switch operation {
        case .sum: return cmpi_sum()
        case .max: return cmpi_max()
        }
    }

    private func collective(_ what: @autoclosure () -> String, _ call: () -> Int32) throws {
        let started = Date()
        watchdog.arm(what())
        let status = call()
        watchdog.disarm()
        communicationSeconds += Date().timeIntervalSince(started)
        guard status == cmpi_success() else {
            var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
            var length: Int32 = 0
            MPI_Error_string(status, &text, &length)
            throw CommunicatorError("rank \(rank) of \(size): \(what()) failed: \(String(cString: text))")
        }
    }
}

/// Ends the process when a collective has waited longer than `timeout`.
final class Watchdog: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: (what: String, since: Date)?
    private var running = true

    init(rank: Int, size: Int, timeout: Double) {
        let thread = Thread { [condition] in
            condition.lock()
            while self.running {
                if let pending = self.pending, Date().timeIntervalSince(pending.since) > timeout {
                    FileHandle.standardError.write(Data(("error: rank \(rank) of \(size): no answer from the other ranks for \(Int(timeout)) s " +
                        "in \(pending.what) (INSTRUCTVLA_MPI_TIMEOUT); another rank died or hangs. Ending the job.\n").utf8))
                    _exit(70)
                }
                _ = condition.wait(until: Date().addingTimeInterval(1))
            }
            condition.unlock()
        }
        thread.name = "mpi-watchdog"
        thread.start()
    }

    func arm(_ what: String) {
        condition.lock()
        pending = (what, Date())
        condition.unlock()
    }

    func disarm() {
        condition.lock()
        pending = nil
        condition.unlock()
    }

    func stop() {
        condition.lock()
        running = false
        condition.broadcast()
        condition.unlock()
    }
}
