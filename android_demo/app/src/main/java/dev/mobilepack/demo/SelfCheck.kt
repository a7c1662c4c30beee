package dev.mobilepack.demo

// The launch check (pure Kotlin, run on the JVM by the tests): each shipped sample, at its original
// size, goes through the app's own decode + ImageContract, and is compared with the pixels mobilepack
// computed for it (samples/NAME.expected.png, already at the model's size).

/** One sample: how far the app's pixels are from mobilepack's. */
data class SampleCheck(val file: String, val maxDiff: Int, val differing: Int, val total: Int)

object SelfCheck {
    fun compare(file: String, got: Rgb, expected: Rgb): SampleCheck {
        if (got.width != expected.width || got.height != expected.height) {
            return SampleCheck(file, 255, expected.values.size, expected.values.size)
        }
        var worst = 0
        var differing = 0
        for (i in got.values.indices) {
            val d = Math.abs(got.values[i] - expected.values[i])
            if (d > 0) differing++
            worst = maxOf(worst, d)
        }
        return SampleCheck(file, worst, differing, got.values.size)
    }

    /** "10/10 match mobilepack", or the count and each sample that differs beyond the tolerance and by how much. */
    fun summary(checks: List<SampleCheck>, tolerance: Int = ImageContract.TOLERANCE_LSB): String {
        val bad = checks.filter { it.maxDiff > tolerance }
        val head = "${checks.size - bad.size}/${checks.size} match mobilepack"
        if (bad.isEmpty()) return head
        return head + bad.joinToString("") {
            "\n${it.file} differs by up to ${it.maxDiff} LSB in ${it.differing} of ${it.total} values"
        }
    }
}
