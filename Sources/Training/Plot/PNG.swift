import CZlib
import Foundation

/// An RGB raster with just enough drawing for metric plots.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, background: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        (self.width, self.height) = (width, height)
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) = background }
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        (pixels[i], pixels[i + 1], pixels[i + 2]) = c
    }

    /// Bresenham line, `thickness` pixels wide.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var (x, y) = (x0, y0)
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            for t in 0..<thickness { set(x, y + t, c); set(x + t, y, c) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    mutating func rectangle(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8)) {
        line(x0, y0, x1, y0, c); line(x1, y0, x1, y1, c); line(x1, y1, x0, y1, c); line(x0, y1, x0, y0, c)
    }

    /// Text in a 5×7 pixel font, scaled by `scale`; characters without a glyph are skipped.
    mutating func text(_ s: String, x: Int, y: Int, _ c: (UInt8, UInt8, UInt8), scale: Int = 2) {
        var cx = x
        for ch in s.lowercased() {
            if let columns = font5x7[ch] {
                for (col, bits) in columns.enumerated() {
                    for row in 0..<7 where bits >> row & 1 == 1 {
                        for sx in 0..<scale { for sy in 0..<scale { set(cx + col * scale + sx, y + row * scale + sy, c) } }
                    }
                }
            }
            cx += 6 * scale
        }
    }

    /// The image as a PNG file (8-bit RGB, zlib-compressed scanlines).
    func png() throws -> Data {
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + width * 3))
        for y in 0..<height {
            raw.append(0)  // filter: none
            raw += pixels[(y * width * 3)..<((y + 1) * width * 3)]
        }
        var compressedLength = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
        guard compress2(&compressed, &compressedLength, raw, uLong(raw.count), 6) == Z_OK else {
            throw RecipeError("PNG: zlib compression failed")
        }
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func chunk(_ type: String, _ body: [UInt8]) {
            let typed = Array(type.utf8) + body
            out += bigEndianBytes(UInt32(body.count))
            out += typed
            out += bigEndianBytes(UInt32(crc32(0, typed, uInt(typed.count))))
        }
        chunk("IHDR", bigEndianBytes(UInt32(width)) + bigEndianBytes(UInt32(height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", Array(compressed.prefix(Int(compressedLength))))
        chunk("IEND", [])
        return out
    }
}

private func bigEndianBytes(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }

/// The classic 5×7 LCD font: five column bytes per glyph, bit 0 at the top.
let font5x7: [Character: [UInt8]] = [
    "0": [0x3E, 0x51, 0x49, 0x45, 0x3E], "1": [0x00, 0x42, 0x7F, 0x40, 0x00], "2": [0x42, 0x61, 0x51, 0x49, 0x46],
    "3": [0x21, 0x41, 0x45, 0x4B, 0x31], "4": [0x18, 0x14, 0x12, 0x7F, 0x10], "5": [0x27, 0x45, 0x45, 0x45, 0x39],
    "6": [0x3C, 0x4A, 0x49, 0x49, 0x30], "7": [0x01, 0x71, 0x09, 0x05, 0x03], "8": [0x36, 0x49, 0x49, 0x49, 0x36],
    "9": [0x06, 0x49, 0x49, 0x29, 0x1E],
    "a": [0x20, 0x54, 0x54, 0x54, 0x78], "b": [0x7F, 0x48, 0x44, 0x44, 0x38], "c": [0x38, 0x44, 0x44, 0x44, 0x20],
    "d": [0x38, 0x44, 0x44, 0x48, 0x7F], "e": [0x38, 0x54, 0x54, 0x54, 0x18], "f": [0x08, 0x7E, 0x09, 0x01, 0x02],
    "g": [0x0C, 0x52, 0x52, 0x52, 0x3E], "h": [0x7F, 0x08, 0x04, 0x04, 0x78], "i": [0x00, 0x44, 0x7D, 0x40, 0x00],
    "j": [0x20, 0x40, 0x44, 0x3D, 0x00], "k": [0x7F, 0x10, 0x28, 0x44, 0x00], "l": [0x00, 0x41, 0x7F, 0x40, 0x00],
    "m": [0x7C, 0x04, 0x18, 0x04, 0x78], "n": [0x7C, 0x08, 0x04, 0x04, 0x78], "o": [0x38, 0x44, 0x44, 0x44, 0x38],
    "p": [0x7C, 0x14, 0x14, 0x14, 0x08], "q": [0x08, 0x14, 0x14, 0x18, 0x7C], "r": [0x7C, 0x08, 0x04, 0x04, 0x08],
    "s": [0x48, 0x54, 0x54, 0x54, 0x20], "t": [0x04, 0x3F, 0x44, 0x40, 0x20], "u": [0x3C, 0x40, 0x40, 0x20, 0x7C],
    "v": [0x1C, 0x20, 0x40, 0x20, 0x1C], "w": [0x3C, 0x40, 0x30, 0x40, 0x3C], "x": [0x44, 0x28, 0x10, 0x28, 0x44],
    "y": [0x0C, 0x50, 0x50, 0x50, 0x3C], "z": [0x44, 0x64, 0x54, 0x4C, 0x44],
    ".": [0x00, 0x60, 0x60, 0x00, 0x00], "-": [0x08, 0x08, 0x08, 0x08, 0x08], "_": [0x40, 0x40, 0x40, 0x40, 0x40],
    "/": [0x20, 0x10, 0x08, 0x04, 0x02], ":": [0x00, 0x36, 0x36, 0x00, 0x00], "(": [0x00, 0x1C, 0x22, 0x41, 0x00],
    ")": [0x00, 0x41, 0x22, 0x1C, 0x00], "%": [0x23, 0x13, 0x08, 0x64, 0x62], "+": [0x08, 0x08, 0x3E, 0x08, 0x08],
    " ": [0x00, 0x00, 0x00, 0x00, 0x00],
]
