import Foundation
import Glibc
import PTShareCore
import Testing

/// A tiny native sweep through the built binary: the three files, their contents, and
/// `compare` passing a folder against itself and failing it against a doctored copy.
@Suite(.serialized)
struct BenchIntegrationTests {
    @Test func tinySweepWritesTheReportAndCompareGates() throws {
        let out = tempPath("bench")
        // thp needs root to set shmem_enabled; without it the point is a SKIP, which the
        // report must say (checked below either way).
        let d = try Driver.run([
            "bench", "--workers", "2,4", "--size", "8M", "--share", "none,thp", "--repeat", "2", "--out", out,
        ])
        // 1 only when a run missed its model on this busy host; the files are written either way.
        #expect(d.status == 0 || d.status == 1, "stderr: \(d.stderr)\nstdout: \(d.stdout)")
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/bench.json"))
        let r = try JSONOutput.decodeBench(Array(data))
        #expect(r.schema == "ptshare.bench.v1")
        #expect(
            r.points.map(\.label) == [
                "memfd 8M × 2, share none", "memfd 8M × 2, share thp", "memfd 8M × 4, share none",
                "memfd 8M × 4, share thp",
            ])
        for p in r.points where p.share == "none" {
            #expect(p.samples.count == 2, "\(p.label)")
            for s in p.samples {
                let m = try #require(s.metrics, "\(p.label): \(s.error ?? "")")
                // Every raw sample: each worker's times, in the run report kept whole.
                #expect(s.run?.workerTimes?.touchNs.count == p.workers)
                #expect(m.touchNs.count == UInt64(p.workers))
                #expect(m.modelUnsharedPageTableBytes > 0)
                #expect(s.run?.scenario.address == "same-1G")
            }
        }
        for p in r.points where p.share == "thp" {
            if isRoot {
                #expect(p.skipped == nil, "\(p.label): \(p.skipped ?? "")")
            } else {
                #expect(p.skipped?.contains("(run as root)") == true)
            }
        }
        let summary = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        #expect(summary.contains("| memfd | 8M | 4 |"), "\(summary)")
        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        #expect(html.contains("<svg") && !html.lowercased().contains("nan"))

        let same = try Driver.run(["compare", out, out, "--fail-above", "1", "--metrics", "page_table_bytes"])
        #expect(same.status == 0, "\(same.stderr)\n\(same.stdout)")
        #expect(same.stdout.contains("regressions: none"), "\(same.stdout)")
        // The same sweep with the 4-worker unshared point's tables doubled: a regression.
        var worse = r
        let i = try #require(worse.points.firstIndex { $0.label == "memfd 8M × 4, share none" })
        for j in worse.points[i].samples.indices {
            worse.points[i].samples[j].metrics?.attributedPageTableBytes *= 2
        }
        let worsePath = tempPath("worse.json")
        try Data(try JSONOutput.encode(worse)).write(to: URL(fileURLWithPath: worsePath))
        let bad = try Driver.run(["compare", out, worsePath, "--fail-above", "1", "--metrics", "page_table_bytes"])
        #expect(bad.status == 1, "\(bad.stderr)\n\(bad.stdout)")
        #expect(bad.stdout.contains("memfd 8M × 4, share none: page_table_bytes +100.0%"), "\(bad.stdout)")
        let usage = try Driver.run(["compare", out, out, "--threshold", "bogus=1"])
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("--threshold bogus=1: unknown metric \"bogus\""), "\(usage.stderr)")
    }
}
