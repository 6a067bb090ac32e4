import Autograd
import Foundation
import TestSupport
import XCTest
@testable import Models

final class VisionTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    func testParameterNamesFollowSigLIPAndInternVL() {
        var rng = RNG(seed: 0)
        let names = VisionEncoder(VisionConfig(imageSize: 16, patchSize: 4, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 16), rng: &rng)
            .namedParameters().map(\.0)
        XCTAssertEqual(names.prefix(3), ["embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias", "embeddings.position_embedding.weight"])
        XCTAssertTrue(names.contains("encoder.layers.0.self_attn.out_proj.bias"))
        XCTAssertTrue(names.contains("encoder.layers.0.layer_norm2.weight"))
        XCTAssertEqual(names.suffix(2), ["post_layernorm.weight", "post_layernorm.bias"])
        XCTAssertEqual(Projector(visionWidth: 8, languageWidth: 12, rng: &rng).namedParameters().map(\.0),
                       ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"])
    }

    /// Vision features and projected image tokens against numpy on the same weights and pixels.
    func testVisionEncoderAndProjectorMatchNumpyReference() throws {
        try checkAgainstNumpy(stemChannels: 0)
    }

    /// The same with the convolutional stem (two 3×3 stride-2 convolutions, then a 1×1 patch embedding).
    func testConvStemVisionEncoderMatchesNumpyReference() throws {
        try checkAgainstNumpy(stemChannels: 4)
    }

    func checkAgainstNumpy(stemChannels: Int) throws {
        var rng = RNG(seed: 17)
        var config = VisionConfig(imageSize: 16, patchSize: 4, hiddenSize: 24, numLayers: 2, numHeads: 3, intermediateSize: 40)
        config.stemChannels = stemChannels
        let encoder = VisionEncoder(config, rng: &rng)
        let projector = Projector(visionWidth: 24, languageWidth: 20, rng: &rng)
        for (name, p) in encoder.namedParameters() + projector.namedParameters() where name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name.hasSuffix("0.weight") || name.contains("norms") {
            for i in 0..<p.count { p.pointer[i] = 1 + 0.2 * rng.normal() }
        }
        let pixels = Tensor.randomUniform([2, 16, 16, 3], low: 0, high: 1, rng: &rng)
        let features = encoder(pixels)
        let tokens = projector(features)
        XCTAssertEqual(features.shape, [2, 16, 24])
        XCTAssertEqual(tokens.shape, [2, 4, 20])

        func encode(_ t: Tensor) -> [String: Any] { ["shape": t.shape, "data": t.toArray().map(Double.init)] }
        var params: [String: Any] = [:]
        for (name, p) in encoder.namedParameters() { params[name] = encode(p) }
        for (name, p) in projector.namedParameters() { params["mlp1." + name] = encode(p) }
        let reference = try PythonReference.run("Tests/ModelsTests/Parity/vision.py", input: [
            "config": ["patch": 4, "hidden": 24, "heads": 3, "layers": 2, "eps": Double(config.layerNormEps),
                       "stem_stages": stemChannels > 0 ? 2 : 0],
            "params": params, "pixels": encode(pixels),
        ])
        for (name, ours, theirs) in [("features", features.toArray(), reference["features"] as! [Double]),
                                     ("tokens", tokens.toArray(), reference["tokens"] as! [Double])] {
            let error = zip(ours, theirs).map { abs(Double($0) - $1) }.max()! / theirs.map(abs).max()!
            XCTAssertLessThan(error, 1e-4, "\(name): max |Δ| / max = \(error)")
        }
    }

    func testConvolutionAndPixelShuffleGradients() {
        var rng = RNG(seed: 3)
        let patch = Conv2d(3, 5, kernel: 2, stride: 2, rng: &rng)
        let x = param([2, 4, 4, 3], seed: 4)
        assertGradients([x, patch.weight, patch.bias!]) { patch(x) }
        // Overlapping, padded windows (the conv stem's 3×3 stride 2) and an odd size that drops a row.
        let conv = Conv2d(3, 4, kernel: 3, stride: 2, padding: 1, rng: &rng)
        let image = param([2, 5, 5, 3], seed: 6)
        XCTAssertEqual(conv(image).shape, [2, 3, 3, 4])
        assertGradients([image, conv.weight, conv.bias!]) { conv(image) }
        let unpadded = Conv2d(2, 3, kernel: 2, stride: 1, rng: &rng)
        let small = param([1, 3, 4, 2], seed: 7)
        assertGradients([small, unpadded.weight, unpadded.bias!]) { unpadded(small) }
        let grid = param([2, 16, 3], seed: 5)
        assertGradients([grid]) { pixelShuffle(grid) }
    }
}
