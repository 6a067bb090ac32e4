import Foundation
import TestSupport
import XCTest

/// Starting Open MPI jobs from the tests: root-safe mpirun flags, the package's executables, output in
/// a file (a pipe could fill up and stall a job the test is waiting on).
enum MPIJobs {
    static let rootEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "INSTRUCTVLA_THREADS": "1"]

    /// mpirun, or a skip (a failure under CI, where `make setup` must have installed it).
    static func mpirun() throws -> URL {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
        guard let path else {
            let message = "no mpirun on PATH: install Debian's openmpi-bin and libopenmpi-dev (`make setup`)"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
            throw XCTSkip(message)
        }
        return path
    }

    /// mpirun's arguments for `np` ranks on this machine, each on one thread.
    static func localArguments(np: Int) -> [String] {
        ["-np", "\(np)", "--oversubscribe", "--bind-to", "none", "-x", "INSTRUCTVLA_THREADS", "-x", "INSTRUCTVLA_MPI_TIMEOUT"]
    }

    /// A package executable beside the tests, or a failure that says how to build it.
    static func executable(_ name: String) throws -> URL {
        let url = builtExecutable(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            XCTFail("no \(name) beside the tests at \(url.path): build with `swift build --build-tests`")
            throw CocoaError(.executableNotLoadable)
        }
        return url
    }

    /// A started process whose standard output and error go to `log`.
    static func start(_ executable: URL, _ arguments: [String], log: URL, environment: [String: String] = [:]) throws -> Process {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = PythonReference.repoRoot
        process.environment = ProcessInfo.processInfo.environment.merging(rootEnvironment.merging(environment) { $1 }) { $1 }
        (process.standardOutput, process.standardError) = (handle, handle)
        try process.run()
        return process
    }

    /// Runs to completion; its exit status and output.
    static func run(_ executable: URL, _ arguments: [String], log: URL, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = try start(executable, arguments, log: log, environment: environment)
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// Waits for `process` to end, at most `seconds`; whether it did.
    static func wait(_ process: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    /// Waits until `condition` holds, at most `seconds`; whether it did.
    static func poll(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && Date() < deadline { usleep(50_000) }
        return condition()
    }

    /// PIDs of the processes of rank `rank` whose command line mentions `marker` (a run folder).
    static func ranks(_ rank: Int, mentioning marker: String) -> [pid_t] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
        return pids.filter { pid in
            guard let environ = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ")),
                  let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
            return environ.split(separator: 0).contains(Data("OMPI_COMM_WORLD_RANK=\(rank)".utf8))
                && String(decoding: command, as: UTF8.self).contains(marker)
        }
    }
}
