#!/usr/bin/env bash
# The project's test command (README "Test"), run by CI (.ci/run): format lint, unit tests,
# native integration tests that really fork and map, then the kernel side: checkpatch on the
# patch series, the VM suite on the patched kernel without the flag (the stock path) and with
# it, and on patched-debug, then the mutants. Installs
# what it needs when run as root. Prints each step's time and a summary at the end, so the log
# shows where CI's time goes (budget: 90 min on 2 cores).
#
# The Swift steps stop at the first failure (the later ones need the build). The kernel steps
# all run, each failure is recorded, and the exit status is 1 if any failed: one CI run reports
# every broken flavour. A missing patch series fails the checkpatch and patched steps.
#
# PTSHARE_SKIP_VM=1 leaves out the kernel steps (a quick local loop only; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

t_start=$(date +%s)
summary=()
failed=0
n_ok=0
n_failed=0
# step NAME CMD...: runs CMD, prints and records its time and outcome; returns CMD's status.
step() {
    local name="$1" t0 rc secs
    shift
    echo "== $name" >&2
    t0=$(date +%s)
    set +e
    "$@"
    rc=$?
    set -e
    secs=$(($(date +%s) - t0))
    if [ $rc = 0 ]; then
        summary+=("$(printf '%6d s  %-14s  %s' "$secs" ok "$name")")
        n_ok=$((n_ok + 1))
    else
        summary+=("$(printf '%6d s  %-14s  %s' "$secs" "FAIL (exit $rc)" "$name")")
        failed=1
        n_failed=$((n_failed + 1))
    fi
    echo "-- $name: $([ $rc = 0 ] && echo ok || echo "FAIL (exit $rc)") in $secs s (total $(($(date +%s) - t_start)) s)" >&2
    return $rc
}
# not_run NAME WHY: a step that could not run (no series, or a step it needs failed) fails too.
not_run() {
    summary+=("$(printf '%6s    %-14s  %s (%s)' - "FAIL (not run)" "$1" "$2")")
    failed=1
    n_failed=$((n_failed + 1))
}
# failures DIR: what a failed VM suite step's guest said (CI keeps only the log's tail, and a
# fresh clone's results are gone with it): for each `not ok` test its last diagnostics and the
# line; the skip policy's verdict (a refused SKIP writes no `not ok`); kernel problems on the
# console (a splat fails the step by itself); and, when none of that is there (the guest died
# or timed out), the console's last lines. Never fails: the summary must follow.
failures() {
    local dir="$1" out="$1/output.txt" name
    echo "-- $dir" >&2
    set +e
    if [ -f "$out" ]; then
        grep '^not ok ' "$out" | while read -r _ _ _ name _; do
            grep -F "# $name: " "$out" | tail -n 25
            grep -E "^not ok [0-9]+ $name( |$)" "$out"
        done >&2
        grep '^# skip policy:' "$out" >&2
    fi
    if [ -f "$dir/console.log" ]; then
        grep -nE 'BUG|WARNING|Oops|Call Trace|Bad rss-counter' "$dir/console.log" | head -n 20 >&2
        grep -q '^not ok ' "$out" 2>/dev/null || tail -n 30 "$dir/console.log" >&2
    else
        echo "(no console.log)" >&2
    fi
    set -e
    return 0
}
failed_dirs=()
finish() {
    if ((${#failed_dirs[@]})); then
        echo "== failed tests" >&2
        for d in "${failed_dirs[@]}"; do failures "$d"; done
    fi
    echo "== summary (total $(($(date +%s) - t_start)) s)" >&2
    printf '%s\n' "${summary[@]}" >&2
    # The plain closing line CI reads: steps, not tests (each step's own runner counts those).
    echo "steps: $n_ok passed, $n_failed failed"
    exit $failed
}

export PATH="/opt/swift/usr/bin:$PATH"
if ! command -v swift >/dev/null; then
    echo "scripts/test.sh: swift not found (expected Swift 6.x at /opt/swift or on PATH)" >&2
    exit 1
fi
# gzip reads /proc/config.gz (hugetlb PMD sharing is decided from the kernel config);
# libnuma-dev gives the CNuma target numa.h and libnuma.so/.a (run's --cpunodebind, --membind).
need=()
command -v gzip >/dev/null || need+=(gzip)
[ -e /usr/include/numa.h ] || need+=(libnuma-dev)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "scripts/test.sh: apt-get install ${need[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "scripts/test.sh: missing ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi

step "swift format lint --strict" swift format lint --strict -r Sources Tests Package.swift || finish
step "swift build --build-tests" swift build --build-tests || finish
# Two invocations: PageTables is global, and unit tests allocating in the same test process
# would grow its page tables while an integration run measures.
step "swift test (unit)" swift test --skip IntegrationTests || finish
# --no-parallel: one suite's QEMU or workers must not run while another measures PageTables.
step "swift test (native integration: forks, maps, reads /proc; vm bad input)" \
    swift test --no-parallel --filter IntegrationTests || finish

if [ "${PTSHARE_SKIP_VM:-0}" = 1 ]; then
    echo "== kernel steps (checkpatch, VM suites): SKIPPED (PTSHARE_SKIP_VM=1)" >&2
    finish
fi

# The kernel's style gate on the series and the probe module: seconds, and it fails before an
# hour of kernel builds and VMs is spent on a series that would not be accepted anyway.
step "checkpatch --strict on kmod/patches and the probe module" scripts/checkpatch-series.sh || true

# Tests the patched-debug kernel runs: its lockdep/DEBUG_VM build is slow under TCG, so it
# runs what drives the sharing paths (attach, detach, zap through the rmap, fork, exit) under
# the debug checks, not the savings and census tests the patched flavour already ran. Every
# sharedpt.semantics.*, sharedpt.unshare.*, sharedpt.accounting.*, sharedpt.thp.* test and every
# test of the paths that meet a shared table through the reverse map or a cgroup (reclaim,
# memcg, oom, migrate, memory_failure, numa, pressure) registered in the suite (each unshare drives a zap,
# an unhook and a refault, each accounting test the RSS fan-out under lockdep, the THP test PMD
# and shared PTE chunks in one mapping), so a new one cannot miss this run.
# The four storms (sharedpt.stress, .pressure.stress, .anon.stress, .dax.stress) run 30 s each
# here, as in the patched flavour: a cold CI run (two kernel builds) has to fit in 90 min on
# 2 cores (README, CI costs).
debug_tests=(--stress-seconds 30 --test sharedpt.stress --test sharedpt.hint_rounding)
semantics=$(grep -oE '"sharedpt\.(semantics|unshare|accounting|thp|reclaim|memcg|oom|migrate|memory_failure|numa|pressure)\.[a-z_]*"' Sources/PTShareCore/Suite/SharedPT.swift | tr -d '"')
[ -n "$semantics" ] || { echo "scripts/test.sh: error: no sharedpt.semantics.* test found in SharedPT.swift" >&2; exit 1; }
for t in $semantics; do debug_tests+=(--test "$t"); done
# The series' own kselftest, every exit path of a shared table under DEBUG_VM and
# PAGE_TABLE_CHECK (on a memfd, a DAX file and anonymous shared memory), anonymous shared
# tables through fork (attach by children and a grandchild, an exit among them) and under the
# storm, and DAX's special PTEs in shared tables through faults, truncate, hole punch and the
# storm.
debug_tests+=(--test sharedpt.kselftest --test sharedpt.teardown.no_leak --test sharedpt.anon.fork_inherit
    --test sharedpt.anon.teardown --test sharedpt.anon.stress --test sharedpt.dax.coherence
    --test sharedpt.dax.truncate --test sharedpt.dax.map_sync --test sharedpt.dax.teardown --test sharedpt.dax.stress)
# Each flavour: the kernel build as its own step (cold 19-25 min on 2 cores; cached instantly),
# then the suite in QEMU on it. CI builds two kernels, patched and patched-debug: the stock
# path runs on the patched kernel with an unused flag value (vm-suite.sh unflagged), since a
# third cold build (stock, 17 min) would take CI past its 90 min (README, Test command).
# scripts/vm-suite.sh stock still runs the suite on a kernel without the series.
npatches=0
if [ -d kmod/patches ]; then
    npatches=$(find kmod/patches -maxdepth 1 -name '*.patch' ! -name '0000-cover-letter.patch' | wc -l)
fi
# The patched flavours run with --fail-on-skip (scripts/vm-suite.sh): a test that SKIPs there
# did not run and fails the step, unless it is allowed here, each for a reason of its own. The
# unflagged run allows only the SKIPs for want of the flag (--allow-unsupported-skips).
# (None today: KSM, swap, memcg and NUMA balancing are in the fragment, so every test runs.)
allow_skips=()
for flavour in patched patched-debug; do
    # Every flavour boots with two NUMA nodes: sharedpt.accounting.move_all moves pages between
    # them, NUMA balancing only starts with two, and the stock path runs the pressure and NUMA
    # tests unshared.
    out="ptshare-results/ci-$flavour"
    rm -rf "$out"
    suite_args=(--numa 2 --out "$out")
    # The four storms 30 s each here too: with the DAX and anonymous storms and teardowns the
    # patched suite grew by about 4 min, and a cold CI run must keep its margin under 90 min.
    if [ "$flavour" = patched ]; then suite_args+=(-- --stress-seconds 30 ${allow_skips[@]+"${allow_skips[@]}"}); fi
    if [ "$flavour" = patched-debug ]; then suite_args+=(-- "${debug_tests[@]}" ${allow_skips[@]+"${allow_skips[@]}"}); fi
    if [ "$npatches" = 0 ]; then
        echo "scripts/test.sh: error: kmod/patches/ holds no patch series: the $flavour kernel cannot be built" >&2
        not_run "kernel build: $flavour" "no patches in kmod/patches"
        if [ "$flavour" = patched ]; then not_run "VM suite: unflagged" "no patched kernel"; fi
        not_run "VM suite: $flavour" "no $flavour kernel"
        continue
    fi
    if step "kernel build: $flavour (scripts/kernel-build.sh $flavour)" scripts/kernel-build.sh "$flavour" >/dev/null; then
        if [ "$flavour" = patched ]; then
            patched_built=1
            uout=ptshare-results/ci-unflagged
            rm -rf "$uout"
            step "VM suite: unflagged (scripts/vm-suite.sh unflagged --numa 2 --out $uout)" \
                scripts/vm-suite.sh unflagged --numa 2 --out "$uout" || failed_dirs+=("$uout")
        fi
        step "VM suite: $flavour (scripts/vm-suite.sh $flavour ${suite_args[*]})" \
            scripts/vm-suite.sh "$flavour" "${suite_args[@]}" || failed_dirs+=("$out")
    else
        if [ "$flavour" = patched ]; then not_run "VM suite: unflagged" "the patched kernel did not build"; fi
        not_run "VM suite: $flavour" "its kernel did not build"
    fi
done
# The benchmark gate: a small sweep in the guest on the patched kernel, compared with the
# committed baseline on page-table bytes and distinct PTE tables (deterministic there).
if [ "$npatches" = 0 ]; then
    not_run "bench gate" "no patches in kmod/patches"
elif [ "${patched_built:-0}" != 1 ]; then
    not_run "bench gate" "the patched kernel did not build"
else
    step "bench gate: scripts/bench-gate.sh (ptshare compare against docs/benchmarks/ci-baseline)" \
        scripts/bench-gate.sh ptshare-results/ci-bench || failed_dirs+=(ptshare-results/ci-bench)
fi
# Mutation testing: the suite must fail on kernels with a known bug (kmod/mutants). CI runs the
# subset in kmod/mutants/ci.list (see README for what each costs); scripts/mutants.sh alone
# runs them all.
if [ "$npatches" = 0 ]; then
    not_run "mutants" "no patches in kmod/patches"
elif [ "${patched_built:-0}" != 1 ]; then
    not_run "mutants" "the patched kernel did not build"
else
    step "mutants: scripts/mutants.sh --list kmod/mutants/ci.list" scripts/mutants.sh --list kmod/mutants/ci.list || true
fi
finish
