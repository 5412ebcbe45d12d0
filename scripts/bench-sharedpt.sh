#!/usr/bin/env bash
# MAP_SHARED_PT numbers on a patched kernel in QEMU, for the series' cover letter and README:
#   1. PageTables with and without the flag (run --share pt --baseline) at each worker count
#      × 256 MiB of memfd, against the model;
#   2. the time one more worker takes to map and populate 256 MiB with and without sharing
#      (--map-concurrency 1, so each worker populates alone: with the flag every worker after
#      the first only attaches to the tables; without it each fills 128 PTE tables).
#
#   scripts/bench-sharedpt.sh [--backing memfd|anon-shared|dax] [patched|patched-debug|PATH-to-bzImage] [WORKERS...]
#
# Default worker counts: 200 500 1000; default backing memfd. anon-shared: the driver maps
# MAP_SHARED | MAP_ANONYMOUS once and the workers inherit it. dax: a 256 MiB file on the
# guest's ext4 -o dax=always over 320M of pmem, its chunks PTE-mapped (--thp-disable: with
# 2 MiB-aligned blocks DAX would map each by a PMD leaf and need no table, flag or not). Each
# case boots its own guest (no huge pages, no pmem disk but for dax, memory sized for the
# unshared baseline's tables). Prints a summary; every guest's output and JSON report lands
# under $PTSHARE_OUT (default ptshare-results/bench-sharedpt-DATE).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
backing=memfd
if [ "${1:-}" = --backing ]; then
    backing="${2:?--backing needs memfd, anon-shared or dax}"
    shift 2
fi
case "$backing" in
    memfd | anon-shared) pmem=0; extra=() ;;
    dax) pmem=320M; extra=(--thp-disable) ;;
    *) echo "bench-sharedpt: error: --backing $backing: memfd, anon-shared or dax" >&2; exit 1 ;;
esac
kernel="${1:-patched}"
shift || true
counts=("$@")
((${#counts[@]})) || counts=(200 500 1000)
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
out="${PTSHARE_OUT:-ptshare-results/bench-sharedpt-$backing-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"

# One guest, one ptshare command; its output kept, the lines worth a summary copied there.
guest() {
    local name="$1" memory="$2"
    shift 2
    echo "bench-sharedpt: $name: ptshare $*" >&2
    local start=$SECONDS
    if ! "$bin" vm --kernel "$kernel" --hugepages 0 --pmem "$pmem" --memory "$memory" --timeout 1800 --out "$out/$name" \
        -- "$@" --json "/results/$name.json" >"$out/$name.txt" 2>&1; then
        tail -20 "$out/$name.txt" >&2
        echo "bench-sharedpt: error: $name failed; output in $out/$name.txt" >&2
        exit 1
    fi
    {
        echo "== $name ($((SECONDS - start)) s wall, guest boot included)"
        grep -E "^(ptshare run:|attributed|VmPTE|model|baseline|timings|verdict|tables)" "$out/$name.txt" || true
    } >>"$summary"
}

for n in "${counts[@]}"; do
    # The unshared baseline's tables (~513 pages per worker), the workers' own (~64 KiB each),
    # the data and 1 GiB for the kernel and the driver.
    # (dax: plus the pmem, which the guest takes from its RAM.)
    mem_mib=$(((n * 513 * 4 + n * 64) / 1024 + 256 + 1024 + ${pmem%M}))
    guest "pt-$n" "${mem_mib}M" run --backing "$backing" --size 256M --workers "$n" --share pt --baseline ${extra[@]+"${extra[@]}"}
done
guest "extra-pt" 3G run --backing "$backing" --size 256M --workers 20 --share pt --map-concurrency 1 ${extra[@]+"${extra[@]}"}
guest "extra-none" 3G run --backing "$backing" --size 256M --workers 20 --share none --map-concurrency 1 ${extra[@]+"${extra[@]}"}

cat "$summary"
echo "bench-sharedpt: wrote $summary" >&2
