/// The scenario's NUMA placement, in force in the driver from just before the backing file is
/// filled until every worker is forked, then undone.
///
/// Why there: the driver's fallocate allocates every page of a memfd, tmpfs or hugetlbfs file,
/// under the driver's task policy at that moment (the file has no shared policy of its own);
/// forked workers inherit the CPU mask and the memory policy, and with them place what they
/// allocate later: the pages of an anon-shared mapping (whichever worker faults one first) and
/// every page table of their mappings. The driver then gets back its CPU mask as it was and
/// the default memory policy (MPOL_DEFAULT), so that its own reading of /proc is not confined
/// to the workers' nodes.
/// set_mempolicy and sched_setaffinity act on the calling thread, which is the whole driver: it
/// is single-threaded when it forks.
final class NumaBinding {
    let placement: NumaPlacement
    /// The driver's CPUs before `--cpunodebind` narrowed them; nil while nothing is to undo.
    private var savedCPUs: [Int]?
    private var memorySet = false

    init(_ placement: NumaPlacement) {
        self.placement = placement
    }

    var isApplied: Bool { savedCPUs != nil || memorySet }

    /// Applies the placement to this task; on a failure, what was applied is undone first.
    func apply() throws(RunError) {
        guard !placement.isNone else { return }
        do throws(NumaError) {
            if let nodes = placement.cpuNodes {
                let saved = try Numa.schedGetaffinity()
                try Numa.runOnNodeMask(nodes)
                savedCPUs = saved
            }
            switch placement.memory {
            case .bind(let nodes):
                try Numa.setMembind(nodes)
                memorySet = true
            case .interleave(let nodes):
                try Numa.setInterleaveMask(nodes)
                memorySet = true
            case nil: break
            }
        } catch {
            throw restoring(after: .numa(error))
        }
    }

    /// The driver's CPU mask as it was before, and the default memory policy.
    func restore() throws(RunError) {
        do throws(NumaError) {
            if memorySet {
                try Numa.setDefaultPolicy()
                memorySet = false
            }
            if let cpus = savedCPUs {
                try Numa.schedSetaffinity(cpus)
                savedCPUs = nil
            }
        } catch { throw .numa(error) }
    }

    /// For a run that failed while the placement was in force: undoes it, and returns the run's
    /// error, joined by the restore's when that failed too (the driver would otherwise carry
    /// the workers' placement into whatever it runs next).
    func restoring(after error: RunError) -> RunError {
        guard isApplied else { return error }
        do { try restore() } catch let r {
            if case .numa(let e) = r { return .placementNotRestored(after: error, e) }
            return r
        }
        return error
    }
}
