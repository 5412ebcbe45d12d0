// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ptshare",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ptshare", targets: ["ptshare"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // Only what Swift cannot import from Glibc, plus the async-signal-safe worker body.
        .target(name: "CPTShare"),
        // Scenario → workers → probes → model → verdict → report.
        .target(name: "PTShareCore", dependencies: ["CPTShare"]),
        .target(
            name: "PTShareCLI",
            dependencies: [
                "PTShareCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "ptshare", dependencies: ["PTShareCLI"]),
        .testTarget(
            name: "PTShareCoreTests",
            dependencies: ["PTShareCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "PTShareCLITests", dependencies: ["PTShareCLI"]),
        // Runs the built `ptshare` binary: real forks, real mappings, real /proc.
        .testTarget(name: "IntegrationTests", dependencies: ["ptshare", "PTShareCore"]),
    ]
)
