import Foundation

/// One episode of a dataset file, as validated when the dataset opened.
public struct EpisodeInfo: Sendable, Equatable {
    public let file: String
    /// "demo_3" (robomimic) or "" (ALOHA: one episode per file).
    public let name: String
    public let length: Int
    public let instruction: String
}

/// A dataset problem; the message names the file, the episode and the key.
public struct EpisodeError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What one sample holds: frames and proprioception at t, and the action chunk t..<t+H (past the
/// episode's end the last action repeats and `actionMask` is 0).
public struct EpisodeSample: Sendable {
    /// One HWC uint8 image per image key.
    public var images: [[UInt8]]
    public var proprio: [Float]
    /// H × A, row-major.
    public var actions: [Float]
    public var actionMask: [Float]
    public var instruction: String
    /// The layout's auxiliary row at t (empty without an auxiliary key).
    public var auxiliary: [Float] = []
}

/// Robot episodes from HDF5 files, validated up front: every episode's keys exist with the right
/// ranks and types, all streams have one row per step, actions are finite (episodes with NaN/Inf
/// actions are skipped and counted, not loaded).
public final class EpisodeDataset {
    public let layout: EpisodeLayout
    public let episodes: [EpisodeInfo]
    /// Episodes left out because their actions hold NaN or Inf, as "file:episode".
    public let skippedNonFinite: [String]
    public let imageShape: [Int]  // H, W, 3
    public let actionDim: Int
    public let proprioDims: [Int]
    /// Width of the layout's auxiliary key (0 without one).
    public let auxiliaryDim: Int
    private var files: [String: HDF5File] = [:]

    /// - Parameter split: "train" or "valid" to use a robomimic file's `mask/<split>`; nil for all episodes.
    public init(files paths: [String], layout: EpisodeLayout, split: String? = nil) throws {
        guard !paths.isEmpty else { throw EpisodeError("no dataset files given") }
        self.layout = layout
        var episodes: [EpisodeInfo] = [], skipped: [String] = []
        var imageShape: [Int]?, actionDim: Int?, proprioDims: [Int]?, auxiliaryDim: Int?
        for path in paths {
            let file = try HDF5File(path: path)
            files[path] = file
            for name in try Self.episodeNames(file, layout: layout, split: split) {
                let at = layout.kind == .robomimic ? "\(path): \(name)" : path
                func fail(_ message: String) -> EpisodeError { EpisodeError("\(at): \(message)") }
                let actions = try file.dataset(layout.actionPath(name))
                guard actions.shape.count == 2, actions.kind == .float else {
                    throw fail("'\(layout.actionPath(name))' should be a (T, A) float array, found shape \(actions.shape) of \(actions.kind)")
                }
                let length = actions.shape[0]
                guard length > 0 else { throw fail("empty episode ('\(layout.actionPath(name))' has 0 steps)") }
                if actionDim == nil { actionDim = actions.shape[1] }
                guard actions.shape[1] == actionDim else { throw fail("action dimension \(actions.shape[1]) differs from \(actionDim!) in earlier episodes") }
                for key in layout.imageKeys {
                    let path = layout.imagePath(name, key)
                    guard file.exists(path) else { throw fail("missing image key '\(path)'") }
                    let images = try file.dataset(path)
                    guard images.shape.count == 4, images.shape[3] == 3, images.kind == .unsignedInteger, images.elementSize == 1 else {
                        throw fail("'\(path)' should be (T, H, W, 3) uint8, found shape \(images.shape) of \(images.kind) (\(images.elementSize) bytes)")
                    }
                    guard images.shape[0] == length else { throw fail("'\(path)' has \(images.shape[0]) frames but there are \(length) actions") }
                    if imageShape == nil { imageShape = Array(images.shape.dropFirst()) }
                    guard Array(images.shape.dropFirst()) == imageShape! else { throw fail("'\(path)' frames are \(images.shape.dropFirst()) but earlier ones are \(imageShape!)") }
                }
                var dims: [Int] = []
                for key in layout.proprioKeys {
                    let path = layout.proprioPath(name, key)
                    guard file.exists(path) else { throw fail("missing proprio key '\(path)'") }
                    let d = try file.dataset(path)
                    guard (d.shape.count == 1 || d.shape.count == 2), d.kind != .other else {
                        throw fail("'\(path)' should be a (T,) or (T, D) numeric array, found shape \(d.shape)")
                    }
                    guard d.shape[0] == length else { throw fail("'\(path)' has \(d.shape[0]) steps but there are \(length) actions") }
                    dims.append(d.shape.count == 2 ? d.shape[1] : 1)
                }
                if proprioDims == nil { proprioDims = dims }
                guard dims == proprioDims! else { throw fail("proprio dimensions \(dims) differ from \(proprioDims!) in earlier episodes") }
                if let key = layout.auxiliaryKey {
                    let path = layout.proprioPath(name, key)
                    guard file.exists(path) else { throw fail("missing auxiliary key '\(path)'") }
                    let d = try file.dataset(path)
                    guard d.shape.count == 2, d.shape[0] == length, d.kind == .float else {
                        throw fail("'\(path)' should be a (\(length), D) float array (one row per action), found shape \(d.shape) of \(d.kind)")
                    }
                    if auxiliaryDim == nil { auxiliaryDim = d.shape[1] }
                    guard d.shape[1] == auxiliaryDim else { throw fail("'\(path)' has \(d.shape[1]) columns, earlier episodes \(auxiliaryDim!)") }
                }
                guard try actions.floats().allSatisfy({ $0.isFinite }) else { skipped.append("\(path):\(name)"); continue }
                let instruction = try Self.instruction(file, layout: layout, episode: name)
                episodes.append(EpisodeInfo(file: path, name: name, length: length, instruction: instruction))
            }
        }
        guard !episodes.isEmpty else {
            throw EpisodeError("no usable episode in \(paths.joined(separator: ", "))" + (skipped.isEmpty ? "" : " (\(skipped.count) skipped for NaN/Inf actions)"))
        }
        self.episodes = episodes
        self.skippedNonFinite = skipped
        self.imageShape = imageShape ?? []
        self.actionDim = actionDim!
        self.proprioDims = proprioDims ?? []
        self.auxiliaryDim = auxiliaryDim ?? 0
    }

    /// Episode names of a file, honouring the split mask when asked for.
    static func episodeNames(_ file: HDF5File, layout: EpisodeLayout, split: String?) throws -> [String] {
        guard layout.kind == .robomimic else { return [""] }
        guard file.exists("data") else { throw EpisodeError("\(file.path): missing group 'data' (robomimic layout)") }
        let all = try file.children("data").filter { $0.hasPrefix("demo_") }
            .sorted { (Int($0.dropFirst(5)) ?? 0, $0) < (Int($1.dropFirst(5)) ?? 0, $1) }
        guard let split else { return all }
        let maskKey = "mask/\(split)"
        guard file.exists(maskKey) else { throw EpisodeError("\(file.path): missing split '\(maskKey)'") }
        let names = try file.stringList(maskKey)
        for n in names where !all.contains(n) { throw EpisodeError("\(file.path): '\(maskKey)' lists '\(n)', which is not in 'data'") }
        return all.filter { names.contains($0) }
    }

    static func instruction(_ file: HDF5File, layout: EpisodeLayout, episode: String) throws -> String {
        for (key, attribute) in [("data/\(episode)", "language_instruction"), ("data", "language_instruction"), ("/", "language_instruction"), ("/", "instruction")] {
            if file.exists(key) || key == "/", let text = try file.stringAttribute(attribute, of: key) { return text }
        }
        return ""
    }

    public var proprioDim: Int { proprioDims.reduce(0, +) }

    func fileHandle(_ path: String) -> HDF5File? { files[path] }

    /// The sample at step `t` of episode `e`, with an action chunk of `horizon` steps.
    public func sample(episode e: Int, step t: Int, horizon: Int) throws -> EpisodeSample {
        let info = episodes[e]
        guard let file = files[info.file] else { throw EpisodeError("\(info.file): file closed") }
        precondition(t >= 0 && t < info.length, "sample: step \(t) outside episode of length \(info.length)")
        let images = try layout.imageKeys.map { try file.dataset(layout.imagePath(info.name, $0)).bytes(rows: t..<(t + 1)) }
        var proprio: [Float] = []
        for key in layout.proprioKeys { proprio += try file.dataset(layout.proprioPath(info.name, key)).floats(rows: t..<(t + 1)) }
        let end = min(t + horizon, info.length)
        var actions = try file.dataset(layout.actionPath(info.name)).floats(rows: t..<end)
        let last = Array(actions.suffix(actionDim))
        var mask = [Float](repeating: 1, count: end - t)
        for _ in end..<(t + horizon) { actions += last; mask.append(0) }
        let auxiliary = try layout.auxiliaryKey.map { try file.dataset(layout.proprioPath(info.name, $0)).floats(rows: t..<(t + 1)) } ?? []
        return EpisodeSample(images: images, proprio: proprio, actions: actions, actionMask: mask, instruction: info.instruction,
                             auxiliary: auxiliary)
    }

    /// Every row of the auxiliary key over the dataset, [steps × auxiliaryDim] row-major.
    public func allAuxiliary() throws -> [Float] {
        guard let key = layout.auxiliaryKey else { return [] }
        return try episodes.flatMap { try files[$0.file]!.dataset(layout.proprioPath($0.name, key)).floats() }
    }

    /// All proprio rows of episode `e`, [T × proprioDim] row-major.
    public func proprio(episode e: Int) throws -> [Float] {
        let info = episodes[e]
        guard let file = files[info.file] else { throw EpisodeError("\(info.file): file closed") }
        let columns = try layout.proprioKeys.map { try file.dataset(layout.proprioPath(info.name, $0)).floats() }
        var rows: [Float] = []
        rows.reserveCapacity(info.length * proprioDim)
        for t in 0..<info.length {
            for (k, column) in columns.enumerated() { rows += column[(t * proprioDims[k])..<((t + 1) * proprioDims[k])] }
        }
        return rows
    }

    /// Every action row and every proprio row of the dataset, for statistics.
    public func allActionsAndProprio() throws -> (actions: [Float], proprio: [Float]) {
        var actions: [Float] = [], proprio: [Float] = []
        for (e, info) in episodes.enumerated() {
            actions += try files[info.file]!.dataset(layout.actionPath(info.name)).floats()
            proprio += try self.proprio(episode: e)
        }
        return (actions, proprio)
    }
}
