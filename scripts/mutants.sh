#!/usr/bin/env bash
# Mutation testing of the suite: each kmod/mutants/NAME.patch is a small deliberate bug applied
# on top of the MAP_SHARED_PT series. Every mutant kernel is built, booted, and given the tests
# its header names ("Tests: ..."); a mutant whose tests all pass SURVIVED, and any survivor
# fails this script unless its header says "Survivor: known (...)".
#
#   scripts/mutants.sh [--list FILE] [NAME...]
#
# NAME...: only these mutants (default: every kmod/mutants/*.patch); --list FILE: the mutants
# named in FILE (one per line, '#' comments), e.g. CI's subset. Builds happen in one cached
# tree ($PTSHARE_CACHE/mutants/tree-KEY, KEY the patched flavour's cache key): the series
# unpacked and configured like `patched`, built once (ccache shares the patched flavour's
# objects), then per mutant: patch, incremental bzImage, patch -R. The probe module of the
# patched kernel serves every mutant (same release string and config). Results (per mutant:
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
key="${patched##*/patched-}"
tree="$cache/mutants/tree-$key"
src="$tree/src"
build="$tree/build"
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
export CCACHE_DIR="$cache/ccache" CCACHE_BASEDIR="$tree" CCACHE_NOHASHDIR=true
jobs="$(nproc)"

for old in "$cache/mutants"/tree-*; do
    [ -d "$old" ] && [ "$old" != "$tree" ] && { say "removing stale $old"; rm -rf "$old"; }
done
# The base tree: the patched flavour's source and config, built once. A tree left with a mutant
# applied (an interrupted run) is detected by its marker and rebuilt from scratch.
if [ -f "$tree/applied" ]; then
    say "$tree was left with $(cat "$tree/applied") applied; rebuilding it"
    rm -rf "$tree"
fi
if [ ! -f "$tree/ok" ]; then
    t0=$(date +%s)
    rm -rf "$tree" && mkdir -p "$tree"
    say "base tree: a copy of the patched source ($patched/src) into $src"
    cp -a "$patched/src" "$src"
    mkdir -p "$build"
    cp "$patched/build/.config" "$build/.config"
    make -s -C "$src" O="$build" olddefconfig >&2
    cmp -s "$build/.config" "$patched/build/.config" || die "olddefconfig changed the patched config in $build"
    say "base tree: make -j$jobs bzImage (ccache from the patched flavour; log $tree/base.log)"
    make -C "$src" O="$build" -j"$jobs" CC="ccache gcc" bzImage >"$tree/base.log" 2>&1 ||
        { tail -30 "$tree/base.log" >&2; die "base tree build failed"; }
    [ "$(cat "$build/include/config/kernel.release")" = "$(cat "$patched/release")" ] ||
        die "base tree release $(cat "$build/include/config/kernel.release") is not the patched kernel's $(cat "$patched/release")"
    touch "$tree/ok"
    say "base tree built in $(($(date +%s) - t0)) s"
fi

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
    patch -d "$src" -p1 --forward --batch --fuzz=0 <"$p" >"$mdir/patch.log" 2>&1 ||
        { cat "$mdir/patch.log" >&2; die "$n does not apply on top of the series"; }
    echo "$n" >"$tree/applied"
    if make -C "$src" O="$build" -j"$jobs" CC="ccache gcc" bzImage >"$mdir/build.log" 2>&1; then built=1; else built=0; fi
    patch -d "$src" -p1 -R --batch --fuzz=0 <"$p" >>"$mdir/patch.log" 2>&1 || die "$n does not revert; $tree is dirty"
    rm -f "$tree/applied"
    if [ $built = 0 ]; then
        tail -30 "$mdir/build.log" >&2
        die "$n does not build (log $mdir/build.log)"
    fi
    cp "$build/arch/x86/boot/bzImage" "$mdir/bzImage"
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
    "$bin" vm --kernel "$mdir/bzImage" --out "$out/$n" -- suite --ktap --expect-map-shared-pt supported \
        --fail-on-skip "${targs[@]}" >"$out/$n.ktap" 2>"$out/$n.stderr"
    rc=$?
    set -e
    tt=$(($(date +%s) - t1))
    # Which tests failed, and whether the kernel itself complained (console scan).
    failed="$(sed -n 's/^not ok [0-9]* //p' "$out/$n.ktap" | tr '\n' ' ')"
    if grep -q "the kernel reported problems" "$out/$n.stderr"; then failed+="(kernel log: BUG/WARNING) "; fi
    if [ $rc = 1 ] && [ -n "$failed" ]; then
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

echo "== mutants (total $(($(date +%s) - t_start)) s; results in $out)" >&2
printf '%-18s %8s %8s  %s\n' mutant build tests verdict
printf '%s\n' "${rows[@]}"
if [ $broken = 1 ]; then exit 3; fi
exit $bad
