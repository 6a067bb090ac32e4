import Autograd
import Checkpoint
import Foundation
import Training

/// A trained model behind the server: stage-1 and stage-2 runs and export bundles (`ActionPolicy`).
/// A stage-2 model that thinks first answers the instruction in words (sent back as `text`), then
/// acts on it; the response follows `ThoughtCache` (regenerated every `inference.think_every`
/// requests for the same instruction, at once for a new one).
public final class ModelPolicy: Policy {
    public let name: String
    public let schema: ObservationSchema
    public let extraMetadata: [String: MsgPackValue]
    let policy: ActionPolicy
    let think: Bool
    /// Seed of the flow-matching noise; each request draws from it and the observation (`noise(for:)`).
    let seed: UInt64
    /// Multiplies that noise (1: the trained distribution; 0: every chunk from the noise's mean).
    let noiseScale: Float
    var thoughts: ThoughtCache

    /// - Parameter think: answer in words before acting; nil follows the model's recipe (stage 2: yes).
    /// - Parameter thinkEvery: requests between new responses; nil follows the recipe (`inference.think_every`).
    /// - Parameter averaged: the weights' moving average where the checkpoint has one (`ActionPolicy`).
    public init(contentsOf folder: URL, seed: UInt64, noiseScale: Float = 1, think: Bool? = nil, thinkEvery: Int? = nil,
                averaged: Bool = true) throws {
        precondition(noiseScale >= 0 && noiseScale.isFinite, "ModelPolicy: noise scale \(noiseScale) must be finite and at least 0")
        policy = try ActionPolicy(contentsOf: folder, averaged: averaged)
        self.think = think ?? policy.thinksByDefault
        thoughts = ThoughtCache(every: thinkEvery ?? policy.instruct?.inference.thinkEvery ?? 1)
        name = policy.instruct == nil ? "instructvla-stage1" : "instructvla-stage2"
        schema = ObservationSchema(imageKeys: policy.observationImageKeys, imageHeight: policy.imageSize, imageWidth: policy.imageSize,
                                   stateDim: policy.proprioDim)
        self.seed = seed
        self.noiseScale = noiseScale
        var extra: [String: MsgPackValue] = ["weights": .string(policy.source.path), "noise_seed": .int(Int64(seed)),
                                             "noise_scale": .float(Double(noiseScale)),
                                             "stage": .string(policy.stage), "think": .bool(self.think)]
        if self.think { extra["think_every"] = .int(Int64(thoughts.every)) }
        if let camera = policy.camera { extra["camera"] = .string(camera) }
        if !policy.extraCameras.isEmpty { extra["extra_cameras"] = .array(policy.extraCameras.map { .string($0) }) }
        extraMetadata = extra
    }

    public var actionHorizon: Int { policy.horizon }
    public var actionDim: Int { policy.actionDim }

    /// The noise of one request, from the seed and the observation itself: the same observation gets
    /// the same actions whatever came before it on any connection. One stream shared by all requests
    /// made an evaluation's parallel workers, whose requests interleave differently on every run, score
    /// differently on every run.
    func noise(for observation: Observation) -> RNG {
        var hash = SHA256()
        for image in observation.images { hash.update(image) }
        observation.state.withUnsafeBytes { hash.update($0) }
        hash.update(Array(observation.prompt.utf8))
        return RNG(seed: seed ^ UInt64(hash.finalize().prefix(16), radix: 16)!)
    }

    public func infer(_ observation: Observation) throws -> PolicyOutput {
        var rng = noise(for: observation)
        guard think else {
            return PolicyOutput(actions: try policy.act(images: observation.images, proprio: observation.state,
                                                        instruction: observation.prompt, rng: &rng, noiseScale: noiseScale))
        }
        let thought = try thoughts.thought(for: observation.prompt, client: observation.client) {
            try policy.respond(image: observation.images[0], instruction: observation.prompt)
        }
        let actions = try policy.act(images: observation.images, proprio: observation.state, instruction: observation.prompt,
                                     response: thought.ids, rng: &rng, noiseScale: noiseScale)
        return PolicyOutput(actions: actions, text: thought.text, extra: ["thought_age": .int(Int64(thought.age))])
    }

    public func disconnected(client: Int) {
        thoughts.forget(client: client)
    }
}
