import SwiftUI

@main
struct MobilepackDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
