import Autograd

/// Seeded image augmentation, as VLA training pipelines use it: a random resized crop (90–100% of
/// the area, bilinear back to full size) and colour jitter (brightness, contrast, saturation ±20%);
/// and/or a random shift (DrQ's, the CNN behaviour-cloning baseline's): the frame padded by `shift`
/// pixels with its edge pixels and cropped back at a random integer offset.
public struct ImageAugmentation: Sendable {
    public var cropAreaRange: ClosedRange<Float> = 0.9...1.0
    public var jitter: Float = 0.2
    public var cropAndJitter: Bool
    /// Largest translation in pixels per axis; 0 is none.
    public var shift: Int

    public init(cropAndJitter: Bool = true, shift: Int = 0) {
        (self.cropAndJitter, self.shift) = (cropAndJitter, shift)
    }

    /// HWC uint8 → HWC Float in [0, 1], augmented with draws from `rng` (crop and jitter first, then shift).
    public func apply(_ image: [UInt8], height h: Int, width w: Int, rng: inout RNG, into out: UnsafeMutablePointer<Float>) {
        if cropAndJitter {
            resizedCropAndJitter(image, height: h, width: w, rng: &rng, into: out)
        } else {
            for j in 0..<image.count { out[j] = Float(image[j]) / 255 }
        }
        if shift > 0 { translate(out, height: h, width: w, rng: &rng) }
    }

    /// out[y, x] = in[clamp(y + dy), clamp(x + dx)] with dy, dx uniform in [-shift, shift]: the same
    /// as padding by `shift` with edge pixels and cropping at (shift + dy, shift + dx).
    private func translate(_ pixels: UnsafeMutablePointer<Float>, height h: Int, width w: Int, rng: inout RNG) {
        let span = 2 * shift + 1
        let dy = min(Int(rng.uniform() * Float(span)), span - 1) - shift
        let dx = min(Int(rng.uniform() * Float(span)), span - 1) - shift
        guard dy != 0 || dx != 0 else { return }
        let source = Array(UnsafeBufferPointer(start: pixels, count: h * w * 3))
        for y in 0..<h {
            let sy = max(0, min(h - 1, y + dy))
            for x in 0..<w {
                let sx = max(0, min(w - 1, x + dx))
                for c in 0..<3 { pixels[(y * w + x) * 3 + c] = source[(sy * w + sx) * 3 + c] }
            }
        }
    }

    private func resizedCropAndJitter(_ image: [UInt8], height h: Int, width w: Int, rng: inout RNG, into out: UnsafeMutablePointer<Float>) {
        let area = cropAreaRange.lowerBound + (cropAreaRange.upperBound - cropAreaRange.lowerBound) * rng.uniform()
        let side = area.squareRoot()
        let (ch, cw) = (Float(h) * side, Float(w) * side)
        let (y0, x0) = ((Float(h) - ch) * rng.uniform(), (Float(w) - cw) * rng.uniform())
        let brightness = 1 + jitter * (2 * rng.uniform() - 1)
        let contrast = 1 + jitter * (2 * rng.uniform() - 1)
        let saturation = 1 + jitter * (2 * rng.uniform() - 1)
        // Bilinear sample of the crop at each output pixel centre.
        for y in 0..<h {
            let sy = max(0, min(Float(h - 1), y0 + (Float(y) + 0.5) * ch / Float(h) - 0.5))
            let (ya, fy) = (Int(sy), sy - Float(Int(sy)))
            let yb = min(ya + 1, h - 1)
            for x in 0..<w {
                let sx = max(0, min(Float(w - 1), x0 + (Float(x) + 0.5) * cw / Float(w) - 0.5))
                let (xa, fx) = (Int(sx), sx - Float(Int(sx)))
                let xb = min(xa + 1, w - 1)
                for c in 0..<3 {
                    let p00 = Float(image[(ya * w + xa) * 3 + c]), p01 = Float(image[(ya * w + xb) * 3 + c])
                    let p10 = Float(image[(yb * w + xa) * 3 + c]), p11 = Float(image[(yb * w + xb) * 3 + c])
                    let top = p00 + (p01 - p00) * fx, bottom = p10 + (p11 - p10) * fx
                    out[(y * w + x) * 3 + c] = (top + (bottom - top) * fy) / 255
                }
            }
        }
        // Colour jitter: brightness scales, contrast blends with the mean grey, saturation with each pixel's grey.
        let n = h * w
        var meanGray: Float = 0
        for i in 0..<n { meanGray += 0.299 * out[3 * i] + 0.587 * out[3 * i + 1] + 0.114 * out[3 * i + 2] }
        meanGray = meanGray / Float(n) * brightness
        for i in 0..<n {
            var (r, g, b) = (out[3 * i] * brightness, out[3 * i + 1] * brightness, out[3 * i + 2] * brightness)
            (r, g, b) = (meanGray + (r - meanGray) * contrast, meanGray + (g - meanGray) * contrast, meanGray + (b - meanGray) * contrast)
            let gray = 0.299 * r + 0.587 * g + 0.114 * b
            out[3 * i] = max(0, min(1, gray + (r - gray) * saturation))
            out[3 * i + 1] = max(0, min(1, gray + (g - gray) * saturation))
            out[3 * i + 2] = max(0, min(1, gray + (b - gray) * saturation))
        }
    }
}
