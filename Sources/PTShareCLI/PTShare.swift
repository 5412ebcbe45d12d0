import ArgumentParser
import Glibc
import PTShareCore

/// `ptshare`: proves that page-table sharing saves what it claims and breaks nothing.
public struct PTShare: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ptshare",
        abstract: "Measure page-table memory of many processes mapping one shared file, against a model.",
        version: PTShareVersion.string,
        subcommands: [Probe.self, Run.self, Suite.self, Bench.self, Compare.self, VM.self, Summarize.self, Scale.self]
    )

    public init() {}
}

extension Backing: ExpressibleByArgument {}
extension ShareMode: ExpressibleByArgument {}
extension TouchMode: ExpressibleByArgument {}
extension TablesMode: ExpressibleByArgument {}

/// The MAP_SHARED_PT value, shared by every command that maps with it.
public struct FlagOptions: ParsableArguments {
    @Option(
        name: .customLong("map-shared-pt-value"),
        help: ArgumentHelp(
            "Value of the experimental MAP_SHARED_PT mmap flag (default 0x200000, or $\(MapSharedPT.environmentVariable)).",
            valueName: "0xVALUE"))
    public var mapSharedPTValue: String?

    public init() {}

    /// The option wins over the environment; the default is the RFC v2 value.
    public func resolve(environment: [String: String] = FlagOptions.environment()) throws -> UInt32 {
        let text = mapSharedPTValue ?? environment[MapSharedPT.environmentVariable]
        guard let text else { return MapSharedPT.defaultValue }
        switch MapSharedPT.parse(text) {
        case .success(let v): return v
        case .failure(let m):
            let origin = mapSharedPTValue != nil ? "--map-shared-pt-value" : "$\(MapSharedPT.environmentVariable)"
            throw ValidationError("\(origin): \(m.description)")
        }
    }

    public static func environment() -> [String: String] {
        guard let v = getenv(MapSharedPT.environmentVariable) else { return [:] }
        return [MapSharedPT.environmentVariable: String(cString: v)]
    }
}

func printError(_ message: String) {
    var line = Array("ptshare: error: \(message)\n".utf8)
    line.withUnsafeMutableBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
