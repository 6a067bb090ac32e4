import Foundation

// Durable, atomic file operations: a reader sees the old file or the complete new one, never a
// partial write, even if the process is killed at any instant.

/// An I/O failure, naming the path and the system's reason.
public struct FileSystemError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }

    static func errno(_ path: String, _ what: String) -> FileSystemError {
        FileSystemError(path: path, message: "\(what): \(String(cString: strerror(Foundation.errno)))")
    }
}

/// Appends bytes to an open file descriptor, retrying short writes and EINTR.
public struct FileWriter {
    let fd: Int32
    let path: String

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if Foundation.errno == EINTR { continue }
                throw FileSystemError.errno(path, "write failed")
            }
            offset += n
        }
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }
    public func write(_ string: String) throws { try write(Data(string.utf8)) }
}

/// Writes `url` through a temporary file in the same directory: write, fsync, rename, fsync the
/// directory. On any error the temporary file is removed and the old file (if any) is untouched.
public func writeAtomically(_ url: URL, _ body: (FileWriter) throws -> Void) throws {
    let directory = url.deletingLastPathComponent().path
    let temporary = "\(directory)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw FileSystemError.errno(temporary, "cannot create") }
    do {
        try body(FileWriter(fd: fd, path: temporary))
        guard fsync(fd) == 0 else { throw FileSystemError.errno(temporary, "fsync failed") }
        guard close(fd) == 0 else { throw FileSystemError.errno(temporary, "close failed") }
    } catch {
        close(fd)
        unlink(temporary)
        throw error
    }
    guard rename(temporary, url.path) == 0 else {
        let error = FileSystemError.errno(url.path, "cannot rename \(temporary) into place")
        unlink(temporary)
        throw error
    }
    try fsyncDirectory(directory)
}

/// Makes a directory's entries (creations, renames) durable.
public func fsyncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw FileSystemError.errno(path, "cannot open directory") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw FileSystemError.errno(path, "fsync failed") }
}
