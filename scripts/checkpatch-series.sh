#!/usr/bin/env bash
# The kernel's own style gate: linux-source 6.12's scripts/checkpatch.pl --strict on every patch
# of the series (kmod/patches/*.patch except the cover letter), then with -f on the probe
# module's sources and its uapi header.
#
#   scripts/checkpatch-series.sh [--patches DIR]
#
# --patches DIR checks DIR/*.patch instead of kmod/patches (for trying the script on other
# patches). Prints one line per file (ok, or its error/warning/check counts followed by
# checkpatch's report) and exits 1 when any file has an ERROR, a WARNING or a CHECK: --strict's
# CHECKs fail too. There is no exception list: a finding is fixed in the patch, not waived here.
# A series with no patches fails.
#
# checkpatch runs against a kernel tree: the unpacked source of a cached stock kernel
# (scripts/kernel-build.sh) when there is one, else a partial tree (everything but the contents
# of drivers/, sound/, net/, fs/, tools/ and Documentation/, which checkpatch does not read for
# an mm series) unpacked once from /usr/src/linux-source-6.12.tar.xz under
# $PTSHARE_CACHE/checkpatch.
set -euo pipefail

say() { echo "checkpatch-series: $*" >&2; }
die() { echo "checkpatch-series: error: $*" >&2; exit 1; }

root="$(cd "$(dirname "$0")/.." && pwd)"
patchdir="$root/kmod/patches"
while (($#)); do
    case "$1" in
        --patches) [ $# -ge 2 ] || die "--patches needs a directory"; patchdir="$2"; shift 2 ;;
        *) die "usage: scripts/checkpatch-series.sh [--patches DIR]" ;;
    esac
done
cache="${PTSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptshare}"
tarball=/usr/src/linux-source-6.12.tar.xz

command -v perl >/dev/null || die "perl missing (checkpatch.pl is Perl)"
if ! dpkg-query -W -f='${Status}' linux-source-6.12 2>/dev/null | grep -q "install ok installed"; then
    if [ "$(id -u)" = 0 ]; then
        say "apt-get install linux-source-6.12"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.12 xz-utils >&2
    else
        die "linux-source-6.12 missing; run: sudo apt-get install -y linux-source-6.12"
    fi
fi
version="$(dpkg-query -W -f='${Version}' linux-source-6.12)"

# A tree of this source package version: a cached stock kernel's, else our own partial one.
tree=""
for d in "$cache"/kernel/stock-*/; do
    if [ -f "$d/source-ready" ] && [ -x "$d/src/scripts/checkpatch.pl" ]; then tree="${d%/}/src"; fi
done
if [ -z "$tree" ]; then
    tree="$cache/checkpatch/linux-source-$version"
    if [ ! -f "$tree/.ready" ]; then
        say "unpacking a partial tree from $tarball into $tree (once)"
        rm -rf "$tree" && mkdir -p "$tree"
        tar -xf "$tarball" -C "$tree" --strip-components=1 \
            --exclude='*/drivers/?*' --exclude='*/sound/?*' --exclude='*/net/?*' \
            --exclude='*/fs/?*' --exclude='*/tools/?*' --exclude='*/Documentation/?*'
        touch "$tree/.ready"
    fi
fi
checkpatch="$tree/scripts/checkpatch.pl"
say "using $checkpatch (linux-source $version)"

# Patches from git format-patch; the cover letter has no diff to check.
patches=()
if [ -d "$patchdir" ]; then
    while IFS= read -r p; do patches+=("$p"); done < <(find "$patchdir" -maxdepth 1 -name '*.patch' ! -name '0000-cover-letter.patch' | sort)
fi
((${#patches[@]})) || die "no patches in $patchdir (cover letter aside): there is no series to check"
shopt -s nullglob
sources=("$root"/kmod/ptshare_probe/*.[ch] "$root/Sources/CPTShare/include/ptshare_probe_uapi.h")
shopt -u nullglob

# checkpatch writes its CamelCase cache (.checkpatch-camelcase.*) into the working directory.
work="$cache/checkpatch/work"
mkdir -p "$work"
failed=0
# check FILE [checkpatch options]: one line per file, the full report when it is not clean.
check() {
    local file="$1" out rc line
    shift
    set +e
    out="$(cd "$work" && perl "$checkpatch" --strict --color=never "$@" "$file" 2>&1)"
    rc=$?
    set -e
    local e w c
    e=$(grep -c '^ERROR:' <<<"$out" || true)
    w=$(grep -c '^WARNING:' <<<"$out" || true)
    c=$(grep -c '^CHECK:' <<<"$out" || true)
    if [ "$rc" = 0 ] && [ "$e$w$c" = 000 ]; then
        echo "ok      ${file#"$root"/}"
    else
        echo "FAIL    ${file#"$root"/}: $e errors, $w warnings, $c checks (checkpatch exit $rc)"
        while IFS= read -r line; do echo "    $line"; done <<<"$out"
        failed=1
    fi
}
for p in "${patches[@]}"; do check "$p"; done
for f in "${sources[@]}"; do check "$f" -f; done
if [ $failed = 1 ]; then
    say "checkpatch --strict found errors, warnings or checks (above)"
    exit 1
fi
say "${#patches[@]} patches and ${#sources[@]} source files clean under --strict"
