/// The versioned JSON document of one run. Keys are written in snake_case; CI and benchmark
/// tools read `schema`, `kernel.release`, `scenario.*`, `measured.*`, `model.*`, `verdict`.
public struct RunReport: Sendable, Codable {
    public static let schemaName = "ptshare.run.v1"

    public var schema = RunReport.schemaName
    public var tool: Tool
    public var kernel: Kernel
    public var scenario: ScenarioReport
    public var measured: Measured
    public var model: ModelReport
    public var timings: Timings
    public var verdict: VerdictStatus
    public var reason: String
    public var allowedDeviationBytes: Int64
    /// The unshared run of the same scenario, when `--baseline` measured one.
    public var baseline: Baseline?
    public var savings: Savings?
    /// What the ptshare_probe module saw, when it was loaded.
    public var tables: Tables?
    /// Every worker's mmap and touch time, in worker order, when the run kept them
    /// (`RunOptions.keepWorkerTimes`, set by `bench`).
    public var workerTimes: WorkerTimes?

    public struct WorkerTimes: Sendable, Codable {
        public var mapNs: [UInt64]
        public var touchNs: [UInt64]
    }

    /// Distinct page-table pages over all workers' mappings (kmod/ptshare_probe): direct proof
    /// of sharing, immune to anything else allocating page tables meanwhile.
    public struct Tables: Sendable, Codable {
        public var interfaceVersion: Int
        public var workersQueried: Int
        public var distinctPteTables: Int
        public var distinctPmdTables: Int
        public var expectedDistinctPteTables: Int
        public var expectedDistinctPmdTables: Int
        /// 2 MiB steps mapped by PMD leaves (hugetlb, THP), summed over workers.
        public var pmdLeafSteps: Int
        public var pudLeafSteps: Int
        public var queryMilliseconds: Int

        public var matchesModel: Bool {
            distinctPteTables == expectedDistinctPteTables && distinctPmdTables == expectedDistinctPmdTables
        }
    }

    /// What the baseline run was and what it measured.
    public struct Baseline: Sendable, Codable {
        public var share: String
        public var address: String
        public var mappingAddress: String
        public var attributedPageTableBytes: Int64
        public var expectedPageTableBytes: Int64
        public var verdict: VerdictStatus
        public var reason: String
    }

    public struct Tool: Sendable, Codable {
        public var name = "ptshare"
        public var version: String
    }

    public struct Kernel: Sendable, Codable {
        public var release: String
        public var machine: String
        public var hugetlbPmdSharing: KernelFacts.PMDSharing?
        public var shmemThp: String?
    }

    public struct ScenarioReport: Sendable, Codable {
        public var backing: String
        /// The file mapped (unlinked once opened), "memfd:ptshare" or "anonymous".
        public var object: String
        public var sizeBytes: UInt64
        public var workers: Int
        public var share: String
        public var touch: String
        public var address: String
        public var mapSharedPtValue: String
        /// The mmap flags every worker passed, in hex.
        public var mmapFlags: String
        public var leafPageSizeBytes: UInt64
        public var tolerance: Double
        /// `--cpunodebind`, `--membind`, `--interleave`; absent when the run set none (and in
        /// reports written before they existed).
        public var placement: Placement?
        /// true when the workers ran under prctl(PR_SET_THP_DISABLE) (`--thp-disable`); absent
        /// otherwise (and in reports written before it existed).
        public var thpDisabled: Bool?
    }

    /// The NUMA placement a run applied to its workers, as node lists.
    public struct Placement: Sendable, Codable, Equatable {
        public var cpunodebind: [Int]?
        public var membind: [Int]?
        public var interleave: [Int]?

        public init(_ p: NumaPlacement) {
            cpunodebind = p.cpuNodes
            if case .bind(let n) = p.memory { membind = n }
            if case .interleave(let n) = p.memory { interleave = n }
        }

        /// Back to the scenario's value, `cpunodebind 1, membind 1` when printed.
        public var numaPlacement: NumaPlacement {
            NumaPlacement(
                cpuNodes: cpunodebind, memory: membind.map { .bind($0) } ?? interleave.map { .interleave($0) })
        }
    }

    public struct MeminfoPoint: Sendable, Codable {
        public var pageTables: UInt64?
        public var secPageTables: UInt64?
        public var shmem: UInt64?
        public var mapped: UInt64?
        public var memAvailable: UInt64?
        public var hugePagesTotal: UInt64?
        public var hugePagesFree: UInt64?
        public var hugePagesRsvd: UInt64?
        public var hugePagesSurp: UInt64?

        public init(_ m: Meminfo) {
            pageTables = m.pageTables
            secPageTables = m.secPageTables
            shmem = m.shmem
            mapped = m.mapped
            memAvailable = m.memAvailable
            hugePagesTotal = m.hugePagesTotal
            hugePagesFree = m.hugePagesFree
            hugePagesRsvd = m.hugePagesRsvd
            hugePagesSurp = m.hugePagesSurp
        }
    }

    public struct Sampling: Sendable, Codable {
        public var pageTablesSamples: [UInt64]
        public var stable: Bool
        public var spreadBytes: UInt64
        public var milliseconds: Int
        /// Per-CPU vmstat deltas folded before every reading (root); false: PageTables may be
        /// off by the per-CPU threshold times the CPU count.
        public var statRefresh: Bool

        public init(_ s: StableSample) {
            statRefresh = s.statRefresh
            pageTablesSamples = s.pageTablesSamples
            stable = s.stable
            spreadBytes = s.spreadBytes
            milliseconds = s.milliseconds
        }
    }

    /// Three points: before forking (base), workers forked and settled with nothing mapped
    /// (control), and all workers mapped and touched (mapped); and a fourth once every worker
    /// is reaped (after teardown, settled like the base), where a run measured it.
    public struct Points<T: Sendable & Codable>: Sendable, Codable {
        public var base: T
        public var control: T
        public var mapped: T
        public var afterTeardown: T?
    }

    public struct NodeReport: Sendable, Codable {
        public var node: Int
        public var pageTables: Points<UInt64?>
        /// PageTables at mapped − at control on this node; nil when a reading is missing.
        public var attributedBytes: Int64?
        /// Why a PageTables reading of this node is missing (the first point that lacked one).
        public var pageTablesMissing: String?
        /// Pages of the mapping on this node, as the first sampled worker maps them
        /// (numa_maps `N<node>=`); nil when numa_maps was not read (`measured.numa_maps.missing`).
        public var filePages: UInt64?
    }

    /// `/proc/PID/numa_maps` of the sampled workers (the smaps sample), for the mapping.
    public struct NumaMapsReport: Sendable, Codable {
        public var workersSampled: [Int]
        /// One per sampled worker, in the order sampled; empty when `missing`.
        public var workers: [NumaMapsWorker]
        /// Why the reading could not be made (no numa_maps without CONFIG_NUMA, a line the parser
        /// refused, no entry at the mapping's address).
        public var missing: String?

        /// The worker whose pages per node the report gives (`NodeReport.filePages`): the first
        /// sampled, worker 0. One worker, not a sum: they all map the same pages of one file.
        public var reference: NumaMapsWorker? { missing == nil ? workers.first : nil }

        /// Whether every sampled worker maps the same number of pages on each node (they map one
        /// file: a difference means some did not fault everything in).
        public var samePagesPerNode: Bool { workers.allSatisfy { $0.pagesPerNode == workers.first?.pagesPerNode } }
    }

    public struct NumaMapsWorker: Sendable, Codable, Equatable {
        public var worker: Int
        /// The policy numa_maps shows for the mapping: the task policy the worker inherited.
        public var policy: String
        /// Nodes holding some of the mapping's pages, ascending; a node absent holds none.
        public var pagesPerNode: [NodePages]
        /// In units of `kernelPageSizeBytes`.
        public var pages: UInt64
        public var kernelPageSizeBytes: UInt64?
        /// anon, dirty, mapped, mapmax, active, … as numa_maps printed them.
        public var counters: [String: UInt64]

        public init(worker: Int, _ e: NumaMapsEntry) {
            self.worker = worker
            policy = e.policy
            pagesPerNode = e.pagesPerNode.keys.sorted().map { NodePages(node: $0, pages: e.pagesPerNode[$0]!) }
            pages = e.pages
            kernelPageSizeBytes = e.kernelPageSize
            counters = e.counters
        }

        /// Pages on `node`: 0 when numa_maps did not list it.
        public func pages(on node: Int) -> UInt64 { pagesPerNode.first { $0.node == node }?.pages ?? 0 }
    }

    public struct NodePages: Sendable, Codable, Equatable {
        public var node: Int
        public var pages: UInt64

        public init(node: Int, pages: UInt64) {
            self.node = node
            self.pages = pages
        }
    }

    public struct SmapsReport: Sendable, Codable {
        public var workersSampled: [Int]
        /// Per-worker mean of each field of the mapped range's smaps entry, in bytes.
        public var range: [String: UInt64]
        /// Per-worker mean of smaps_rollup, in bytes.
        public var rollup: [String: UInt64]
        public var vmFlags: [String]
    }

    public struct Measured: Sendable, Codable {
        /// PageTables(mapped) − PageTables(base), less the driver's own VmPTE change:
        /// the workers and their mappings.
        public var pageTablesDeltaBytes: Int64
        /// PageTables(control) − PageTables(base), less the driver's VmPTE change: the same
        /// workers before mapping anything.
        public var controlPageTablesDeltaBytes: Int64
        /// Raw minus control: the page tables of the mapping alone.
        public var attributedPageTableBytes: Int64
        public var attributedPerWorkerBytes: Int64
        public var controlPerWorkerBytes: Int64
        /// The driver's own VmPTE at each point; its changes are excluded from the deltas.
        public var driverVmpteBytes: Points<Int64>
        /// Σ VmPTE at the mapped point. Per process: a shared table is counted by each sharer.
        public var vmpteSumBytes: Int64
        public var vmpteControlSumBytes: Int64
        public var vmpteAttributedBytes: Int64
        public var mappingAddress: String
        public var distinctMappingAddresses: Int
        public var meminfo: Points<MeminfoPoint>
        public var sampling: Points<Sampling>
        public var numaNodes: [NodeReport]
        public var smaps: SmapsReport?
        /// PageTables after teardown − at base, less the driver's VmPTE change: what the run
        /// left behind (the verdict fails beyond `teardownNoiseBytes`).
        public var teardownLeakBytes: Int64?
        public var teardownNoiseBytes: Int64?
        /// Where the mapping's pages are; absent when no worker was sampled (`--smaps-workers 0`)
        /// and in reports written before it existed.
        public var numaMaps: NumaMapsReport?
    }

    public struct ModelReport: Sendable, Codable {
        /// The counts of one level ("pte", "pmd", "pud"); nil when the leaf size has no such level.
        public func level(_ name: String) -> LevelCount? { levels.first { $0.level == name } }

        public var expectedPageTableBytes: Int64
        public var unsharedPageTableBytes: Int64
        public var perWorkerBytes: Int64
        public var sharedBytes: Int64
        public var levels: [LevelCount]
        public var reason: String
        public var occupiedRanges: Int
        public var pmdMappedBytes: UInt64
    }

    public struct Stats: Sendable, Codable {
        public var min: UInt64
        public var median: UInt64
        public var p99: UInt64
        public var max: UInt64
        public var mean: UInt64

        public init(_ values: [UInt64]) {
            let v = values.sorted()
            guard !v.isEmpty else {
                min = 0; median = 0; p99 = 0; max = 0; mean = 0
                return
            }
            min = v[0]
            max = v[v.count - 1]
            median = v[v.count / 2]
            p99 = v[Swift.min(v.count - 1, Int((Double(v.count) * 0.99).rounded(.up)) - 1)]
            mean = v.reduce(0, +) / UInt64(v.count)
        }
    }

    public struct Timings: Sendable, Codable {
        /// First fork to every worker settled.
        public var spawnSeconds: Double
        /// Go signal to every worker mapped and touched.
        public var mapTouchSeconds: Double
        /// spawn + map/touch: from the first fork to all workers ready, sampling excluded.
        public var readySeconds: Double
        public var measureSeconds: Double
        public var teardownSeconds: Double
        public var mapNs: Stats
        public var touchNs: Stats
    }
}
