import ArgumentParser
import PTShareCore

extension PTShare {
    public struct Probe: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Report what the running kernel offers: MAP_SHARED_PT, hugetlb, THP, NUMA, DAX, the probe module."
        )

        @Flag(help: "Print JSON instead of text.")
        public var json = false

        @OptionGroup public var flag: FlagOptions

        public init() {}

        public mutating func validate() throws { _ = try flag.resolve() }

        public func run() throws {
            let facts: KernelFacts
            do { facts = try KernelProbe.facts(mapSharedPTValue: try flag.resolve()) } catch let e as RunError {
                printError(e.description)
                throw ExitCode(e.exitCode)
            }
            if json {
                print(String(decoding: try JSONOutput.encode(facts), as: UTF8.self), terminator: "")
                return
            }
            let h = facts.hugetlb
            let pt = facts.mapSharedPt
            print("kernel:          \(facts.release) (\(facts.machine))")
            print(
                "MAP_SHARED_PT:   \(pt.supported ? "supported" : "not supported") (value \(pt.value)): \(pt.detail)")
            print(
                "hugetlb:         Hugepagesize \(h.hugepagesizeBytes.map { ByteSize.human(Int64($0)) } ?? "n/a"), "
                    + "HugePages_Total \(h.total.map(String.init) ?? "n/a"), HugePages_Free \(h.free.map(String.init) ?? "n/a"), "
                    + "HugePages_Rsvd \(h.reserved.map(String.init) ?? "n/a")")
            print(
                "PMD sharing:     \(h.pmdSharing.enabled.map { $0 ? "applies" : "does not apply" } ?? "unknown") (\(h.pmdSharing.basis))"
            )
            print("hugetlbfs:       \(h.mounts.isEmpty ? "none mounted" : h.mounts.joined(separator: ", "))")
            print("shmem THP:       \(facts.shmemThp ?? "n/a (no /sys/kernel/mm/transparent_hugepage)")")
            print(
                "NUMA nodes:      \(facts.numaNodes.isEmpty ? "none listed" : facts.numaNodes.map(String.init).joined(separator: ", "))"
            )
            print("DAX mounts:      \(facts.daxMounts.isEmpty ? "none" : facts.daxMounts.joined(separator: ", "))")
            print("pmem devices:    \(facts.pmemDevices.isEmpty ? "none" : facts.pmemDevices.joined(separator: ", "))")
            print("probe module:    \(facts.probeModule)")
        }
    }
}
