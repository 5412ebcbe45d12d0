#!/usr/bin/env bash
# Mutation testing of the suite: each kmod/mutants/NAME.patch is a small deliberate bug applied
# on top of the MAP_SHARED_PT series. Every mutant kernel is built, booted, and given the tests
# its header names ("Tests: ..."); a mutant whose tests all pass SURVIVED, and any survivor
# fails this script unless its header says "Survivor: known (...)".
#
#   scripts/mutants.sh [--list FILE] [NAME...]
#
# NAME...: only these mutants (default: every kmod/mutants/*.patch); --list FILE: the mutants
# named in FILE (one per line, '#' comments), e.g. CI's subset. Builds happen in the patched
# flavour's cached tree (scripts/kernel-build.sh patched): per mutant, patch, incremental
# bzImage (copied out), patch -R; one rebuild at the end leaves the tree as it was. The probe
# module of the patched kernel serves every mutant (same release string and config). Results (per mutant:
# the console log, the guest's KTAP, the build log) land in ptshare-results/mutants-TIMESTAMP/.
#
# Exit status: 0 when every mutant was killed (or is a known survivor that survived), 1 when one
# survived unexpectedly or a known survivor was killed (update its header), 3 when a mutant could
# not be built or booted (that proves nothing either way).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
export PATH="/opt/swift/usr/bin:$PATH"
say() { echo "mutants: $*" >&2; }
die() { echo "mutants: error: $*" >&2; exit 3; }
t_start=$(date +%s)

names=()
list=""
while (($#)); do
    case "$1" in
        --list) list="${2:?--list needs a file}"; shift 2 ;;
        -*) die "unknown option $1 (usage: scripts/mutants.sh [--list FILE] [NAME...])" ;;
        *) names+=("$1"); shift ;;
    esac
done
if [ -n "$list" ]; then
    [ -f "$list" ] || die "--list $list: no such file"
    while IFS= read -r l; do
        l="${l%%#*}"; l="${l//[[:space:]]/}"
        [ -n "$l" ] && names+=("$l")
    done <"$list"
fi
if ((${#names[@]} == 0)); then
    while IFS= read -r p; do names+=("$(basename "$p" .patch)"); done < <(find kmod/mutants -maxdepth 1 -name '*.patch' | sort)
fi
((${#names[@]})) || die "no mutants in kmod/mutants"
for n in "${names[@]}"; do [ -f "kmod/mutants/$n.patch" ] || die "no such mutant: kmod/mutants/$n.patch"; done

# header FIELD FILE: the value of "FIELD: ..." in the patch's header (before the first ---).
header() { sed -n '/^--- /q; p' "$2" | sed -n "s/^$1: *//p" | head -1; }

cache="${PTSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptshare}"
patched="$(scripts/kernel-build.sh patched)" || die "the patched kernel did not build"
# The mutants are built in the patched flavour's own tree: a mm/*.c edit rebuilds in well under
# a minute there, where a tree of their own would first need a full build. The flavour's cached
# kernel is the copy $patched/bzImage, which this never touches; its source is restored after
# each mutant (a marker names the mutant while one is applied, so that an interrupted run is
# reverted by the next one) and its objects rebuilt at the end.
src="$patched/src"
build="$patched/build"
marker="$patched/mutant-applied"
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
export CCACHE_DIR="$cache/ccache" CCACHE_BASEDIR="$patched" CCACHE_NOHASHDIR=true
jobs="$(nproc)"
# Idempotent: a mutant that is not (or no longer) applied is left alone; `patch -R --batch`
# would otherwise take it for a reversed patch and apply it.
revert() {
    local n p
    n="$(cat "$marker")"
    p="$root/kmod/mutants/$n.patch"
    if ! patch -d "$src" -p1 -R --dry-run --force --fuzz=0 <"$p" >/dev/null 2>&1; then
        patch -d "$src" -p1 --dry-run --forward --batch --fuzz=0 <"$p" >/dev/null 2>&1 ||
            die "$src holds part of $n: remove $patched to rebuild the patched kernel"
        rm -f "$marker"
        return
    fi
    patch -d "$src" -p1 -R --force --fuzz=0 <"$p" >&2 ||
        die "cannot revert $n in $src: remove $patched to rebuild the patched kernel"
    rm -f "$marker"
}
if [ -f "$marker" ]; then
    say "$patched was left with $(cat "$marker") applied (an interrupted run): reverting it"
    revert
    restore=1
fi
# Leaves the tree's objects matching its source again (the next build would otherwise start
# from the last mutant's objects).
restore_tree() {
    [ -f "$marker" ] && revert
    say "rebuilding $patched's objects without mutants"
    make -C "$src" O="$build" -j"$jobs" CC="ccache gcc" bzImage >"$patched/mutants-restore.log" 2>&1 ||
        die "the restoring build failed; log $patched/mutants-restore.log"
    cmp -s "$build/arch/x86/boot/bzImage" "$patched/bzImage" ||
        say "note: the restored build's bzImage differs from the cached one (build timestamp); the cached one is kept"
}
trap 'if [ -f "$marker" ]; then revert; fi' EXIT
for old in "$cache/mutants"/tree-*; do
    [ -d "$old" ] && { say "removing $old (mutants now build in the patched tree)"; rm -rf "$old"; }
done

out="ptshare-results/mutants-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
rows=()
bad=0
broken=0
for n in "${names[@]}"; do
    p="$root/kmod/mutants/$n.patch"
    tests="$(header Tests "$p")"
    survivor="$(header Survivor "$p")"
    [ -n "$tests" ] || die "$n: no 'Tests:' line in its header"
    mdir="$cache/mutants/out/$n"
    rm -rf "$mdir" && mkdir -p "$mdir"
    say "$n: applying and building"
    t0=$(date +%s)
    patch -d "$src" -p1 --dry-run --forward --batch --fuzz=0 <"$p" >"$mdir/patch.log" 2>&1 ||
        { cat "$mdir/patch.log" >&2; die "$n does not apply on top of the series"; }
    # The marker first: an interruption from here on is reverted (revert is idempotent).
    echo "$n" >"$marker"
    patch -d "$src" -p1 --forward --batch --fuzz=0 <"$p" >"$mdir/patch.log" 2>&1 ||
        { cat "$mdir/patch.log" >&2; die "$n does not apply on top of the series"; }
    if make -C "$src" O="$build" -j"$jobs" CC="ccache gcc" bzImage >"$mdir/build.log" 2>&1; then built=1; else built=0; fi
    cp "$build/arch/x86/boot/bzImage" "$mdir/bzImage" 2>/dev/null || true
    revert
    restore=1
    if [ $built = 0 ]; then
        tail -30 "$mdir/build.log" >&2
        die "$n does not build (log $mdir/build.log)"
    fi
    cp "$build/.config" "$mdir/config"
    # The patched kernel's module tree: ptshare vm builds the probe module against it.
    ln -s "$patched/build" "$mdir/build"
    ln -s "$patched/src" "$mdir/src"
    tb=$(($(date +%s) - t0))

    say "$n: booting; tests: $tests"
    t1=$(date +%s)
    targs=()
    for t in $tests; do targs+=(--test "$t"); done
    set +e
    "$bin" vm --kernel "$mdir/bzImage" --numa 2 --out "$out/$n" -- suite --ktap --expect-map-shared-pt supported \
        --fail-on-skip "${targs[@]}" >"$out/$n.ktap" 2>"$out/$n.stderr"
    rc=$?
    set -e
    # ptshare vm exits 128+N when interrupted by signal N: stop (the trap reverts).
    if ((rc >= 128)); then exit "$rc"; fi
    tt=$(($(date +%s) - t1))
    # Which tests failed, and whether the kernel itself complained (console scan).
    failed="$(sed -n 's/^not ok [0-9]* //p' "$out/$n.ktap" | tr '\n' ' ')"
    if grep -q "the kernel reported problems" "$out/$n.stderr"; then failed+="(kernel log: BUG/WARNING) "; fi
    if grep -q "^# [a-z_.]*: census: .*-- FAILED" "$out/$n.ktap"; then
        # The harness could not take a census (module not loaded, wrong interface): no kill.
        verdict="ERROR: the census could not run (see $out/$n.ktap)"
        broken=1
    elif [ $rc = 1 ] && [ -n "$failed" ]; then
        if [ -n "$survivor" ]; then
            verdict="killed by ${failed% } -- but its header says it survives: update it"
            bad=1
        else
            verdict="killed by ${failed% }"
        fi
    elif [ $rc = 0 ]; then
        if [ -n "$survivor" ]; then
            verdict="survived (known: $survivor)"
        else
            verdict="SURVIVED: every test passed on a broken kernel"
            bad=1
        fi
    else
        verdict="ERROR: ptshare vm exit $rc without a failed test (see $out/$n.stderr)"
        tail -5 "$out/$n.stderr" >&2
        broken=1
    fi
    say "$n: $verdict (build $tb s, tests $tt s)"
    rows+=("$(printf '%-18s %6d s %6d s  %s' "$n" "$tb" "$tt" "$verdict")")
done

[ "${restore:-0}" = 1 ] && restore_tree
echo "== mutants (total $(($(date +%s) - t_start)) s; results in $out)" >&2
printf '%-18s %8s %8s  %s\n' mutant build tests verdict
printf '%s\n' "${rows[@]}"
# A survivor outranks a mutant that proved nothing: the exit status names the worse news.
if [ $bad = 1 ]; then exit 1; fi
if [ $broken = 1 ]; then exit 3; fi
exit 0
