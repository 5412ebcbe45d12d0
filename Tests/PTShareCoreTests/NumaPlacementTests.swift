import Glibc
import Testing

@testable import PTShareCore

/// A made-up machine: `nodes` under /sys, `allowed` in the cpuset, and libnuma's parser replaced
/// by one that knows only `allowed` (its messages are libnuma's).
private func machine(nodes: [Int] = [0, 1], allowed: [Int]? = nil, available: Bool = true) -> NumaMachine {
    let allowed = allowed ?? nodes
    return NumaMachine(available: available, nodes: nodes, allowed: allowed) { (t) throws(NumaError) in
        var out: [Int] = []
        for part in t.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard let lo = ends.first ?? nil, let hi = ends.last ?? nil else {
                throw NumaError(
                    "numa_parse_nodestring", errno: 0, what: "unparseable node description `\(t)'", value: t)
            }
            for n in [lo, hi] where !allowed.contains(n) {
                throw NumaError("numa_parse_nodestring", errno: 0, what: "node argument \(n) is out of range", value: t)
            }
            if lo <= hi { out += (lo...hi).filter(allowed.contains) }
        }
        return out
    }
}

@Suite struct NodeListTests {
    @Test func format() {
        #expect(NodeList.format([0]) == "0")
        #expect(NodeList.format([0, 1, 2, 5]) == "0-2,5")
        #expect(NodeList.format([2, 0, 2]) == "0,2")
        #expect(NodeList.format([]) == "")
    }

    @Test func listsOfThisMachine() throws {
        let m = machine()
        #expect(try NodeList.parse("0", option: "--membind", machine: m) == [0])
        #expect(try NodeList.parse("0-1", option: "--membind", machine: m) == [0, 1])
        #expect(try NodeList.parse("1,0", option: "--interleave", machine: m) == [0, 1])
    }

    @Test func syntaxOutsideDigitsCommasAndDashes() {
        for bad in ["", "all", "!0", "+0", "netdev:eth0", "0 1", "١"] {
            #expect(
                throws: ValidationMessage(
                    "--membind '\(bad)': expected a list of NUMA nodes like 0, 0-1 or 0,2; this machine has 2 NUMA nodes (0-1)"
                )
            ) { try NodeList.parse(bad, option: "--membind", machine: machine()) }
        }
    }

    @Test func nodeTheMachineLacks() throws {
        #expect(
            throws: ValidationMessage(
                "--cpunodebind 0-2: not a node list of this machine (libnuma: node argument 2 is out of range); this machine has 2 NUMA nodes (0-1)"
            )
        ) { try NodeList.parse("0-2", option: "--cpunodebind", machine: machine()) }
        // One node: only 0 works.
        #expect(
            throws: ValidationMessage(
                "--membind 1: not a node list of this machine (libnuma: node argument 1 is out of range); this machine has 1 NUMA node (0)"
            )
        ) { try NodeList.parse("1", option: "--membind", machine: machine(nodes: [0])) }
        #expect(try NodeList.parse("0", option: "--membind", machine: machine(nodes: [0])) == [0])
    }

    @Test func cpusetNarrowsTheNodes() {
        #expect(
            throws: ValidationMessage(
                "--membind 0: not a node list of this machine (libnuma: node argument 0 is out of range); this machine has 2 NUMA nodes (0-1), of which this process may allocate from 1"
            )
        ) { try NodeList.parse("0", option: "--membind", machine: machine(allowed: [1])) }
    }

    @Test func listNamingNoNode() {
        #expect(throws: ValidationMessage("--membind 1-0: names no NUMA node; this machine has 2 NUMA nodes (0-1)")) {
            try NodeList.parse("1-0", option: "--membind", machine: machine())
        }
    }

    @Test func kernelWithoutNUMA() {
        #expect(
            throws: ValidationMessage(
                "--interleave 0: this kernel has no NUMA memory policy (get_mempolicy: ENOSYS; CONFIG_NUMA is off)")
        ) { try NodeList.parse("0", option: "--interleave", machine: machine(nodes: [], available: false)) }
    }

    /// The real libnuma of this machine: node 0 exists wherever NUMA does, node 999 nowhere; its
    /// refusal arrives as a typed error through the numa_warn hook, not on stderr.
    @Test func libnumaOfThisMachine() throws {
        try #require(Numa.available, "this kernel has no NUMA memory policy")
        #expect(try Numa.parseNodeString("0") == [0])
        #expect(
            throws: NumaError(
                "numa_parse_nodestring", errno: 0, what: "node argument 999 is out of range", value: "999")
        ) { try Numa.parseNodeString("999") }
        #expect(
            throws: NumaError("numa_parse_nodestring", errno: 0, what: "missing node argument", value: "0-")
        ) { try Numa.parseNodeString("0-") }
        let m = try NumaMachine.current()
        #expect(m.nodes.contains(0) && m.allowed.contains(0))
        #expect(try Numa.maxNode() == m.nodes.max())
        #expect(
            throws: ValidationMessage(
                "--membind 999: not a node list of this machine (libnuma: node argument 999 is out of range); \(m.summary)"
            )
        ) { try NodeList.parse("999", option: "--membind", machine: m) }
    }

    /// libnuma's void calls fail only through numa_error: the hook turns set_mempolicy's EINVAL
    /// into the wrapper's error. The node is the highest a mask can name, which no machine has,
    /// so the calls fail and this test thread keeps its policy and CPUs.
    @Test func failuresArriveThroughTheHooks() throws {
        try #require(Numa.available, "this kernel has no NUMA memory policy")
        let n = try Numa.maxPossibleNode()
        try #require(try !Numa.allowedNodes().contains(n), "node \(n) exists here")
        let e = try #require(throws: NumaError.self) { try Numa.setMembind([n]) }
        #expect(e == NumaError("numa_set_membind", errno: EINVAL, what: "set_mempolicy", value: "\(n)"))
        #expect(
            e.description
                == "numa_set_membind (\(n)) failed: libnuma: set_mempolicy: EINVAL (errno 22): Invalid argument")
        #expect(throws: NumaError("numa_set_interleave_mask", errno: EINVAL, what: "set_mempolicy", value: "\(n)")) {
            try Numa.setInterleaveMask([n])
        }
        // A node it may not use is only a warning to libnuma, which then binds to no CPU at all.
        #expect(
            throws: NumaError(
                "numa_run_on_node_mask", errno: EINVAL,
                what: "node \(n) not allowed; numa_sched_setaffinity_v2_int() failed", value: "\(n)")
        ) { try Numa.runOnNodeMask([n]) }
    }

    @Test func nodeBeyondTheMaskIsRefusedNotDropped() throws {
        try #require(Numa.available, "this kernel has no NUMA memory policy")
        // numa_bitmask_setbit would ignore the bit, binding to nothing; the wrapper refuses first.
        let e = try #require(throws: NumaError.self) { try Numa.setMembind([1 << 20]) }
        #expect(e.call == "numa_set_membind" && e.value == "1048576" && e.what.hasPrefix("node 1048576 beyond"))
    }
}

@Suite struct NumaPlacementTests {
    @Test func description() {
        #expect(NumaPlacement.none.description == "none")
        #expect(NumaPlacement(cpuNodes: [1], memory: .bind([1])).description == "cpunodebind 1, membind 1")
        #expect(NumaPlacement(memory: .interleave([0, 1, 3])).description == "interleave 0-1,3")
        #expect(NumaPlacement(cpuNodes: [0, 1]).description == "cpunodebind 0-1")
    }

    @Test func validateWithoutTheMachine() {
        #expect(throws: ValidationMessage("--membind: names no NUMA node")) {
            try NumaPlacement(memory: .bind([])).validate()
        }
        #expect(throws: ValidationMessage("--cpunodebind 0,-1: node -1 is negative")) {
            try NumaPlacement(cpuNodes: [0, -1]).validate()
        }
        // A scenario carries the check.
        #expect(throws: ValidationMessage("--interleave: names no NUMA node")) {
            try Scenario(backing: .memfd, size: 4096, workers: 1, placement: .init(memory: .interleave([]))).validate()
        }
    }

    @Test func checkOnAMachine() throws {
        try NumaPlacement(cpuNodes: [1], memory: .bind([0, 1])).check(on: machine())
        #expect(
            throws: ValidationMessage(
                "--interleave 0,2: not a node list of this machine (libnuma: node argument 2 is out of range); this machine has 2 NUMA nodes (0-1)"
            )
        ) { try NumaPlacement(cpuNodes: [0], memory: .interleave([0, 2])).check(on: machine()) }
    }

    @Test func reportRoundTrip() {
        for p in [
            NumaPlacement(cpuNodes: [1], memory: .bind([1])), NumaPlacement(memory: .interleave([0, 1])),
            NumaPlacement(cpuNodes: [0]),
        ] {
            #expect(RunReport.Placement(p).numaPlacement == p)
        }
        let r = RunReport.Placement(NumaPlacement(cpuNodes: [1], memory: .interleave([0, 1])))
        #expect(r.cpunodebind == [1] && r.membind == nil && r.interleave == [0, 1])
    }
}
