package dev.mobilepack.demo

import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith

/**
 * What the app shows on launch, asserted on a device: every shipped sample, decoded by BitmapFactory
 * and preprocessed by ImageContract, equals mobilepack's pixels within the contract's tolerance.
 * Needs `mobilepack ship DIST --android android_demo` first; run with `./gradlew connectedAndroidTest`.
 */
@RunWith(AndroidJUnit4::class)
class LaunchCheckTest {
    @Test
    fun shippedSamplesMatchMobilepack() {
        val context = InstrumentationRegistry.getInstrumentation().targetContext
        val spec = ModelSpec.fromManifest(
            context.assets.open("${ModelSpec.ASSETS}/manifest.json").bufferedReader().use { it.readText() })
        val checks = AppImages.launchCheck(context, spec)
        assertTrue("no shipped samples: run `mobilepack ship DIST --android android_demo`", checks.isNotEmpty())
        assertEquals("${checks.size}/${checks.size} match mobilepack", SelfCheck.summary(checks))
    }
}
