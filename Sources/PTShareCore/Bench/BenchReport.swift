/// The versioned JSON document of a sweep (`bench.json`). Every point holds every sample,
/// and every sample its whole run report (schema ptshare.run.v1, with each worker's times).
public struct BenchReport: Sendable, Codable {
    public static let schemaName = "ptshare.bench.v1"

    public var schema = BenchReport.schemaName
    public var tool: RunReport.Tool
    public var kernel: Kernel
    public var machine: Machine
    /// The command line as given, for the report's header and to rerun it.
    public var command: [String]
    /// UTC, ISO 8601, when the sweep started.
    public var started: String
    public var elapsedSeconds: Double
    public var spec: Spec
    /// The fragmentation held while the sweep ran (`--fragment`).
    public var fragmentation: Fragmentation?
    public var points: [Point]
    /// Combinations of the lists that cannot run, each with the reason.
    public var notApplicable: [NotApplicable]

    public struct Kernel: Sendable, Codable {
        public var release: String
        public var machine: String
        /// shmem_enabled as the sweep found it (restored after every thp point).
        public var shmemThpAtStart: String?
    }

    public struct Machine: Sendable, Codable {
        public var onlineCpus: Int
        public var memTotalBytes: UInt64?
        public var pidMax: Int?
        /// kvm, tcg, or nil natively; set by the guest's init through $PTSHARE_ACCEL.
        public var accelerator: String?
    }

    public struct Spec: Sendable, Codable {
        public var workers: [Int]
        public var sizesBytes: [UInt64]
        public var shares: [String]
        public var backings: [String]
        public var repeats: Int
        public var fragment: Bool
        public var touch: String
        public var mapConcurrency: Int
    }

    public struct Fragmentation: Sendable, Codable {
        /// Anonymous memory the holder touched page by page.
        public var heldBytes: UInt64
        /// Of it, single 4 KiB pages given back, one of every `stride`: free memory in holes.
        public var releasedBytes: UInt64
        public var stride: UInt64
        /// What the holder keeps is mlocked (MLOCK_ONFAULT).
        public var locked: Bool
        public var memFreeBeforeBytes: UInt64?
        public var memFreeAfterBytes: UInt64?
        /// /proc/buddyinfo's free blocks of order 9 or more (2 MiB and up) before and after.
        public var freeHugeBlocksBefore: UInt64?
        public var freeHugeBlocksAfter: UInt64?
        /// The holder was gone when the sweep ended (the OOM killer?): later points ran on
        /// unfragmented memory.
        public var holderDiedDuringSweep: Bool?
        /// true when vm.compact_unevictable_allowed could not be set to 0: compaction may
        /// migrate the held pages and rebuild 2 MiB blocks.
        public var compactionMayMoveHeldPages: Bool?
    }

    public struct NotApplicable: Sendable, Codable {
        public var point: String
        public var reason: String
    }

    public struct Point: Sendable, Codable {
        public var label: String
        public var backing: String
        public var sizeBytes: UInt64
        public var workers: Int
        public var share: String
        /// Why the point did not run (the flag unsupported, no root for thp): a SKIP, never a
        /// pass; the samples are then empty.
        public var skipped: String?
        public var samples: [Sample]
    }

    public struct Sample: Sendable, Codable {
        public var repeatIndex: Int
        /// nil when the run did not complete (`error`).
        public var metrics: Metrics?
        /// /proc/vmstat's THP counters over the run, when vmstat has them.
        public var thpCounters: ThpCounters?
        /// Why the run failed to complete (a worker died, a timeout): the point's sample
        /// carries no metrics worth comparing and the sweep's exit status says so.
        public var error: String?
        public var run: RunReport?
    }

    /// What one run measured, in the names `compare` uses.
    public struct Metrics: Sendable, Codable {
        public var attributedPageTableBytes: Int64
        public var modelPageTableBytes: Int64
        public var modelUnsharedPageTableBytes: Int64
        public var distinctPteTables: Int?
        public var distinctPmdTables: Int?
        /// Bytes per worker mapped by PMD leaves (THP): no PTE table there.
        public var pmdMappedBytes: UInt64
        public var spawnSeconds: Double
        public var mapTouchSeconds: Double
        public var teardownSeconds: Double
        public var mapNs: Percentiles
        public var touchNs: Percentiles
        /// thp_file_alloc / (thp_file_alloc + thp_file_fallback) over the run, in percent;
        /// nil when no huge folio was attempted.
        public var thpSuccessPercent: Double?
        public var verdict: VerdictStatus
        public var reason: String
    }

    /// Deltas of /proc/vmstat over one run: shmem allocates file THPs (thp_file_*), a fault in
    /// an anonymous or private range anonymous ones (thp_fault_*).
    public struct ThpCounters: Sendable, Codable, Equatable {
        public var thpFileAlloc: UInt64?
        public var thpFileFallback: UInt64?
        public var thpFaultAlloc: UInt64?
        public var thpFaultFallback: UInt64?
    }

    /// From an HdrHistogram of the workers' times (3 significant digits).
    public struct Percentiles: Sendable, Codable, Equatable {
        public var p50: UInt64
        public var p90: UInt64
        public var p99: UInt64
        public var p999: UInt64
        public var max: UInt64
        public var count: UInt64
    }
}

extension BenchReport.Point {
    /// The metrics of the samples that completed.
    public var completed: [BenchReport.Metrics] { samples.compactMap(\.metrics) }
}
