import Foundation
import XCTest

/// Runs a test-only Python reference script in the repository's venv (made by `make setup`).
/// Without the venv a test is skipped locally, but fails under CI, where `make test` must have made it.
public enum PythonReference {
    public static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var interpreter: URL? {
        if let path = ProcessInfo.processInfo.environment["INSTRUCTVLA_PYTHON"] { return URL(fileURLWithPath: path) }
        let venv = repoRoot.appendingPathComponent(".venv/bin/python")
        return FileManager.default.isExecutableFile(atPath: venv.path) ? venv : nil
    }

    /// Runs a repository Python script with arguments; returns its combined output, or fails the
    /// test when it exits non-zero.
    @discardableResult
    public static func runScript(_ script: String, arguments: [String]) throws -> String {
        guard let python = interpreter else {
            let message = "no test venv at .venv (run `make setup`, or set INSTRUCTVLA_PYTHON)"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message); throw CocoaError(.fileNoSuchFile) }
            throw XCTSkip(message)
        }
        let (status, output) = try runProcess(python, [repoRoot.appendingPathComponent(script).path] + arguments)
        guard status == 0 else {
            XCTFail("\(script) exited with \(status): \(output.suffix(2000))")
            throw CocoaError(.executableLoad)
        }
        return output
    }

    /// Runs `script IN.json OUT.json` with `input` as IN, returning the JSON object it writes to OUT.
    public static func run(_ script: String, input: [String: Any]) throws -> [String: Any] {
        let dir = try TemporaryFolder.create("parity")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("in.json"), outURL = dir.appendingPathComponent("out.json")
        try JSONSerialization.data(withJSONObject: input).write(to: inURL)
        try runScript(script, arguments: [inURL.path, outURL.path])
        return try JSONSerialization.jsonObject(with: Data(contentsOf: outURL)) as! [String: Any]
    }

    /// Runs a check script (`script IN.json OUT.json`, IN {"dir": D}) that generates into the fresh scratch
    /// folder D and reports {"problems": [...], ...}: the test fails with the first problems unless the list is
    /// empty; `body` then reads the report, and D before it is removed.
    public static func runChecks(_ script: String, file: StaticString = #filePath, line: UInt = #line,
                                 _ body: (_ report: [String: Any], _ dir: URL) throws -> Void) throws {
        let dir = try TemporaryFolder.create("checks")
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = try run(script, input: ["dir": dir.path])
        let problems = try XCTUnwrap(report["problems"] as? [String], "\(script) reports no problems list", file: file, line: line)
        XCTAssertEqual(problems, [], "first problems:\n" + problems.prefix(10).joined(separator: "\n"), file: file, line: line)
        try body(report, dir)
    }
}
