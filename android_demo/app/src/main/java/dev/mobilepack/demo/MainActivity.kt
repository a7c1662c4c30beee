package dev.mobilepack.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.provider.MediaStore
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
        if (uri != null) show(decode(uri), expected = null)
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

        val samples = JSONObject(assets.open("${ModelSpec.ASSETS}/samples/samples.json").bufferedReader()
            .use { it.readText() }).getJSONArray("samples")
        val names = List(samples.length()) { samples.getJSONObject(it).getString("file") }
        val spinner = findViewById<Spinner>(R.id.samples)
        spinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, names)
        spinner.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) {
                val sample = samples.getJSONObject(position)
                val bitmap = assets.open("${ModelSpec.ASSETS}/samples/${sample.getString("file")}")
                    .use { BitmapFactory.decodeStream(it) }
                show(bitmap, expected = sample.getString("expected_top1"))
            }

            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
    }

    private fun decode(uri: Uri): Bitmap =
        if (Build.VERSION.SDK_INT >= 28) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { d, _, _ ->
                d.allocator = ImageDecoder.ALLOCATOR_SOFTWARE  // getPixels needs a software bitmap
            }
        } else {
            @Suppress("DEPRECATION")
            MediaStore.Images.Media.getBitmap(contentResolver, uri)
        }

    private fun show(bitmap: Bitmap, expected: String?) {
        image.setImageBitmap(bitmap)
        val c = classifier.classify(bitmap.copy(Bitmap.Config.ARGB_8888, false))
        val lines = c.top3.map { "%-12s %.3f".format(it.label, it.score) }
        val check = if (expected == null) "" else "\nmobilepack expects: $expected"
        result.text = lines.joinToString("\n") + "\n\ninference: %.2f ms".format(c.inferenceMs) + check
    }

    override fun onDestroy() {
        classifier.close()
        super.onDestroy()
    }
}
