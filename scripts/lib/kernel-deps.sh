# shellcheck shell=bash
# Sourced by scripts/kernel-build.sh and scripts/series-build-check.sh: Debian's
# linux-source-6.12 and the tools to build it, installed when root, the exact apt-get line
# otherwise. Uses the caller's say and die; sets tarball and version.
kernel_build_deps() {
    local pkgs=(linux-source-6.12 bc flex bison libelf-dev libssl-dev dwarves cpio xz-utils ccache make gcc patch)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" = 0 ]; then
            say "apt-get install ${missing[*]}"
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        else
            die "missing packages; run: sudo apt-get install -y ${missing[*]}"
        fi
    fi
    # shellcheck disable=SC2034 # tarball and version are for the sourcing script
    tarball=/usr/src/linux-source-6.12.tar.xz
    [ -f "$tarball" ] || die "$tarball not found after installing linux-source-6.12"
    # shellcheck disable=SC2034
    version="$(dpkg-query -W -f='${Version}' linux-source-6.12)"
}
