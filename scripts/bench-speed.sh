#!/usr/bin/env bash
# The speed check of the harness: `ptshare run` (static release) against bench/c-baseline/forkmap,
# a minimal C program that forks the same workers and maps and touches the same memfd the same
# way (mmap MAP_SHARED, MADV_POPULATE_READ) with nothing else around it. Both are run R times,
# alternately, with 2 s between runs; forkmap runs twice per repeat: with every token at once
# (--concurrency N) and with the harness's default concurrency (--concurrency $(nproc)).
# Prints a markdown table of the map+touch, spawn and teardown seconds, and PASS when the
# harness's median map+touch time is within 1.2x of forkmap's at the same concurrency.
#
#   scripts/bench-speed.sh [--workers N] [--size S] [--repeats R] [--ptshare BIN] [OUT]
#
# Defaults: 2000 workers x 256M, 3 repeats, OUT=ptshare-results/bench-speed-DATE; --ptshare
# skips scripts/build-static.sh. Cost: a static release Swift build (minutes) unless --ptshare,
# then 3R runs; at the defaults each needs ~1.5 GiB (256 MiB of file, 512 KiB of PTE tables per
# worker) and takes seconds to a minute, about 10 minutes in all on a 2-CPU machine.
# Exit status: 0 PASS, 1 FAIL, 2 bad usage, 3 a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

workers=2000
size=256M
repeats=3
bin=
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) workers="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --repeats) repeats="$2"; shift 2 ;;
        --ptshare) bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "scripts/bench-speed.sh: error: unknown option $1" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
case "$workers$repeats" in *[!0-9]*|'') echo "scripts/bench-speed.sh: error: --workers and --repeats take numbers" >&2; exit 2 ;; esac
out="${out:-ptshare-results/bench-speed-$(date +%Y%m%d-%H%M%S)}"
cpus="$(nproc)"
mkdir -p "$out"

# forkmap: static like the harness's binary (fewer mappings to copy per fork), else dynamic.
forkmap=.build-c/forkmap
mkdir -p .build-c
cflags=(-std=gnu11 -O2 -Wall -Wextra -Werror)
echo "scripts/bench-speed.sh: gcc ${cflags[*]} -static -o $forkmap bench/c-baseline/forkmap.c" >&2
if ! gcc "${cflags[@]}" -static -o "$forkmap" bench/c-baseline/forkmap.c 2>"$out/forkmap-build.log"; then
    echo "scripts/bench-speed.sh: static link failed (see $out/forkmap-build.log); linking dynamically" >&2
    gcc "${cflags[@]}" -o "$forkmap" bench/c-baseline/forkmap.c
fi

if [ -z "$bin" ]; then
    bin="$(scripts/build-static.sh)"
fi

ptshare_run() {
    local k="$1" rc=0
    echo "scripts/bench-speed.sh: [$k/$repeats] ptshare run --backing memfd --size $size --workers $workers --touch populate" >&2
    "$bin" run --backing memfd --size "$size" --workers "$workers" --touch populate --phase-timeout 900 \
        --json "$out/ptshare-$k.json" --quiet || rc=$?
    # 1 is a failed page-table verdict: the timings are still measured and reported.
    if [ "$rc" -gt 1 ] || [ ! -s "$out/ptshare-$k.json" ]; then
        echo "scripts/bench-speed.sh: error: ptshare run exited $rc without a report" >&2
        exit 3
    fi
    sleep 2   # let the previous run's page tables be freed before the next run
}

forkmap_run() {
    local name="$1"; shift
    echo "scripts/bench-speed.sh: $name: forkmap --workers $workers --size $size --touch populate $*" >&2
    if ! "$forkmap" --workers "$workers" --size "$size" --touch populate "$@" --json >"$out/$name.json"; then
        echo "scripts/bench-speed.sh: error: forkmap failed ($name)" >&2
        exit 3
    fi
    sleep 2
}

for k in $(seq 1 "$repeats"); do
    ptshare_run "$k"
    forkmap_run "forkmap-$k"
    forkmap_run "forkmap-cpus-$k" --concurrency "$cpus"
done

echo "scripts/bench-speed.sh: summary" >&2
status=0
python3 - "$out" "$repeats" "$workers" "$size" "$cpus" <<'EOF' | tee "$out/summary.md" || status=$?
import json, statistics, sys

out, repeats, workers, size, cpus = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
LIMIT = 1.2

def load(path, ptshare):
    try:
        with open(path) as f:
            d = json.load(f)
        t = d["timings"] if ptshare else d
        return {k: float(t[k]) for k in ("map_touch_seconds", "spawn_seconds", "teardown_seconds")}
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"scripts/bench-speed.sh: error: {path}: {e!r}", file=sys.stderr)
        sys.exit(3)

rows = [
    ("ptshare run (concurrency %s)" % cpus, [load(f"{out}/ptshare-{k}.json", True) for k in range(1, repeats + 1)]),
    ("forkmap (concurrency %s)" % workers, [load(f"{out}/forkmap-{k}.json", False) for k in range(1, repeats + 1)]),
    ("forkmap (concurrency %s)" % cpus, [load(f"{out}/forkmap-cpus-{k}.json", False) for k in range(1, repeats + 1)]),
]
med = lambda runs, key: statistics.median(r[key] for r in runs)

print(f"### map+touch: {workers} workers x {size} memfd, MADV_POPULATE_READ, {repeats} repeats\n")
head = ["tool"] + [f"map+touch s #{k}" for k in range(1, repeats + 1)] + [
    "map+touch s median", "spawn s median", "teardown s median"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for name, runs in rows:
    cells = [name] + [f"{r['map_touch_seconds']:.3f}" for r in runs] + [
        f"{med(runs, k):.3f}" for k in ("map_touch_seconds", "spawn_seconds", "teardown_seconds")]
    print("| " + " | ".join(cells) + " |")
print()
harness = med(rows[0][1], "map_touch_seconds")
verdict = None
for name, runs in rows[1:]:
    c = med(runs, "map_touch_seconds")
    ratio = harness / c if c > 0 else float("inf")
    ok = ratio <= LIMIT
    print(f"- harness / {name}: {ratio:.3f} ({'within' if ok else 'over'} {LIMIT}x)")
    verdict = ok   # the last row, at the harness's own concurrency, decides
print()
print(f"**{'PASS' if verdict else 'FAIL'}**: harness map+touch median {harness:.3f} s is "
      f"{'within' if verdict else 'over'} {LIMIT}x of forkmap's at the same concurrency ({cpus}).")
sys.exit(0 if verdict else 1)
EOF
echo "scripts/bench-speed.sh: wrote $out" >&2
exit "$status"
