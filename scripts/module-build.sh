#!/usr/bin/env bash
# Builds kmod/ptshare_probe against a kernel built by scripts/kernel-build.sh, with W=1 and
# warnings as errors, in a copy under that kernel's cache folder (the repository stays clean).
#
#   scripts/module-build.sh KERNEL_DIR      (the folder kernel-build.sh printed)
#
# Prints the path of ptshare_probe.ko.
set -euo pipefail
say() { echo "module-build: $*" >&2; }
die() { echo "module-build: error: $*" >&2; exit 1; }
root="$(cd "$(dirname "$0")/.." && pwd)"
kdir="${1:?usage: scripts/module-build.sh KERNEL_DIR}"
[ -f "$kdir/build/.config" ] || die "$kdir has no kernel build tree (build/.config)"
grep -qx "CONFIG_MODULES=y" "$kdir/build/.config" || die "$kdir was built without CONFIG_MODULES"
# External modules link against Module.symvers, which bzImage alone does not write; with no
# modules in the tree `make modules` only runs modpost.
if [ ! -f "$kdir/build/Module.symvers" ]; then
    say "make modules (writes Module.symvers)"
    make -s -C "$kdir/src" O="$kdir/build" -j"$(nproc)" CC="ccache gcc" modules >&2 ||
        die "make modules failed"
fi
out="$kdir/kmod"
rm -rf "$out" && mkdir -p "$out/include"
cp "$root"/kmod/ptshare_probe/{Kbuild,Makefile,ptshare_probe.c} "$out/"
cp "$root/Sources/CPTShare/include/ptshare_probe_uapi.h" "$out/include/"
say "make -C $kdir/build M=$out W=1 modules"
if ! make -C "$kdir/build" M="$out" W=1 CC="ccache gcc" modules >"$out/build.log" 2>&1; then
    cat "$out/build.log" >&2
    die "module build failed"
fi
grep -iE "warning:" "$out/build.log" >&2 && die "module build printed warnings"
say "built $out/ptshare_probe.ko"
echo "$out/ptshare_probe.ko"
