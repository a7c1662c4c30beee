package dev.mobilepack.demo

import java.awt.image.IndexColorModel
import java.io.ByteArrayInputStream
import java.io.File
import javax.imageio.ImageIO
import kotlin.system.exitProcess

// Run on the JVM by mobilepack's tests, with ImageIO standing in for Android's decoder:
//   golden DIR                  every case in DIR/cases.txt (golden/preprocessing) must reproduce NAME.expected.png
//   samples DIR WIDTH HEIGHT RESIZE   the launch check over a shipped samples/ folder, as MainActivity runs it

fun decode(bytes: ByteArray): Raster {
    val img = ImageIO.read(ByteArrayInputStream(bytes)) ?: throw IllegalArgumentException("not an image ImageIO reads")
    val r = img.raster
    val w = img.width
    val h = img.height
    val cm = img.colorModel
    if (cm is IndexColorModel) {  // a palette: expand through its table and tRNS alpha, as the contract says
        val s = IntArray(w * h * 4)
        for (y in 0 until h) for (x in 0 until w) {
            val i = r.getSample(x, y, 0)
            val p = (y * w + x) * 4
            s[p] = cm.getRed(i); s[p + 1] = cm.getGreen(i); s[p + 2] = cm.getBlue(i); s[p + 3] = cm.getAlpha(i)
        }
        return Raster(w, h, 4, 8, s)
    }
    // Raw raster samples, not getRGB(): getRGB would convert gray through a linear color space.
    val bands = r.numBands
    return Raster(w, h, bands, cm.getComponentSize(0), r.getPixels(0, 0, w, h, IntArray(w * h * bands)))
}

fun decodeRgb(bytes: ByteArray): Rgb {
    val raster = decode(bytes)
    return Rgb(raster.width, raster.height, ImageContract.composite(ImageContract.toRgba8(raster), intArrayOf(0, 0, 0)))
}

fun prepareFile(file: File, width: Int, height: Int, method: String): Rgb {
    val bytes = file.readBytes()
    return ImageContract.prepare(decode(bytes), ExifOrientation.read(bytes), width, height, method)
}

fun golden(dir: File): Int {
    val checks = dir.resolve("cases.txt").readLines().filter { it.isNotBlank() }.map { line ->
        val (name, w, h, method) = line.trim().split(Regex("\\s+"))
        val got = prepareFile(dir.resolve("$name.png"), w.toInt(), h.toInt(), method)
        val check = SelfCheck.compare(name, got, decodeRgb(dir.resolve("$name.expected.png").readBytes()))
        println("case $name: max diff ${check.maxDiff} LSB (${check.differing} of ${check.total} values differ)")
        check
    }
    val worst = checks.map { it.maxDiff }.max() ?: 0
    println("golden: ${checks.size} case(s), max Kotlin-vs-Python difference $worst LSB, " +
            "${checks.sumBy { it.differing }} of ${checks.sumBy { it.total }} values differ")
    return if (worst > ImageContract.TOLERANCE_LSB) 1 else 0
}

fun samples(dir: File, width: Int, height: Int, method: String): Int {
    // samples.json is mobilepack's own flat format; a regex keeps this JVM check free of JSON libraries.
    val text = dir.resolve("samples.json").readText()
    val pairs = Regex("\"file\":\\s*\"([^\"]+)\"[^}]*?\"expected_pixels\":\\s*\"([^\"]+)\"").findAll(text).toList()
    val checks = pairs.map { m ->
        val (file, expected) = m.destructured
        SelfCheck.compare(file, prepareFile(dir.resolve(file), width, height, method),
                          decodeRgb(dir.resolve(expected).readBytes()))
    }
    val summary = SelfCheck.summary(checks)
    println(summary)
    return if (checks.isNotEmpty() && checks.all { it.maxDiff <= ImageContract.TOLERANCE_LSB }) 0 else 1
}

fun main(args: Array<String>) {
    val code = when (args.getOrNull(0)) {
        "golden" -> golden(File(args[1]))
        "samples" -> samples(File(args[1]), args[2].toInt(), args[3].toInt(), args[4])
        else -> { println("usage: golden DIR | samples DIR WIDTH HEIGHT RESIZE"); 2 }
    }
    exitProcess(code)
}
