/* bench --fragment: a child that leaves free memory in single 4 KiB pages, as on a server that
 * has run for months, so that shmem THP must fall back to small folios (or compact). It takes
 * `bytes` of anonymous memory page by page, gives back one page of every `stride`, reports, and
 * holds the rest until it is killed or its parent dies. Async-signal-safe after fork(). */
#include "cptshare.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

static int write_result(int fd, const struct ptshare_fragment_result *r)
{
	const char *p = (const char *)r;
	size_t left = sizeof(*r);

	while (left > 0) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

static _Noreturn void fail(int fd, struct ptshare_fragment_result *r, int call)
{
	r->error = errno;
	r->call = call;
	_exit(write_result(fd, r) == 0 ? 1 : 2);
}

pid_t ptshare_fragment_in_child(uint64_t bytes, uint64_t stride, int result_fd)
{
	struct ptshare_fragment_result r;
	pid_t parent = getpid();
	pid_t pid = fork();
	long page = sysconf(_SC_PAGESIZE);
	char *p;

	if (pid != 0)
		return pid;
	memset(&r, 0, sizeof(r));
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		fail(result_fd, &r, PTSHARE_FRAGMENT_PRCTL);
	if (getppid() != parent)
		_exit(5);
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		fail(result_fd, &r, PTSHARE_FRAGMENT_MMAP);
	/* Small pages only: a THP would be given back whole by one punch. */
	if (madvise(p, bytes, MADV_NOHUGEPAGE) != 0)
		fail(result_fd, &r, PTSHARE_FRAGMENT_MADVISE);
	for (uint64_t off = 0; off < bytes; off += (uint64_t)page) {
		p[off] = 1;
		r.touched += (uint64_t)page;
	}
	for (uint64_t off = 0; off < bytes; off += stride * (uint64_t)page) {
		if (madvise(p + off, (size_t)page, MADV_DONTNEED) != 0)
			fail(result_fd, &r, PTSHARE_FRAGMENT_MADVISE);
		r.released += (uint64_t)page;
	}
	/* Locked where present, the holes left empty (MLOCK_ONFAULT): with
	 * vm.compact_unevictable_allowed at 0 compaction cannot move these pages to make a 2 MiB
	 * block, as it cannot move the slab and page-table pages that fragment a server. */
	if (syscall(SYS_mlock2, p, bytes, MLOCK_ONFAULT) != 0)
		fail(result_fd, &r, PTSHARE_FRAGMENT_MLOCK);
	r.locked = 1;
	if (write_result(result_fd, &r) != 0)
		_exit(2);
	close(result_fd);
	for (;;)
		pause();
}
