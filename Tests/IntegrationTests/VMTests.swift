import Foundation
import Glibc
import PTShareCore
import Testing

/// `ptshare vm` on bad input: each a clear error, nothing left running.
@Suite(.serialized)
struct VMTests {
    @Test func missingKernelFile() throws {
        let d = try Driver.run(["vm", "--kernel", "/nonexistent/bzImage", "--", "probe"])
        #expect(d.status == 3)
        #expect(
            d.stderr.contains(
                "ptshare: error: --kernel /nonexistent/bzImage: no such file (expected stock, patched, patched-debug or a bzImage)"
            ), "\(d.stderr)")
    }

    @Test func kernelWithoutTheNeededConfig() throws {
        let dir = tempPath("kernel")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("not really a kernel".utf8).write(to: URL(fileURLWithPath: dir + "/bzImage"))
        try "# CONFIG_ADVISE_SYSCALLS is not set\nCONFIG_NR_CPUS=2\nCONFIG_HUGETLBFS=y\n".write(
            toFile: dir + "/config", atomically: true, encoding: .utf8)
        let d = try Driver.run(["vm", "--kernel", dir + "/bzImage", "--", "probe"])
        #expect(d.status == 3)
        #expect(d.stderr.contains("\(dir)/config lacks what the guest needs (kmod/ptshare.config):"), "\(d.stderr)")
        #expect(d.stderr.contains("CONFIG_ADVISE_SYSCALLS=y (got: not set)"))
        #expect(d.stderr.contains("CONFIG_NR_CPUS=64 (got: 2)"))
    }

    @Test func tooLittleMemoryForTheHugePages() throws {
        let d = try Driver.run(["vm", "--memory", "1G", "--hugepages", "600", "--", "suite"])
        #expect(d.status == 3)
        #expect(
            d.stderr.contains(
                "--memory 1G: too little for 600 huge pages (1200M), 64M of pmem plus 512M for the kernel and the workers"
            ),
            "\(d.stderr)")
    }

    @Test func noGuestCommandIsAUsageError() throws {
        let d = try Driver.run(["vm", "--kernel", "stock"])
        #expect(d.status == 64)
        #expect(d.stderr.contains("no guest command: give one after --, e.g. ptshare vm -- suite --ktap"))
    }

    @Test func guestThatDoesNotFinishIsKilled() throws {
        guard let kernel = cachedTestKernel() else {
            try Test.cancel(
                "no cached stock or patched kernel yet (scripts/kernel-build.sh builds one; the VM stage of scripts/test.sh runs after these tests)"
            )
        }
        guard VirtualMachineProbe.qemuOnPath else { try Test.cancel("qemu-system-x86_64 is not installed") }
        let out = tempPath("vm-timeout")
        let d = try Driver.run(
            ["vm", "--kernel", kernel, "--accel", "tcg", "--timeout", "2", "--out", out, "--", "probe"],
            timeoutSeconds: 600)
        #expect(d.status == 3)
        #expect(d.stderr.contains("the guest did not finish within 2 s; QEMU killed."), "\(d.stderr)")
        #expect(d.stderr.contains("results (incomplete) in \(out)"))
        #expect(!FileManager.default.fileExists(atPath: out + "/exit-status"))
        // No QEMU of this run is left: none has the results folder on its command line.
        let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let left = procs.filter { pid in
            guard Int32(pid) != nil,
                let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
            else { return false }
            return cmd.contains("qemu-system") && cmd.contains(out)
        }
        #expect(left.isEmpty, "QEMU left running: \(left)")
    }

    /// A completed stock build in the cache, else a patched one (CI builds no stock kernel; any
    /// kernel that boots serves here), if any.
    func cachedTestKernel() -> String? {
        let env = ProcessInfo.processInfo.environment
        let cache =
            env["PTSHARE_CACHE"]
            ?? ((env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/ptshare")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: cache + "/kernel")) ?? []
        for prefix in ["stock-", "patched-"] {
            let dirs = names.filter { $0.hasPrefix(prefix) && !$0.hasPrefix("patched-debug-") }
                .map { cache + "/kernel/" + $0 }
                .filter { FileManager.default.fileExists(atPath: $0 + "/ok") }
            if let d = dirs.first { return d + "/bzImage" }
        }
        return nil
    }
}

enum VirtualMachineProbe {
    static var qemuOnPath: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/qemu-system-x86_64")
        }
    }
}
