import CoreGraphics
import CoreVideo
import Foundation
import ImageIO

enum AppImageError: LocalizedError {
    case undecodable
    var errorDescription: String? { "not an image iOS can decode" }
}

/// The app's decode step of mobilepack's pixel contract. ImageIO decodes (16-bit and gray stay as
/// stored); the raw samples are read without color management or rotation (ImageContract applies
/// EXIF orientation itself), so Vision's scaler never sees a photo: Core ML gets pixels at the model's size.
enum AppImages {
    static func decode(_ data: Data) throws -> (Raster, Int) {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil),
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else { throw AppImageError.undecodable }
        return (try raster(image), ExifOrientation.read([UInt8](data)))
    }

    /// Any image file -> RGB at the model's size (image_size is [height, width]), as mobilepack computes it.
    static func prepare(_ data: Data, _ p: ShippedManifest.Preprocessing) throws -> Rgb {
        let (raster, orientation) = try decode(data)
        return ImageContract.prepare(raster, orientation: orientation, width: p.image_size[1], height: p.image_size[0],
                                     method: p.resize)
    }

    static func raster(_ image: CGImage) throws -> Raster {
        let model = image.colorSpace?.model
        guard model == .monochrome || model == .rgb, image.bitsPerComponent == 8 || image.bitsPerComponent == 16,
              !image.bitmapInfo.contains(.floatComponents), let data = image.dataProvider?.data,
              let bytes = CFDataGetBytePtr(data) else { return try drawn(image) }
        let w = image.width, h = image.height, bpc = image.bitsPerComponent
        let stored = image.bitsPerPixel / bpc
        let colors = model == .monochrome ? 1 : 3
        let info = image.alphaInfo
        let hasAlpha = [.last, .first, .premultipliedLast, .premultipliedFirst].contains(info)
        let alphaFirst = [.first, .premultipliedFirst, .noneSkipFirst].contains(info)
        let premultiplied = info == .premultipliedLast || info == .premultipliedFirst
        let order = image.bitmapInfo.intersection(.byteOrderMask)
        let channels = colors + (hasAlpha ? 1 : 0)
        let top = bpc == 16 ? 65535 : 255
        var samples = [Int]()
        samples.reserveCapacity(w * h * channels)
        for y in 0..<h {
            for x in 0..<w {
                var comps = (0..<stored).map { c -> Int in
                    let at = y * image.bytesPerRow + (x * stored + c) * (bpc / 8)
                    if bpc == 8 { return Int(bytes[at]) }
                    let (hi, lo) = order == .byteOrder16Little ? (bytes[at + 1], bytes[at]) : (bytes[at], bytes[at + 1])
                    return Int(hi) << 8 | Int(lo)
                }
                if bpc == 8 && stored == 4 && order == .byteOrder32Little { comps.reverse() }  // BGRA in memory
                let color = alphaFirst ? Array(comps[1...colors]) : Array(comps[0..<colors])
                let a = hasAlpha ? (alphaFirst ? comps[0] : comps[colors]) : top
                // Straight alpha, as the contract composites; premultiplied input can be 1 LSB off.
                samples += color.map { premultiplied && a > 0 ? min(top, ($0 * top + a / 2) / a) : $0 }
                if hasAlpha { samples.append(a) }
            }
        }
        return Raster(width: w, height: h, channels: channels, bitDepth: bpc, samples: samples)
    }

    /// Palette, CMYK and other layouts: drawn into 8-bit RGBA by Core Graphics (premultiplied, then undone).
    private static func drawn(_ image: CGImage) throws -> Raster {
        let w = image.width, h = image.height
        var px = [UInt8](repeating: 0, count: w * h * 4)
        let drew = px.withUnsafeMutableBytes { buffer -> Bool in  // the context must not outlive the buffer
            guard let ctx = CGContext(data: buffer.baseAddress, width: w, height: h, bitsPerComponent: 8,
                                      bytesPerRow: w * 4, space: CGColorSpace(name: CGColorSpace.sRGB)!,
                                      bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue) else { return false }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drew else { throw AppImageError.undecodable }
        let samples = (0..<(w * h)).flatMap { p -> [Int] in
            let a = Int(px[4 * p + 3])
            return (0..<3).map { c in a > 0 ? min(255, (Int(px[4 * p + c]) * 255 + a / 2) / a) : 0 } + [a]
        }
        return Raster(width: w, height: h, channels: 4, bitDepth: 8, samples: samples)
    }

    /// Decoded 8-bit RGB (an expected-pixels PNG): no alpha, so compositing on anything keeps it.
    static func rgb(_ data: Data) throws -> Rgb {
        let (raster, _) = try decode(data)
        return Rgb(width: raster.width, height: raster.height,
                   values: ImageContract.composite(ImageContract.toRgba8(raster), background: [0, 0, 0]))
    }

    /// The launch check: every shipped sample (original size) through this app's decode + contract.
    static func launchCheck(manifest: ShippedManifest, base: URL, samples: [Sample]) -> [SampleCheck] {
        samples.map { (s: Sample) -> SampleCheck in
            let dir = base.appendingPathComponent("samples")
            guard let input = try? Data(contentsOf: dir.appendingPathComponent(s.file)),
                  let want = try? Data(contentsOf: dir.appendingPathComponent(s.expected_pixels)),
                  let got = try? prepare(input, manifest.preprocessing), let expected = try? rgb(want) else {
                return SampleCheck(file: s.file, maxDiff: 255, differing: 0, total: 0)
            }
            return SelfCheck.compare(s.file, got: got, expected: expected)
        }
    }

    /// RGB at the model's size -> a BGRA pixel buffer for Vision; at the model's size, so nothing is rescaled.
    static func pixelBuffer(_ rgb: Rgb) -> CVPixelBuffer? {
        var buffer: CVPixelBuffer?
        guard CVPixelBufferCreate(nil, rgb.width, rgb.height, kCVPixelFormatType_32BGRA, nil, &buffer) == kCVReturnSuccess,
              let pb = buffer else { return nil }
        CVPixelBufferLockBaseAddress(pb, [])
        defer { CVPixelBufferUnlockBaseAddress(pb, []) }
        let row = CVPixelBufferGetBytesPerRow(pb)
        let base = CVPixelBufferGetBaseAddress(pb)!.assumingMemoryBound(to: UInt8.self)
        for y in 0..<rgb.height {
            for x in 0..<rgb.width {
                let p = (y * rgb.width + x) * 3, at = y * row + x * 4
                base[at] = UInt8(rgb.values[p + 2]); base[at + 1] = UInt8(rgb.values[p + 1])
                base[at + 2] = UInt8(rgb.values[p]); base[at + 3] = 255
            }
        }
        return pb
    }
}
