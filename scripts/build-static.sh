#!/usr/bin/env bash
# Builds a fully static release ptshare (no shared libraries: fewer mappings per forked
# worker, so less page-table overhead per worker; and it runs in a bare initramfs).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-static
echo "scripts/build-static.sh: swift build -c release -static-executable into $scratch" >&2
swift build -c release --scratch-path "$scratch" -Xswiftc -static-executable --product ptshare >&2
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/ptshare"
echo "scripts/build-static.sh: wrote $bin" >&2
echo "$bin"
