package dev.mobilepack.demo

// Pure Kotlin (no Android imports) so the tests can compile it with a plain kotlinc and check
// it on the JVM against golden vectors from mobilepack's Python pipeline. Kept to Kotlin 1.3
// syntax (no trailing commas), the compiler Debian ships.

/** What the model's input tensor expects, read from the shipped manifest.json (never constants). */
data class InputSpec(
    val width: Int,
    val height: Int,
    val channels: Int,
    val dtype: String,            // "float32", "uint8" or "int8"
    val scale: Float,             // tensor quantization; 0 when the tensor is not quantized
    val zeroPoint: Int,
    val channelOrder: String,     // "RGB" or "BGR"
    val layout: String,           // "NHWC" or "NCHW"
    val normalizationInModel: Boolean,
    val mean: FloatArray,         // pixel units, used only when normalization is not in the model
    val std: FloatArray
)

/** What the output tensor holds. */
data class OutputSpec(val dtype: String, val scale: Float, val zeroPoint: Int)

data class Prediction(val index: Int, val label: String, val score: Float)

object ImageProcessing {
    /**
     * ARGB pixels (Android's Bitmap.getPixels order, row by row) already at the model's size
     * -> the input values in tensor order, as mobilepack's Preprocessing.apply produces them.
     */
    fun toInputValues(argb: IntArray, spec: InputSpec): FloatArray {
        require(argb.size == spec.width * spec.height) {
            "expected ${spec.width}x${spec.height} pixels, got ${argb.size}; resize the image first"
        }
        val out = FloatArray(argb.size * spec.channels)
        val plane = spec.width * spec.height
        for (p in argb.indices) {
            val px = argb[p]
            val rgb = intArrayOf((px shr 16) and 0xFF, (px shr 8) and 0xFF, px and 0xFF)
            for (c in 0 until spec.channels) {
                val source = if (spec.channelOrder == "BGR") 2 - c else c
                var v = rgb[source].toFloat()
                if (!spec.normalizationInModel) v = (v - spec.mean[c]) / spec.std[c]
                val at = if (spec.layout == "NCHW") c * plane + p else p * spec.channels + c
                out[at] = v
            }
        }
        return out
    }

    /** Quantize as LiteRT's own Quantize op: round half away from zero, add the zero point, clamp. */
    fun quantize(values: FloatArray, spec: InputSpec): IntArray {
        val (lo, hi) = when (spec.dtype) {
            "uint8" -> 0 to 255
            "int8" -> -128 to 127
            else -> throw IllegalArgumentException("${spec.dtype} input is not quantized")
        }
        return IntArray(values.size) { i ->
            val v = (values[i] / spec.scale).toDouble()
            val q = (Math.signum(v) * Math.floor(Math.abs(v) + 0.5)).toInt() + spec.zeroPoint
            q.coerceIn(lo, hi)
        }
    }

    /** Raw output values (already read from the tensor) -> scores. */
    fun dequantize(raw: FloatArray, spec: OutputSpec): FloatArray =
        if (spec.dtype == "float32" || spec.scale == 0f) raw
        else FloatArray(raw.size) { i -> (raw[i] - spec.zeroPoint) * spec.scale }

    /** The k best labels, highest score first; ties keep the lower index first, as numpy's argsort does. */
    fun topK(scores: FloatArray, labels: List<String>, k: Int): List<Prediction> {
        require(labels.size == scores.size) { "${labels.size} labels for ${scores.size} outputs" }
        return scores.indices
            .sortedWith(compareByDescending<Int> { scores[it] }.thenBy { it })
            .take(k)
            .map { Prediction(it, labels[it], scores[it]) }
    }
}
