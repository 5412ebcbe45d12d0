#!/usr/bin/env bash
# The native benchmark of the core issue, on the running kernel: a static release ptshare,
# 1000 workers x 64 MiB memfd (populate), then 2000 x 256 MiB once. Writes one JSON per run
# and prints a markdown table. Needs ~2 GiB free for the second case.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-ptshare-results/bench-native-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
bin="$(scripts/build-static.sh)"
run() {
    local name="$1"; shift
    echo "scripts/bench-native.sh: $name: ptshare run $*" >&2
    "$bin" run "$@" --json "$out/$name.json" --quiet || true
    sleep 2   # let the previous run's page tables be uncounted before the next base sample
}
for i in 1 2 3; do run "memfd-1000x64M-$i" --backing memfd --size 64M --workers 1000 --touch populate; done
run "memfd-1000x64M-herd" --backing memfd --size 64M --workers 1000 --touch populate --map-concurrency 1000
run "memfd-1000x64M-none" --backing memfd --size 64M --workers 1000 --touch none
run "memfd-2000x256M" --backing memfd --size 256M --workers 2000 --touch populate --phase-timeout 900
"$bin" summarize "$out"/*.json | tee "$out/summary.md"
echo "scripts/bench-native.sh: wrote $out" >&2
