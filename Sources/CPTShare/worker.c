/* The forked worker. It runs between fork() and _exit() in a child of a Swift process,
 * so it may only make async-signal-safe calls: no malloc, no stdio, no Swift runtime. */
#define _GNU_SOURCE
#include "cptshare.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void send_report(const struct ptshare_worker_plan *p, struct ptshare_worker_report *r)
{
	ssize_t n;

	do {
		n = write(p->report_write_fd, r, sizeof(*r));
	} while (n < 0 && errno == EINTR);
	/* A short or failed write means the driver is gone: nothing left to do. */
	if (n != (ssize_t)sizeof(*r))
		_exit(3);
}

__attribute__((noreturn))
static void fail(const struct ptshare_worker_plan *p, struct ptshare_worker_report *r,
		 uint32_t phase, int err)
{
	r->phase = phase;
	r->error = err;
	send_report(p, r);
	_exit(1);
}

/* Blocks until the driver hands out a token (one byte). EOF means the run is being torn
 * down before this worker's turn: exit rather than map. */
static void wait_for_token(int fd)
{
	char c;
	ssize_t n;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(n == 0 ? 0 : 4);
}

/* Blocks until the driver closes its end of the pipe. */
static void wait_for_eof(int fd)
{
	char c;
	ssize_t n;

	for (;;) {
		n = read(fd, &c, 1);
		if (n == 0)
			return;
		if (n < 0 && errno != EINTR)
			_exit(4);
	}
}

static int touch(const struct ptshare_worker_plan *p, void *addr)
{
	volatile unsigned char *base = addr;
	unsigned char sum = 0;
	int advice;

	switch (p->touch) {
	case PTSHARE_TOUCH_NONE:
		return 0;
	case PTSHARE_TOUCH_READ:
		for (uint64_t off = 0; off < p->length; off += p->touch_stride)
			sum += base[off];
		(void)sum;
		return 0;
	case PTSHARE_TOUCH_WRITE:
		for (uint64_t off = 0; off < p->length; off += p->touch_stride)
			base[off] = (unsigned char)(off >> 12);
		return 0;
	case PTSHARE_TOUCH_POPULATE_READ:
	case PTSHARE_TOUCH_POPULATE_WRITE:
		advice = p->touch == PTSHARE_TOUCH_POPULATE_READ ?
			ptshare_MADV_POPULATE_READ : ptshare_MADV_POPULATE_WRITE;
		while (madvise(addr, p->length, advice) != 0)
			if (errno != EINTR)
				return errno;
		return 0;
	}
	return EINVAL;
}

void ptshare_worker_main(const struct ptshare_worker_plan *p, uint32_t index)
{
	struct ptshare_worker_report r = { .index = index, .pid = (int32_t)getpid() };
	void *addr;
	uint64_t t0;
	int err;

	/* Inherited handlers would turn TERM into a flag here: workers must die on it. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	close(p->report_read_fd);
	close(p->go_write_fd);
	close(p->release_write_fd);

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		fail(p, &r, PTSHARE_PHASE_SETUP, errno);
	/* The driver may have died before PDEATHSIG was armed. */
	if (getppid() != p->driver_pid)
		_exit(5);
	/* The driver calls setpgid for us too; whichever runs first wins, both agree. */
	if (setpgid(0, p->pgid) != 0 && errno != EACCES)
		fail(p, &r, PTSHARE_PHASE_SETUP, errno);

	r.phase = PTSHARE_PHASE_FORKED;
	send_report(p, &r);
	wait_for_token(p->go_read_fd);

	if (p->fd < 0) {
		addr = (void *)(uintptr_t)p->address;
	} else {
		t0 = now_ns();
		addr = mmap((void *)(uintptr_t)p->address, p->length, p->prot, p->flags,
			    p->fd, (off_t)p->offset);
		r.map_ns = now_ns() - t0;
		if (addr == MAP_FAILED)
			fail(p, &r, PTSHARE_PHASE_MAP, errno);
	}
	r.address = (uint64_t)(uintptr_t)addr;

	t0 = now_ns();
	err = touch(p, addr);
	r.touch_ns = now_ns() - t0;
	if (err)
		fail(p, &r, PTSHARE_PHASE_TOUCH, err);

	r.phase = PTSHARE_PHASE_READY;
	send_report(p, &r);
	wait_for_eof(p->release_read_fd);
	_exit(0);
}
