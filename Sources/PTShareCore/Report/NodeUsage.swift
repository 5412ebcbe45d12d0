/// A reading that could not be made, and why: reported, never replaced by a guess.
public struct MissingReading: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// One NUMA node's share of a run: the mapping's page tables and its pages on that node.
public struct NodeUsage: Sendable, Equatable {
    public var node: Int
    /// PageTables at *mapped* − at *control* from the node's meminfo: the mapping's page tables
    /// allocated there (the driver's own change is not taken out per node).
    public var pageTableBytes: Result<Int64, MissingReading>
    /// Pages of the mapping on this node as the first sampled worker maps them (numa_maps
    /// `N<node>=`). One worker, not a sum: every worker maps the same pages of one file, so a sum
    /// would count each page once per worker.
    public var filePages: Result<UInt64, MissingReading>
    /// `filePages` times the kernel page size numa_maps gave.
    public var fileBytes: Result<UInt64, MissingReading>
}

extension RunReport {
    /// Per NUMA node (those under /sys/devices/system/node when the run started), the page-table
    /// bytes attributed to the mapping and the mapping's pages there. A suite test judges
    /// placement from this (`--membind 1`: both on node 1), and reports a missing reading's
    /// reason instead of a verdict.
    public func nodeUsage() -> [NodeUsage] {
        let first: Result<NumaMapsWorker, MissingReading>
        if let nm = measured.numaMaps {
            if let why = nm.missing {
                first = .failure(MissingReading("numa_maps: \(why)"))
            } else if let w = nm.workers.first {
                first = .success(w)
            } else {
                first = .failure(MissingReading("numa_maps: no worker sampled"))
            }
        } else {
            first = .failure(MissingReading("numa_maps not read: no worker sampled (--smaps-workers 0)"))
        }
        return measured.numaNodes.map { n in
            let tables: Result<Int64, MissingReading> =
                n.attributedBytes.map { .success($0) }
                ?? .failure(MissingReading(n.pageTablesMissing ?? "node \(n.node): PageTables not read"))
            let pages = first.map { $0.pages(on: n.node) }
            let bytes = first.flatMap { (w) -> Result<UInt64, MissingReading> in
                let p = w.pages(on: n.node)
                if p == 0 { return .success(0) }
                guard let size = w.kernelPageSizeBytes else {
                    return .failure(MissingReading("numa_maps of worker \(w.worker): pages without kernelpagesize_kB"))
                }
                return .success(p * size)
            }
            return NodeUsage(node: n.node, pageTableBytes: tables, filePages: pages, fileBytes: bytes)
        }
    }
}
