/* Exposes what Swift's Glibc module lacks (memfd_create, MADV_POPULATE_*, wait macros) and
 * the forked worker's body, which must stay async-signal-safe and so is written in C. */
#ifndef CPTSHARE_H
#define CPTSHARE_H

#include <stdint.h>
#include <sys/types.h>

#include "ptshare_probe_uapi.h"

/* Constants that glibc headers hide behind _GNU_SOURCE or that older headers lack. */
extern const int ptshare_MFD_CLOEXEC;
extern const int ptshare_MFD_HUGETLB;
extern const int ptshare_MAP_SHARED_VALIDATE;
extern const int ptshare_MAP_SYNC;
extern const int ptshare_MAP_FIXED_NOREPLACE;
extern const int ptshare_MADV_POPULATE_READ;
extern const int ptshare_MADV_POPULATE_WRITE;
extern const long ptshare_HUGETLBFS_MAGIC;
extern const long ptshare_TMPFS_MAGIC;

int ptshare_memfd_create(const char *name, unsigned int flags);
int ptshare_pipe_cloexec(int fds[2]);
/* prctl is variadic, which Swift cannot call. */
int ptshare_set_child_subreaper(int on);
/* RLIMIT_NPROC's enum constant is not visible without _GNU_SOURCE. */
int ptshare_nproc_limit(uint64_t *soft);
int ptshare_fallocate(int fd, int mode, int64_t offset, int64_t len);
/* struct statfs and statfs() share a name, which Swift cannot import unambiguously. */
int ptshare_statfs(const char *path, long *type, uint64_t *block_size);
/* statx(fd) STATX_ATTR_DAX: 1 when the file is accessed by DAX, 0 when not, -1 with errno
 * (EOPNOTSUPP where the kernel does not report the attribute). */
int ptshare_statx_dax(int fd);
/* prctl(PR_SET_THP_DISABLE, on) for this process and the children it forks after; returns the
 * setting before (0 or 1), or -1 with errno. */
int ptshare_thp_disable(int on);

/* ioctl is variadic, which Swift cannot call. */
int ptshare_probe_ioctl_query(int fd, struct ptshare_probe_query *q);
/* Any ioctl number and argument on the probe's file: kmod.badinput checks that an unknown one
 * is ENOTTY and that a bad query pointer is EFAULT. _IOWR does not import into Swift. */
int ptshare_ioctl_raw(int fd, unsigned long cmd, unsigned long arg);
extern const unsigned long ptshare_PROBE_IOC_QUERY;
/* A child that only waits to be killed (dies with its parent): a short-lived mm to query. */
pid_t ptshare_fork_sleeper(void);
/* No glibc wrappers: load and unload the probe module (kmod.badinput's reload cycles). */
int ptshare_finit_module(int fd, const char *params, int flags);

/* ptshare scale: a sharer that maps `size` of fd with `flags`, reads one word per 2 MiB chunk,
 * writes one byte to ready_fd and exits at EOF on hold_fd. Closes close_fds first (the driver's
 * ends). Returns the child's pid to the caller, -1 with errno when fork failed. */
pid_t ptshare_scale_spawn(int fd, uint64_t size, int flags, int ready_fd, int hold_fd,
			  const int *close_fds, int nclose);
int ptshare_delete_module(const char *name, unsigned int flags);

/* Wait-status macros are function-like and do not import. */
int ptshare_wifexited(int status);
int ptshare_wexitstatus(int status);
int ptshare_wifsignaled(int status);
int ptshare_wtermsig(int status);

/* SIGINT/SIGTERM/SIGHUP set a flag (no SA_RESTART, so blocking calls return EINTR) and
 * are unblocked; the driver polls the flag and tears the run down. 0 or -1 with errno. */
int ptshare_install_stop_handlers(void);
/* The last stop signal received, or 0. */
/* SIGPIPE ignored (what ptshare_install_stop_handlers also does); 0 or -1 with errno. */
int ptshare_ignore_sigpipe(void);
int ptshare_stop_signal(void);

enum ptshare_touch {
	PTSHARE_TOUCH_NONE = 0,
	PTSHARE_TOUCH_READ = 1,
	PTSHARE_TOUCH_WRITE = 2,
	PTSHARE_TOUCH_POPULATE_READ = 3,
	PTSHARE_TOUCH_POPULATE_WRITE = 4,
};

/* Where a worker is; a failure report carries the phase it failed in. */
enum ptshare_phase {
	PTSHARE_PHASE_SETUP = 0,   /* prctl, process group */
	PTSHARE_PHASE_FORKED = 1,  /* settled, nothing mapped: the control point */
	PTSHARE_PHASE_MAP = 2,     /* mmap */
	PTSHARE_PHASE_TOUCH = 3,   /* faulting or MADV_POPULATE_* */
	PTSHARE_PHASE_READY = 4,   /* mapped and touched, waiting for release */
};

/* Everything a worker needs, prepared by the driver before fork so that the child
 * only reads it. */
struct ptshare_worker_plan {
	int32_t driver_pid;
	int32_t pgid;              /* 0: become the group leader */
	int32_t fd;                /* backing file; -1 when the mapping is inherited */
	int32_t prot;
	int32_t flags;             /* full mmap flags */
	int32_t touch;             /* enum ptshare_touch */
	int32_t report_write_fd;
	int32_t report_read_fd;    /* closed by the worker */
	int32_t go_read_fd;        /* a byte (token): map and touch now; EOF: exit */
	int32_t go_write_fd;       /* closed by the worker */
	int32_t release_read_fd;   /* EOF: exit */
	int32_t release_write_fd;  /* closed by the worker */
	uint64_t address;          /* hint, fixed address, or the inherited mapping */
	uint64_t length;
	uint64_t offset;
	uint64_t touch_stride;     /* bytes between touched bytes: the page size */
};

/* Fixed-size, smaller than PIPE_BUF: writes from many workers into one pipe stay whole. */
struct ptshare_worker_report {
	uint32_t index;
	uint32_t phase;            /* enum ptshare_phase */
	int32_t error;             /* errno, 0 on success */
	int32_t pid;
	uint64_t address;
	uint64_t map_ns;
	uint64_t touch_ns;
};

/* The body of a forked worker. Never returns; allocates nothing, prints nothing. */
__attribute__((noreturn))
void ptshare_worker_main(const struct ptshare_worker_plan *plan, uint32_t index);

/* MAP_SHARED_PT tests (sharedpt.*): constants behind _GNU_SOURCE or <linux/...> headers, and
 * the syscalls Swift cannot call (mremap is variadic, mlock2 has no wrapper in older glibc). */
extern const int ptshare_MAP_LOCKED;
extern const int ptshare_MADV_DONTNEED;
extern const int ptshare_MPOL_MF_MOVE;
extern const int ptshare_MPOL_MF_MOVE_ALL;
extern const int ptshare_MADV_HUGEPAGE;
extern const int ptshare_MADV_NOHUGEPAGE;
extern const int ptshare_MADV_COLD;
extern const int ptshare_MADV_PAGEOUT;
extern const int ptshare_MADV_DONTDUMP;
extern const int ptshare_MADV_DODUMP;
extern const int ptshare_MADV_REMOVE;
extern const int ptshare_MADV_COLLAPSE;
extern const int ptshare_MADV_MERGEABLE;
extern const int ptshare_MADV_HWPOISON;
extern const int ptshare_MCL_CURRENT;
extern const int ptshare_MCL_FUTURE;
extern const int ptshare_MREMAP_MAYMOVE;
extern const int ptshare_MLOCK_ONFAULT;
extern const int ptshare_FALLOC_FL_KEEP_SIZE;
extern const int ptshare_FALLOC_FL_PUNCH_HOLE;
extern const long ptshare_RAMFS_MAGIC;

/* A sharer: a forked child that maps and touches on command, one command at a time, and
 * answers each. Accesses run under a SIGBUS/SIGSEGV handler (sigsetjmp/siglongjmp), so a
 * fault is an answer, not a death. Async-signal-safe: it allocates nothing and prints nothing. */
enum ptshare_agent_op {
	PTSHARE_AGENT_MAP = 1,        /* mmap(addr, length, arg=prot, flags, fd, offset) -> value: address */
	PTSHARE_AGENT_UNMAP = 2,      /* munmap(addr, length) */
	PTSHARE_AGENT_FILL = 3,       /* first word of every page of [addr, addr+length) = value + page index */
	PTSHARE_AGENT_CHECK = 4,      /* the same words read back; mismatch: error EBADMSG, value: offset, found */
	PTSHARE_AGENT_CHECK_ZERO = 5, /* every byte of [addr, addr+length) is 0; mismatch as CHECK */
	PTSHARE_AGENT_READ = 6,       /* value: the word at addr */
	PTSHARE_AGENT_WRITE = 7,      /* the word at addr = value */
	PTSHARE_AGENT_MPROTECT = 8,   /* mprotect(addr, length, arg=prot) */
	PTSHARE_AGENT_MREMAP = 9,     /* mremap(addr, length, offset=new length, arg=flags) -> value: address */
	PTSHARE_AGENT_MLOCK = 10,     /* arg 0: mlock(addr, length); else mlock2(addr, length, arg) */
	PTSHARE_AGENT_MADVISE = 11,   /* madvise(addr, length, arg=advice) */
	PTSHARE_AGENT_FORK = 12,      /* fork; the child answers on spare channel arg and keeps the
	                               * spares in the bit mask flags, which the parent closes with
	                               * spare arg. value: child pid */
	PTSHARE_AGENT_EXIT = 13,      /* _exit(0), no answer */
	/* 20-39: the semantics tests' rarer calls */
	PTSHARE_AGENT_MLOCKALL = 20,  /* arg 0: munlockall(); else mlockall(arg) */
	PTSHARE_AGENT_UFFD_REGISTER = 21, /* userfaultfd + UFFDIO_API + UFFDIO_REGISTER(MISSING) of [addr,
	                                     addr+length), then close; error: errno, value: the failed step
	                                     (1 userfaultfd, 2 UFFDIO_API, 3 UFFDIO_REGISTER) */
	PTSHARE_AGENT_PIN_CPU = 22,   /* sched_setaffinity to CPU arg alone */
	PTSHARE_AGENT_SPIN_READ = 23, /* sets the word at offset (a plain shared page) to 1, then loads the word
	                                 at addr until the word at offset + 8 is non-zero, making no syscall;
	                                 found: the last load before, value: the first load after. At most
	                                 `value` rounds (error ETIMEDOUT) */
	PTSHARE_AGENT_KVM_VM = 24,    /* open /dev/kvm, KVM_CREATE_VM, which registers an MMU notifier on the mm;
	                                 the VM stays open. error: errno, value: the failed step (1 open, 2
	                                 KVM_CREATE_VM) */
	PTSHARE_AGENT_MOVE_PAGES = 25, /* move_pages(2) of every page of [addr, addr+length): to node arg with
	                                  flags (MPOL_MF_MOVE or MPOL_MF_MOVE_ALL), or, arg -1, where they
	                                  are. value: pages on node `value` after the call, found: pages
	                                  whose status is -EACCES; error: errno of the call */
	PTSHARE_AGENT_MBIND = 26,     /* mbind(2) of [addr, addr+length): MPOL_BIND to node arg with flags
	                                 (MPOL_MF_MOVE...), or, arg -1, MPOL_DEFAULT. error: errno */
	/* 40-59: sharedpt.teardown.* (20-39 and 60+ are other families') */
	PTSHARE_AGENT_EXEC = 40,      /* execve /bin/true, else /bin/busybox true: no answer; error: errno when neither ran */
};

/* Fixed-size, smaller than PIPE_BUF. */
struct ptshare_agent_command {
	uint32_t op;                  /* enum ptshare_agent_op */
	int32_t arg;
	int32_t flags;
	int32_t fd;
	uint64_t addr;
	uint64_t length;
	uint64_t offset;
	uint64_t value;
};

struct ptshare_agent_reply {
	int32_t error;                /* errno; 0 on success */
	int32_t fault_signal;         /* SIGBUS or SIGSEGV when the access raised it (value: the offset) */
	int32_t pid;
	int32_t pad;
	uint64_t value;
	uint64_t found;
};

/* Spare channels a sharer can hold: one per fork child (or grandchild) it is to have. */
#define PTSHARE_AGENT_SPARES 6

struct ptshare_agent_plan {
	int32_t driver_pid;
	int32_t command_read_fd;
	int32_t reply_write_fd;
	/* The channels forked children of this sharer take over, -1 where none. */
	int32_t spare_command_read_fd[PTSHARE_AGENT_SPARES];
	int32_t spare_reply_write_fd[PTSHARE_AGENT_SPARES];
	/* The driver's ends of every channel, -1 where none. */
	int32_t close_fds[2 + 2 * PTSHARE_AGENT_SPARES];
};

__attribute__((noreturn))
void ptshare_agent_main(const struct ptshare_agent_plan *plan);

/* What libnuma said through numa_error/numa_warn since ptshare_numa_clear() (numa_hooks.c):
 * the errno of its first numa_error (0 when it only warned) and its messages, joined by "; ".
 * Returns how many it made. */
void ptshare_numa_clear(void);
int ptshare_numa_complaints(int *err, const char **text);

/* sched_setaffinity of the calling thread to CPU `cpu` alone (`cpu` < 64), the previous mask of
 * CPUs 0-63 in *saved; and back. 0 or -1 with errno. */
int ptshare_pin_to_cpu(int cpu, uint64_t *saved);
/* Forks a child that writes `value` to `path` in one write(2) (a sysctl that blocks for a
 * while, such as vm.compact_memory) and exits 0, or with the errno; returns its pid, or -1
 * with errno. The caller goes on meanwhile and reaps it. */
int ptshare_write_in_child(const char *path, const char *value);
int ptshare_set_cpu_mask(uint64_t mask);

/* sharedpt.stress: a process that, until the deadline or `iterations` rounds, maps the file
 * with MAP_SHARED_PT at a varying 2 MiB-aligned offset and length, writes its own word in every
 * page (word `slot`), checks every owner's word of every page, forks a checking child now and
 * then, unmaps (sometimes in two aligned pieces), and finally reports. The truncator shrinks
 * the file to `floor` and back and punches holes above it: SIGBUS above the floor is tolerated.
 * With `anon_addr`, anonymous shared memory instead (below). */
struct ptshare_stress_plan {
	int32_t driver_pid;
	int32_t fd;
	int32_t report_write_fd;
	int32_t report_read_fd;        /* closed by the child */
	uint32_t flag;                 /* the MAP_SHARED_PT value */
	uint32_t processes;            /* word owners; at most 512 */
	uint64_t file_size;            /* a multiple of 2 MiB */
	uint64_t floor;                /* never truncated below; a multiple of 2 MiB */
	uint64_t deadline_ns;          /* CLOCK_MONOTONIC */
	uint32_t iterations;
	uint32_t truncator_slot;
	/* Address of two MAP_SHARED anonymous pages the driver mapped before forking, 512 uint64_t
	 * each, indexed by slot. The first: the generation each slot has published (before writing
	 * a word of it). The second: the generation it has finished writing, << 32, | the page after
	 * the last it wrote << 16 | the first (it wrote every page between). They outlive a slot's
	 * process, so a respawned writer continues its slot's generations. */
	uint64_t generations;
	/* Nonzero: anonymous shared memory, file_size bytes the driver mapped here with the flag
	 * (MAP_SHARED | MAP_ANONYMOUS) before forking, and `fd` unused. A process then works in
	 * the mapping it inherited (it attaches on its first touch) instead of mapping the file,
	 * unmaps it in pieces at the end of its rounds, and the truncator punches the range above
	 * the floor with MADV_REMOVE instead of truncating. */
	uint64_t anon_addr;
};

/* A stress word: magic (8 bits) | writer slot (12) | page index in the file (16) |
 * generation (28, from 1). A reader can tell from it who wrote it, for which page, and when. */
enum {
	PTSHARE_STRESS_WORD_MAGIC = 0xA5,
	PTSHARE_STRESS_WORD_WRITER_SHIFT = 44,
	PTSHARE_STRESS_WORD_PAGE_SHIFT = 28,
	PTSHARE_STRESS_WORD_PAGE_MASK = 0xffff,
	PTSHARE_STRESS_WORD_GENERATION_MASK = 0xfffffff,
};

uint64_t ptshare_stress_word(uint32_t writer, uint64_t page, uint64_t generation);

/* Why a reader refused a word (enum ptshare_stress_refusal). */
enum ptshare_stress_refusal {
	PTSHARE_WORD_ACCEPTED = 0,
	PTSHARE_WORD_NOT_STRESS = 1,   /* the magic byte is wrong: nobody in the run wrote it */
	PTSHARE_WORD_WRITER = 2,       /* names another writer than the word's slot, or a slot that writes no words */
	PTSHARE_WORD_PAGE = 3,         /* written for another page of the file */
	PTSHARE_WORD_GENERATION = 4,   /* generation 0, which no writer uses */
	PTSHARE_WORD_FUTURE = 5,       /* newer than the generation its writer has published */
	PTSHARE_WORD_BACKWARDS = 6,    /* older than a generation this reader saw in the same word before */
	PTSHARE_WORD_ZERO = 7,         /* 0 below the floor, where this reader saw the writer's word before */
	PTSHARE_WORD_STALE = 8,        /* below the floor, older than a generation its writer finished writing there */
};

/* Pure: whether a reader accepts `word`, found in word `w` of file page `page`. `writes`: slot w
 * writes words (a stress slot other than the truncator); `published`: slot w's published
 * generation, read after the word; `finished`: the generation slot w had finished writing over
 * this page, read before the word (0: none); `seen`: the newest generation this reader accepted
 * in this word before (0: none); `above_floor`: the page lies where truncate and punch zero it.
 * Returns an enum ptshare_stress_refusal. */
uint32_t ptshare_stress_judge_word(uint64_t word, uint32_t w, uint64_t page, int writes, uint64_t published,
				   uint64_t finished, uint64_t seen, int above_floor);

enum ptshare_stress_error {
	PTSHARE_STRESS_OK = 0,
	PTSHARE_STRESS_MMAP = 1,       /* err_no set */
	PTSHARE_STRESS_MUNMAP = 2,     /* err_no set */
	PTSHARE_STRESS_FOREIGN = 3,    /* a word was refused: refusal says why, found is the word */
	PTSHARE_STRESS_OWN = 4,        /* this process's word lost the value it wrote last */
	PTSHARE_STRESS_FORK = 5,       /* err_no set */
	PTSHARE_STRESS_SIGBUS = 6,     /* SIGBUS below the floor, which is never truncated */
	PTSHARE_STRESS_TRUNCATE = 7,   /* ftruncate/fallocate failed; err_no set */
	PTSHARE_STRESS_CHILD = 8,      /* a forked child died or exited non-zero; found: wait status */
	PTSHARE_STRESS_SIGSEGV = 9,    /* an access to its own mapping raised SIGSEGV */
};

/* Fixed-size, smaller than PIPE_BUF. */
struct ptshare_stress_report {
	uint32_t slot;
	int32_t pid;
	uint32_t error;                /* enum ptshare_stress_error */
	int32_t err_no;
	uint32_t in_child;             /* 1: sent by a forked child of the slot's process */
	uint32_t refusal;              /* PTSHARE_STRESS_FOREIGN: enum ptshare_stress_refusal */
	uint64_t iterations;
	uint64_t sigbus;
	uint64_t forks;
	uint64_t offset;               /* file offset of the word at fault */
	uint64_t found;
	/* OWN: the value written last. FOREIGN: the generation bound the word broke (the published
	 * one for FUTURE, the one seen before for BACKWARDS and ZERO, the finished one for STALE),
	 * else 0. */
	uint64_t expected;
};

/* sharedpt.pressure.stress: one round of pressure in a child, so that the driver goes on
 * taking stop rounds and respawning while the kernel works (on a debug kernel under TCG each
 * step can block for seconds). The child writes `reclaim_value` to `reclaim_path` (the stress
 * cgroup's memory.reclaim), "1" to vm.compact_memory, then migrate_pages(2) of the first
 * candidate in `pids` that still has an mm, from the nodes in `from_mask` to `to_mask`; it writes
 * one struct ptshare_squeeze_result to `result_fd` and exits 0. */
struct ptshare_squeeze_plan {
	const char *reclaim_path;
	const char *reclaim_value;
	const int32_t *pids;
	uint32_t npids;
	int32_t result_fd;
	uint64_t from_mask;            /* nodes 0-63 */
	uint64_t to_mask;
};

struct ptshare_squeeze_result {
	int32_t reclaim_errno;         /* 0; EAGAIN: less could be reclaimed */
	int32_t compact_errno;
	int32_t pid;                   /* the candidate moved, or the one that failed; 0: none had an mm */
	int32_t migrate_errno;         /* 0, or migrate_pages(2)'s error for `pid` */
	int64_t unmoved;               /* pages migrate_pages(2) left where they were */
};

/* Forks the child; returns its pid, or -1 with errno. */
int ptshare_squeeze_in_child(const struct ptshare_squeeze_plan *plan);

/* bench --fragment (fragment.c): forks a child that touches `bytes` of anonymous memory page
 * by page (MADV_NOHUGEPAGE), gives back one 4 KiB page of every `stride` (MADV_DONTNEED),
 * mlocks what it keeps (MLOCK_ONFAULT), writes one struct ptshare_fragment_result to
 * `result_fd` and holds the rest until killed.
 * Returns its pid, or -1 with errno. */
enum ptshare_fragment_call {
	PTSHARE_FRAGMENT_PRCTL = 1,
	PTSHARE_FRAGMENT_MMAP = 2,
	PTSHARE_FRAGMENT_MADVISE = 3,
	PTSHARE_FRAGMENT_MLOCK = 4,
};

struct ptshare_fragment_result {
	int32_t error;                 /* errno of the call that failed, 0 on success */
	int32_t call;                  /* enum ptshare_fragment_call, 0 on success */
	uint64_t touched;
	uint64_t released;
	uint64_t locked;               /* 1: what it holds is mlocked (MLOCK_ONFAULT) */
};

pid_t ptshare_fragment_in_child(uint64_t bytes, uint64_t stride, int result_fd);

__attribute__((noreturn))
void ptshare_stress_main(const struct ptshare_stress_plan *plan, uint32_t slot, uint32_t incarnation);

#endif
