package dev.mobilepack.demo

import android.content.Context
import android.os.SystemClock
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

data class Classification(val top3: List<Prediction>, val inferenceMs: Double)

/** The shipped .tflite through the LiteRT interpreter, fed exactly as mobilepack's benchmark fed it. */
class Classifier(context: Context) : AutoCloseable {
    val spec: ModelSpec = ModelSpec.fromManifest(
        context.assets.open("${ModelSpec.ASSETS}/manifest.json").bufferedReader().use { it.readText() })
    val labels: List<String> = context.assets.open("${ModelSpec.ASSETS}/labels.txt").bufferedReader()
        .use { r -> r.readLines().filter { it.isNotBlank() } }
    private val interpreter: Interpreter

    init {
        check(labels.size == spec.numClasses) { "${labels.size} labels for ${spec.numClasses} outputs" }
        val fd = context.assets.openFd("${ModelSpec.ASSETS}/${spec.modelFile}")
        val model = FileInputStream(fd.fileDescriptor).channel
            .map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(2))
    }

    /** RGB already at the model's size by mobilepack's pixel contract (AppImages.prepare). */
    fun classify(rgb: Rgb): Classification {
        val s = spec.input
        val values = ImageProcessing.toInputValues(ImageContract.toArgb(rgb), s)
        val input = ByteBuffer.allocateDirect(values.size * if (s.dtype == "float32") 4 else 1)
            .order(ByteOrder.nativeOrder())
        if (s.dtype == "float32") values.forEach { input.putFloat(it) }
        else ImageProcessing.quantize(values, s).forEach { input.put(it.toByte()) }
        input.rewind()

        val n = spec.numClasses
        val output = ByteBuffer.allocateDirect(n * if (spec.output.dtype == "float32") 4 else 1)
            .order(ByteOrder.nativeOrder())
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        output.rewind()
        val raw = FloatArray(n) {
            when (spec.output.dtype) {
                "float32" -> output.float
                "uint8" -> (output.get().toInt() and 0xFF).toFloat()
                else -> output.get().toFloat()
            }
        }
        return Classification(ImageProcessing.topK(ImageProcessing.dequantize(raw, spec.output), labels, 3), ms)
    }

    override fun close() = interpreter.close()
}
