import ArgumentParser
import PTShareCore
import Testing

@testable import PTShareCLI

/// Parses `arguments`; returns the message ArgumentParser would print, or nil when they parse.
private func parseMessage(_ arguments: [String]) -> String? {
    do {
        _ = try PTShare.parseAsRoot(arguments)
        return nil
    } catch {
        return PTShare.message(for: error)
    }
}

private func parseRun(_ arguments: [String]) throws -> PTShare.Run {
    let command = try PTShare.parseAsRoot(["run"] + arguments)
    return try #require(command as? PTShare.Run, "parsed as \(type(of: command))")
}

/// These tests read $PTSHARE_MAP_SHARED_PT through the real environment when they parse; a
/// value set in the test's environment would change what they see.
private let environmentIsClean = FlagOptions.environment().isEmpty

@Suite(.enabled(if: environmentIsClean, "$PTSHARE_MAP_SHARED_PT is set")) struct RunValidationTests {
    @Test func badSize() {
        #expect(
            parseMessage(["run", "--size", "64Q"])
                == "--size: invalid size '64Q': expected a number of bytes with an optional K, M, G or T suffix (binary units), e.g. 64M or 1G"
        )
    }

    @Test func overflowingSize() {
        #expect(
            parseMessage(["run", "--size", "99999999999T"])
                == "--size: invalid size '99999999999T': larger than 2^64 bytes")
    }

    @Test func sizeNotPageMultiple() {
        #expect(parseMessage(["run", "--size", "4097"]) == "--size 4097: must be a multiple of the 4 KiB page size")
    }

    @Test func zeroWorkers() {
        #expect(parseMessage(["run", "--workers", "0"]) == "--workers 0: must be between 1 and 100000")
        #expect(parseMessage(["run", "--workers", "100001"]) == "--workers 100001: must be between 1 and 100000")
    }

    @Test func sharedPTSize() {
        #expect(
            parseMessage(["run", "--share", "pt", "--size", "3M"])
                == "--size 3M: --share pt (MAP_SHARED_PT) needs a multiple of 2M (the PMD size)")
    }

    @Test func sharedPTAddress() {
        #expect(
            parseMessage(["run", "--share", "pt", "--address", "0x7f0000001000"])
                == "--address 0x7f0000001000: --share pt (MAP_SHARED_PT) needs a multiple of 0x200000 (the PMD size)")
    }

    @Test func addressNotPageAligned() {
        #expect(
            parseMessage(["run", "--address", "0x7f0000000010"])
                == "--address 0x7f0000000010: must be a multiple of the 4 KiB page size")
    }

    @Test func badAddress() {
        #expect(
            parseMessage(["run", "--address", "nowhere"])
                == "--address nowhere: expected auto, same or a hexadecimal address like 0x7f0000000000")
        #expect(
            parseMessage(["run", "--address", "0x0"])
                == "--address 0x0: expected auto, same or a hexadecimal address like 0x7f0000000000")
    }

    @Test func dax() {
        // Which DAX mount, and whether the file is DAX, are preflight questions (BackingFile).
        #expect(parseMessage(["run", "--backing", "dax", "--path", "/mnt/pmem"]) == nil)
        #expect(
            parseMessage(["run", "--backing", "memfd", "--path", "/mnt/pmem"])
                == "--path is for file backings (tmpfs, hugetlbfs, dax), not --backing memfd")
    }

    @Test func unknownBacking() throws {
        // Rejected by ArgumentParser itself, before validate().
        let m = try #require(parseMessage(["run", "--backing", "nfs"]))
        #expect(m.contains("nfs"))
    }

    @Test func collidingMapSharedPTValue() {
        #expect(
            parseMessage(["run", "--map-shared-pt-value", "0x40000"])
                == "--map-shared-pt-value: MAP_SHARED_PT value 0x40000 collides with MAP_HUGETLB; pick a bit the kernel does not define, like 0x200000"
        )
        #expect(
            parseMessage(["run", "--map-shared-pt-value", "200000"])
                == "--map-shared-pt-value: MAP_SHARED_PT value '200000' is not a hexadecimal flag like 0x200000")
    }

    @Test func tolerance() {
        #expect(parseMessage(["run", "--tolerance", "2"]) == "--tolerance 2.0: must be between 0 and 1 (0.10 = 10 %)")
        #expect(parseMessage(["run", "--tolerance", "0"]) == "--tolerance 0.0: must be between 0 and 1 (0.10 = 10 %)")
    }

    @Test func negativeSmapsWorkers() {
        #expect(parseMessage(["run", "--smaps-workers=-1"]) == "--smaps-workers -1: must be 0 or more")
    }

    @Test func negativeHold() {
        #expect(parseMessage(["run", "--hold=-1"]) == "--hold -1: must be between 0 and 86400 seconds")
        #expect(parseMessage(["run", "--hold", "86401"]) == "--hold 86401: must be between 0 and 86400 seconds")
    }

    @Test func zeroPhaseTimeout() {
        #expect(parseMessage(["run", "--phase-timeout", "0"]) == "--phase-timeout 0: must be at least 1 second")
        #expect(parseMessage(["run", "--phase-timeout=-5"]) == "--phase-timeout -5: must be at least 1 second")
    }

    @Test func pathWithMemfd() {
        #expect(
            parseMessage(["run", "--backing", "memfd", "--path", "/tmp"])
                == "--path is for file backings (tmpfs, hugetlbfs, dax), not --backing memfd")
    }

    @Test func scenarioErrorsComeFirst() {
        // validate() builds the scenario before it looks at --smaps-workers.
        #expect(
            parseMessage(["run", "--workers", "0", "--smaps-workers=-1"]) == "--workers 0: must be between 1 and 100000"
        )
    }

    @Test func defaults() throws {
        let run = try parseRun([])
        #expect(run.backing == .memfd)
        #expect(run.path == nil)
        #expect(run.size == "64M")
        #expect(run.workers == 64)
        #expect(run.share == PTShareCore.ShareMode.none)
        #expect(run.touch == .populate)
        #expect(run.address == "auto")
        #expect(run.tolerance == 0.10)
        #expect(run.json == nil)
        #expect(run.quiet == false)
        #expect(run.smapsWorkers == 8)
        #expect(run.hold == 0)
        #expect(run.phaseTimeout == 600)
        let s = try run.scenario()
        #expect(s == Scenario(backing: .memfd, size: 64 << 20, workers: 64))
    }

    @Test func validRun() throws {
        let run = try parseRun([
            "--backing", "tmpfs", "--size", "1G", "--workers", "200", "--share", "pt", "--address", "same", "--touch",
            "populate-write",
        ])
        let s = try run.scenario()
        #expect(s.backing == .tmpfs)
        #expect(s.path == nil)
        #expect(s.size == 1 << 30)
        #expect(s.workers == 200)
        #expect(s.share == .pt)
        #expect(s.touch == .populateWrite)
        #expect(s.address == .same)
        #expect(s.mapSharedPTValue == 0x200000)
        #expect(s.tolerance == 0.10)
        #expect(
            s
                == Scenario(
                    backing: .tmpfs, size: 1 << 30, workers: 200, share: .pt, touch: .populateWrite, address: .same))
    }

    @Test func validRunWithEveryOption() throws {
        let run = try parseRun([
            "--backing", "hugetlbfs", "--path", "/mnt/huge", "--size", "2G", "--workers", "1", "--share", "none",
            "--touch", "write", "--address", "0x7f0040000000", "--tolerance", "0.05", "--json", "/tmp/r.json",
            "--quiet",
            "--smaps-workers", "0", "--hold", "3", "--phase-timeout", "30", "--map-shared-pt-value", "0x400000",
        ])
        #expect(run.json == "/tmp/r.json")
        #expect(run.quiet)
        #expect(run.smapsWorkers == 0)
        #expect(run.hold == 3)
        #expect(run.phaseTimeout == 30)
        let s = try run.scenario()
        #expect(
            s
                == Scenario(
                    backing: .hugetlbfs, path: "/mnt/huge", size: 2 << 30, workers: 1, share: .none, touch: .write,
                    address: .fixed(0x7f00_4000_0000), mapSharedPTValue: 0x400000, tolerance: 0.05))
    }

    @Test func anonSharedBacking() throws {
        let s = try parseRun(["--backing", "anon-shared"]).scenario()
        #expect(s.backing == .anonShared)
    }
}

/// --cpunodebind, --membind, --interleave: lists read by this machine's libnuma (node 0 exists
/// wherever NUMA does; node 999 nowhere), and by made-up machines through `placement(machine:)`.
@Suite(.enabled(if: environmentIsClean && Numa.available, "$PTSHARE_MAP_SHARED_PT set, or no NUMA in this kernel"))
struct RunPlacementTests {
    private func twoNodes() -> NumaMachine {
        NumaMachine(available: true, nodes: [0, 1], allowed: [0, 1]) { (t) throws(NumaError) in
            switch t {
            case "0": return [0]
            case "1": return [1]
            case "0-1": return [0, 1]
            default:
                throw NumaError("numa_parse_nodestring", errno: 0, what: "node argument 2 is out of range", value: t)
            }
        }
    }

    @Test func defaultIsNoPlacement() throws {
        #expect(try parseRun([]).scenario().placement == .none)
    }

    @Test func nodeZero() throws {
        let s = try parseRun(["--cpunodebind", "0", "--membind", "0"]).scenario()
        #expect(s.placement == NumaPlacement(cpuNodes: [0], memory: .bind([0])))
        #expect(try parseRun(["--interleave", "0"]).scenario().placement == NumaPlacement(memory: .interleave([0])))
    }

    @Test func membindAndInterleaveExclude() {
        #expect(
            parseMessage(["run", "--membind", "0", "--interleave", "0"])
                == "--membind 0 and --interleave 0: pick one (a task has one memory policy)")
    }

    @Test func listErrorsNameTheValueAndTheMachine() throws {
        let summary = try NumaMachine.current().summary
        #expect(
            parseMessage(["run", "--membind", "999"])
                == "--membind 999: not a node list of this machine (libnuma: node argument 999 is out of range); \(summary)"
        )
        #expect(
            parseMessage(["run", "--cpunodebind", "0-999"])
                == "--cpunodebind 0-999: not a node list of this machine (libnuma: node argument 999 out of range); \(summary)"
        )
        #expect(
            parseMessage(["run", "--interleave", "all"])
                == "--interleave 'all': expected a list of NUMA nodes like 0, 0-1 or 0,2; \(summary)")
    }

    @Test func scenarioErrorsComeFirst() {
        #expect(
            parseMessage(["run", "--workers", "0", "--membind", "999"]) == "--workers 0: must be between 1 and 100000")
    }

    @Test func twoNodeMachine() throws {
        let run = try parseRun([])
        var r = run
        r.cpunodebind = "1"
        r.membind = "1"
        #expect(try r.placement(machine: twoNodes) == NumaPlacement(cpuNodes: [1], memory: .bind([1])))
        r.membind = nil
        r.interleave = "0-1"
        #expect(try r.placement(machine: twoNodes) == NumaPlacement(cpuNodes: [1], memory: .interleave([0, 1])))
        r.cpunodebind = "0-2"
        #expect(throws: ValidationError.self) { try r.placement(machine: twoNodes) }
        do { _ = try r.placement(machine: twoNodes) } catch {
            #expect(
                PTShare.message(for: error)
                    == "--cpunodebind 0-2: not a node list of this machine (libnuma: node argument 2 is out of range); this machine has 2 NUMA nodes (0-1)"
            )
        }
    }
}

@Suite struct FlagOptionsTests {
    private func options(_ arguments: [String]) throws -> FlagOptions {
        try FlagOptions.parse(arguments)
    }

    private func message(_ body: () throws -> UInt32) -> String? {
        do {
            _ = try body()
            return nil
        } catch {
            return PTShare.message(for: error)
        }
    }

    @Test func defaultWithoutOptionOrEnvironment() throws {
        #expect(try options([]).resolve(environment: [:]) == 0x200000)
    }

    @Test func environmentUsedWhenOptionAbsent() throws {
        #expect(try options([]).resolve(environment: ["PTSHARE_MAP_SHARED_PT": "0x400000"]) == 0x400000)
    }

    @Test func optionWinsOverEnvironment() throws {
        let o = try options(["--map-shared-pt-value", "0x800000"])
        #expect(try o.resolve(environment: ["PTSHARE_MAP_SHARED_PT": "0x400000"]) == 0x800000)
        // Even over a bad environment value.
        #expect(try o.resolve(environment: ["PTSHARE_MAP_SHARED_PT": "junk"]) == 0x800000)
    }

    @Test func otherEnvironmentVariablesIgnored() throws {
        #expect(try options([]).resolve(environment: ["MAP_SHARED_PT": "0x400000"]) == 0x200000)
    }

    @Test func badEnvironmentValue() throws {
        let o = try options([])
        let m = try #require(message { try o.resolve(environment: ["PTSHARE_MAP_SHARED_PT": "0x40000"]) })
        #expect(m.hasPrefix("$PTSHARE_MAP_SHARED_PT: "))
        #expect(
            m
                == "$PTSHARE_MAP_SHARED_PT: MAP_SHARED_PT value 0x40000 collides with MAP_HUGETLB; pick a bit the kernel does not define, like 0x200000"
        )
        let n = try #require(message { try o.resolve(environment: ["PTSHARE_MAP_SHARED_PT": "2097152"]) })
        #expect(n == "$PTSHARE_MAP_SHARED_PT: MAP_SHARED_PT value '2097152' is not a hexadecimal flag like 0x200000")
    }

    @Test func badOptionValue() throws {
        let o = try options(["--map-shared-pt-value", "0x3"])
        let m = try #require(message { try o.resolve(environment: [:]) })
        #expect(m == "--map-shared-pt-value: MAP_SHARED_PT value 0x3 must be a single bit, like 0x200000")
    }

    @Test func thrownErrorIsAValidationError() throws {
        let o = try options(["--map-shared-pt-value", "0x3"])
        #expect(throws: ValidationError.self) { try o.resolve(environment: [:]) }
    }
}

@Suite(.enabled(if: environmentIsClean, "$PTSHARE_MAP_SHARED_PT is set")) struct ProbeParsingTests {
    @Test func json() throws {
        let command = try PTShare.parseAsRoot(["probe", "--json"])
        let probe = try #require(command as? PTShare.Probe)
        #expect(probe.json)
    }

    @Test func text() throws {
        let probe = try #require(try PTShare.parseAsRoot(["probe"]) as? PTShare.Probe)
        #expect(!probe.json)
        #expect(probe.flag.mapSharedPTValue == nil)
    }

    @Test func mapSharedPTValue() throws {
        let probe = try #require(
            try PTShare.parseAsRoot(["probe", "--map-shared-pt-value", "0x400000"]) as? PTShare.Probe)
        #expect(probe.flag.mapSharedPTValue == "0x400000")
        #expect(
            parseMessage(["probe", "--map-shared-pt-value", "0x40000"])
                == "--map-shared-pt-value: MAP_SHARED_PT value 0x40000 collides with MAP_HUGETLB; pick a bit the kernel does not define, like 0x200000"
        )
    }

    @Test func unknownSubcommand() {
        #expect(parseMessage(["frobnicate"]) != nil)
    }

    @Test func configuration() {
        #expect(PTShare.configuration.commandName == "ptshare")
        #expect(
            PTShare.configuration.subcommands.map { $0._commandName } == [
                "probe", "run", "suite", "bench", "compare", "vm", "summarize", "scale",
            ])
    }

    @Test func scaleOptions() throws {
        let cmd = try #require(
            try PTShare.parseAsRoot(["scale", "--sharers", "1,10,100", "--size", "64M", "--plain"]) as? PTShare.Scale)
        let o = try cmd.options()
        #expect(o.steps == [1, 10, 100] && o.size == 64 << 20 && o.flag == 0)
        #expect(parseMessage(["scale", "--sharers", "10,1"]) != nil)
        #expect(parseMessage(["scale", "--sharers", "0"]) != nil)
        #expect(parseMessage(["vm", "--numa", "9", "--", "probe"]) != nil)
        #expect(parseMessage(["vm", "--numa", "8", "--memory", "1G", "--", "probe"]) != nil)
    }

    @Test func summarizeNeedsFiles() throws {
        let cmd = try #require(try PTShare.parseAsRoot(["summarize", "a.json", "b.json"]) as? PTShare.Summarize)
        #expect(cmd.files == ["a.json", "b.json"])
        #expect(parseMessage(["summarize"]) != nil)
    }
}

@Suite(.enabled(if: environmentIsClean, "$PTSHARE_MAP_SHARED_PT is set")) struct SuiteSharedPTOptionTests {
    @Test func defaults() throws {
        let cmd = try #require(try PTShare.parseAsRoot(["suite", "--out", "/tmp/x"]) as? PTShare.Suite)
        let o = try cmd.options()
        #expect(o.sharedPTSize == 256 << 20)
        #expect(o.stressSeconds == 60)
        #expect(o.minimumSharedPTSavings == 0.95)
    }

    @Test func givenValues() throws {
        let cmd = try #require(
            try PTShare.parseAsRoot(["suite", "--out", "/tmp/x", "--shared-pt-size", "64M", "--stress-seconds", "5"])
                as? PTShare.Suite)
        let o = try cmd.options()
        #expect(o.sharedPTSize == 64 << 20)
        #expect(o.stressSeconds == 5)
    }

    @Test func badValues() {
        #expect(
            parseMessage(["suite", "--shared-pt-size", "3M"])
                == "--shared-pt-size 3M: must be a non-zero multiple of 2M (MAP_SHARED_PT maps whole PTE tables)")
        #expect(
            parseMessage(["suite", "--shared-pt-size", "3Q"])?.hasPrefix("--shared-pt-size: invalid size '3Q'") == true)
        #expect(parseMessage(["suite", "--stress-seconds", "0"]) == "--stress-seconds 0: must be between 1 and 86400")
        #expect(
            parseMessage(["suite", "--test", "sharedpt.nope"])?.hasPrefix(
                "--test sharedpt.nope: unknown; the tests are ")
                == true)
        #expect(parseMessage(["suite", "--test", "sharedpt.stress"]) == nil)
    }

    @Test func skipPolicyFlags() throws {
        #expect(
            parseMessage(["suite", "--allow-skip", "sharedpt.stress"])
                == "--allow-skip needs --fail-on-skip (without it every SKIP is allowed)")
        #expect(
            parseMessage(["suite", "--allow-unsupported-skips"])
                == "--allow-unsupported-skips needs --fail-on-skip (without it every SKIP is allowed)")
        #expect(parseMessage(["suite", "--fail-on-skip", "--allow-unsupported-skips"]) == nil)
        #expect(
            parseMessage(["suite", "--fail-on-skip", "--allow-skip", "nope"])?.hasPrefix(
                "--allow-skip nope: unknown; the tests are ") == true)
        let cmd = try #require(
            try PTShare.parseAsRoot([
                "suite", "--out", "/tmp/x", "--fail-on-skip", "--allow-skip", "hugetlb.pmd_share.savings",
            ]) as? PTShare.Suite)
        #expect(cmd.failOnSkip)
        #expect(cmd.allowSkip == ["hugetlb.pmd_share.savings"])
    }
}

@Suite struct VMOptionTests {
    private func vm(_ arguments: [String]) throws -> VMOptions {
        let cmd = try #require(try PTShare.parseAsRoot(["vm"] + arguments + ["--", "probe"]) as? PTShare.VM)
        return try cmd.options()
    }

    @Test func pmemDefaultsTo64M() throws {
        #expect(try vm([]).pmemBytes == 64 << 20)
        #expect(try vm(["--pmem", "0"]).pmemBytes == 0)
        #expect(try vm(["--pmem", "256M"]).pmemBytes == 256 << 20)
    }

    @Test func pmemMustBeWhole2M() {
        #expect(
            parseMessage(["vm", "--pmem", "3M", "--", "probe"])
                == "--pmem 3M: must be a multiple of 2M, or 0 for no pmem disk")
        #expect(
            parseMessage(["vm", "--pmem", "4097K", "--", "probe"])
                == "--pmem 4097K: must be a multiple of 2M, or 0 for no pmem disk")
        #expect(
            parseMessage(["vm", "--pmem", "64Q", "--", "probe"])
                == "--pmem: invalid size '64Q': expected a number of bytes with an optional K, M, G or T suffix (binary units), e.g. 64M or 1G"
        )
    }
}
