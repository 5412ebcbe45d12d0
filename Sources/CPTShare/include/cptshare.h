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

#endif
