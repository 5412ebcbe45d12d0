#!/usr/bin/env bash
# Proves that every patch of the series builds on its own (bisectable), and that the whole
# series builds with CONFIG_PTSHARE off. For developers of the series; long, not part of CI.
#
#   scripts/series-build-check.sh [--patches DIR]
#
# --patches DIR checks DIR/*.patch instead of kmod/patches (0000-cover-letter.patch is skipped).
# In one tree under $PTSHARE_CACHE/series-check (default ${XDG_CACHE_HOME:-$HOME/.cache}/ptshare),
# unpacked once from Debian's linux-source-6.12 and reset by reverting what the previous run
# applied:
#   step 0       the unpatched source;
#   step 1..N    patch k applied on top of 1..k-1 (patch --fuzz=0: the series must apply to this
#                source exactly), then `make vmlinux`, incremental;
#   step off     the whole series with CONFIG_PTSHARE off.
# Every step configures like scripts/kernel-build.sh's patched flavour: tinyconfig +
# kmod/ptshare.config + kmod/patched.config (CONFIG_PTSHARE=y; before the patch that adds the
# option to Kconfig it cannot land, and the line says so), olddefconfig, and a check that every
# fragment option landed. A step fails on a patch that does not apply, a build error, or any
# compiler or modpost warning in what it rebuilt (the unpatched tinyconfig build has none). A
# step that fails to build does not stop the later ones; a patch that does not apply does.
# Prints one line per step with its time, a summary table at the end, and exits 1 when any
# step failed. Build logs: $PTSHARE_CACHE/series-check/logs/. Compiles through the same ccache
# as kernel-build.sh, with the same tree layout, so objects a kernel build already compiled hit.
set -euo pipefail

say() { echo "series-build-check: $*" >&2; }
die() { echo "series-build-check: error: $*" >&2; exit 1; }

root="$(cd "$(dirname "$0")/.." && pwd)"
patchdir="$root/kmod/patches"
while (($#)); do
    case "$1" in
        --patches) [ $# -ge 2 ] || die "--patches needs a directory"; patchdir="$2"; shift 2 ;;
        *) die "usage: scripts/series-build-check.sh [--patches DIR]" ;;
    esac
done
cache="${PTSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptshare}"
fragment="$root/kmod/ptshare.config"
patched_fragment="$root/kmod/patched.config"

# shellcheck source=scripts/lib/kernel-deps.sh
. "$root/scripts/lib/kernel-deps.sh"
kernel_build_deps
for f in "$fragment" "$patched_fragment"; do [ -f "$f" ] || die "${f#"$root"/} is missing"; done

patches=()
if [ -d "$patchdir" ]; then
    while IFS= read -r p; do patches+=("$p"); done < <(find "$patchdir" -maxdepth 1 -name '*.patch' ! -name '0000-cover-letter.patch' | sort)
fi
((${#patches[@]})) || die "no patches in $patchdir (cover letter aside): there is no series to check"

# The same layout below CCACHE_BASEDIR as kernel-build.sh ($dir/src, $dir/build): ccache keys on
# paths relative to it, so objects compiled there hit here.
base="$cache/series-check"
src="$base/src"
build="$base/build"
applied="$base/applied"
logs="$base/logs"
mkdir -p "$base"

# Reset the tree to the unpatched source: revert, newest first, the copies of the patches the
# last run applied (patch rewrites each file it touches, so make sees them as changed). If that
# fails, or the source package changed, unpack afresh and start the build tree over.
fresh=0
if [ ! -f "$base/source-ready" ] || [ "$(cat "$base/source-ready")" != "$version" ]; then
    fresh=1
elif [ -d "$applied" ]; then
    while IFS= read -r p; do
        if ! patch -d "$src" -p1 -R --batch --silent <"$p" >&2; then
            say "could not revert $(basename "$p") from the last run; unpacking afresh"
            fresh=1
            break
        fi
        rm "$p"
    done < <(find "$applied" -maxdepth 1 -name '*.patch' | sort -r)
fi
if [ $fresh = 1 ]; then
    say "unpacking $tarball (linux-source $version) into $src"
    rm -rf "$src" "$build" "$applied" "$base/source-ready"
    mkdir -p "$src"
    tar -xf "$tarball" -C "$src" --strip-components=1
    echo "$version" >"$base/source-ready"
fi
rm -rf "$applied" "$logs"
mkdir -p "$applied" "$logs" "$build"

lv="$base/release-name.config"
printf 'CONFIG_LOCALVERSION="-ptshare-series-check"\n# CONFIG_LOCALVERSION_AUTO is not set\n' >"$lv"
off="$base/ptshare-off.config"
printf '# CONFIG_PTSHARE is not set\n' >"$off"

# configure on|off: kernel-build.sh's recipe; prints what happened to CONFIG_PTSHARE. Returns 1
# when a fragment option did not land.
configure() {
    local mode="$1" frags=("$fragment") line opt bad=0
    if [ "$mode" = on ]; then frags+=("$patched_fragment"); else frags+=("$off"); fi
    # Called as 'if ! configure', where set -e is off: each step returns on failure itself.
    make -s -C "$src" O="$build" tinyconfig >&2 || return 1
    (cd "$build" && "$src/scripts/kconfig/merge_config.sh" -m -O "$build" .config "${frags[@]}" "$lv" >/dev/null) ||
        return 1
    make -s -C "$src" O="$build" olddefconfig >&2 || return 1
    local defined=0
    grep -rqx --include='Kconfig*' 'config PTSHARE' "$src/mm" "$src/arch/x86" && defined=1
    for f in "${frags[@]}" "$lv"; do
        while IFS= read -r line; do
            case "$line" in
                CONFIG_*=*) opt="${line%%=*}" ;;
                "# CONFIG_"*" is not set") opt="${line#\# }"; opt="${opt%% *}" ;;
                *) continue ;;
            esac
            # Before the series adds the option, Kconfig drops it: expected, not a failure.
            [ "$opt" = CONFIG_PTSHARE ] && [ $defined = 0 ] && continue
            case "$line" in
                CONFIG_*=*) grep -qxF -- "$line" "$build/.config" ;;
                *) ! grep -q "^$opt=" "$build/.config" ;;
            esac || { say "fragment option did not land: $line (got: $(grep -E "^(# )?${opt}[= ]" "$build/.config" || echo absent))"; bad=1; }
        done <"$f"
    done
    if [ $defined = 0 ]; then
        ptshare_state="not in Kconfig yet"
    else
        ptshare_state="$(grep -E '^(# )?CONFIG_PTSHARE[= ]' "$build/.config")"
    fi
    return $bad
}

export CCACHE_DIR="$cache/ccache"
export CCACHE_BASEDIR="$base" CCACHE_NOHASHDIR=true
jobs="$(nproc)"
results=()
failed=0
# build STEP NAME MODE: configure and make vmlinux; one result line.
build_step() {
    local step="$1" name="$2" mode="$3" log="$logs/$1.log" t0 secs verdict
    t0=$(date +%s)
    if ! configure "$mode" >"$log.config" 2>&1; then
        cat "$log.config" >&2
        verdict="FAIL (config)"
    elif ! make -C "$src" O="$build" -j"$jobs" CC="ccache gcc" vmlinux >"$log" 2>&1; then
        grep -E 'error:|Error [0-9]' "$log" | head -20 | sed 's/^/    /' >&2
        verdict="FAIL (build; $log)"
    elif grep -qE 'warning:|WARNING:' "$log"; then
        grep -E 'warning:|WARNING:' "$log" | head -20 | sed 's/^/    /' >&2
        verdict="FAIL (warnings; $log)"
    else
        verdict="ok"
    fi
    secs=$(($(date +%s) - t0))
    [ "$verdict" = ok ] || failed=1
    results+=("$(printf '%-6s %-5s %5d s  %-55s  CONFIG_PTSHARE: %s' "$step" "${verdict%% *}" "$secs" "$name" "$ptshare_state")")
    say "step $step ($name): $verdict in $secs s; CONFIG_PTSHARE: $ptshare_state"
}

ptshare_state="?"
say "${#patches[@]} patches from $patchdir; $jobs jobs; logs in $logs"
build_step 0 "unpatched linux-source $version" on
k=0
stopped=""
for p in "${patches[@]}"; do
    k=$((k + 1))
    name="$(basename "$p")"
    # A dry run first: a patch that half applies would leave the tree in a state no later run
    # could revert.
    if ! patch -d "$src" -p1 --forward --batch --fuzz=0 --dry-run <"$p" >"$logs/$k.patch.log" 2>&1; then
        sed 's/^/    /' "$logs/$k.patch.log" >&2
        results+=("$(printf '%-6s %-5s %5s    %-55s  does not apply with --fuzz=0' "$k" FAIL - "$name")")
        failed=1
        stopped="$name"
        break
    fi
    patch -d "$src" -p1 --forward --batch --fuzz=0 <"$p" >"$logs/$k.patch.log" 2>&1 ||
        die "$name applied in a dry run but not for real; see $logs/$k.patch.log"
    cp "$p" "$applied/$(printf '%04d' "$k").patch"
    build_step "$k" "$name" on
done
if [ -z "$stopped" ]; then
    build_step off "all ${#patches[@]} patches, CONFIG_PTSHARE off" off
    if [ "$ptshare_state" != "# CONFIG_PTSHARE is not set" ]; then
        results+=("off    FAIL  CONFIG_PTSHARE could not be turned off: $ptshare_state")
        failed=1
    fi
else
    say "stopped at $stopped: the later patches and the CONFIG_PTSHARE=n build were not tried"
fi

echo "step   result  time  patch                                                    config"
printf '%s\n' "${results[@]}"
if [ $failed = 1 ]; then
    say "some steps failed (above)"
    exit 1
fi
say "every patch builds, and the series builds with CONFIG_PTSHARE off"
