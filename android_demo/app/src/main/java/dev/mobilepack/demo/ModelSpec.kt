package dev.mobilepack.demo

import org.json.JSONObject

/**
 * Everything the app needs to feed the model, read from the shipped manifest.json: the model file,
 * the input size, dtype and quantization, the output's, and mobilepack's preprocessing.
 * `mobilepack ship` writes a manifest holding exactly the shipped artifact.
 */
data class ModelSpec(
    val name: String,
    val modelFile: String,
    val quantization: String,
    val input: InputSpec,
    val output: OutputSpec,
    val numClasses: Int,
    val resize: String
) {
    companion object {
        const val ASSETS = "mobilepack"

        fun fromManifest(json: String): ModelSpec {
            val root = JSONObject(json)
            val artifact = root.getJSONArray("artifacts").getJSONObject(0)
            require(artifact.getString("target") == "tflite") {
                "manifest.json ships ${artifact.getString("target")}; run `mobilepack ship DIST --android android_demo`"
            }
            val prep = root.getJSONObject("preprocessing")
            val inp = artifact.getJSONArray("inputs").getJSONObject(0)
            val out = artifact.getJSONArray("outputs").getJSONObject(0)
            val shape = inp.getJSONArray("shape")
            val layout = prep.getString("layout")
            val (h, w, c) = if (layout == "NCHW") Triple(shape.getInt(2), shape.getInt(3), shape.getInt(1))
                            else Triple(shape.getInt(1), shape.getInt(2), shape.getInt(3))
            val inQ = inp.optJSONObject("quantization")
            val outQ = out.optJSONObject("quantization")
            val outShape = out.getJSONArray("shape")
            return ModelSpec(
                name = artifact.getString("name"),
                modelFile = artifact.getString("file"),
                quantization = artifact.getString("quantization"),
                input = InputSpec(
                    width = w, height = h, channels = c,
                    dtype = inp.getString("dtype"),
                    scale = inQ?.getDouble("scale")?.toFloat() ?: 0f,
                    zeroPoint = inQ?.getInt("zero_point") ?: 0,
                    channelOrder = prep.getString("channel_order"),
                    layout = layout,
                    normalizationInModel = prep.getBoolean("normalization_in_model"),
                    mean = floats(prep, "mean"),
                    std = floats(prep, "std")
                ),
                output = OutputSpec(
                    dtype = out.getString("dtype"),
                    scale = outQ?.getDouble("scale")?.toFloat() ?: 0f,
                    zeroPoint = outQ?.getInt("zero_point") ?: 0
                ),
                numClasses = outShape.getInt(outShape.length() - 1),
                resize = prep.getString("resize")
            )
        }

        private fun floats(o: JSONObject, key: String): FloatArray {
            val a = o.getJSONArray(key)
            return FloatArray(a.length()) { a.getDouble(it).toFloat() }
        }
    }
}
