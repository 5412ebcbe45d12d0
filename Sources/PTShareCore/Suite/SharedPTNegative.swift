import CPTShare
import Glibc

/// sharedpt.negative.*: mmap calls that MAP_SHARED_VALIDATE | MAP_SHARED_PT must refuse with
/// EINVAL, and the same calls with plain MAP_SHARED (or MAP_PRIVATE), which must ignore the bit
/// as they ignore every flag they do not know: map, without `sp`. Made by this process; a wrongly
/// accepted or refused mapping fails the test.
enum SharedPTNegative {
    static let chunk = Geometry.pmdSize

    struct Case {
        var what: String
        var address: UInt64 = 0
        var length: UInt64 = Geometry.pmdSize
        var flags: Int32
        var fd: Int32
        var offset: UInt64 = 0
        /// The same call without the bit, when stripping it is not enough (MAP_SHARED_VALIDATE
        /// refuses MAP_FIXED_NOREPLACE without the flag on every kernel).
        var controlFlags: Int32? = nil
        /// A validated call that must map, with `sp`: what makes its refused siblings refused
        /// for the rule they break and not for the kind of mapping.
        var accepted = false

        /// Plain MAP_SHARED or MAP_PRIVATE: the bit is an unknown flag there.
        var ignoresFlag: Bool { flags & 0x0f != ptshare_MAP_SHARED_VALIDATE }
    }

    /// Gate, a 4 MiB memfd, then every validated case must fail with EINVAL and every plain one
    /// map without sharing.
    static func run(_ name: String, _ o: SuiteOptions, _ cases: (Int32, Int32) throws(SharedPTError) -> [Case])
        -> KTAPResult
    {
        if let r = Suite.needsSharedPT(name, o) { return r }
        var c = Checks(name)
        do {
            let f = try SharedPTFixture(size: 2 * chunk, flag: o.mapSharedPTValue)
            let flag = Int32(bitPattern: o.mapSharedPTValue)
            for k in try cases(f.fd, flag) { expect(k, flag: flag, &c) }
        } catch {
            c.expect(false, "\(error)")
        }
        return c.result()
    }

    /// The case without the flag must map (else it proves nothing); with it, the validated form
    /// must fail with EINVAL and the plain form map without `sp` in its smaps VmFlags.
    static func expect(_ k: Case, flag: Int32, _ c: inout Checks) {
        let desc =
            "\(k.what): mmap(\(hex(k.address)), \(ByteSize(k.length)), flags \(hex(UInt64(UInt32(bitPattern: k.flags)))), "
            + "offset \(ByteSize(k.offset)))"
        if let why = control(k, flag: flag) {
            c.expect(false, "\(desc): without the flag it fails too (\(why)), so this case proves nothing")
            return
        }
        if k.ignoresFlag || k.accepted {
            expectIgnored(k, desc, &c, shared: k.accepted)
            return
        }
        do {
            let got = try Sys.mmap(
                k.address, k.length, prot: PROT_READ | PROT_WRITE, flags: k.flags, fd: k.fd, offset: k.offset)
            try? Sys.munmap(got, k.length)
            c.expect(false, "\(desc): succeeded at \(hex(got)), expected EINVAL")
        } catch {
            c.expect(
                error.errno == EINVAL,
                "\(desc): \(error.errnoName)" + (error.errno == EINVAL ? "" : ", expected EINVAL"))
        }
    }

    /// Plain MAP_SHARED (or MAP_PRIVATE) with the bit: an old binary that set it by accident
    /// must keep working, so the call maps, and not with shared tables (no `sp`). `shared`: an
    /// accepted validated call, which maps with `sp`.
    static func expectIgnored(_ k: Case, _ desc: String, _ c: inout Checks, shared: Bool = false) {
        let got: UInt64
        do {
            got = try Sys.mmap(
                k.address, k.length, prot: PROT_READ | PROT_WRITE, flags: k.flags, fd: k.fd, offset: k.offset)
        } catch {
            c.expect(
                false,
                "\(desc): \(error.errnoName), "
                    + (shared
                        ? "expected it to map with the flag"
                        : "expected the bit to be ignored (only MAP_SHARED_VALIDATE asks)"))
            return
        }
        defer { try? Sys.munmap(got, k.length) }
        do {
            guard let e = try ProcFS.smaps(getpid()).first(where: { $0.contains(got) }) else {
                c.expect(false, "\(desc): mapped at \(hex(got)), but smaps has no such mapping")
                return
            }
            let sp = e.vmFlags.contains("sp")
            let flags = "\(desc): mapped at \(hex(got)), VmFlags \(e.vmFlags.joined(separator: " "))"
            if shared {
                c.expect(sp, flags + (sp ? " (sp: sharing)" : ": no sp, the flag was not honoured"))
            } else {
                c.expect(
                    !sp, flags + (sp ? ": sp, the bit was honoured without MAP_SHARED_VALIDATE" : " (the bit ignored)"))
            }
        } catch {
            c.expect(false, "\(desc): mapped at \(hex(got)), smaps unreadable: \(error)")
        }
    }

    /// nil when the case maps without the MAP_SHARED_PT bit (unmapped again at once); else the errno.
    static func control(_ k: Case, flag: Int32) -> String? {
        do {
            let got = try Sys.mmap(
                k.address, k.length, prot: PROT_READ | PROT_WRITE, flags: k.controlFlags ?? (k.flags & ~flag),
                fd: k.fd, offset: k.offset)
            try? Sys.munmap(got, k.length)
            return nil
        } catch {
            return error.errnoName
        }
    }

    /// Both forms that map shared: MAP_SHARED | flag (the bit ignored) and
    /// MAP_SHARED_VALIDATE | flag (refused).
    static func both(_ what: String, _ flag: Int32, _ make: (String, Int32) -> Case) -> [Case] {
        [
            make("\(what), MAP_SHARED", MAP_SHARED | flag),
            make("\(what), MAP_SHARED_VALIDATE", ptshare_MAP_SHARED_VALIDATE | flag),
        ]
    }

    static func privateMapping(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.negative.private", o) { fd, flag in
            // MAP_SHARED_VALIDATE cannot be private: the bit is an unknown flag to MAP_PRIVATE.
            [Case(what: "MAP_PRIVATE | MAP_SHARED_PT of a memfd", flags: MAP_PRIVATE | flag, fd: fd)]
        }
    }

    /// Anonymous shared memory takes the flag (sharedpt.anon.*), under the same alignment rules:
    /// 2 MiB maps with `sp`, a length off the 2 MiB grid is EINVAL. Plain MAP_SHARED and
    /// MAP_PRIVATE ignore the bit.
    /// The validated case's control is plain MAP_SHARED: MAP_SHARED_VALIDATE | MAP_ANONYMOUS
    /// without the flag is EINVAL on every kernel.
    static func anonymous(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.negative.anonymous", o) { _, flag in
            let anon = MAP_ANONYMOUS | flag
            return [
                Case(what: "MAP_ANONYMOUS, MAP_SHARED", flags: MAP_SHARED | anon, fd: -1),
                Case(what: "MAP_ANONYMOUS, MAP_PRIVATE", flags: MAP_PRIVATE | anon, fd: -1),
                Case(
                    what: "MAP_ANONYMOUS, MAP_SHARED_VALIDATE, length 2M (accepted)",
                    flags: ptshare_MAP_SHARED_VALIDATE | anon, fd: -1, controlFlags: MAP_SHARED | MAP_ANONYMOUS,
                    accepted: true),
                Case(
                    what: "MAP_ANONYMOUS, MAP_SHARED_VALIDATE, length 2M + 4K", length: chunk + Geometry.page,
                    flags: ptshare_MAP_SHARED_VALIDATE | anon, fd: -1, controlFlags: MAP_SHARED | MAP_ANONYMOUS),
            ]
        }
    }

    static func misalignedAddress(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.negative.misaligned_address", o) { fd, flag throws(SharedPTError) in
            let base: UInt64
            do throws(SystemCallError) {
                base = try AddressPlanner.freeRange(size: 2 * chunk, alignment: chunk)
            } catch { throw .system(error) }
            let at = base + Geometry.page
            // MAP_FIXED could replace a mapping that appeared in the range since it was found
            // free: the fixed cases are MAP_FIXED_NOREPLACE. MAP_SHARED_VALIDATE takes it with
            // the flag only, so its control is plain MAP_SHARED.
            return both("hint \(hex(at))", flag) { w, f in Case(what: w, address: at, flags: f, fd: fd) }
                + both("MAP_FIXED_NOREPLACE at \(hex(at))", flag) { w, f in
                    Case(
                        what: w, address: at, flags: f | ptshare_MAP_FIXED_NOREPLACE, fd: fd,
                        controlFlags: MAP_SHARED | ptshare_MAP_FIXED_NOREPLACE)
                }
        }
    }

    static func misalignedLength(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.negative.misaligned_length", o) { fd, flag in
            both("length 2M + 4K", flag) { w, f in Case(what: w, length: chunk + Geometry.page, flags: f, fd: fd) }
                + both("length 1M", flag) { w, f in Case(what: w, length: chunk / 2, flags: f, fd: fd) }
        }
    }

    static func misalignedOffset(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.negative.misaligned_offset", o) { fd, flag in
            both("offset 4K", flag) { w, f in Case(what: w, flags: f, fd: fd, offset: Geometry.page) }
                + both("offset 1M", flag) { w, f in Case(what: w, flags: f, fd: fd, offset: chunk / 2) }
        }
    }

    /// A hugetlbfs file and a regular file on a file system that is neither shmem nor hugetlbfs
    /// (in the guest, the ext4 on /dev/pmem0 that init mounts at /mnt/pmem). A kind that cannot
    /// be made is noted and the other still runs, but the test then ends as SKIP, not as a pass.
    static func nonShmem(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.negative.non_shmem"
        if let r = Suite.needsSharedPT(name, o) { return r }
        var c = Checks(name)
        let flag = Int32(bitPattern: o.mapSharedPTValue)
        let mounts: [MountEntry]
        do { mounts = try ProcFS.mounts() } catch {
            return KTAPResult(name: name, status: .skip("no non-shmem file to map: \(error)"))
        }
        var files: [(String, Int32)] = []
        defer { for (_, fd) in files { Sys.close(fd) } }
        var missing: [String] = []
        let made = [
            ("hugetlbfs file", hugetlbFile(mounts)),
            (
                "regular file",
                regularFile(candidates: regularFileCandidates(outDirectory: o.outDirectory, mounts: mounts))
            ),
        ]
        for (what, result) in made {
            switch result {
            case .success(let f):
                files.append(f)
                c.note(
                    "\(what): \(f.0), "
                        + (Mounts.mountPoint(containing: f.0, in: mounts).map(describe) ?? "mount unknown"))
            case .failure(let why): missing.append("\(what): \(why)")
            }
        }
        for (path, fd) in files {
            for k in both(path, flag, { w, f in Case(what: w, flags: f, fd: fd) }) { expect(k, flag: flag, &c) }
        }
        if !missing.isEmpty {
            c.unproven("not every kind of non-shmem file could be made: " + missing.joined(separator: "; "))
        }
        return c.result()
    }

    static func describe(_ m: MountEntry) -> String { "\(m.fsType) from \(m.source) at \(m.mountPoint)" }

    /// Where to try the regular file: the results folder and the usual scratch directories,
    /// then every writable mount of a block device whose type is not one regularFile rules out
    /// anyway. In the guest only the last kind can work: / is the initramfs, /tmp tmpfs, and
    /// the 9p results share (no cache) can neither resize an unlinked file (ENOENT) nor map one
    /// shared and writable.
    static func regularFileCandidates(outDirectory: String, mounts: [MountEntry]) -> [String] {
        var dirs = [outDirectory, "/var/tmp", "/tmp", "/root"]
        for m in mounts
        where m.source.hasPrefix("/dev/") && m.option("ro") == nil
            && !["tmpfs", "ramfs", "hugetlbfs", "9p", "devtmpfs"].contains(m.fsType) && !dirs.contains(m.mountPoint)
        {
            dirs.append(m.mountPoint)
        }
        return dirs
    }

    /// An unlinked 2 MiB file on a 2 MiB-page hugetlbfs with a huge page to spare.
    static func hugetlbFile(_ mounts: [MountEntry]) -> Result<(String, Int32), ValidationMessage> {
        guard
            let m = mounts.first(where: {
                $0.fsType == "hugetlbfs" && ($0.option("pagesize").map { $0 == "2M" } ?? true)
            })
        else { return .failure(.init("no hugetlbfs with 2M pages is mounted")) }
        do {
            try BackingFile.checkHugePages(
                pool: "/sys/kernel/mm/hugepages/hugepages-2048kB", pageSize: chunk, size: chunk)
        } catch {
            return .failure(.init("hugetlbfs at \(m.mountPoint) not used: \(error)"))
        }
        return create(in: m.mountPoint)
    }

    /// An unlinked 2 MiB file in the first candidate directory that is not on tmpfs, ramfs or
    /// hugetlbfs, is not a DAX file, and maps MAP_SHARED.
    static func regularFile(candidates: [String]) -> Result<(String, Int32), ValidationMessage> {
        var tried: [String] = []
        for dir in candidates {
            guard let fs = try? Sys.statfs(dir) else {
                tried.append("\(dir) (not there)")
                continue
            }
            if fs.type == ptshare_TMPFS_MAGIC || fs.type == ptshare_RAMFS_MAGIC || fs.type == ptshare_HUGETLBFS_MAGIC {
                tried.append("\(dir) (f_type \(hex(UInt64(UInt(bitPattern: fs.type)))))")
                continue
            }
            switch create(in: dir) {
            case .success(let f):
                // A DAX file takes the flag (series patch 10): it is not what this case is about.
                if (try? Sys.isDAX(f.1, path: f.0)) == true {
                    tried.append("\(dir) (DAX: takes the flag)")
                    Sys.close(f.1)
                    continue
                }
                // A file system that refuses shared writable mappings (9p without a cache) would
                // make EINVAL prove nothing.
                let k = Case(what: f.0, flags: MAP_SHARED, fd: f.1)
                if let why = control(k, flag: 0) {
                    tried.append("\(dir) (plain MAP_SHARED fails: \(why))")
                    Sys.close(f.1)
                    continue
                }
                return .success(f)
            case .failure(let why): tried.append(why.description)
            }
        }
        return .failure(
            .init(
                "no writable directory off tmpfs/ramfs/hugetlbfs that maps MAP_SHARED among "
                    + tried.joined(separator: ", ")))
    }

    static func create(in dir: String) -> Result<(String, Int32), ValidationMessage> {
        let path = "\(dir)/ptshare-sharedpt.\(getpid()).data"
        do {
            let fd = try Sys.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC)
            try? Sys.unlink(path)
            do { try Sys.ftruncate(fd, chunk, path: path) } catch {
                Sys.close(fd)
                return .failure(.init("\(error)"))
            }
            return .success((path, fd))
        } catch {
            return .failure(.init("\(dir): \(error)"))
        }
    }
}
