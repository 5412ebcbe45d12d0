#!/usr/bin/env bash
# Builds (or reuses) the ptshare test kernel from Debian's linux-source-6.12.
#
#   scripts/kernel-build.sh [--config-only] stock|patched|patched-debug
#
# Every flavour is tinyconfig + kmod/ptshare.config. stock: no patches, nothing else (the
# unpatched baseline); patched: kmod/patches/*.patch applied in order, plus kmod/patched.config
# (CONFIG_PTSHARE=y); patched-debug: patched plus kmod/debug.config (DEBUG_VM, lockdep and
# friends). Builds live outside the
# repository in $PTSHARE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/ptshare), keyed by a hash
# of the source package version, the flavour, the patch series, the fragments and the recipe
# version below: a cached kernel is reused, a changed input rebuilds. Prints the build directory on stdout;
# it holds bzImage, .config, the module build tree (build/) and build.log.
set -euo pipefail

say() { echo "kernel-build: $*" >&2; }
die() { echo "kernel-build: error: $*" >&2; exit 1; }

config_only=0
if [ "${1:-}" = "--config-only" ]; then config_only=1; shift; fi
flavour="${1:-}"
case "$flavour" in
    stock | patched | patched-debug) ;;
    *) die "usage: scripts/kernel-build.sh [--config-only] stock|patched|patched-debug" ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PTSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptshare}"
fragment="$root/kmod/ptshare.config"
patched_fragment="$root/kmod/patched.config"
debug_fragment="$root/kmod/debug.config"

# Tools and the source package: installed when root, the exact line otherwise.
# shellcheck source=scripts/lib/kernel-deps.sh
. "$root/scripts/lib/kernel-deps.sh"
kernel_build_deps

patches=()
if [ "$flavour" != stock ]; then
    # git format-patch --cover-letter's 0000 has no diff (patch would call it garbage).
    while IFS= read -r p; do patches+=("$p"); done < <(find "$root/kmod/patches" -maxdepth 1 -name '*.patch' ! -name '0000-cover-letter.patch' | sort)
fi
if [ "$flavour" != stock ] && ((${#patches[@]} == 0)); then
    die "flavour $flavour needs kmod/patches/*.patch, and there are none: it would only be stock under another name"
fi
# Merged in this order; a later fragment wins. A missing fragment is an error, never a quieter
# kernel under the same flavour name.
fragments=("$fragment")
if [ "$flavour" != stock ]; then fragments+=("$patched_fragment"); fi
if [ "$flavour" = patched-debug ]; then fragments+=("$debug_fragment"); fi
for f in "${fragments[@]}"; do
    [ -f "$f" ] || die "flavour $flavour needs ${f#"$root"/}, and it is missing"
done

# Bump when the recipe below changes what gets built (not for messages): part of the cache key.
# The fragments a flavour merges are hashed by content, so adding one to a flavour changes that
# flavour's key without a bump (and leaves the other flavours' cached kernels valid).
recipe=2
series_hash="$( (for p in "${patches[@]}"; do basename "$p"; cat "$p"; done) | sha256sum | cut -c1-8)"
key="$( (
    echo "$version" "$flavour" "$recipe"
    for p in "${patches[@]}"; do basename "$p"; cat "$p"; done
    cat "${fragments[@]}"
) | sha256sum | cut -c1-16)"
dir="$cache/kernel/$flavour-$key"
localversion="-ptshare-$flavour-$series_hash"

if [ $config_only = 0 ] && [ -f "$dir/ok" ]; then
    say "cached: $dir (linux-source $version, $flavour, ${#patches[@]} patches, series $series_hash)"
    echo "$dir"
    exit 0
fi

# One build tree per flavour is kept: older keys of this flavour are stale (~1.5 GiB each).
# Exactly FLAVOUR-<16 hex digits>: a bare FLAVOUR-* would take patched-debug's tree for a stale patched one.
for old in "$cache/kernel/$flavour"-????????????????; do
    [ -d "$old" ] && [ "$old" != "$dir" ] && { say "removing stale $old"; rm -rf "$old"; }
done
mkdir -p "$dir"
src="$dir/src"
build="$dir/build"
start=$(date +%s)
# The stamp is written only once the source is whole and every patch applied: an interrupted
# unpack or patch is redone, not reused.
if [ ! -f "$dir/source-ready" ]; then
    say "unpacking $tarball (linux-source $version) into $src"
    rm -rf "$src" && mkdir -p "$src"
    tar -xf "$tarball" -C "$src" --strip-components=1
    for p in "${patches[@]}"; do
        say "applying $(basename "$p")"
        patch -d "$src" -p1 --forward --batch <"$p" >&2 || die "$(basename "$p") does not apply to linux-source $version"
    done
    touch "$dir/source-ready"
fi

say "config: tinyconfig + ${fragments[*]##*/}, LOCALVERSION=$localversion"
mkdir -p "$build"
make -s -C "$src" O="$build" tinyconfig >&2
# Not named localversion*: setlocalversion appends the contents of such files in the tree.
lv="$dir/release-name.config"
printf 'CONFIG_LOCALVERSION="%s"\n# CONFIG_LOCALVERSION_AUTO is not set\n' "$localversion" >"$lv"
(cd "$build" && "$src/scripts/kconfig/merge_config.sh" -m -O "$build" .config "${fragments[@]}" "$lv" >&2)
make -s -C "$src" O="$build" olddefconfig >&2

# Every option of every fragment must have landed: Kconfig drops what it cannot satisfy silently.
missing=()
for f in "${fragments[@]}" "$lv"; do
    while IFS= read -r line; do
        case "$line" in
            CONFIG_*=*) grep -qxF -- "$line" "$build/.config" || missing+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo absent))") ;;
            "# CONFIG_"*" is not set")
                opt="${line#\# }"; opt="${opt%% *}"
                ! grep -q "^$opt=" "$build/.config" || missing+=("$line (got: $(grep "^$opt=" "$build/.config"))") ;;
        esac
    done <"$f"
done
if ((${#missing[@]})); then
    printf 'kernel-build: error: fragment option not in .config: %s\n' "${missing[@]}" >&2
    exit 1
fi
say "all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "${fragments[@]}" | awk -F: '{s+=$NF} END {print s}') fragment options landed"
if [ $config_only = 1 ]; then
    echo "$build/.config"
    exit 0
fi

export CCACHE_DIR="$cache/ccache"
# Every key has its own tree; relative paths let objects that did not change hit across keys
# (a new patch or fragment line) instead of missing on the absolute path.
export CCACHE_BASEDIR="$dir" CCACHE_NOHASHDIR=true
jobs="$(nproc)"
say "make -j$jobs bzImage modules_prepare (log: $dir/build.log); about 9 min cold on 2 cores"
if ! make -C "$src" O="$build" -j"$jobs" CC="ccache gcc" bzImage modules_prepare >"$dir/build.log" 2>&1; then
    tail -30 "$dir/build.log" >&2
    die "kernel build failed; full log: $dir/build.log"
fi
cp "$build/arch/x86/boot/bzImage" "$dir/bzImage"
cp "$build/.config" "$dir/config"
release="$(cat "$build/include/config/kernel.release")"
echo "$release" >"$dir/release"
touch "$dir/ok"
say "built $release in $(($(date +%s) - start)) s: $dir/bzImage"
echo "$dir"
