import Foundation
import TestSupport
import XCTest

/// `vla serve` as a child process, driven by PyPI's openpi-client from the test venv.
final class PolicyServerTests: XCTestCase {
    /// Two scripted reach-v3 demonstrations at 32 px, written once per test run by the real generator.
    static let replayFile: Result<String, Error> = Result {
        let dir = try TemporaryFolder.forProcess("serve")
        try PythonReference.runScript("Datasets/metaworld/generate.py", arguments: [
            "--tasks", "reach-v3", "--demos-per-task", "2", "--image-size", "32", "--workers", "1", "--out", dir.path])
        return dir.appendingPathComponent("reach-v3.hdf5").path
    }

    struct Server {
        let process: Process
        let port: Int
        let log: URL

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
    }

    /// Starts `vla serve --replay` on a free port; returns once it printed the port it listens on.
    func startServer(_ file: String, maxMessageMib: Int = 16) throws -> Server {
        guard FileManager.default.isExecutableFile(atPath: vlaExecutable.path) else { XCTFail(missingVLAMessage); throw CocoaError(.fileNoSuchFile) }
        let log = try temporaryFolder("serve-log").appendingPathComponent("server.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = vlaExecutable
        process.arguments = ["serve", "--replay", file, "--port", "0", "--max-message-mib", "\(maxMessageMib)"]
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, process.isRunning {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: #"ws://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
               let port = Int(text[range].split(separator: ":").last!) {
                return Server(process: process, port: port, log: log)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        if process.isRunning { process.terminate() }
        XCTFail("vla serve did not start within 30 s: \(output)")
        throw CocoaError(.executableLoad)
    }

    func testOpenpiClientGetsActionsAndMalformedRequestsGetErrorsWhileTheServerKeepsServing() throws {
        let file = try Self.replayFile.get()
        let server = try startServer(file, maxMessageMib: 1)
        defer { server.stop() }
        let output = try PythonReference.runScript("Tests/ServingTests/Clients/openpi_check.py",
                                                   arguments: ["\(server.port)", "\(server.process.processIdentifier)", file, "\(1 << 20)"])
        XCTAssertTrue(output.hasSuffix("ok\n"), output)
        XCTAssertTrue(server.process.isRunning, "the server exited: \((try? String(contentsOf: server.log, encoding: .utf8)) ?? "")")
    }

    func testSoakThousandRequestsWithoutMemoryGrowth() throws {
        let file = try Self.replayFile.get()
        let server = try startServer(file)
        defer { server.stop() }
        let output = try PythonReference.runScript("Tests/ServingTests/Clients/soak.py",
                                                   arguments: ["\(server.port)", "\(server.process.processIdentifier)", file, "1000", "100"])
        let json = try XCTUnwrap(output.split(separator: "\n").last(where: { $0.hasPrefix("{") }))
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Double])
        print("[soak] \(json)")
        let growth = report["rss_end_kib"]! - report["rss_after_warmup_kib"]!
        // One leaked request would be ~3 KiB (a 32 px frame plus its envelope): 900 of them would show as ~2.7 MiB.
        XCTAssertLessThan(growth, 1024, "resident memory grew by \(growth) KiB over 900 requests after warm-up")
        XCTAssertTrue(server.process.isRunning)
    }
}
