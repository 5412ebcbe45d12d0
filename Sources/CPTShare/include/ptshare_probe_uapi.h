/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The ptshare_probe debugfs interface, shared by the module (kmod/ptshare_probe) and ptshare's
 * C shim: fixed-size fields only, so one layout serves both sides.
 *
 * /sys/kernel/debug/ptshare_probe/query (0600) takes PTSHARE_PROBE_IOC_QUERY: for process
 * `pid` and the range [start, end), one slot per 2 MiB step saying which PTE table maps it (or
 * that a huge leaf or nothing does), and one slot per 1 GiB step saying which PMD table maps
 * it. /sys/kernel/debug/ptshare_probe/version (0400) reads the interface version.
 */
#ifndef PTSHARE_PROBE_UAPI_H
#define PTSHARE_PROBE_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define PTSHARE_PROBE_VERSION 1

/*
 * Work per call is capped: at most this many bytes of address range, which an unaligned range
 * spreads over up to 32769 2 MiB steps and 65 1 GiB steps. Errors: ESRCH (no such pid, or no
 * mm), EINVAL (empty, inverted, beyond user space or over the cap, wrong version, too few
 * slots), EFAULT (bad pointer), EINTR (killed waiting for the mmap lock), ENOMEM, ENOTTY
 * (unknown ioctl). 64-bit callers only.
 */
#define PTSHARE_PROBE_MAX_RANGE (64ULL << 30)

enum ptshare_probe_kind {
	PTSHARE_PROBE_NONE = 0,   /* no table: nothing mapped there (or no VMA in the range) */
	PTSHARE_PROBE_TABLE = 1,  /* pfn is the table page */
	PTSHARE_PROBE_LEAF = 2,   /* mapped by a huge leaf one level up: no table below */
	PTSHARE_PROBE_OTHER = 3,  /* a non-present entry (migration, swap of a huge page) */
};

struct ptshare_probe_slot {
	__u64 pfn;
	__u32 kind;               /* enum ptshare_probe_kind */
	__u32 reserved;
};

struct ptshare_probe_query {
	__u32 version;            /* in: PTSHARE_PROBE_VERSION */
	__u32 pid;                /* in */
	__u64 start;              /* in: range, any alignment; steps are aligned windows */
	__u64 end;                /* in: exclusive */
	__u64 pte_slots;          /* in: user pointer, one slot per 2 MiB step */
	__u64 pmd_slots;          /* in: user pointer, one slot per 1 GiB step */
	__u32 n_pte_slots;        /* in: capacity; out: steps filled */
	__u32 n_pmd_slots;        /* in: capacity; out: steps filled */
	__u64 pte_tables;         /* out: 2 MiB steps mapped by a PTE table */
	__u64 pmd_leaves;         /* out: 2 MiB steps mapped by a PMD leaf */
	__u64 pmd_tables;         /* out: 1 GiB steps mapped by a PMD table */
	__u64 pud_leaves;         /* out: 1 GiB steps mapped by a PUD leaf */
};

#define PTSHARE_PROBE_IOC_QUERY _IOWR('p', 0x01, struct ptshare_probe_query)

#endif
