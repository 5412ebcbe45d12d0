#!/usr/bin/env bash
# Builds (or reuses) the guest initramfs: busybox-static, a static release ptshare,
# scripts/guest/init and, when given, the ptshare_probe module (built for the kernel it will
# boot) and the series' kselftest (/bin/ptshare-selftest, from scripts/selftest-build.sh).
# Cached in $PTSHARE_CACHE/initramfs by a hash of its inputs.
#
#   scripts/initramfs.sh [--selftest BINARY] [ptshare_probe.ko]
#
# Prints the path of the .cpio.gz on stdout.
set -euo pipefail
say() { echo "initramfs: $*" >&2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PTSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptshare}"
need=()
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
# mke2fs for the guest's fs-dax file system (busybox's mke2fs makes ext2 only: no extents, no
# fallocate, no 2 MiB extents for DAX PMD mappings).
[ -x /sbin/mke2fs ] && [ -f /etc/mke2fs.conf ] || need+=(e2fsprogs)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then
        say "apt-get install ${need[*]}"
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "initramfs: error: missing packages; run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi
# busybox-static's binary. The guest has no shared libraries but those of mke2fs, copied from
# this host's e2fsprogs with its loader (ldd's list).
busybox=/bin/busybox
mke2fs=/sbin/mke2fs
mapfile -t mke2fs_libs < <(ldd "$mke2fs" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
((${#mke2fs_libs[@]})) || { echo "initramfs: error: ldd $mke2fs listed no libraries" >&2; exit 1; }
bin="${PTSHARE_STATIC_BIN:-$("$root/scripts/build-static.sh")}"
init="$root/scripts/guest/init"
selftest=""
if [ "${1:-}" = --selftest ]; then
    selftest="${2:?--selftest needs a file}"
    shift 2
    [ -f "$selftest" ] || { echo "initramfs: error: $selftest not found" >&2; exit 1; }
fi
module="${1:-}"
[ -z "$module" ] || [ -f "$module" ] || { echo "initramfs: error: $module not found" >&2; exit 1; }
key="$(cat "$0" "$bin" "$busybox" "$init" "$mke2fs" "${mke2fs_libs[@]}" /etc/mke2fs.conf ${module:+"$module"} ${selftest:+"$selftest"} | sha256sum | cut -c1-16)"
out="$cache/initramfs/$key.cpio.gz"
if [ -f "$out" ]; then
    say "cached: $out"
    echo "$out"
    exit 0
fi
start=$(date +%s)
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,results}
cp "$busybox" "$stage/bin/busybox"
mkdir -p "$stage/usr/sbin"
cp "$mke2fs" "$stage/usr/sbin/mke2fs"
for l in "${mke2fs_libs[@]}"; do
    mkdir -p "$stage$(dirname "$l")"
    cp -L "$l" "$stage$l"
done
# mke2fs's ext4 defaults (features, inode size) come from this file.
mkdir -p "$stage/etc"
cp /etc/mke2fs.conf "$stage/etc/mke2fs.conf"
cp "$bin" "$stage/bin/ptshare"
[ -z "$selftest" ] || cp "$selftest" "$stage/bin/ptshare-selftest"
install -m 0755 "$init" "$stage/init"
mkdir -p "$(dirname "$out")"
if [ -n "$module" ]; then
    mkdir -p "$stage/lib/modules"
    cp "$module" "$stage/lib/modules/ptshare_probe.ko"
fi
# Keep the last few: flavours alternate (stock, patched), each with its own module.
# find, not ls: an empty cache (a fresh machine) must not fail the pipeline under pipefail.
find "$(dirname "$out")" -maxdepth 1 -name '*.cpio.gz' -printf '%T@ %p\n' | sort -rn | tail -n +5 |
    cut -d' ' -f2- | xargs -r rm -f
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1 >"$out.tmp")
mv "$out.tmp" "$out"
say "built $out ($(du -h "$out" | cut -f1)) in $(($(date +%s) - start)) s"
echo "$out"
