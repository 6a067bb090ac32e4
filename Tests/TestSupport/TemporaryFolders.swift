import Foundation
import XCTest

/// Scratch folders for tests, each `instructvla-<label>-<8 hex>` under the system's temporary
/// directory, and each removed again: a test's own when the test ends (`XCTestCase.temporaryFolder`),
/// a fixture built once and shared by a process's tests when that process exits (`forProcess`).
public enum TemporaryFolder {
    /// A fresh, empty folder that nobody removes: callers register its removal.
    static func create(_ label: String) throws -> URL {
        let name = label.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("instructvla-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A fresh folder for a fixture shared by this process's tests (a `static let`), removed when the
    /// process exits. A test process killed by a signal leaves it behind.
    public static func forProcess(_ label: String) throws -> URL {
        let url = try create(label)
        ProcessFolders.shared.add(url)
        return url
    }
}

/// The folders `TemporaryFolder.forProcess` made, removed by an `atexit` handler (XCTest ends its
/// process with `exit`).
private final class ProcessFolders: @unchecked Sendable {
    static let shared = ProcessFolders()
    private let lock = NSLock()
    private var urls: [URL] = []

    private init() {
        atexit { ProcessFolders.shared.removeAll() }
    }

    func add(_ url: URL) {
        lock.withLock { urls.append(url) }
    }

    func removeAll() {
        for url in lock.withLock({ urls }) { try? FileManager.default.removeItem(at: url) }
    }
}

extension XCTestCase {
    /// A fresh folder removed when this test ends, whether it passed or not.
    public func temporaryFolder(_ label: String = #function) throws -> URL {
        let url = try TemporaryFolder.create(label)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
