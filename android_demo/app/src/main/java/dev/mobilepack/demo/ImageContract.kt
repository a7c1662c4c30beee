package dev.mobilepack.demo

// mobilepack's pixel contract (train/imagecontract.py; the manifest's preprocessing.contract), step
// for step and with the same integer arithmetic, so the app's pixels equal mobilepack's bit for bit.
// Pure Kotlin 1.3 (no Android imports): the tests compile it with Debian's kotlinc and run it on the
// JVM against golden/preprocessing. Decoding is the platform's (BitmapFactory here, ImageIO on the
// JVM); everything after it is here, never the platform's scaler or its EXIF rotation.

/** Decoded samples, row by row: channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; bitDepth 8 or 16; straight alpha. */
class Raster(val width: Int, val height: Int, val channels: Int, val bitDepth: Int, val samples: IntArray) {
    init {
        require(channels in 1..4 && (bitDepth == 8 || bitDepth == 16)) { "unsupported raster: $channels channel(s), $bitDepth bit" }
        require(samples.size == width * height * channels) { "${samples.size} samples for $width x $height x $channels" }
    }

    companion object {
        /** Android's Bitmap.getPixels order (0xAARRGGBB, not premultiplied) as a 4-channel raster. */
        fun fromArgb(argb: IntArray, width: Int, height: Int): Raster {
            val s = IntArray(argb.size * 4)
            for (p in argb.indices) {
                val px = argb[p]
                s[4 * p] = (px shr 16) and 0xFF; s[4 * p + 1] = (px shr 8) and 0xFF
                s[4 * p + 2] = px and 0xFF; s[4 * p + 3] = (px ushr 24) and 0xFF
            }
            return Raster(width, height, 4, 8, s)
        }
    }
}

/** RGB pixels, 3 values per pixel, row by row. */
class Rgb(val width: Int, val height: Int, val values: IntArray)

object ImageContract {
    const val PRECISION_BITS = 22  // Pillow's fixed point for 8-bit resampling
    const val TOLERANCE_LSB = 1
    private val WHITE = intArrayOf(255, 255, 255)

    /** Steps 1-5: decoded samples + EXIF orientation -> RGB at the model's size. */
    fun prepare(raster: Raster, orientation: Int, outWidth: Int, outHeight: Int, method: String): Rgb {
        val rgba = toRgba8(raster)
        val (upright, w, h) = orient(rgba, raster.width, raster.height, orientation)
        return resample(Rgb(w, h, composite(upright, WHITE)), outWidth, outHeight, method)
    }

    /** Step 1: 16-bit keeps the high byte, gray is copied into R, G and B, missing alpha is 255. */
    fun toRgba8(r: Raster): IntArray {
        val n = r.width * r.height
        val out = IntArray(n * 4)
        val shift = if (r.bitDepth == 16) 8 else 0
        for (p in 0 until n) {
            val s = IntArray(r.channels) { r.samples[p * r.channels + it] shr shift }
            val gray = r.channels <= 2
            out[4 * p] = s[0]
            out[4 * p + 1] = if (gray) s[0] else s[1]
            out[4 * p + 2] = if (gray) s[0] else s[2]
            out[4 * p + 3] = if (r.channels == 2 || r.channels == 4) s[r.channels - 1] else 255
        }
        return out
    }

    /** Step 2: EXIF orientation 1-8 (5-8 swap width and height); returns (pixels, width, height). */
    fun orient(rgba: IntArray, width: Int, height: Int, orientation: Int): Triple<IntArray, Int, Int> {
        val o = if (orientation in 1..8) orientation else 1
        val (ow, oh) = if (o >= 5) Pair(height, width) else Pair(width, height)
        val out = IntArray(rgba.size)
        val w1 = width - 1
        val h1 = height - 1
        for (y in 0 until oh) for (x in 0 until ow) {
            val (sx, sy) = when (o) {
                2 -> Pair(w1 - x, y); 3 -> Pair(w1 - x, h1 - y); 4 -> Pair(x, h1 - y)
                5 -> Pair(y, x); 6 -> Pair(y, h1 - x); 7 -> Pair(w1 - y, h1 - x); 8 -> Pair(w1 - y, x)
                else -> Pair(x, y)
            }
            for (c in 0 until 4) out[(y * ow + x) * 4 + c] = rgba[(sy * width + sx) * 4 + c]
        }
        return Triple(out, ow, oh)
    }

    /** Step 3: straight alpha over the background, (c*a + bg*(255-a) + 127) / 255 in integers. */
    fun composite(rgba: IntArray, background: IntArray): IntArray {
        val n = rgba.size / 4
        return IntArray(n * 3) { i ->
            val p = i / 3
            val a = rgba[4 * p + 3]
            (rgba[4 * p + i % 3] * a + background[i % 3] * (255 - a) + 127) / 255
        }
    }

    /** Step 4: Pillow's separable resampler, horizontal pass then vertical, 8 bits between them. */
    fun resample(src: Rgb, outWidth: Int, outHeight: Int, method: String): Rgb {
        if (method == "nearest") return nearest(src, outWidth, outHeight)
        var img = src
        if (outWidth != img.width) img = pass(img, outWidth, true, method)
        if (outHeight != img.height) img = pass(img, outHeight, false, method)
        return img
    }

    private fun pass(img: Rgb, outSize: Int, horizontal: Boolean, method: String): Rgb {
        val inSize = if (horizontal) img.width else img.height
        val c = Coefficients(inSize, outSize, method)
        val w = if (horizontal) outSize else img.width
        val h = if (horizontal) img.height else outSize
        val out = IntArray(w * h * 3)
        for (y in 0 until h) for (x in 0 until w) for (ch in 0 until 3) {
            val o = if (horizontal) x else y
            var acc = 1L shl (PRECISION_BITS - 1)
            for (k in 0 until c.ksize) {
                val s = c.starts[o] + k
                if (s >= inSize) break
                val v = if (horizontal) img.values[(y * img.width + s) * 3 + ch] else img.values[(s * img.width + x) * 3 + ch]
                acc += v.toLong() * c.weights[o * c.ksize + k]
            }
            out[(y * w + x) * 3 + ch] = (acc shr PRECISION_BITS).coerceIn(0L, 255L).toInt()
        }
        return Rgb(w, h, out)
    }

    private fun nearestIndex(inSize: Int, outSize: Int): IntArray {
        val step = inSize.toDouble() / outSize
        var pos = step * 0.5  // accumulated, as Pillow does, not i * step
        return IntArray(outSize) { val i = minOf(pos.toInt(), inSize - 1); pos += step; i }
    }

    private fun nearest(src: Rgb, outWidth: Int, outHeight: Int): Rgb {
        val xs = nearestIndex(src.width, outWidth)
        val ys = nearestIndex(src.height, outHeight)
        val out = IntArray(outWidth * outHeight * 3)
        for (y in 0 until outHeight) for (x in 0 until outWidth) for (ch in 0 until 3)
            out[(y * outWidth + x) * 3 + ch] = src.values[(ys[y] * src.width + xs[x]) * 3 + ch]
        return Rgb(outWidth, outHeight, out)
    }

    /** RGB -> Android's 0xAARRGGBB pixels, what toInputValues takes. */
    fun toArgb(rgb: Rgb): IntArray = IntArray(rgb.width * rgb.height) { p ->
        (0xFF shl 24) or (rgb.values[3 * p] shl 16) or (rgb.values[3 * p + 1] shl 8) or rgb.values[3 * p + 2]
    }
}

/** Pillow's precompute_coeffs: per output pixel the first source index and 22-bit fixed-point weights. */
class Coefficients(inSize: Int, outSize: Int, method: String) {
    val ksize: Int
    val starts = IntArray(outSize)
    val weights: LongArray

    init {
        val support0 = when (method) { "bilinear" -> 1.0; "bicubic" -> 2.0; else -> throw IllegalArgumentException("resize $method") }
        val scale = inSize.toDouble() / outSize
        val filterscale = maxOf(scale, 1.0)
        val support = support0 * filterscale
        ksize = Math.ceil(support).toInt() * 2 + 1
        weights = LongArray(outSize * ksize)
        val ss = 1.0 / filterscale
        for (xx in 0 until outSize) {
            val center = (xx + 0.5) * scale
            val xmin = maxOf((center - support + 0.5).toInt(), 0)
            val xmax = minOf((center + support + 0.5).toInt(), inSize) - xmin
            val k = DoubleArray(xmax) { x -> filter(method, ((x + xmin) - center + 0.5) * ss) }
            var ww = 0.0
            for (v in k) ww += v
            starts[xx] = xmin
            for (x in 0 until xmax) {
                val v = if (ww != 0.0) k[x] / ww else k[x]
                weights[xx * ksize + x] = if (v < 0) (-0.5 + v * (1 shl ImageContract.PRECISION_BITS)).toLong()
                                          else (0.5 + v * (1 shl ImageContract.PRECISION_BITS)).toLong()
            }
        }
    }

    private fun filter(method: String, x0: Double): Double {
        if (method == "bilinear") {
            val x = if (x0 < 0.0) -x0 else x0
            return if (x < 1.0) 1.0 - x else 0.0
        }
        val a = -0.5
        val x = Math.abs(x0)
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a
        return 0.0
    }
}

/** EXIF orientation (tag 0x0112) from a JPEG's APP1 segment or a PNG's eXIf chunk; 1 when absent or unreadable. */
object ExifOrientation {
    fun read(b: ByteArray): Int = try {
        when {
            b.size > 8 && u8(b, 0) == 0x89 && String(b, 1, 3, Charsets.US_ASCII) == "PNG" -> png(b)
            b.size > 4 && u8(b, 0) == 0xFF && u8(b, 1) == 0xD8 -> jpeg(b)
            else -> 1
        }
    } catch (e: IndexOutOfBoundsException) {
        1  // damaged EXIF: the pixels as stored, as mobilepack does
    } catch (e: IllegalArgumentException) {
        1  // a negative length read from a damaged file
    }

    private fun u8(b: ByteArray, i: Int) = b[i].toInt() and 0xFF
    private fun be16(b: ByteArray, i: Int) = (u8(b, i) shl 8) or u8(b, i + 1)
    private fun be32(b: ByteArray, i: Int) = (be16(b, i) shl 16) or be16(b, i + 2)

    private fun png(b: ByteArray): Int {
        var i = 8
        while (i + 8 <= b.size) {
            val len = be32(b, i)
            val type = String(b, i + 4, 4, Charsets.US_ASCII)
            if (type == "eXIf") return tiff(b.copyOfRange(i + 8, i + 8 + len))  // never read past the chunk
            if (type == "IEND" || len < 0) return 1
            i += 12 + len
        }
        return 1
    }

    private fun jpeg(b: ByteArray): Int {
        var i = 2
        while (i + 4 <= b.size && u8(b, i) == 0xFF) {
            val marker = u8(b, i + 1)
            if (marker == 0xDA || marker == 0xD9) return 1  // image data starts: no EXIF before it
            val len = be16(b, i + 2)
            if (marker == 0xE1 && String(b, i + 4, 6, Charsets.ISO_8859_1) == "Exif\u0000\u0000") return tiff(b.copyOfRange(i + 10, i + 2 + len))
            i += 2 + len
        }
        return 1
    }

    private fun tiff(b: ByteArray): Int {
        val little = u8(b, 0) == 0x49
        fun u16(i: Int) = if (little) u8(b, i) or (u8(b, i + 1) shl 8) else be16(b, i)
        fun u32(i: Int) = if (little) u16(i) or (u16(i + 2) shl 16) else be32(b, i)
        if (u16(2) != 42) return 1
        val ifd = u32(4)
        for (e in 0 until u16(ifd)) {
            val at = ifd + 2 + e * 12
            if (u16(at) == 0x0112) return u16(at + 8).let { if (it in 1..8) it else 1 }
        }
        return 1
    }
}
