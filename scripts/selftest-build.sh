#!/usr/bin/env bash
# Builds the series' kselftest (tools/testing/selftests/mm/ptshare.c in the kernel tree) as a
# static binary for the guest, beside the kernel: sharedpt.kselftest runs it there.
#
#   scripts/selftest-build.sh KERNEL_DIR
#
# Prints the binary's path, or "none" when the tree has no such test (the stock kernel).
set -euo pipefail
say() { echo "selftest-build: $*" >&2; }
die() { echo "selftest-build: error: $*" >&2; exit 1; }
kdir="${1:?usage: scripts/selftest-build.sh KERNEL_DIR}"
src="$kdir/src/tools/testing/selftests/mm/ptshare.c"
if [ ! -f "$src" ]; then
    say "no $src (a kernel without the series): none built"
    echo none
    exit 0
fi
command -v gcc >/dev/null || die "gcc missing"
out="$kdir/selftest/ptshare"
mkdir -p "$(dirname "$out")"
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
    echo "$out"
    exit 0
fi
# kselftest's own flags for mm (-Wall), static: the guest has no shared libraries.
if ! gcc -Wall -O2 -static -I"$kdir/src/tools/testing/selftests" -o "$out.tmp" "$src" >"$kdir/selftest/build.log" 2>&1 ||
    grep -q "warning:" "$kdir/selftest/build.log"; then
    cat "$kdir/selftest/build.log" >&2
    rm -f "$out.tmp"
    die "the selftest did not build cleanly"
fi
mv "$out.tmp" "$out"
say "built $out"
echo "$out"
