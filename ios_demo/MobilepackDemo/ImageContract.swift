import Foundation

// mobilepack's pixel contract (train/imagecontract.py; the manifest's preprocessing.contract), step for
// step with the same integer arithmetic as Python and android_demo's ImageContract.kt, so the app's
// pixels equal mobilepack's. Pure Swift (Foundation only); decoding is AppImages.swift. The XCTests in
// MobilepackDemoTests run it over golden/preprocessing. Doubles are IEEE like Python's and Kotlin's:
// the weights come out bit for bit as long as the compiler does not fuse multiply-adds (Swift does
// not by default; do not build this file with fast-math).

/// Decoded samples, row by row: channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; bitDepth 8 or 16; straight alpha.
struct Raster {
    let width: Int
    let height: Int
    let channels: Int
    let bitDepth: Int
    let samples: [Int]
}

/// RGB pixels, 3 values per pixel, row by row.
struct Rgb {
    let width: Int
    let height: Int
    let values: [Int]
}

enum ImageContract {
    static let precisionBits = 22  // Pillow's fixed point for 8-bit resampling
    static let toleranceLSB = 1
    static let white = [255, 255, 255]

    /// Steps 1-5: decoded samples + EXIF orientation -> RGB at the model's size.
    static func prepare(_ raster: Raster, orientation: Int, width: Int, height: Int, method: String) -> Rgb {
        let rgba = toRgba8(raster)
        let (upright, w, h) = orient(rgba, width: raster.width, height: raster.height, orientation: orientation)
        return resample(Rgb(width: w, height: h, values: composite(upright, background: white)),
                        width: width, height: height, method: method)
    }

    /// Step 1: 16-bit keeps the high byte, gray is copied into R, G and B, missing alpha is 255.
    static func toRgba8(_ r: Raster) -> [Int] {
        let n = r.width * r.height
        let shift = r.bitDepth == 16 ? 8 : 0
        let gray = r.channels <= 2
        let hasAlpha = r.channels == 2 || r.channels == 4
        var out = [Int](repeating: 0, count: n * 4)
        for p in 0..<n {
            let base = p * r.channels
            let s0 = r.samples[base] >> shift
            out[4 * p] = s0
            out[4 * p + 1] = gray ? s0 : r.samples[base + 1] >> shift
            out[4 * p + 2] = gray ? s0 : r.samples[base + 2] >> shift
            out[4 * p + 3] = hasAlpha ? r.samples[base + r.channels - 1] >> shift : 255
        }
        return out
    }

    /// Step 2: EXIF orientation 1-8 (5-8 swap width and height).
    static func orient(_ rgba: [Int], width: Int, height: Int, orientation: Int) -> ([Int], Int, Int) {
        let o = (1...8).contains(orientation) ? orientation : 1
        let (ow, oh) = o >= 5 ? (height, width) : (width, height)
        let w1 = width - 1, h1 = height - 1
        var out = [Int](repeating: 0, count: rgba.count)
        for y in 0..<oh {
            for x in 0..<ow {
                let source: (Int, Int)
                switch o {
                case 2: source = (w1 - x, y)
                case 3: source = (w1 - x, h1 - y)
                case 4: source = (x, h1 - y)
                case 5: source = (y, x)
                case 6: source = (y, h1 - x)
                case 7: source = (w1 - y, h1 - x)
                case 8: source = (w1 - y, x)
                default: source = (x, y)
                }
                let (sx, sy) = source
                for c in 0..<4 { out[(y * ow + x) * 4 + c] = rgba[(sy * width + sx) * 4 + c] }
            }
        }
        return (out, ow, oh)
    }

    /// Step 3: straight alpha over the background, (c*a + bg*(255-a) + 127) / 255 in integers.
    static func composite(_ rgba: [Int], background: [Int]) -> [Int] {
        (0..<(rgba.count / 4 * 3)).map { (i: Int) -> Int in
            let p = i / 3, a = rgba[4 * p + 3]
            return (rgba[4 * p + i % 3] * a + background[i % 3] * (255 - a) + 127) / 255
        }
    }

    /// Step 4: Pillow's separable resampler, horizontal pass then vertical, 8 bits between them.
    static func resample(_ src: Rgb, width: Int, height: Int, method: String) -> Rgb {
        if method == "nearest" { return nearest(src, width: width, height: height) }
        var img = src
        if width != img.width { img = pass(img, outSize: width, horizontal: true, method: method) }
        if height != img.height { img = pass(img, outSize: height, horizontal: false, method: method) }
        return img
    }

    private static func pass(_ img: Rgb, outSize: Int, horizontal: Bool, method: String) -> Rgb {
        let inSize = horizontal ? img.width : img.height
        let c = Coefficients(inSize: inSize, outSize: outSize, method: method)
        let w = horizontal ? outSize : img.width
        let h = horizontal ? img.height : outSize
        var out = [Int](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let o = horizontal ? x : y
                for ch in 0..<3 {
                    var acc = 1 << (precisionBits - 1)
                    for k in 0..<c.ksize {
                        let s = c.starts[o] + k
                        if s >= inSize { break }
                        let v = horizontal ? img.values[(y * img.width + s) * 3 + ch] : img.values[(s * img.width + x) * 3 + ch]
                        acc += v * c.weights[o * c.ksize + k]
                    }
                    out[(y * w + x) * 3 + ch] = min(max(acc >> precisionBits, 0), 255)
                }
            }
        }
        return Rgb(width: w, height: h, values: out)
    }

    private static func nearestIndex(_ inSize: Int, _ outSize: Int) -> [Int] {
        let step = Double(inSize) / Double(outSize)
        var pos = step * 0.5  // accumulated, as Pillow does, not i * step
        var out = [Int]()
        for _ in 0..<outSize {
            out.append(min(Int(pos), inSize - 1))
            pos += step
        }
        return out
    }

    private static func nearest(_ src: Rgb, width: Int, height: Int) -> Rgb {
        let xs = nearestIndex(src.width, width), ys = nearestIndex(src.height, height)
        var out = [Int](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for ch in 0..<3 { out[(y * width + x) * 3 + ch] = src.values[(ys[y] * src.width + xs[x]) * 3 + ch] }
            }
        }
        return Rgb(width: width, height: height, values: out)
    }
}

/// Pillow's precompute_coeffs: per output pixel the first source index and 22-bit fixed-point weights.
struct Coefficients {
    let ksize: Int
    var starts: [Int]
    var weights: [Int]

    init(inSize: Int, outSize: Int, method: String) {
        let support0 = method == "bicubic" ? 2.0 : 1.0
        let scale = Double(inSize) / Double(outSize)
        let filterscale = max(scale, 1.0)
        let support = support0 * filterscale
        ksize = Int(support.rounded(.up)) * 2 + 1
        starts = [Int](repeating: 0, count: outSize)
        weights = [Int](repeating: 0, count: outSize * ksize)
        let ss = 1.0 / filterscale
        let one = Double(1 << ImageContract.precisionBits)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            let k = (0..<max(xmax, 0)).map { (x: Int) -> Double in Coefficients.filter(method, (Double(x + xmin) - center + 0.5) * ss) }
            var ww = 0.0
            for v in k { ww += v }
            starts[xx] = xmin
            for x in 0..<k.count {
                let v = ww != 0.0 ? k[x] / ww : k[x]
                weights[xx * ksize + x] = v < 0 ? Int(-0.5 + v * one) : Int(0.5 + v * one)
            }
        }
    }

    static func filter(_ method: String, _ x0: Double) -> Double {
        if method != "bicubic" {
            let x = x0 < 0.0 ? -x0 : x0
            return x < 1.0 ? 1.0 - x : 0.0
        }
        let a = -0.5
        let x = abs(x0)
        if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
        if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0.0
    }
}

/// EXIF orientation (tag 0x0112) from a JPEG's APP1 segment or a PNG's eXIf chunk; 1 when absent or damaged.
enum ExifOrientation {
    static func read(_ b: [UInt8]) -> Int {
        if b.count > 8, b[0] == 0x89, b[1] == 0x50, b[2] == 0x4E, b[3] == 0x47 { return png(b) ?? 1 }
        if b.count > 4, b[0] == 0xFF, b[1] == 0xD8 { return jpeg(b) ?? 1 }
        return 1
    }

    private static func be16(_ b: ArraySlice<UInt8>, _ i: Int) -> Int? {
        let s = b.startIndex + i
        guard i >= 0, s + 1 < b.endIndex else { return nil }
        return Int(b[s]) << 8 | Int(b[s + 1])
    }

    private static func be32(_ b: ArraySlice<UInt8>, _ i: Int) -> Int? {
        guard let hi = be16(b, i), let lo = be16(b, i + 2) else { return nil }
        return hi << 16 | lo
    }

    private static func png(_ b: [UInt8]) -> Int? {
        var i = 8
        while i + 8 <= b.count {
            guard let len = be32(b[...], i) else { return nil }
            let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
            if type == "eXIf" {
                guard i + 8 + len <= b.count else { return nil }  // never read past the chunk
                return tiff(b[(i + 8)..<(i + 8 + len)])
            }
            if type == "IEND" { return nil }
            i += 12 + len
        }
        return nil
    }

    private static func jpeg(_ b: [UInt8]) -> Int? {
        var i = 2
        while i + 4 <= b.count, b[i] == 0xFF {
            let marker = b[i + 1]
            if marker == 0xDA || marker == 0xD9 { return nil }
            guard let len = be16(b[...], i + 2), len >= 2, i + 2 + len <= b.count else { return nil }
            if marker == 0xE1, len >= 8, Array(b[(i + 4)..<(i + 10)]) == [0x45, 0x78, 0x69, 0x66, 0, 0] {
                return tiff(b[(i + 10)..<(i + 2 + len)])
            }
            i += 2 + len
        }
        return nil
    }

    private static func tiff(_ t: ArraySlice<UInt8>) -> Int? {
        guard t.count >= 8 else { return nil }
        let little = t[t.startIndex] == 0x49
        func u16(_ i: Int) -> Int? {
            guard let v = be16(t, i) else { return nil }
            return little ? (v & 0xFF) << 8 | v >> 8 : v
        }
        func u32(_ i: Int) -> Int? {
            guard let a = u16(i), let b = u16(i + 2) else { return nil }
            return little ? b << 16 | a : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for e in 0..<count {
            let at = ifd + 2 + e * 12
            guard let tag = u16(at) else { return nil }
            if tag == 0x0112 {
                guard let v = u16(at + 8) else { return nil }
                return (1...8).contains(v) ? v : 1
            }
        }
        return nil
    }
}

/// One sample of the launch check: how far the app's pixels are from mobilepack's.
struct SampleCheck {
    let file: String
    let maxDiff: Int
    let differing: Int
    let total: Int
}

enum SelfCheck {
    static func compare(_ file: String, got: Rgb, expected: Rgb) -> SampleCheck {
        guard got.width == expected.width, got.height == expected.height else {
            return SampleCheck(file: file, maxDiff: 255, differing: expected.values.count, total: expected.values.count)
        }
        var worst = 0, differing = 0
        for i in got.values.indices {
            let d = abs(got.values[i] - expected.values[i])
            if d > 0 { differing += 1 }
            worst = max(worst, d)
        }
        return SampleCheck(file: file, maxDiff: worst, differing: differing, total: got.values.count)
    }

    /// "10/10 match mobilepack", or the count and each sample that differs beyond the tolerance and by how much.
    static func summary(_ checks: [SampleCheck], tolerance: Int = ImageContract.toleranceLSB) -> String {
        let bad = checks.filter { $0.maxDiff > tolerance }
        let head = "\(checks.count - bad.count)/\(checks.count) match mobilepack"
        return ([head] + bad.map { "\($0.file) differs by up to \($0.maxDiff) LSB in \($0.differing) of \($0.total) values" })
            .joined(separator: "\n")
    }
}
