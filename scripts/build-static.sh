#!/usr/bin/env bash
# Builds a fully static release ptshare (no shared libraries: fewer mappings per forked
# worker, so less page-table overhead per worker; and it runs in a bare initramfs).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-static
# The CNuma target links -lnuma; a static executable needs the archive, which libnuma-dev ships.
if [ ! -e /usr/include/numa.h ] || [ ! -e /usr/lib/x86_64-linux-gnu/libnuma.a ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "scripts/build-static.sh: apt-get install libnuma-dev" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnuma-dev >&2
    else
        echo "scripts/build-static.sh: error: libnuma-dev missing; run: sudo apt-get install -y libnuma-dev" >&2
        exit 1
    fi
fi
echo "scripts/build-static.sh: swift build -c release -static-executable into $scratch" >&2
swift build -c release --scratch-path "$scratch" -Xswiftc -static-executable --product ptshare >&2
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/ptshare"
echo "scripts/build-static.sh: wrote $bin" >&2
echo "$bin"
