#!/usr/bin/env bash
# The scale benchmark of the series (kmod/patches/README.md, "Scale"): in QEMU, `ptshare scale`
# on a 256 MiB memfd with MAP_SHARED_PT at 1 to 10,000 sharers, and with plain MAP_SHARED at up
# to 1,000 (each plain sharer has 512 KiB of PTE tables of its own: 10,000 would need 5 GiB).
#
#   scripts/bench-scale.sh [patched|patched-debug|PATH-to-bzImage] [SHARED-COUNTS [PLAIN-COUNTS]]
#
# Counts are comma-separated (default 1,10,100,1000,10000 and 1,10,100,1000). Each mode boots its
# own guest (8 GiB, no huge pages, no pmem disk, 2 vCPUs). Output and JSON under $PTSHARE_OUT
# (default ptshare-results/bench-scale-DATE); the tables are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
kernel="${1:-patched}"
shared="${2:-1,10,100,1000,10000}"
plain="${3:-1,10,100,1000}"
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
out="${PTSHARE_OUT:-ptshare-results/bench-scale-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
for mode in shared plain; do
    if [ $mode = shared ]; then counts="$shared" extra=(); else counts="$plain" extra=(--plain); fi
    echo "bench-scale: $mode: ptshare scale --sharers $counts ${extra[*]}" >&2
    start=$SECONDS
    if ! "$bin" vm --kernel "$kernel" --hugepages 0 --pmem 0 --memory 8G --timeout 3600 --out "$out/$mode" \
        -- scale --size 256M --sharers "$counts" "${extra[@]}" --json "/results/$mode.json" >"$out/$mode.txt" 2>&1; then
        tail -20 "$out/$mode.txt" >&2
        echo "bench-scale: error: $mode failed; output in $out/$mode.txt" >&2
        exit 1
    fi
    echo "bench-scale: $mode: $((SECONDS - start)) s wall, guest boot included" >&2
done
for mode in shared plain; do grep -E "^(\||MAP_SHARED|exit of)" "$out/$mode.txt"; echo; done
