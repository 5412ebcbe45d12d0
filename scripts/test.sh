#!/usr/bin/env bash
# The project's test command (README "Test"): format lint, unit tests, native integration
# tests that really fork and map. Installs what it needs when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/opt/swift/usr/bin:$PATH"
if ! command -v swift >/dev/null; then
    echo "scripts/test.sh: swift not found (expected Swift 6.x at /opt/swift or on PATH)" >&2
    exit 1
fi
# gzip reads /proc/config.gz (hugetlb PMD sharing is decided from the kernel config).
need=()
command -v gzip >/dev/null || need+=(gzip)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "scripts/test.sh: apt-get install ${need[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "scripts/test.sh: missing ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi

echo "== swift format lint --strict" >&2
swift format lint --strict -r Sources Tests Package.swift

echo "== swift build --build-tests" >&2
swift build --build-tests

# Two invocations: PageTables is global, and unit tests allocating in the same test process
# would grow its page tables while an integration run measures.
echo "== swift test (unit)" >&2
swift test --skip IntegrationTests
# --no-parallel: one suite's QEMU or workers must not run while another measures PageTables.
echo "== swift test (native integration: forks, maps, reads /proc; vm bad input)" >&2
swift test --no-parallel --filter IntegrationTests

# The suite on the stock test kernel under QEMU: a cold kernel build is ~10 min on 2 cores,
# a cached one is reused. PTSHARE_SKIP_VM=1 leaves it out (for a quick local loop only).
if [ "${PTSHARE_SKIP_VM:-0}" = 1 ]; then
    echo "== VM suite: SKIPPED (PTSHARE_SKIP_VM=1)" >&2
else
    echo "== VM suite on the stock kernel (scripts/vm-suite.sh stock)" >&2
    scripts/vm-suite.sh stock
fi
