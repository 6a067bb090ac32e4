import Autograd
import Foundation

/// An inference bundle: one folder with everything a policy needs, loadable from Python with
/// `safetensors` and `json` alone.
///
///     model.safetensors   weights (adapters merged or kept, as the exporting stage decides)
///     config.json         model configuration
///     tokenizer.json      the tokenizer (when the model has one)
///     norm_stats.json     action/proprio normalisation statistics and their schema
///     schema.json         observation and action schema
///     manifest.json       format, version and the SHA-256 of every file above
public enum ExportBundle {
    public static let manifestFile = "manifest.json"
    public static let format = "instructvla-swift-export"

    /// Writes the bundle at `url` atomically (built in a temporary sibling folder, then renamed;
    /// an existing bundle at `url` is replaced). `files` maps file names to their JSON or text bytes.
    public static func write(to url: URL, weights: [(String, Tensor)], files: [String: Data],
                             weightMetadata: [String: String] = [:]) throws {
        let parent = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let temporary = parent.appendingPathComponent(".tmp-\(url.lastPathComponent)-\(getpid())")
        try? FileManager.default.removeItem(at: temporary)
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: false)
        do {
            try Safetensors.save(weights, to: temporary.appendingPathComponent("model.safetensors"), metadata: weightMetadata)
            for (name, data) in files {
                guard name != manifestFile, name != "model.safetensors", !name.contains("/") else {
                    throw FileSystemError(path: url.path, message: "export file name '\(name)' is reserved or not a plain name")
                }
                try writeAtomically(temporary.appendingPathComponent(name)) { try $0.write(data) }
            }
            var entries: [String: [String: Any]] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: temporary.path).sorted() {
                let path = temporary.appendingPathComponent(name).path
                let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                entries[name] = ["sha256": try SHA256.hexDigest(ofFile: path), "bytes": size]
            }
            let manifest: [String: Any] = ["format": format, "version": 1, "files": entries]
            let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
            try writeAtomically(temporary.appendingPathComponent(manifestFile)) { try $0.write(data) }
            try fsyncDirectory(temporary.path)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        guard rename(temporary.path, url.path) == 0 else { throw FileSystemError.errno(url.path, "cannot move the bundle into place") }
        try fsyncDirectory(parent.path)
    }

    /// Re-hashes every file listed in the manifest; throws naming the first file that differs or is missing.
    public static func verify(_ url: URL) throws {
        let manifestURL = url.appendingPathComponent(manifestFile)
        guard let data = try? Data(contentsOf: manifestURL),
              let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              manifest["format"] as? String == format, let files = manifest["files"] as? [String: [String: Any]] else {
            throw FileSystemError(path: manifestURL.path, message: "missing or not an \(format) manifest")
        }
        for (name, info) in files.sorted(by: { $0.key < $1.key }) {
            let path = url.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: path) else { throw FileSystemError(path: path, message: "listed in the manifest but missing") }
            guard try SHA256.hexDigest(ofFile: path) == info["sha256"] as? String else {
                throw FileSystemError(path: path, message: "SHA-256 differs from the manifest (file changed or corrupt)")
            }
        }
    }
}
