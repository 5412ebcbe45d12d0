import Foundation
import Testing

@testable import PTShareCore

@Suite struct HoldsTablesTests {
    func entries() throws -> [SmapsEntry] {
        let url = try #require(
            Bundle.module.url(forResource: "smaps-memfd-hugetlb-6.18", withExtension: "txt", subdirectory: "Fixtures"))
        return try Smaps.parse(try String(contentsOf: url, encoding: .utf8))
    }

    /// [vvar] is a PFN map: fork copies its entries, so its page tables exist in every worker,
    /// yet smaps reports Rss 0. The model must count its spans as already holding tables.
    @Test func pfnMapWithoutRssHoldsTables() throws {
        let vvar = try #require(try entries().first { $0.path == "[vvar]" })
        #expect(vvar.fields["Rss"] == 0)
        #expect(vvar.vmFlags.contains("pf"))
        #expect(Runner.holdsTables(vvar))
    }

    @Test func residentMappingHoldsTablesAndAnUntouchedOneDoesNot() throws {
        let all = try entries()
        let memfd = try #require(all.first { $0.path.hasPrefix("/memfd:") })
        #expect(Runner.holdsTables(memfd))
        let untouched = all.filter {
            ($0.fields["Rss"] ?? 0) == 0 && !$0.vmFlags.contains("pf") && !$0.vmFlags.contains("mm")
        }
        #expect(!untouched.isEmpty)
        #expect(untouched.allSatisfy { !Runner.holdsTables($0) })
    }
}
