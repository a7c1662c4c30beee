package dev.mobilepack.demo

import android.graphics.BitmapFactory
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import org.json.JSONObject

/** One screen: a bundled sample or a photo in, top-3 labels with scores and the inference time out. */
class MainActivity : AppCompatActivity() {
    private lateinit var classifier: Classifier
    private lateinit var image: ImageView
    private lateinit var result: TextView

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) show(read(uri), expected = null)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        image = findViewById(R.id.image)
        result = findViewById(R.id.result)
        classifier = Classifier(this)
        val spec = classifier.spec
        findViewById<TextView>(R.id.model).text =
            "${spec.name} (${spec.quantization}): ${spec.input.width}x${spec.input.height} ${spec.input.dtype} in"
        // The shipped samples, at their original size, through this app's decode + resize: the app's
        // pixels must be mobilepack's, or the report's verdict does not describe this app.
        findViewById<TextView>(R.id.check).text =
            try { SelfCheck.summary(AppImages.launchCheck(this, spec)) } catch (e: Exception) { "launch check failed: $e" }

        val samples = JSONObject(assets.open("${ModelSpec.ASSETS}/samples/samples.json").bufferedReader()
            .use { it.readText() }).getJSONArray("samples")
        val names = List(samples.length()) { samples.getJSONObject(it).getString("file") }
        val spinner = findViewById<Spinner>(R.id.samples)
        spinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, names)
        spinner.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) {
                val sample = samples.getJSONObject(position)
                val bytes = assets.open("${ModelSpec.ASSETS}/samples/${sample.getString("file")}").use { it.readBytes() }
                show(bytes, expected = sample.getString("expected_top1"))
            }

            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
    }

    private fun read(uri: Uri): ByteArray =
        contentResolver.openInputStream(uri)?.use { it.readBytes() } ?: ByteArray(0)

    /** Any image file: shown as stored, classified by the pixel contract (EXIF, alpha, resize). */
    private fun show(bytes: ByteArray, expected: String?) {
        val rgb = try { AppImages.prepare(bytes, classifier.spec) } catch (e: IllegalArgumentException) {
            result.text = "cannot read this image: ${e.message}"; return
        }
        image.setImageBitmap(BitmapFactory.decodeByteArray(bytes, 0, bytes.size))
        val c = classifier.classify(rgb)
        val lines = c.top3.map { "%-12s %.3f".format(it.label, it.score) }
        val check = if (expected == null) "" else "\nmobilepack expects: $expected"
        result.text = lines.joinToString("\n") + "\n\ninference: %.2f ms".format(c.inferenceMs) + check
    }

    override fun onDestroy() {
        classifier.close()
        super.onDestroy()
    }
}
