#!/usr/bin/env bash
# CI's benchmark gate: a small sweep in the guest on the patched kernel (10 and 100 workers x
# 32 MiB memfd, share none, pt and thp, one run each, the probe module's census on), compared by
# `ptshare compare` with the committed baseline docs/benchmarks/ci-baseline/bench.json on the
# metrics that are deterministic there: page_table_bytes and distinct_pte_tables (bench maps
# each point in a 1 GiB span of its own, so no other mapping's tables come and go with ASLR).
# Fails on a change beyond 1 % in the bad direction (the flag sharing less, THP mapping fewer
# chunks by PMD, the harness attributing more) and on a point of the baseline that did not run
# (--fail-on-missing: the flag refused, a worker died). Times are not gated: they are a shared
# machine's. Cost: about 1 min under TCG with the kernel and the static build cached.
#
#   scripts/bench-gate.sh [--kernel K] [OUT]   run and compare (default OUT ptshare-results/ci-bench)
#   scripts/bench-gate.sh --update [OUT]       run, then copy the new bench.json over the baseline:
#                                              for an intended change, committed with its reason
# --kernel: patched (default), or a bzImage built from the patched tree (a mutant's, say).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
update=0
kernel=patched
while (($#)); do
    case "$1" in
        --update) update=1; shift ;;
        --kernel) kernel="$2"; shift 2 ;;
        *) break ;;
    esac
done
out="${1:-ptshare-results/ci-bench}"
baseline=docs/benchmarks/ci-baseline/bench.json
rm -rf "$out"
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
echo "scripts/bench-gate.sh: ptshare vm --kernel $kernel -- bench (results in $out)" >&2
# bench exits 1 when a sample missed its model or its teardown check: said here, but the gate
# is the comparison below (the suite judges the verdicts; the teardown check allows 0 B and
# has caught 8 KiB left after 1000+ workers on stock too, see docs/benchmarks). Anything
# else (the VM did not run, no bench.json) fails the gate.
rc=0
"$bin" vm --kernel "$kernel" --timeout 900 --out "$out" -- bench --workers 10,100 --size 32M \
    --share none,pt,thp --backing memfd --repeat 1 --tables on --out bench || rc=$?
if [ "$rc" != 0 ]; then
    if [ "$rc" != 1 ] || [ ! -f "$out/bench/bench.json" ]; then
        echo "scripts/bench-gate.sh: error: the guest bench exited $rc without a report" >&2
        exit 1
    fi
    echo "scripts/bench-gate.sh: warning: the guest bench exited 1 (a sample missed its model or teardown check):" >&2
    grep -F "(fail" "$out/bench/summary.md" >&2 || true
fi
if [ "$update" = 1 ]; then
    mkdir -p "$(dirname "$baseline")"
    cp "$out/bench/bench.json" "$baseline"
    echo "scripts/bench-gate.sh: wrote $baseline" >&2
    exit 0
fi
echo "scripts/bench-gate.sh: ptshare compare $baseline $out/bench" >&2
exec "$bin" compare "$baseline" "$out/bench" --metrics page_table_bytes,distinct_pte_tables --fail-above 1 \
    --fail-on-missing
