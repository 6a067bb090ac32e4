import Autograd
import TestSupport
import XCTest
@testable import Models

/// The stage-1 model: gradients through the whole loss, what may train, flow matching, language motion.
final class InstructVLATests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    static let imageToken: Int32 = 2, queries: [Int32] = [3, 4]

    /// A VLM and expert small enough for finite differences over their weights.
    func tinyModel(tieEmbeddings: Bool = true, mergePatches: Bool = false, stemChannels: Int = 0, keypoints: Int = 0,
                   spatialReadout: Bool = false, cameras: Int = 1, auxiliaryOutputs: Int = 0) -> InstructVLA {
        var rng = RNG(seed: 1)
        let vlm = VisionLanguageModel(vision: VisionConfig(imageSize: 16, patchSize: 4, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 16),
                                      language: TransformerConfig(hiddenSize: 8, numHeads: 2, numKeyValueHeads: 1, intermediateSize: 16),
                                      vocabSize: 12, numLayers: 1, imageTokenId: Self.imageToken, tieWordEmbeddings: tieEmbeddings, rng: &rng)
        var expert = ActionExpertConfig(
            backbone: TransformerConfig(hiddenSize: 8, numHeads: 2, numKeyValueHeads: 2, intermediateSize: 16, ropeTheta: 1000, attentionBias: false),
            numLayers: 1, vision: VisionConfig(imageSize: 16, patchSize: mergePatches ? 4 : 8, hiddenSize: 4, numLayers: 1, numHeads: 2, intermediateSize: 8),
            latentSize: 8, numQueries: 2, proprioDim: 3, actionDim: 2, horizon: 3)
        expert.mergePatches = mergePatches
        expert.vision.stemChannels = stemChannels
        expert.keypoints = keypoints
        expert.spatialReadout = spatialReadout
        expert.cameras = cameras
        expert.auxiliaryOutputs = auxiliaryOutputs
        return InstructVLA(vlm: vlm, expert: expert, lora: LoRASettings(rank: 2, alpha: 4, dropout: 0), queryIds: Self.queries, seed: 2)
    }

    /// Two samples: text, 4 image placeholders, the two queries; targets on the answer.
    func inputs(_ vla: InstructVLA) -> ActionInputs {
        let i = Self.imageToken
        let ids: [Int32] = [0, i, i, i, i, 5, 6, 3, 4, 1, /**/ 0, i, i, i, i, 7, 3, 4, 1, 1]
        let targets: [Int32] = [-100, -100, -100, -100, -100, -100, 3, 4, 1, -100, /**/ -100, -100, -100, -100, -100, 3, 4, 1, -100, -100]
        let pixels = param([2, 16, 16, 3], seed: 3, scale: 0.2, offset: 0.5).detached()
        return ActionInputs(ids: ids, targets: targets, length: 10, imageTokens: withoutGrad { vla.vlm.imageTokens(pixels) },
                            pixels: pixels, proprio: param([2, 3], seed: 4).detached())
    }

    func testGradientsThroughTheWholeStage1Loss() {
        let vla = tinyModel()
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        // A non-zero B, so that gradients reach A too; the embedding's rows are left to the next test.
        let layer = vla.vlm.languageModel.model.layers[0]
        let adapters = layer.selfAttn.vProj.adapters!
        let b = (adapters.loraB["action"] as! Linear).weight
        for i in 0..<b.count { b.pointer[i] = Float(i % 5) * 0.05 - 0.1 }
        let checked = [(adapters.loraA["action"] as! Linear).weight, b, (layer.mlp.downProj.adapters!.loraA["action"] as! Linear).weight,
                       vla.actionModel.film[0].scale.weight, vla.actionModel.actionEncoder.w1.weight, vla.actionModel.latentProjector.fc1.bias!,
                       vla.actionModel.proprioProjector!.fc1.weight, vla.actionModel.actionHead[2].bias!, vla.actionModel.layers[0].selfAttn.qProj.weight]
        assertGradients(checked, eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)  // the same flow times and noise at every evaluation
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// The expert computes the context's keys and values once and runs only the action tokens
    /// against them: the same velocity, and the same gradients, as one block-causal pass over
    /// [context | actions], for one draw per sample and for rows repeating the context.
    func testCachedContextEqualsOneBlockCausalPass() {
        let vla = tinyModel(keypoints: 2, spatialReadout: true)
        let expert = vla.actionModel
        let inputs = inputs(vla)
        let latents = param([2, 2, 8], seed: 13).detached()
        let noisy = param([4, 3, 2], seed: 14).detached()
        let times: [Float] = [0.1, 0.7, 0.4, 0.9]
        let context = { expert.context(pixels: inputs.pixels, latents: latents, proprio: inputs.proprio) }
        let reference = { () -> Tensor in
            let c = context()
            let repeated = gatherRows(c.reshaped([2, -1]), [0, 1, 0, 1]).reshaped([4] + c.shape.dropFirst())
            var h = concat([repeated, expert.actionEncoder(noisy, time: times)], axis: 1)
            let length = h.shape[1]
            for layer in expert.layers { h = layer(h, positions: Array(0..<length), mask: .blockCausal(groups: expert.groups)) }
            let out = self.headOutput(expert, h.slice(axis: 1, (length - 3)..<length))
            return out.reshaped([4, 3, 2])
        }
        let cached = { expert.velocity(prefix: expert.prefix(context: context()), noisyActions: noisy, time: times) }
        assertClose(cached().toArray(), reference().toArray(), tol: 1e-5)
        let checked = [expert.layers[0].selfAttn.kProj.weight, expert.layers[0].mlp.upProj.weight, expert.vision.embeddings.patchEmbedding.weight,
                       expert.spatialReadout!.fc1.weight, expert.latentProjector.fc2.weight]
        let weights = param([4, 3, 2], seed: 15).detached()
        var gradients: [[Float]] = []
        for forward in [cached, reference] {
            for p in checked { p.grad = nil }
            sum(forward() * weights).backward()
            gradients.append(checked.flatMap { $0.grad!.toArray() })
        }
        assertClose(gradients[0], gradients[1], tol: 1e-5)
    }

    /// Two camera views per observation through the one vision encoder: each view's patches (and
    /// keypoint token) enter the context, the readout reads both grids, either view changes the
    /// actions, and gradients flow through the whole loss.
    func testTwoCameraViewsEachReachTheActions() {
        let vla = tinyModel(keypoints: 2, spatialReadout: true, cameras: 2)
        let expert = vla.actionModel
        var inputs = inputs(vla)
        let views = param([2, 2, 16, 16, 3], seed: 21, scale: 0.2, offset: 0.5).detached()
        inputs.pixels = views
        let latents = param([2, 2, 8], seed: 13).detached()
        let context = withoutGrad { expert.context(pixels: views, latents: latents, proprio: inputs.proprio) }
        // 2 views × 4 patches, 2 latents, proprio, a keypoint token per view, the readout.
        XCTAssertEqual(context.shape, [2, 8 + 2 + 1 + 2 + 1, 8])
        XCTAssertEqual(expert.groups.count, 14 + 3)
        XCTAssertEqual(expert.spatialReadout!.fc1.weight.shape, [8, 2 * 4 * 4])
        // Sample 0's second view changed: its context changes, sample 1's does not.
        var changed = views.toArray()
        for i in (16 * 16 * 3)..<(2 * 16 * 16 * 3) { changed[i] = 1 - changed[i] }
        let other = withoutGrad { expert.context(pixels: Tensor(changed, shape: views.shape), latents: latents, proprio: inputs.proprio) }
        let n = context.count / 2
        XCTAssertNotEqual(Array(context.toArray()[..<n]), Array(other.toArray()[..<n]))
        XCTAssertEqual(Array(context.toArray()[n...]), Array(other.toArray()[n...]))
        // The same frame in both places is not the same observation: which view is which matters.
        var swapped = views.toArray()
        let frame = 16 * 16 * 3
        swapped.replaceSubrange(0..<(2 * frame), with: Array(swapped[frame..<(2 * frame)] + swapped[0..<frame]))
        let reordered = withoutGrad { expert.context(pixels: Tensor(swapped, shape: views.shape), latents: latents, proprio: inputs.proprio) }
        XCTAssertNotEqual(Array(context.toArray()[64..<n]), Array(reordered.toArray()[64..<n]),
                          "the readout and keypoint tokens tell the views apart")
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        assertGradients([expert.vision.embeddings.patchEmbedding.weight, expert.film[0].scale.weight, expert.spatialReadout!.fc1.weight,
                         expert.spatialSoftmax!.keypoints.weight], eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// The action head over the final-normed action tokens [B, H, D].
    func headOutput(_ expert: ActionExpert, _ h: Tensor) -> Tensor {
        let b = h.shape[0]
        let x = expert.norm(h).reshaped([b, -1])
        return expert.actionHead[2](silu(expert.actionHead[1](silu(expert.actionHead[0](x)))))
    }

    /// K flow draws per sample: the flow loss is the mean of K single-draw losses, draw j of each
    /// sample continuing its own generator after draw j - 1; the LM loss is unchanged; gradients
    /// through the shared context are those of the repeated rows summed.
    func testSeveralFlowDrawsPerSampleAverageSingleDrawLosses() {
        let vla = tinyModel()
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        let rngs = [RNG(seed: 11), RNG(seed: 12)]
        let two = vla.loss(inputs, actions: actions, sampleRNGs: rngs, flowSamples: 2)
        let first = vla.loss(inputs, actions: actions, sampleRNGs: rngs)
        let advanced = rngs.map { rng -> RNG in
            var rng = rng
            _ = FlowMatching.sampleTime(rng: &rng)
            for _ in 0..<6 { _ = rng.normal() }
            return rng
        }
        let second = vla.loss(inputs, actions: actions, sampleRNGs: advanced)
        XCTAssertNotEqual(first.flow.item(), second.flow.item())
        XCTAssertEqual(two.flow.item(), (first.flow.item() + second.flow.item()) / 2, accuracy: 1e-5)
        XCTAssertEqual(two.language.item(), first.language.item(), accuracy: 1e-6)
        let checked = [vla.actionModel.film[0].scale.weight, vla.actionModel.vision.embeddings.patchEmbedding.weight,
                       vla.actionModel.latentProjector.fc1.weight, vla.actionModel.layers[0].mlp.downProj.weight]
        assertGradients(checked, eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            vla.loss(inputs, actions: actions, sampleRNGs: rngs, flowSamples: 2).total
        }
    }

    /// Stage 2's mixture: a new language adapter changes nothing until it trains, and gradients flow
    /// through the per-token gates into the scale head and into both adapters.
    func testGradientsThroughTheMixtureOfLoRAs() {
        let vla = tinyModel()
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        var before = RNG(seed: 6)
        let stage1Loss = vla.loss(inputs, actions: actions, rng: &before).total.item()
        vla.addLanguageAdapter(lora: LoRASettings(rank: 2, alpha: 4, dropout: 0), headWidth: 6, headDepth: 3, headDropout: 0, seed: 9)
        XCTAssertTrue(vla.namedParameters().contains { $0.0 == "vlm.language_model.model.layers.0.self_attn.q_proj.lora_B.language.weight" })
        XCTAssertTrue(vla.namedParameters().contains { $0.0 == "scale_head.layers.2.bias" })
        let layer = vla.vlm.languageModel.model.layers[0]
        let adapters = layer.mlp.upProj.adapters!
        let (aL, bL) = ((adapters.loraA["language"] as! Linear).weight, (adapters.loraB["language"] as! Linear).weight)
        let bA = (adapters.loraB["action"] as! Linear).weight
        var same = RNG(seed: 6)
        // With both B at zero the gates scale nothing: the mixture starts exactly as stage 1 left it.
        XCTAssertEqual(vla.loss(inputs, actions: actions, rng: &same).total.item(), stage1Loss)
        for (i, b) in [bL, bA].enumerated() { for j in 0..<b.count { b.pointer[j] = Float((j + i) % 5) * 0.05 - 0.1 } }
        let head = vla.scaleHead!
        var probe = RNG(seed: 6)
        vla.loss(inputs, actions: actions, rng: &probe).total.backward()
        XCTAssertTrue(head.layers[0].weight.grad!.toArray().contains { $0 != 0 }, "the gates must carry gradient back to the scale head")
        assertGradients([aL, bL, bA, head.layers[0].weight, head.layers[2].bias!], eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// 4×4 patches merged 2×2 before the backbone: the context has 4 patch tokens of 4× the width.
    func testMergedPatchesKeepTheBackboneShortAndGradientsFlow() {
        let vla = tinyModel(mergePatches: true)
        let inputs = inputs(vla)
        let context = withoutGrad { vla.actionModel.context(pixels: inputs.pixels, latents: Tensor.zeros([2, 2, 8]), proprio: inputs.proprio) }
        XCTAssertEqual(context.shape, [2, 4 + 2 + 1, 8])
        XCTAssertEqual(vla.actionModel.visionProjector.fc1.weight.shape, [8, 16])
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        assertGradients([vla.actionModel.visionProjector.fc1.weight, vla.actionModel.film[0].shift.weight], eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// The expert's vision through a convolutional stem (8-px patches: three stride-2 convolutions).
    func testConvStemGradientsThroughTheStage1Loss() {
        let vla = tinyModel(stemChannels: 2)
        let stem = vla.actionModel.vision.embeddings.stem!
        XCTAssertEqual(stem.convs.map(\.weight.shape), [[2, 3, 3, 3], [4, 2, 3, 3], [8, 4, 3, 3]])
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        assertGradients([stem.convs[0].weight, stem.convs[2].bias!, stem.norms[1].weight, vla.actionModel.vision.embeddings.patchEmbedding.weight],
                        eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// The spatial-softmax token: keypoint coordinates are softmax-weighted patch centres, and
    /// gradients reach the keypoint maps through them and the vision encoder.
    func testSpatialSoftmaxKeypointsAndGradients() {
        var rng = RNG(seed: 4)
        let spatial = SpatialSoftmax(features: 3, keypoints: 2, gridSize: 2, width: 4, rng: &rng)
        // All logit weight on feature 0, which is large at patch 3 only (bottom right): both keypoints go to (1, 1).
        for i in 0..<spatial.keypoints.weight.count { spatial.keypoints.weight.pointer[i] = i % 3 == 0 ? 40 : 0 }
        for i in 0..<spatial.keypoints.bias!.count { spatial.keypoints.bias!.pointer[i] = 0 }
        let features = Tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], shape: [1, 4, 3])
        let weights = softmax(spatial.keypoints(features).transposed(1, 2), axis: -1)
        let xy = linear(weights, weight: Tensor(spatial.grid, shape: [2, 4])).toArray()
        for v in xy { XCTAssertEqual(v, 1, accuracy: 1e-4) }

        let vla = tinyModel(keypoints: 3)
        XCTAssertEqual(vla.actionModel.groups.filter { $0 == 1 }.count, 2 + 1 + 1, "latents, proprio and the keypoint token")
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        let expert = vla.actionModel
        assertGradients([expert.spatialSoftmax!.keypoints.weight, expert.spatialSoftmax!.projector.fc1.weight, expert.vision.postLayernorm.bias],
                        eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// The spatial-readout token reads the whole patch grid in order: moving one patch's features
    /// changes it, and gradients reach its MLP and the vision encoder through it.
    func testSpatialReadoutTokenAndGradients() {
        let vla = tinyModel(spatialReadout: true)
        let expert = vla.actionModel
        XCTAssertEqual(expert.groups.filter { $0 == 1 }.count, 2 + 1 + 1, "latents, proprio and the readout token")
        XCTAssertEqual(expert.spatialReadout!.fc1.weight.shape, [8, 4 * 4], "4 patches × 4 features → the backbone width")
        let features = param([1, 4, 4], seed: 9).detached()
        let values = features.toArray()
        let firstTwoSwapped: [Float] = Array(values[4..<8]) + Array(values[0..<4]) + Array(values[8...])
        let swapped = Tensor(firstTwoSwapped, shape: [1, 4, 4])
        let readout = { (x: Tensor) in expert.spatialReadout!(x.reshaped([1, -1])).toArray() }
        let change: [Float] = zip(readout(features), readout(swapped)).map { abs($0 - $1) }
        XCTAssertGreaterThan(change.max()!, 1e-3, "patch order matters")
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        assertGradients([expert.spatialReadout!.fc1.weight, expert.spatialReadout!.fc2.bias!, expert.vision.postLayernorm.weight],
                        eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            var rng = RNG(seed: 6)
            return vla.loss(inputs, actions: actions, rng: &rng).total
        }
    }

    /// The auxiliary head regresses its targets from the readout token alone: the loss adds weight ×
    /// its MSE to flow + LM, and its gradients reach the head, the readout MLP and the vision encoder.
    func testAuxiliaryHeadReadsTheReadoutTokenAndTrainsTheVision() {
        let vla = tinyModel(spatialReadout: true, auxiliaryOutputs: 3)
        let expert = vla.actionModel
        let inputs = inputs(vla)
        let actions = param([2, 3, 2], seed: 5, scale: 0.5).detached()
        let targets = param([2, 3], seed: 11).detached()
        var rng = RNG(seed: 6), same = RNG(seed: 6)
        let plain = vla.loss(inputs, actions: actions, rng: &rng)
        XCTAssertNil(plain.auxiliary)
        let sampleRNGs = (0..<2).map { _ in same.split() }
        let withAuxiliary = vla.loss(inputs, actions: actions, sampleRNGs: sampleRNGs, auxiliary: (targets, 0.5))
        let auxiliary = try! XCTUnwrap(withAuxiliary.auxiliary).item()
        XCTAssertEqual(withAuxiliary.flow.item(), plain.flow.item())
        XCTAssertEqual(withAuxiliary.total.item(), plain.total.item() + 0.5 * auxiliary, accuracy: 1e-5)
        // The same value by hand: the head on the context's last token (the readout).
        let latents = withoutGrad { vla.latents(vla.hiddenStates(inputs), inputs) }
        let context = withoutGrad { expert.context(pixels: inputs.pixels, latents: latents, proprio: inputs.proprio) }
        let readout = context.slice(axis: 1, (context.shape[1] - 1)..<context.shape[1]).reshaped([2, -1])
        let predicted: [Float] = withoutGrad { expert.auxiliaryHead!(readout) }.toArray()
        let squares: [Float] = zip(predicted, targets.toArray()).map { (p: Float, t: Float) -> Float in (p - t) * (p - t) }
        let byHand: Float = squares.reduce(0, +) / 6
        XCTAssertEqual(auxiliary, byHand, accuracy: 1e-5)
        assertGradients([expert.auxiliaryHead!.weight, expert.spatialReadout!.fc1.weight, expert.vision.postLayernorm.weight, expert.film[0].shift.weight],
                        eps: 1e-2, atol: 2e-3, rtol: 2e-2) {
            vla.loss(inputs, actions: actions, sampleRNGs: sampleRNGs, auxiliary: (targets, 0.5)).total
        }
    }

    func testOnlyAdaptersQueryRowsAndTheExpertReceiveGradients() {
        for tied in [true, false] {
            let vla = tinyModel(tieEmbeddings: tied)
            var rng = RNG(seed: 7)
            vla.loss(inputs(vla), actions: param([2, 3, 2], seed: 8).detached(), rng: &rng).total.backward()
            let lm = vla.vlm.languageModel
            for weight in [lm.model.embedTokens.weight] + (lm.lmHead.map { [$0.weight] } ?? []) {
                let grad = weight.grad!.toArray(), c = weight.shape[1]
                for row in 0..<weight.shape[0] {
                    let moved = grad[(row * c)..<((row + 1) * c)].contains { $0 != 0 }
                    XCTAssertEqual(moved, Self.queries.contains(Int32(row)), "tied \(tied): row \(row) of \(weight.shape)")
                }
            }
            for (name, p) in vla.namedParameters() {
                let trains = name.hasPrefix("action_model.") || name.contains(".lora_") || name.hasSuffix("embed_tokens.weight") || name == "vlm.language_model.lm_head.weight"
                XCTAssertEqual(p.requiresGrad, trains, name)
                if !trains { XCTAssertNil(p.grad, "\(name) is frozen but got a gradient") }
            }
        }
    }

    func testFlowMatchingFollowsTheReferenceCode() {
        var rng = RNG(seed: 9)
        let times = (0..<20_000).map { _ in FlowMatching.sampleTime(rng: &rng) }
        XCTAssertTrue(times.allSatisfy { $0 >= 0 && $0 <= 0.999 })
        // z ~ Beta(1.5, 1) has mean 0.6, so E[t] = 0.999 × 0.4.
        XCTAssertEqual(Double(times.reduce(0, +)) / 20_000, 0.3996, accuracy: 0.005)
        let actions: [Float] = [0.5, -1], noise: [Float] = [2, 0.25]
        let start = FlowMatching.interpolate(actions: actions[...], noise: noise[...], t: 0)
        XCTAssertEqual(start.noisy, noise)
        XCTAssertEqual(start.target, [0.5 - 0.999 * 2, -1 - 0.999 * 0.25])
        let end = FlowMatching.interpolate(actions: actions[...], noise: noise[...], t: 1)
        assertClose(end.noisy, [0.5 + 0.001 * 2, -1 + 0.001 * 0.25], tol: 1e-6)
        // Following the exact velocity u from noise reaches the (σ-shifted) actions in 10 Euler steps.
        let x = FlowMatching.sample(noise: Tensor(noise, shape: [1, 1, 2])) { _, t in
            XCTAssertEqual(t.count, 1)
            return Tensor(start.target, shape: [1, 1, 2])
        }
        assertClose(x.toArray(), end.noisy, tol: 1e-5)
    }

    func testLanguageMotionPhrases() {
        let motion = LanguageMotion(window: 4, positionThreshold: 0.01, gripperThreshold: 0.05)
        XCTAssertEqual(motion.phrase(from: [0, 0.6, 0.2, 1], to: [-0.02, 0.63, 0.2, 0.5]), "move forward left, close gripper")
        XCTAssertEqual(motion.phrase(from: [0, 0.6, 0.2, 0.5], to: [0, 0.6, 0.15, 0.9]), "move down, open gripper")
        XCTAssertEqual(motion.phrase(from: [0, 0.6, 0.2, 1], to: [0.005, 0.6, 0.2, 1]), "stop")
        XCTAssertEqual(motion.phrase(from: [0, 0.6, 0.2, 1], to: [0.02, 0.55, 0.3, 1]), "move backward right, move up")
    }
}
