#!/usr/bin/env bash
# The standard benchmark report (docs/benchmarks/): `ptshare bench` in QEMU on the stock and the
# patched kernel, the same sweep on each (10, 100 and 1000 workers x 64 MiB memfd, share none,
# pt, thp and pt+thp, 3 runs a point), the patched kernel again with --fragment (free memory in
# single pages: where shmem THP falls back, MAP_SHARED_PT does not care) and once at 10,000
# workers (pt, thp and pt+thp, 1 run), then `ptshare compare` of stock against patched. Each guest folder holds
# bench.json, summary.md and index.html; the compare goes to stock-vs-patched.md.
#
#   scripts/bench-report.sh [OUT]        (default ptshare-results/bench-report-DATE)
#
# Cost under TCG on 2 cores, kernels cached: see docs/benchmarks/README.md (about 40 min).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
out="${1:-ptshare-results/bench-report-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
for k in stock patched; do scripts/kernel-build.sh "$k" >/dev/null; done
sweep=(--workers 10,100,1000 --size 64M --share none,pt,thp,pt+thp --backing memfd --repeat 3 --tables on)
guest() {
    local name="$1" kernel="$2"
    shift 2
    local t0=$SECONDS rc=0
    echo "scripts/bench-report.sh: $name: ptshare vm --kernel $kernel -- bench $*" >&2
    # 8 GiB: 10,000 workers' processes and, unshared, their tables; an hour for TCG.
    "$bin" vm --kernel "$kernel" --memory 8G --timeout 3600 --out "$out/$name" -- bench "$@" --out bench || rc=$?
    echo "scripts/bench-report.sh: $name: exit $rc in $((SECONDS - t0)) s" >&2
    echo "| $name | \`ptshare vm --kernel $kernel --memory 8G -- bench $*\` | $rc | $((SECONDS - t0)) s |" >>"$out/runs.md"
}
echo "| folder | command | exit | time |" >"$out/runs.md"
echo "| --- | --- | --- | --- |" >>"$out/runs.md"
guest stock stock "${sweep[@]}"
guest patched patched "${sweep[@]}"
guest patched-fragment patched --workers 100,1000 --size 64M --share none,pt,thp,pt+thp --backing memfd --repeat 1 \
    --tables on --fragment
guest patched-10000 patched --workers 10000 --size 64M --share pt,thp,pt+thp --backing memfd --repeat 1 --tables on \
    --phase-timeout 3000
rc=0
"$bin" compare "$out/stock/bench" "$out/patched/bench" --markdown >"$out/stock-vs-patched.md" || rc=$?
echo "scripts/bench-report.sh: compare stock patched: exit $rc (1: a regression, which the patched kernel must not show on share none)" >&2
echo "scripts/bench-report.sh: wrote $out (runs.md, */bench/{bench.json,summary.md,index.html}, stock-vs-patched.md)" >&2
