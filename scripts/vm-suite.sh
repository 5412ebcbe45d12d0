#!/usr/bin/env bash
# README command 1: the verification suite in QEMU on a test kernel built from Debian's
# linux-source-6.12.
#
#   scripts/vm-suite.sh [stock|patched|patched-debug|unflagged] [ptshare vm options...] [-- suite options...]
#
# Runs `ptshare vm --kernel FLAVOUR [vm options] -- suite --ktap --expect-map-shared-pt X
# [suite options]`: X is unsupported for stock and supported for the patched flavours.
# `unflagged` is the patched kernel with the suite's MAP_SHARED_PT value set to 0x400000, a bit
# no kernel defines: every mmap with it fails EOPNOTSUPP as on stock, so the suite takes its
# stock path there (X unsupported; the pressure and hook tests run unshared) on the kernel the
# series built: the tests proven without the flag, and the series shown to leave plain
# MAP_SHARED mappings alone, with no kernel build of its own (CI's stock step). Options
# after `--` go to the suite in the guest, e.g. `-- --test sharedpt.stress` (repeatable) runs
# a subset. For the patched flavours the suite runs with --fail-on-skip: a test that SKIPs there
# did not run, and fails the step unless it is given with --allow-skip NAME after `--`. On the
# stock path (stock, unflagged) only a SKIP for want of the flag is allowed
# (--allow-unsupported-skips). Installs what it needs when run as root (QEMU here; the kernel and initramfs
# scripts install theirs), otherwise prints the apt-get line. Exit status: ptshare vm's
# (non-zero on any "not ok", on a kernel problem in the console, or when the VM could not run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
flavour="${1:-stock}"
shift || true
skip_policy=()
flag=()
kernel="$flavour"
# Stock path: the tests that need the flag SKIP by design; any other SKIP is a test that should
# have run unshared, and fails.
case "$flavour" in
    stock)
        expect=unsupported
        skip_policy=(--fail-on-skip --allow-unsupported-skips)
        ;;
    unflagged)
        kernel=patched
        expect=unsupported
        flag=(--map-shared-pt-value 0x400000)
        skip_policy=(--fail-on-skip --allow-unsupported-skips)
        ;;
    patched | patched-debug)
        expect=supported
        skip_policy=(--fail-on-skip)
        ;;
    *) echo "vm-suite: error: flavour must be stock, patched, patched-debug or unflagged" >&2; exit 64 ;;
esac
vm_args=()
suite_args=()
while (($#)); do
    if [ "$1" = -- ]; then
        shift
        suite_args=("$@")
        break
    fi
    vm_args+=("$1")
    shift
done
if ! command -v qemu-system-x86_64 >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "vm-suite: apt-get install qemu-system-x86" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 >&2
    else
        echo "vm-suite: error: QEMU missing; run: sudo apt-get install -y qemu-system-x86" >&2
        exit 1
    fi
fi
# One static build serves the host (ptshare vm) and the guest (initramfs.sh reuses it).
bin="$(scripts/build-static.sh)"
export PTSHARE_STATIC_BIN="$bin"
# The whole patched suite runs about 40 tests under TCG; 30 min leaves room on a loaded host (a
# later --timeout in the vm options wins).
exec "$bin" vm --kernel "$kernel" --timeout 1800 ${vm_args[@]+"${vm_args[@]}"} -- suite --ktap --expect-map-shared-pt "$expect" \
    ${flag[@]+"${flag[@]}"} ${skip_policy[@]+"${skip_policy[@]}"} ${suite_args[@]+"${suite_args[@]}"}
