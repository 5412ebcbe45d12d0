/* forkmap: the minimal C baseline for ptshare's map+touch time.
 *
 * N forked workers map one shared memfd and fault it in, exactly as ptshare's workers do
 * (Sources/CPTShare/worker.c), with nothing else around it: no sampling, no /proc reads.
 * scripts/bench-speed.sh runs it next to `ptshare run` to show the harness's own overhead.
 *
 * Usage: forkmap --workers N --size BYTES[K|M|G|T]
 *                [--touch populate|populate-write|read|write|none] [--concurrency C] [--json]
 *
 * What is matched with the harness (ptshare run --backing memfd --address auto):
 *  - backing: memfd_create(name, MFD_CLOEXEC), ftruncate(size), then fallocate(fd, 0, 0, size)
 *    (BackingFile.create/fill, called by Runner.makeBacking before the pool exists), so every
 *    page is allocated before the first fork and the timed window only installs entries;
 *  - mapping: mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)
 *    (Runner.workerPlan/placement with --address auto and no --share pt);
 *  - touch: populate = madvise(MADV_POPULATE_READ), populate-write = MADV_POPULATE_WRITE,
 *    read = one load per page, write = one store per page (byte = offset >> 12), none;
 *    the stride is the page size (a memfd's leaf size);
 *  - protocol: one shared "go" pipe (a byte = one worker may map and touch), one report pipe
 *    (fixed-size records, smaller than PIPE_BUF, the same layout as struct
 *    ptshare_worker_report), one release pipe (EOF = exit); workers set PR_SET_PDEATHSIG and
 *    join one process group; each reports "forked" before waiting for its token;
 *  - concurrency: tokens handed out = min(N, ready + C) - already handed out, recomputed after
 *    every batch of reports (WorkerPool.mapAndTouch/handOutTokens); the harness's default C is
 *    the number of online CPUs, this program's default is N (every token at once);
 *  - timings: spawn = first fork to every "forked" report; map_touch = first token written to
 *    every "ready" report; teardown = release closed to every worker reaped
 *    (RunReport.Timings spawn_seconds, map_touch_seconds, teardown_seconds); per-worker
 *    map/touch ns median = v[n/2], p99 = v[ceil(0.99 n) - 1] of the sorted values (Stats).
 *
 * Exit status: 0 on success, 2 on a usage error, 3 when a system call fails (the call and
 * errno are printed; every worker is killed and reaped first).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

enum touch_mode { TOUCH_NONE, TOUCH_READ, TOUCH_WRITE, TOUCH_POPULATE_READ, TOUCH_POPULATE_WRITE };

static const char *const touch_names[] = {
	[TOUCH_NONE] = "none",
	[TOUCH_READ] = "read",
	[TOUCH_WRITE] = "write",
	[TOUCH_POPULATE_READ] = "populate",
	[TOUCH_POPULATE_WRITE] = "populate-write",
};

enum phase { PHASE_SETUP = 0, PHASE_FORKED = 1, PHASE_MAP = 2, PHASE_TOUCH = 3, PHASE_READY = 4 };

/* The same layout as struct ptshare_worker_report: 40 bytes, written whole into one pipe. */
struct report {
	uint32_t index;
	uint32_t phase;
	int32_t error;
	int32_t pid;
	uint64_t address;
	uint64_t map_ns;
	uint64_t touch_ns;
};

/* Everything a worker reads; set before the first fork. */
static struct {
	int fd;
	uint64_t size;
	uint64_t stride;
	enum touch_mode touch;
	pid_t driver;
	pid_t pgid;
	int report_r, report_w;
	int go_r, go_w;
	int release_r, release_w;
} plan;

/* The driver's state, for cleanup on any error path. */
static pid_t *pids;
static unsigned forked;
static unsigned reaped;

static uint64_t now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Kills and reaps every worker still alive; safe to call at any point of the run. */
static void kill_all(void)
{
	close_fd(&plan.go_w);
	close_fd(&plan.release_w);
	if (plan.pgid > 0)
		kill(-plan.pgid, SIGKILL);
	for (unsigned i = 0; i < forked; i++)
		kill(pids[i], SIGKILL);
	for (unsigned i = 0; i < forked; i++) {
		int st;

		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
	}
	forked = 0;
}

__attribute__((noreturn, format(printf, 2, 3)))
static void die(int err, const char *fmt, ...);

static void die(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("forkmap: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": errno %d (%s)", err, strerror(err));
	fputc('\n', stderr);
	kill_all();
	exit(3);
}

/* ---- the worker ------------------------------------------------------------------------ */

static void send_report(struct report *r)
{
	ssize_t n;

	do {
		n = write(plan.report_w, r, sizeof(*r));
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*r))
		_exit(3);
}

__attribute__((noreturn))
static void worker_fail(struct report *r, uint32_t phase, int err)
{
	r->phase = phase;
	r->error = err;
	send_report(r);
	_exit(1);
}

static int touch(void *addr)
{
	volatile unsigned char *base = addr;
	unsigned char sum = 0;
	int advice;

	switch (plan.touch) {
	case TOUCH_NONE:
		return 0;
	case TOUCH_READ:
		for (uint64_t off = 0; off < plan.size; off += plan.stride)
			sum += base[off];
		(void)sum;
		return 0;
	case TOUCH_WRITE:
		for (uint64_t off = 0; off < plan.size; off += plan.stride)
			base[off] = (unsigned char)(off >> 12);
		return 0;
	case TOUCH_POPULATE_READ:
	case TOUCH_POPULATE_WRITE:
		advice = plan.touch == TOUCH_POPULATE_READ ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;
		while (madvise(addr, plan.size, advice) != 0)
			if (errno != EINTR)
				return errno;
		return 0;
	}
	return EINVAL;
}

__attribute__((noreturn))
static void worker(uint32_t index)
{
	struct report r = { .index = index, .pid = (int32_t)getpid() };
	void *addr;
	uint64_t t0;
	ssize_t n;
	char c;
	int err;

	close(plan.report_r);
	close(plan.go_w);
	close(plan.release_w);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		worker_fail(&r, PHASE_SETUP, errno);
	if (getppid() != plan.driver)
		_exit(5);
	if (setpgid(0, plan.pgid) != 0 && errno != EACCES)
		worker_fail(&r, PHASE_SETUP, errno);

	r.phase = PHASE_FORKED;
	send_report(&r);
	do {
		n = read(plan.go_r, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(n == 0 ? 0 : 4);   /* EOF: torn down before this worker's turn */

	t0 = now_ns();
	addr = mmap(NULL, plan.size, PROT_READ | PROT_WRITE, MAP_SHARED, plan.fd, 0);
	r.map_ns = now_ns() - t0;
	if (addr == MAP_FAILED)
		worker_fail(&r, PHASE_MAP, errno);
	r.address = (uint64_t)(uintptr_t)addr;

	t0 = now_ns();
	err = touch(addr);
	r.touch_ns = now_ns() - t0;
	if (err)
		worker_fail(&r, PHASE_TOUCH, err);

	r.phase = PHASE_READY;
	send_report(&r);
	for (;;) {
		n = read(plan.release_r, &c, 1);
		if (n == 0)
			_exit(0);
		if (n < 0 && errno != EINTR)
			_exit(4);
	}
}

/* ---- the driver ------------------------------------------------------------------------ */

static unsigned nworkers;
static uint32_t *phase_of;         /* latest phase reported by each worker */
static uint64_t *map_ns, *touch_ns; /* from each worker's "ready" report */
static unsigned count_at[PHASE_READY + 1];
static unsigned char pending[256 * sizeof(struct report)];
static size_t pending_len;

static const char *call_for(uint32_t phase)
{
	switch (phase) {
	case PHASE_SETUP: return "prctl(PR_SET_PDEATHSIG)/setpgid";
	case PHASE_MAP: return "mmap";
	case PHASE_TOUCH:
		if (plan.touch == TOUCH_POPULATE_READ)
			return "madvise(MADV_POPULATE_READ)";
		if (plan.touch == TOUCH_POPULATE_WRITE)
			return "madvise(MADV_POPULATE_WRITE)";
		return "touching the mapping";
	default: return "report";
	}
}

/* Reads what reports are waiting, up to timeout_ms for the first; fails on a failure report,
 * and on any worker that exited (before release, none may). */
static void drain(int timeout_ms)
{
	struct pollfd pfd = { .fd = plan.report_r, .events = POLLIN };
	struct report r;
	ssize_t n;
	int st;
	pid_t pid;
	int rc;

	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0 && errno != EINTR)
		die(errno, "poll(report pipe)");
	if (rc > 0) {
		n = read(plan.report_r, pending + pending_len, sizeof(pending) - pending_len);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			die(errno, "read(report pipe)");
		if (n == 0)
			die(0, "read(report pipe): EOF, every worker is gone");
		if (n > 0)
			pending_len += (size_t)n;
	}
	while (pending_len >= sizeof(r)) {
		memcpy(&r, pending, sizeof(r));
		memmove(pending, pending + sizeof(r), pending_len - sizeof(r));
		pending_len -= sizeof(r);
		if (r.index >= nworkers || r.phase > PHASE_READY)
			die(0, "bad report: index %" PRIu32 " of %u, phase %" PRIu32, r.index, nworkers, r.phase);
		if (r.error != 0)
			die(r.error, "worker %" PRIu32 " (pid %" PRId32 "): %s failed", r.index, r.pid,
			    call_for(r.phase));
		count_at[phase_of[r.index]]--;
		phase_of[r.index] = r.phase;
		count_at[r.phase]++;
		if (r.phase == PHASE_READY) {
			map_ns[r.index] = r.map_ns;
			touch_ns[r.index] = r.touch_ns;
		}
	}
	pid = plan.pgid > 0 ? waitpid(-plan.pgid, &st, WNOHANG) : 0;
	if (pid < 0 && errno != ECHILD && errno != EINTR)
		die(errno, "waitpid");
	if (pid > 0) {
		for (unsigned i = 0; i < forked; i++)
			if (pids[i] == pid)
				pids[i] = pids[--forked];   /* reaped: kill_all must not wait for it */
		if (WIFSIGNALED(st))
			die(0, "worker pid %d was killed by signal %d", (int)pid, WTERMSIG(st));
		die(0, "worker pid %d exited with status %d before release", (int)pid, WEXITSTATUS(st));
	}
}

static void write_tokens(unsigned n)
{
	static const char tokens[4096] = { 0 };

	while (n > 0) {
		size_t chunk = n < sizeof(tokens) ? n : sizeof(tokens);
		ssize_t w = write(plan.go_w, tokens, chunk);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die(errno, "write(go pipe)");
		}
		n -= (unsigned)w;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* median = v[n/2], p99 = v[ceil(0.99 n) - 1], as ptshare's RunReport.Stats. */
static void stats(uint64_t *v, unsigned n, uint64_t *median, uint64_t *p99)
{
	unsigned k;

	qsort(v, n, sizeof(*v), cmp_u64);
	*median = v[n / 2];
	k = (unsigned)(((uint64_t)n * 99 + 99) / 100);   /* ceil(0.99 n), >= 1 for n >= 1 */
	*p99 = v[k - 1 < n - 1 ? k - 1 : n - 1];
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if (*end != '\0' || v == 0 || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_count(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v == 0 || v > 1000000)
		return -1;
	*out = (unsigned)v;
	return 0;
}

__attribute__((noreturn))
static void usage(const char *why)
{
	if (why)
		fprintf(stderr, "forkmap: %s\n", why);
	fputs("usage: forkmap --workers N --size BYTES[K|M|G|T]\n"
	      "               [--touch populate|populate-write|read|write|none] [--concurrency C] [--json]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned concurrency = 0, given = 0, reaped_ok = 0;
	uint64_t t_spawn0, t_spawned, t_map0, t_mapped, t_rel0, t_reaped;
	uint64_t map_med, map_p99, touch_med, touch_p99;
	int json = 0, have_size = 0, pfd[2];
	long page;

	plan.touch = TOUCH_POPULATE_READ;
	plan.fd = plan.report_r = plan.report_w = plan.go_r = plan.go_w = -1;
	plan.release_r = plan.release_w = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--json") == 0) {
			json = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			usage(NULL);
		if (!v)
			usage("missing value or unknown option");
		i++;
		if (strcmp(a, "--workers") == 0) {
			if (parse_count(v, &nworkers))
				usage("--workers: expected 1..1000000");
		} else if (strcmp(a, "--size") == 0) {
			if (parse_size(v, &plan.size))
				usage("--size: expected a positive byte count with an optional K, M, G or T suffix");
			have_size = 1;
		} else if (strcmp(a, "--concurrency") == 0) {
			if (parse_count(v, &concurrency))
				usage("--concurrency: expected 1..1000000");
		} else if (strcmp(a, "--touch") == 0) {
			unsigned t;

			for (t = 0; t < sizeof(touch_names) / sizeof(touch_names[0]); t++)
				if (strcmp(v, touch_names[t]) == 0)
					break;
			if (t == sizeof(touch_names) / sizeof(touch_names[0]))
				usage("--touch: expected populate, populate-write, read, write or none");
			plan.touch = (enum touch_mode)t;
		} else {
			usage("unknown option");
		}
	}
	if (nworkers == 0 || !have_size)
		usage("--workers and --size are required");
	if (concurrency == 0 || concurrency > nworkers)
		concurrency = nworkers;

	page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		die(errno, "sysconf(_SC_PAGESIZE)");
	plan.stride = (uint64_t)page;
	if (plan.size % plan.stride)
		usage("--size: must be a multiple of the page size");

	pids = calloc(nworkers, sizeof(*pids));
	phase_of = calloc(nworkers, sizeof(*phase_of));
	map_ns = calloc(nworkers, sizeof(*map_ns));
	touch_ns = calloc(nworkers, sizeof(*touch_ns));
	if (!pids || !phase_of || !map_ns || !touch_ns)
		die(ENOMEM, "calloc");
	count_at[PHASE_SETUP] = nworkers;
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		die(errno, "signal(SIGPIPE)");

	/* The backing, sized and allocated before any worker exists (BackingFile.fill). */
	plan.fd = (int)syscall(SYS_memfd_create, "forkmap", MFD_CLOEXEC);
	if (plan.fd < 0)
		die(errno, "memfd_create");
	if (ftruncate(plan.fd, (off_t)plan.size) != 0)
		die(errno, "ftruncate(%" PRIu64 ")", plan.size);
	if (fallocate(plan.fd, 0, 0, (off_t)plan.size) != 0)
		die(errno, "fallocate(%" PRIu64 ")", plan.size);

	if (pipe(pfd) != 0)
		die(errno, "pipe(report)");
	plan.report_r = pfd[0], plan.report_w = pfd[1];
	if (pipe(pfd) != 0)
		die(errno, "pipe(go)");
	plan.go_r = pfd[0], plan.go_w = pfd[1];
	if (pipe(pfd) != 0)
		die(errno, "pipe(release)");
	plan.release_r = pfd[0], plan.release_w = pfd[1];
	plan.driver = getpid();
	/* Nothing buffered may be flushed twice by the children. */
	fflush(NULL);

	t_spawn0 = now_ns();
	for (unsigned i = 0; i < nworkers; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die(errno, "fork (worker %u)", i);
		if (pid == 0)
			worker(i);
		pids[forked++] = pid;
		if (plan.pgid == 0)
			plan.pgid = pid;
		if (setpgid(pid, plan.pgid) != 0 && errno != ESRCH && errno != EACCES)
			die(errno, "setpgid(%d, %d)", (int)pid, (int)plan.pgid);
		if (i % 64 == 63)
			drain(0);
	}
	close_fd(&plan.go_r);
	close_fd(&plan.release_r);
	close_fd(&plan.report_w);
	while (count_at[PHASE_FORKED] + count_at[PHASE_READY] < nworkers)
		drain(50);
	t_spawned = now_ns();

	/* Tokens: min(N, ready + C) - given, after every batch of reports (WorkerPool). */
	t_map0 = now_ns();
	while (count_at[PHASE_READY] < nworkers) {
		unsigned want = count_at[PHASE_READY] + concurrency;

		if (want > nworkers)
			want = nworkers;
		if (want > given) {
			write_tokens(want - given);
			given = want;
		}
		drain(50);
	}
	t_mapped = now_ns();
	close_fd(&plan.go_w);

	/* Teardown: EOF on the release pipe, then every worker reaped. */
	t_rel0 = now_ns();
	close_fd(&plan.release_w);
	while (reaped < nworkers) {
		int st;
		pid_t pid = waitpid(-plan.pgid, &st, 0);

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			die(errno, "waitpid(-%d)", (int)plan.pgid);
		}
		reaped++;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			reaped_ok++;
	}
	t_reaped = now_ns();
	forked = 0;
	if (reaped_ok != nworkers) {
		fprintf(stderr, "forkmap: error: %u of %u workers did not exit with status 0 after release\n",
			nworkers - reaped_ok, nworkers);
		exit(3);
	}

	stats(map_ns, nworkers, &map_med, &map_p99);
	stats(touch_ns, nworkers, &touch_med, &touch_p99);
	if (json)
		printf("{\"tool\":\"forkmap\",\"workers\":%u,\"size_bytes\":%" PRIu64 ",\"touch\":\"%s\","
		       "\"concurrency\":%u,\"spawn_seconds\":%.6f,\"map_touch_seconds\":%.6f,"
		       "\"teardown_seconds\":%.6f,\"map_ns_median\":%" PRIu64 ",\"map_ns_p99\":%" PRIu64 ","
		       "\"touch_ns_median\":%" PRIu64 ",\"touch_ns_p99\":%" PRIu64 "}\n",
		       nworkers, plan.size, touch_names[plan.touch], concurrency,
		       (double)(t_spawned - t_spawn0) / 1e9, (double)(t_mapped - t_map0) / 1e9,
		       (double)(t_reaped - t_rel0) / 1e9, map_med, map_p99, touch_med, touch_p99);
	else
		printf("workers=%u\nsize_bytes=%" PRIu64 "\ntouch=%s\nconcurrency=%u\n"
		       "spawn_seconds=%.6f\nmap_touch_seconds=%.6f\nteardown_seconds=%.6f\n"
		       "map_ns_median=%" PRIu64 "\nmap_ns_p99=%" PRIu64 "\n"
		       "touch_ns_median=%" PRIu64 "\ntouch_ns_p99=%" PRIu64 "\n",
		       nworkers, plan.size, touch_names[plan.touch], concurrency,
		       (double)(t_spawned - t_spawn0) / 1e9, (double)(t_mapped - t_map0) / 1e9,
		       (double)(t_reaped - t_rel0) / 1e9, map_med, map_p99, touch_med, touch_p99);
	if (fflush(stdout) != 0 || ferror(stdout))
		die(errno, "write(stdout)");
	close_fd(&plan.fd);
	return 0;
}
