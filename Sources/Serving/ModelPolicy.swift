import Autograd
import Foundation
import Training

/// A trained model behind the server: stage-1 runs and export bundles (`ActionPolicy`).
public final class ModelPolicy: Policy {
    public let name: String
    public let schema: ObservationSchema
    public let extraMetadata: [String: MsgPackValue]
    let policy: ActionPolicy
    /// Flow-matching noise: a fixed seed makes a served episode reproducible request for request.
    var rng: RNG

    public init(contentsOf folder: URL, seed: UInt64) throws {
        policy = try ActionPolicy(contentsOf: folder)
        name = "instructvla-stage1"
        schema = ObservationSchema(imageHeight: policy.imageSize, imageWidth: policy.imageSize, stateDim: policy.proprioDim)
        rng = RNG(seed: seed)
        var extra: [String: MsgPackValue] = ["weights": .string(policy.source.path), "noise_seed": .int(Int64(seed))]
        if let camera = policy.camera { extra["camera"] = .string(camera) }
        extraMetadata = extra
    }

    public var actionHorizon: Int { policy.horizon }
    public var actionDim: Int { policy.actionDim }

    public func infer(_ observation: Observation) throws -> PolicyOutput {
        PolicyOutput(actions: try policy.act(image: observation.images[0], proprio: observation.state, instruction: observation.prompt, rng: &rng))
    }
}
