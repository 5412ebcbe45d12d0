#define _GNU_SOURCE
#include "cptshare.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

const int ptshare_MFD_CLOEXEC = MFD_CLOEXEC;
const int ptshare_MFD_HUGETLB = MFD_HUGETLB;
const int ptshare_MAP_SHARED_VALIDATE = MAP_SHARED_VALIDATE;
const int ptshare_MAP_FIXED_NOREPLACE = MAP_FIXED_NOREPLACE;
const int ptshare_MAP_SYNC = MAP_SYNC;
const int ptshare_MADV_POPULATE_READ = MADV_POPULATE_READ;
const int ptshare_MADV_POPULATE_WRITE = MADV_POPULATE_WRITE;
const long ptshare_HUGETLBFS_MAGIC = HUGETLBFS_MAGIC;
const long ptshare_TMPFS_MAGIC = TMPFS_MAGIC;

int ptshare_memfd_create(const char *name, unsigned int flags)
{
	return (int)syscall(SYS_memfd_create, name, flags);
}

int ptshare_pipe_cloexec(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

int ptshare_set_child_subreaper(int on)
{
	return prctl(PR_SET_CHILD_SUBREAPER, (unsigned long)on, 0UL, 0UL, 0UL);
}

int ptshare_nproc_limit(uint64_t *soft)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NPROC, &r) != 0)
		return -1;
	*soft = r.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)r.rlim_cur;
	return 0;
}

int ptshare_fallocate(int fd, int mode, int64_t offset, int64_t len)
{
	return fallocate(fd, mode, offset, len);
}

int ptshare_statfs(const char *path, long *type, uint64_t *block_size)
{
	struct statfs s;

	if (statfs(path, &s) != 0)
		return -1;
	*type = (long)s.f_type;
	*block_size = (uint64_t)s.f_bsize;
	return 0;
}

int ptshare_thp_disable(int on)
{
	int was = prctl(PR_GET_THP_DISABLE, 0UL, 0UL, 0UL, 0UL);

	if (was < 0 || prctl(PR_SET_THP_DISABLE, (unsigned long)!!on, 0UL, 0UL, 0UL) != 0)
		return -1;
	return was;
}

int ptshare_statx_dax(int fd)
{
	struct statx x;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &x) != 0)
		return -1;
	/* Kernels before 5.8 leave the attribute unsupported: the question has no answer there. */
	if (!(x.stx_attributes_mask & STATX_ATTR_DAX)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return (x.stx_attributes & STATX_ATTR_DAX) ? 1 : 0;
}

int ptshare_probe_ioctl_query(int fd, struct ptshare_probe_query *q)
{
	return ioctl(fd, PTSHARE_PROBE_IOC_QUERY, q);
}

const unsigned long ptshare_PROBE_IOC_QUERY = PTSHARE_PROBE_IOC_QUERY;

int ptshare_ioctl_raw(int fd, unsigned long cmd, unsigned long arg)
{
	return ioctl(fd, cmd, arg);
}

pid_t ptshare_fork_sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return pid;
}

int ptshare_finit_module(int fd, const char *params, int flags)
{
	return (int)syscall(SYS_finit_module, fd, params, flags);
}

int ptshare_delete_module(const char *name, unsigned int flags)
{
	return (int)syscall(SYS_delete_module, name, flags);
}

int ptshare_wifexited(int status) { return WIFEXITED(status); }
int ptshare_wexitstatus(int status) { return WEXITSTATUS(status); }
int ptshare_wifsignaled(int status) { return WIFSIGNALED(status); }
int ptshare_wtermsig(int status) { return WTERMSIG(status); }

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

int ptshare_install_stop_handlers(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;

	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (sigaction(sigs[i], &sa, NULL) != 0)
			return -1;
		sigaddset(&set, sigs[i]);
	}
	/* A child that died must come back as EPIPE on the next write to it, not kill the
	 * driver (and a suite's KTAP totals with it). Spawned programs get SIG_DFL back. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -1;
	/* A parent may have spawned us with them blocked (libdispatch threads do): a
	 * harness that cannot be stopped leaves workers behind. Workers inherit this mask. */
	return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int ptshare_ignore_sigpipe(void)
{
	return signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0;
}

int ptshare_stop_signal(void)
{
	return stop_signal;
}

int ptshare_write_in_child(const char *path, const char *value)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* The child: async-signal-safe calls only (the parent may be multithreaded). */
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(value);

	if (fd < 0)
		_exit(errno & 0xff);
	if (write(fd, value, n) != (ssize_t)n)
		_exit(errno ? errno & 0xff : EIO);
	_exit(0);
}
