import Autograd
import Foundation

/// The lines every run log starts with: what ran, where, on what.
public enum RunHeader {
    public static let toolkitVersion = "0.1.0"

    static var swiftVersion: String {
        #if compiler(>=6.3)
        "6.3+"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6.0/6.1"
        #endif
    }

    /// The git commit of the working directory's repository (with "-dirty" for local changes), or "unknown".
    static var gitCommit: String {
        func git(_ args: [String]) -> String? {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["git"] + args
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { return nil }
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
        }
        guard let commit = git(["rev-parse", "--short=12", "HEAD"]) else { return "unknown" }
        return commit + ((git(["status", "--porcelain", "--untracked-files=no"]) ?? "").isEmpty ? "" : "-dirty")
    }

    public static func lines(command: String, recipe: String) -> [String] {
        let cpu = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return [
            "InstructVLA-Swift \(toolkitVersion) | \(command) | git \(gitCommit) | Swift \(swiftVersion) | \(ProcessInfo.processInfo.operatingSystemVersionString)",
            "\(BLAS.summary) | \(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores",
            "recipe: \(recipe)",
        ]
    }
}
