package dev.mobilepack.demo

import java.io.File
import kotlin.math.abs
import kotlin.system.exitProcess

// Run on the JVM by mobilepack's tests (kotlinc ImageProcessing.kt GoldenCheck.kt): reads golden
// vectors written by the Python pipeline and checks ImageProcessing reproduces them exactly.
// Format: one "key value value ..." line per field; a blank line ends a case.

fun main(args: Array<String>) {
    val cases = File(args[0]).readText().trim().split(Regex("\n\\s*\n"))
    var failures = 0
    for (text in cases) {
        val f = text.lines().filter { it.isNotBlank() }.associate { line ->
            val parts = line.trim().split(Regex("\\s+"))
            parts[0] to parts.drop(1)
        }
        val name = f.getValue("case").joinToString(" ")
        val spec = InputSpec(
            width = f.getValue("width")[0].toInt(), height = f.getValue("height")[0].toInt(),
            channels = f.getValue("channels")[0].toInt(), dtype = f.getValue("dtype")[0],
            scale = f.getValue("scale")[0].toFloat(), zeroPoint = f.getValue("zero_point")[0].toInt(),
            channelOrder = f.getValue("channel_order")[0], layout = f.getValue("layout")[0],
            normalizationInModel = f.getValue("normalization_in_model")[0].toBoolean(),
            mean = f.getValue("mean").map { it.toFloat() }.toFloatArray(),
            std = f.getValue("std").map { it.toFloat() }.toFloatArray()
        )
        val values = ImageProcessing.toInputValues(f.getValue("pixels").map { it.toLong().toInt() }.toIntArray(), spec)
        val expected = f.getValue("input").map { it.toFloat() }
        var worst = 0f
        for (i in values.indices) worst = maxOf(worst, abs(values[i] - expected[i]))
        if (values.size != expected.size || worst > 1e-4f) {
            println("FAIL $name: input differs by $worst"); failures++
        }
        if (spec.dtype != "float32") {
            val q = ImageProcessing.quantize(values, spec).toList()
            if (q != f.getValue("tensor").map { it.toInt() }) { println("FAIL $name: quantized input differs"); failures++ }
        }
        val out = OutputSpec(f.getValue("output_dtype")[0], f.getValue("output_scale")[0].toFloat(),
                             f.getValue("output_zero_point")[0].toInt())
        val scores = ImageProcessing.dequantize(f.getValue("output_raw").map { it.toFloat() }.toFloatArray(), out)
        val top = ImageProcessing.topK(scores, f.getValue("labels"), 3)
        if (top.map { it.index } != f.getValue("top3").map { it.toInt() }) {
            println("FAIL $name: top-3 ${top.map { it.index }} != ${f.getValue("top3")}"); failures++
        }
        val wantScores = f.getValue("top3_scores").map { it.toFloat() }
        if (top.indices.any { abs(top[it].score - wantScores[it]) > 1e-6f }) {
            println("FAIL $name: top-3 scores differ"); failures++
        }
        println("case $name: ${if (failures == 0) "ok" else "checked"} (top-1 ${top[0].label})")
    }
    if (failures > 0) exitProcess(1)
    println("all ${cases.size} golden case(s) match")
}
