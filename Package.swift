// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ptshare",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ptshare", targets: ["ptshare"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Percentiles of the workers' mmap and populate times in `bench`.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Only what Swift cannot import from Glibc, plus the async-signal-safe worker body and
        // libnuma's error hooks.
        .target(name: "CPTShare"),
        // libnuma (numa.h, -lnuma): node lists, memory policy and CPU mask for `run`'s placement.
        // libnuma.a links into the static guest binary as well.
        .systemLibrary(name: "CNuma", pkgConfig: "numa", providers: [.apt(["libnuma-dev"])]),
        // Scenario → workers → probes → model → verdict → report.
        .target(
            name: "PTShareCore",
            dependencies: ["CPTShare", "CNuma", .product(name: "Histogram", package: "hdrhistogram-swift")]),
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
