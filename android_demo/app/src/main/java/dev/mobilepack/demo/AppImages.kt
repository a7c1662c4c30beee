package dev.mobilepack.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import org.json.JSONObject

/**
 * The app's decode step of mobilepack's pixel contract: BitmapFactory gives 8-bit ARGB (16-bit and
 * palette PNGs reduced by the platform), not premultiplied, and does NOT apply EXIF orientation
 * (the newer platform decoder would, on API 28+ only), so ImageContract applies it on every API level.
 */
object AppImages {
    fun decode(bytes: ByteArray): Pair<Raster, Int> {
        val options = BitmapFactory.Options().apply {
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inPremultiplied = false  // premultiplied storage would lose the color of half-transparent pixels
        }
        val bitmap = BitmapFactory.decodeByteArray(bytes, 0, bytes.size, options)
            ?: throw IllegalArgumentException("not an image Android can decode")
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return Pair(Raster.fromArgb(argb, bitmap.width, bitmap.height), ExifOrientation.read(bytes))
    }

    /** Any image file's bytes -> RGB at the model's size, as mobilepack computes it. */
    fun prepare(bytes: ByteArray, spec: ModelSpec): Rgb {
        val (raster, orientation) = decode(bytes)
        return ImageContract.prepare(raster, orientation, spec.input.width, spec.input.height, spec.resize)
    }

    /** The launch check: every shipped sample (original size) through this app's decode + contract. */
    fun launchCheck(context: Context, spec: ModelSpec): List<SampleCheck> {
        val dir = "${ModelSpec.ASSETS}/samples"
        val samples = JSONObject(context.assets.open("$dir/samples.json").bufferedReader().use { it.readText() })
            .getJSONArray("samples")
        return List(samples.length()) { i ->
            val s = samples.getJSONObject(i)
            val got = prepare(context.assets.open("$dir/${s.getString("file")}").use { it.readBytes() }, spec)
            val (raster, _) = decode(context.assets.open("$dir/${s.getString("expected_pixels")}").use { it.readBytes() })
            val expected = Rgb(raster.width, raster.height, ImageContract.composite(ImageContract.toRgba8(raster), intArrayOf(0, 0, 0)))
            SelfCheck.compare(s.getString("file"), got, expected)
        }
    }
}
