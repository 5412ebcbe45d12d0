/* libnuma (Debian's libnuma-dev) for Swift: node lists, the task's memory policy and CPU mask.
 * Used only through PTShareCore's Numa.swift; its failures arrive through the numa_error and
 * numa_warn hooks that CPTShare's numa_hooks.c defines. */
#ifndef CNUMA_H
#define CNUMA_H

#include <numa.h>

/* libnuma's node masks are mutable globals, which Swift 6 refuses to read; libnuma sets them
 * once, in its constructor, and only reads them after. */
static inline const struct bitmask *cnuma_nodes(void)
{
	return numa_nodes_ptr;
}

static inline const struct bitmask *cnuma_all_nodes(void)
{
	return numa_all_nodes_ptr;
}

/* The empty node mask, which numa_set_interleave_mask() turns into MPOL_DEFAULT. */
static inline struct bitmask *cnuma_no_nodes(void)
{
	return numa_no_nodes_ptr;
}

#endif
