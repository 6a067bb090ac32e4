import Foundation

/// One validated observation: images in schema order (HWC uint8, top row first), proprio state, instruction.
public struct Observation: Sendable {
    public var images: [[UInt8]]
    public var state: [Float]
    public var prompt: String
    /// The connection that sent it (the server numbers them from 1): policies that keep state per
    /// episode, such as a thinking policy's cached response, keep it per client.
    public var client: Int

    public init(images: [[UInt8]], state: [Float], prompt: String, client: Int = 0) {
        self.images = images
        self.state = state
        self.prompt = prompt
        self.client = client
    }
}

/// What a policy returns for one observation: an un-normalised action chunk and, for policies that
/// reason in language first, the text they said.
public struct PolicyOutput: Sendable {
    /// horizon × actionDim, row-major, in the environment's units.
    public var actions: [Float]
    public var text: String?
    /// Policy-specific diagnostics sent along under their own keys.
    public var extra: [String: MsgPackValue]

    public init(actions: [Float], text: String? = nil, extra: [String: MsgPackValue] = [:]) {
        self.actions = actions
        self.text = text
        self.extra = extra
    }
}

/// A policy behind `vla serve`. Calls come one at a time (the server serialises them), so an
/// implementation may keep mutable state such as caches.
public protocol Policy: AnyObject {
    var name: String { get }
    var schema: ObservationSchema { get }
    var actionHorizon: Int { get }
    var actionDim: Int { get }
    /// Extra metadata sent to clients on connect, e.g. the camera the policy was trained on.
    var extraMetadata: [String: MsgPackValue] { get }
    func infer(_ observation: Observation) throws -> PolicyOutput
    /// The client's connection closed: drop what is kept for it.
    func disconnected(client: Int)
}

extension Policy {
    public func disconnected(client: Int) {}
}

public struct ObservationError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The keys, shapes and dtypes a policy accepts, in openpi's naming ("observation/image",
/// "observation/state", "prompt"). Anything else is refused, so a misspelt key is an error rather
/// than a silently missing input.
public struct ObservationSchema: Sendable, Equatable {
    public var imageKeys: [String]
    public var imageHeight: Int
    public var imageWidth: Int
    public var stateKey: String
    public var stateDim: Int
    public var promptKey: String

    public init(imageKeys: [String] = ["observation/image"], imageHeight: Int, imageWidth: Int,
                stateKey: String = "observation/state", stateDim: Int, promptKey: String = "prompt") {
        self.imageKeys = imageKeys
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.stateKey = stateKey
        self.stateDim = stateDim
        self.promptKey = promptKey
    }

    var imageShape: [Int] { [imageHeight, imageWidth, 3] }

    /// Each key with what it must hold, e.g. "observation/image: uint8 [64, 64, 3]".
    public var fields: [String] {
        imageKeys.map { "\($0): uint8 \(imageShape)" } + ["\(stateKey): float [\(stateDim)]", "\(promptKey): str"]
    }

    public func validate(_ message: MsgPackValue) throws -> Observation {
        guard case .map(let entries) = message else {
            throw ObservationError("an observation must be a msgpack map of \(fields.joined(separator: ", ")); got \(message.kindName)")
        }
        var byKey: [String: MsgPackValue] = [:]
        for entry in entries {
            guard let key = entry.key.keyString else { throw ObservationError("observation keys must be strings, got \(entry.key.kindName)") }
            byKey[key] = entry.value
        }
        let expected = Set(imageKeys + [stateKey, promptKey])
        if let unknown = byKey.keys.sorted().first(where: { !expected.contains($0) }) {
            throw ObservationError("unexpected observation key '\(unknown)'; this policy takes \(fields.joined(separator: ", "))")
        }
        func field(_ key: String, _ what: String) throws -> MsgPackValue {
            guard let value = byKey[key] else {
                throw ObservationError("observation is missing '\(key)' (\(what)); it has: \(byKey.keys.sorted().joined(separator: ", "))")
            }
            return value
        }
        func array(_ key: String, _ what: String) throws -> NumpyArray {
            let value = try field(key, what)
            do {
                guard let array = try NumpyArray(msgpack: value) else { throw ObservationError("'\(key)' must be a numpy array (\(what)), got msgpack \(value.kindName)") }
                return array
            } catch let error as MsgPackError {
                throw ObservationError("'\(key)': \(error.message)")
            }
        }
        var images: [[UInt8]] = []
        for key in imageKeys {
            let image = try array(key, "uint8 \(imageShape)")
            guard image.kind == .unsigned, image.itemSize == 1, image.shape == imageShape else {
                throw ObservationError("'\(key)' must be uint8 \(imageShape) (HWC, top row first), got \(image.dtypeName) \(image.shape)")
            }
            images.append(image.data)
        }
        let stateArray = try array(stateKey, "float [\(stateDim)]")
        guard stateArray.kind != .bool, stateArray.shape == [stateDim] else {
            throw ObservationError("'\(stateKey)' must be a float array of shape [\(stateDim)], got \(stateArray.dtypeName) \(stateArray.shape)")
        }
        let state = stateArray.floats()
        if let bad = state.firstIndex(where: { !$0.isFinite }) {
            throw ObservationError("'\(stateKey)'[\(bad)] is \(state[bad]); the state must be finite")
        }
        guard case .string(let prompt) = try field(promptKey, "str") else {
            throw ObservationError("'\(promptKey)' must be a str, got \(byKey[promptKey]!.kindName)")
        }
        return Observation(images: images, state: state, prompt: prompt)
    }
}
