import XCTest
@testable import MobilepackDemo

/// The Swift pixel contract against the same golden vectors as android_demo's JVM test
/// (golden/preprocessing, from `python -m mobilepack.golden`), and the launch check the app runs.
/// Run with `xcodebuild test -scheme MobilepackDemo -destination 'platform=iOS Simulator,name=iPhone 15'`.
final class ContractTests: XCTestCase {
    private var golden: URL {
        Bundle(for: ContractTests.self).url(forResource: "preprocessing", withExtension: nil)!
    }

    func testEveryGoldenCaseMatchesPython() throws {
        let lines = try String(contentsOf: golden.appendingPathComponent("cases.txt"), encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.filter { $0.count == 4 }
        XCTAssertGreaterThanOrEqual(lines.count, 40)
        for f in lines {
            let (name, width, height, method) = (f[0], Int(f[1])!, Int(f[2])!, f[3])
            let (raster, orientation) = try AppImages.decode(Data(contentsOf: golden.appendingPathComponent("\(name).png")))
            let got = ImageContract.prepare(raster, orientation: orientation, width: width, height: height, method: method)
            let expected = try AppImages.rgb(Data(contentsOf: golden.appendingPathComponent("\(name).expected.png")))
            let check = SelfCheck.compare(name, got: got, expected: expected)
            XCTAssertLessThanOrEqual(check.maxDiff, ImageContract.toleranceLSB,
                                     "\(name): \(check.differing) of \(check.total) values differ, by up to \(check.maxDiff) LSB")
        }
    }

    func testShippedSamplesMatchMobilepack() throws {
        let classifier = try Classifier()  // needs `mobilepack ship DIST --ios ios_demo` first
        let checks = AppImages.launchCheck(manifest: classifier.manifest, base: classifier.base, samples: classifier.samples)
        XCTAssertFalse(checks.isEmpty, "no shipped samples: run `mobilepack ship DIST --ios ios_demo`")
        XCTAssertEqual(SelfCheck.summary(checks), "\(checks.count)/\(checks.count) match mobilepack")
    }
}
