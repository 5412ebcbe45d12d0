/* The forked bodies of the sharedpt.* tests: a sharer that acts on command, and the stress
 * process. Both run between fork() and _exit() in a child of a Swift process, so they make only
 * async-signal-safe calls: no malloc, no stdio, no Swift runtime. SIGBUS is caught with
 * sigsetjmp/siglongjmp so that an access past EOF is an answer, not a death. */
#define _GNU_SOURCE
#include "cptshare.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/magic.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif

const int ptshare_MAP_LOCKED = MAP_LOCKED;
const int ptshare_MADV_DONTNEED = MADV_DONTNEED;
const int ptshare_MPOL_MF_MOVE = MPOL_MF_MOVE;
const int ptshare_MPOL_MF_MOVE_ALL = MPOL_MF_MOVE_ALL;
const int ptshare_MADV_HUGEPAGE = MADV_HUGEPAGE;
const int ptshare_MADV_NOHUGEPAGE = MADV_NOHUGEPAGE;
const int ptshare_MADV_COLD = MADV_COLD;
const int ptshare_MADV_PAGEOUT = MADV_PAGEOUT;
const int ptshare_MADV_DONTDUMP = MADV_DONTDUMP;
const int ptshare_MADV_DODUMP = MADV_DODUMP;
const int ptshare_MADV_REMOVE = MADV_REMOVE;
const int ptshare_MADV_COLLAPSE = MADV_COLLAPSE;
const int ptshare_MADV_MERGEABLE = MADV_MERGEABLE;
const int ptshare_MADV_HWPOISON = MADV_HWPOISON;
const int ptshare_MCL_CURRENT = MCL_CURRENT;
const int ptshare_MCL_FUTURE = MCL_FUTURE;
const int ptshare_MREMAP_MAYMOVE = MREMAP_MAYMOVE;
const int ptshare_MLOCK_ONFAULT = MLOCK_ONFAULT;
const int ptshare_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
const int ptshare_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
const long ptshare_RAMFS_MAGIC = RAMFS_MAGIC;

#define PAGE 4096ull
#define CHUNK (2ull << 20)

/* SIGBUS/SIGSEGV handling: an access armed with bus_armed jumps back to bus_env, and
 * fault_signal says which signal it raised. Unarmed, the signal kills as usual. */
static sigjmp_buf bus_env;
static volatile sig_atomic_t bus_armed;
static volatile sig_atomic_t fault_signal;

static void on_fault(int sig)
{
	if (bus_armed) {
		bus_armed = 0;
		fault_signal = sig;
		siglongjmp(bus_env, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Signals as a child of the driver needs them. `driver_pid` > 0: the caller is the driver's
 * own child, killed when the driver dies (PDEATHSIG); 0: a sharer's forked child, which must
 * outlive its parent (anonymous shared memory's creator may leave first) and exits instead on
 * EOF from the driver's command channel. */
static int child_setup(int driver_pid)
{
	struct sigaction sa;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
		return -1;
	if (!driver_pid)
		return 0;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		return -1;
	/* The parent may have died before PDEATHSIG was armed. */
	if (getppid() != driver_pid)
		_exit(5);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do {
		n = write(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* Reads exactly len bytes; 0 at EOF, -1 on error. */
static int read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

/* ---- The sharer ---- */

/* Walks [addr, addr+len): FILL writes the first word of each page, CHECK compares it,
 * CHECK_ZERO compares every byte with 0. A SIGBUS stops the walk at the page it hit. */
static void agent_walk(uint32_t op, uint64_t addr, uint64_t len, uint64_t seed,
		       struct ptshare_agent_reply *r)
{
	volatile uint64_t off = 0;

	if (sigsetjmp(bus_env, 1)) {
		r->fault_signal = fault_signal;
		r->value = off;
		return;
	}
	bus_armed = 1;
	for (; off < len; off += PAGE) {
		volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)(addr + off);
		uint64_t want = seed + off / PAGE;

		if (op == PTSHARE_AGENT_FILL) {
			*w = want;
		} else if (op == PTSHARE_AGENT_CHECK) {
			uint64_t got = *w;

			if (got != want) {
				bus_armed = 0;
				r->error = EBADMSG;
				r->value = off;
				r->found = got;
				return;
			}
		} else {
			volatile const unsigned char *b = (volatile const unsigned char *)w;

			for (uint64_t i = 0; i < PAGE; i++) {
				if (b[i] != 0) {
					bus_armed = 0;
					r->error = EBADMSG;
					r->value = off + i;
					r->found = b[i];
					return;
				}
			}
		}
	}
	bus_armed = 0;
}

static void agent_word(uint32_t op, uint64_t addr, uint64_t value, struct ptshare_agent_reply *r)
{
	volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)addr;

	if (sigsetjmp(bus_env, 1)) {
		r->fault_signal = fault_signal;
		r->value = 0;
		return;
	}
	bus_armed = 1;
	if (op == PTSHARE_AGENT_READ)
		r->value = *w;
	else
		*w = value;
	bus_armed = 0;
}

/* Registration (MISSING) of a range, the failed step part of the answer: a test that needs a
 * premise must know which step a kernel refuses. The userfaultfd is closed again, which
 * unregisters the range: what stays is what registering did to the vma. */
static void agent_uffd(uint64_t addr, uint64_t len, struct ptshare_agent_reply *r)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		r->error = errno;
		r->value = 1;
		return;
	}
	if (ioctl((int)fd, UFFDIO_API, &api) != 0) {
		r->error = errno;
		r->value = 2;
	} else if (ioctl((int)fd, UFFDIO_REGISTER, &reg) != 0) {
		r->error = errno;
		r->value = 3;
	}
	close((int)fd);
}

/* A VM is what gives a process's mm a secondary MMU (an MMU notifier) without a device.
 * The fds stay open: the VM lives as long as the sharer. */
static void agent_kvm_vm(struct ptshare_agent_reply *r)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm;

	if (kvm < 0) {
		r->error = errno;
		r->value = 1;
		return;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		r->error = errno;
		r->value = 2;
		close(kvm);
	}
}

/* At most 32 MiB of pages per call: the arrays live on the stack of a small process. */
#define AGENT_MOVE_MAX 8192u

static void agent_move_pages(uint64_t addr, uint64_t len, int node, int flags, uint64_t count_node,
			     struct ptshare_agent_reply *r)
{
	static void *pages[AGENT_MOVE_MAX];
	static int nodes[AGENT_MOVE_MAX];
	static int status[AGENT_MOVE_MAX];
	unsigned long n = len / 4096;

	if (n == 0 || n > AGENT_MOVE_MAX) {
		r->error = EINVAL;
		return;
	}
	for (unsigned long i = 0; i < n; i++) {
		pages[i] = (void *)(uintptr_t)(addr + i * 4096);
		nodes[i] = node;
		status[i] = -1;
	}
	if (syscall(SYS_move_pages, 0, n, pages, node < 0 ? NULL : nodes, status, flags) < 0) {
		r->error = errno;
		return;
	}
	for (unsigned long i = 0; i < n; i++) {
		if (status[i] == (int)count_node)
			r->value++;
		else if (status[i] == -EACCES)
			r->found++;
	}
}

static void agent_mbind(uint64_t addr, uint64_t len, int node, int flags, struct ptshare_agent_reply *r)
{
	unsigned long mask = 0;
	long rc;

	if (node >= (int)(sizeof(mask) * 8)) {
		r->error = EINVAL;
		return;
	}
	if (node < 0) {
		rc = syscall(SYS_mbind, addr, len, MPOL_DEFAULT, NULL, 0, 0);
	} else {
		mask = 1UL << node;
		/* maxnode counts one past the mask's bits, as libnuma passes it. */
		rc = syscall(SYS_mbind, addr, len, MPOL_BIND, &mask, sizeof(mask) * 8 + 1, flags);
	}
	if (rc < 0)
		r->error = errno;
}

int ptshare_pin_to_cpu(int cpu, uint64_t *saved)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= 64) {
		errno = EINVAL;
		return -1;
	}
	if (saved) {
		if (sched_getaffinity(0, sizeof(set), &set) != 0)
			return -1;
		*saved = 0;
		for (int i = 0; i < 64; i++)
			if (CPU_ISSET(i, &set))
				*saved |= 1ull << i;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

int ptshare_set_cpu_mask(uint64_t mask)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int i = 0; i < 64; i++)
		if (mask & (1ull << i))
			CPU_SET(i, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* The stale-TLB probe: no syscall and no fault while spinning, so this CPU keeps whatever
 * translation it has for addr until someone else's flush reaches it. */
static void agent_spin_read(uint64_t addr, uint64_t flags, uint64_t rounds, struct ptshare_agent_reply *r)
{
	volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)addr;
	volatile uint64_t *started = (volatile uint64_t *)(uintptr_t)flags;
	volatile uint64_t *done = started + 1;
	uint64_t last = 0, i;

	if (sigsetjmp(bus_env, 1)) {
		r->fault_signal = fault_signal;
		return;
	}
	bus_armed = 1;
	last = *w;
	*started = 1;
	for (i = 0; i < rounds && !*done; i++)
		last = *w;
	if (i == rounds) {
		bus_armed = 0;
		r->error = ETIMEDOUT;
		return;
	}
	r->found = last;
	r->value = *w;
	bus_armed = 0;
}

/* Exec tears the old mm down through exec_mmap(), not exit: a program that exits 0 at once
 * ends the sharer. The channel is O_CLOEXEC, so the driver sees EOF when the exec succeeds.
 * Returns only when no candidate could be run (the guest has busybox, not always /bin/true). */
static void agent_exec(struct ptshare_agent_reply *r)
{
	static char *const true_argv[] = { "true", NULL };
	static char *const busybox_argv[] = { "busybox", "true", NULL };
	static char *const envp[] = { NULL };

	execve("/bin/true", true_argv, envp);
	execve("/bin/busybox", busybox_argv, envp);
	r->error = errno;
}

void ptshare_agent_main(const struct ptshare_agent_plan *p)
{
	int cmd_fd = p->command_read_fd;
	int reply_fd = p->reply_write_fd;
	int spare_cmd[PTSHARE_AGENT_SPARES], spare_reply[PTSHARE_AGENT_SPARES];
	struct ptshare_agent_command c;
	struct ptshare_agent_reply r;
	void *a;
	pid_t child;
	long rc;

	for (unsigned i = 0; i < 2 + 2 * PTSHARE_AGENT_SPARES; i++)
		if (p->close_fds[i] >= 0)
			close(p->close_fds[i]);
	for (unsigned i = 0; i < PTSHARE_AGENT_SPARES; i++) {
		spare_cmd[i] = p->spare_command_read_fd[i];
		spare_reply[i] = p->spare_reply_write_fd[i];
	}
	if (child_setup(p->driver_pid) != 0)
		_exit(2);
	/* Forked children of a sharer are reaped by the kernel. */
	signal(SIGCHLD, SIG_IGN);

	for (;;) {
		if (read_all(cmd_fd, &c, sizeof(c)) != 1)
			_exit(0);
		memset(&r, 0, sizeof(r));
		r.pid = (int32_t)getpid();
		errno = 0;
		switch (c.op) {
		case PTSHARE_AGENT_MAP:
			a = mmap((void *)(uintptr_t)c.addr, c.length, c.arg, c.flags, c.fd, (off_t)c.offset);
			if (a == MAP_FAILED)
				r.error = errno;
			else
				r.value = (uint64_t)(uintptr_t)a;
			break;
		case PTSHARE_AGENT_UNMAP:
			if (munmap((void *)(uintptr_t)c.addr, c.length) != 0)
				r.error = errno;
			break;
		case PTSHARE_AGENT_FILL:
		case PTSHARE_AGENT_CHECK:
		case PTSHARE_AGENT_CHECK_ZERO:
			agent_walk(c.op, c.addr, c.length, c.value, &r);
			break;
		case PTSHARE_AGENT_READ:
		case PTSHARE_AGENT_WRITE:
			agent_word(c.op, c.addr, c.value, &r);
			break;
		case PTSHARE_AGENT_MPROTECT:
			if (mprotect((void *)(uintptr_t)c.addr, c.length, c.arg) != 0)
				r.error = errno;
			break;
		case PTSHARE_AGENT_MREMAP:
			a = mremap((void *)(uintptr_t)c.addr, c.length, c.offset, c.arg);
			if (a == MAP_FAILED)
				r.error = errno;
			else
				r.value = (uint64_t)(uintptr_t)a;
			break;
		case PTSHARE_AGENT_MLOCK:
			if (c.arg == 0)
				rc = mlock((void *)(uintptr_t)c.addr, c.length);
			else
				rc = syscall(SYS_mlock2, (void *)(uintptr_t)c.addr, c.length, c.arg);
			if (rc != 0)
				r.error = errno;
			break;
		case PTSHARE_AGENT_MADVISE:
			if (madvise((void *)(uintptr_t)c.addr, c.length, c.arg) != 0)
				r.error = errno;
			break;
		case PTSHARE_AGENT_FORK:
			if (c.arg < 0 || c.arg >= PTSHARE_AGENT_SPARES || spare_cmd[c.arg] < 0 ||
			    (c.flags & (1 << c.arg)) || (c.flags & ~((1 << PTSHARE_AGENT_SPARES) - 1))) {
				r.error = EBADF;
				break;
			}
			child = fork();
			if (child < 0) {
				r.error = errno;
				break;
			}
			/*
			 * The child takes over spare channel arg and keeps the spares of the
			 * mask for children of its own; the parent lives on with the others.
			 * Only one process may hold a channel's agent ends: a death must
			 * read as EOF.
			 */
			for (int i = 0; i < PTSHARE_AGENT_SPARES; i++) {
				int hers = i == c.arg || (c.flags & (1 << i));

				if (spare_cmd[i] < 0 || (child == 0) == hers)
					continue;
				close(spare_cmd[i]);
				close(spare_reply[i]);
				spare_cmd[i] = spare_reply[i] = -1;
			}
			if (child == 0) {
				close(cmd_fd);
				close(reply_fd);
				cmd_fd = spare_cmd[c.arg];
				reply_fd = spare_reply[c.arg];
				spare_cmd[c.arg] = spare_reply[c.arg] = -1;
				if (child_setup(0) != 0)
					_exit(2);
				r.pid = (int32_t)getpid();
				r.value = 0;
				if (write_all(reply_fd, &r, sizeof(r)) != 0)
					_exit(3);
				continue;
			}
			r.value = (uint64_t)child;
			break;
		case PTSHARE_AGENT_EXIT:
			_exit(0);
		case PTSHARE_AGENT_MLOCKALL:
			rc = c.arg == 0 ? munlockall() : mlockall(c.arg);
			if (rc != 0)
				r.error = errno;
			break;
		case PTSHARE_AGENT_UFFD_REGISTER:
			agent_uffd(c.addr, c.length, &r);
			break;
		case PTSHARE_AGENT_PIN_CPU:
			if (ptshare_pin_to_cpu(c.arg, NULL) != 0)
				r.error = errno;
			break;
		case PTSHARE_AGENT_SPIN_READ:
			agent_spin_read(c.addr, c.offset, c.value, &r);
			break;
		case PTSHARE_AGENT_EXEC:
			agent_exec(&r);
			break;
		case PTSHARE_AGENT_KVM_VM:
			agent_kvm_vm(&r);
			break;
		case PTSHARE_AGENT_MOVE_PAGES:
			agent_move_pages(c.addr, c.length, c.arg, c.flags, c.value, &r);
			break;
		case PTSHARE_AGENT_MBIND:
			agent_mbind(c.addr, c.length, c.arg, c.flags, &r);
			break;
		default:
			r.error = EINVAL;
			break;
		}
		if (write_all(reply_fd, &r, sizeof(r)) != 0)
			_exit(3);
	}
}

/* ---- The stress process ---- */

#define STRESS_MAX_PAGES 8192u    /* 32 MiB of file; a page index fits 16 bits */
#define STRESS_MAX_SEEN (1u << 20) /* pages × processes whose last generation a reader keeps */

/* What this process wrote last in its own word of each page; 0: nothing yet. */
static volatile uint64_t stress_last[STRESS_MAX_PAGES];
/* [page * processes + w]: the newest generation this process accepted in word w of the page. */
static uint32_t stress_seen[STRESS_MAX_SEEN];

uint64_t ptshare_stress_word(uint32_t writer, uint64_t page, uint64_t generation)
{
	return (uint64_t)PTSHARE_STRESS_WORD_MAGIC << 56 |
	       (uint64_t)(writer & 0xfff) << PTSHARE_STRESS_WORD_WRITER_SHIFT |
	       (page & PTSHARE_STRESS_WORD_PAGE_MASK) << PTSHARE_STRESS_WORD_PAGE_SHIFT |
	       (generation & PTSHARE_STRESS_WORD_GENERATION_MASK);
}

uint32_t ptshare_stress_judge_word(uint64_t word, uint32_t w, uint64_t page, int writes, uint64_t published,
				   uint64_t finished, uint64_t seen, int above_floor)
{
	uint64_t gen = word & PTSHARE_STRESS_WORD_GENERATION_MASK;

	/* 0: the writer has not written this page yet, or truncate/punch zeroed it since; below
	 * the floor nothing zeroes, so a word written there cannot turn back into 0. */
	if (word == 0) {
		if (above_floor)
			return PTSHARE_WORD_ACCEPTED;
		return seen ? PTSHARE_WORD_ZERO : finished ? PTSHARE_WORD_STALE : PTSHARE_WORD_ACCEPTED;
	}
	if (word >> 56 != PTSHARE_STRESS_WORD_MAGIC)
		return PTSHARE_WORD_NOT_STRESS;
	if (((word >> PTSHARE_STRESS_WORD_WRITER_SHIFT) & 0xfff) != w || !writes)
		return PTSHARE_WORD_WRITER;
	if (((word >> PTSHARE_STRESS_WORD_PAGE_SHIFT) & PTSHARE_STRESS_WORD_PAGE_MASK) !=
	    (page & PTSHARE_STRESS_WORD_PAGE_MASK))
		return PTSHARE_WORD_PAGE;
	if (gen == 0)
		return PTSHARE_WORD_GENERATION;
	/* The writer publishes a generation before it writes a word of it. */
	if (gen > published)
		return PTSHARE_WORD_FUTURE;
	/* Only the slot's process writes the word, with generations that only grow, and zeroing
	 * does not bring an old one back: an older one is a stale or foreign page. */
	if (gen < seen)
		return PTSHARE_WORD_BACKWARDS;
	/* Below the floor every write lands (no SIGBUS) and stays: a word older than one its
	 * writer finished there is a stale page. Above it, a SIGBUS may have skipped the page. */
	if (!above_floor && gen < finished)
		return PTSHARE_WORD_STALE;
	return PTSHARE_WORD_ACCEPTED;
}

struct stress_ctx {
	const struct ptshare_stress_plan *p;
	struct ptshare_stress_report r;
	uint32_t slot;
	uint64_t rng;
	uint64_t *generations;         /* the driver's shared pages: published generation per slot */
	uint64_t *finished;            /* finished generation << 32 | end page << 16 | first, per slot */
	/* Read per word, the shared pages would cost most of a check walk under TCG: */
	uint64_t published[PAGE / 8];  /* what each slot had published when last read (it only grows) */
	uint64_t finished_at_walk[PAGE / 8]; /* `finished` as read before the check walk's first word */
};

static uint64_t next_random(struct stress_ctx *x)
{
	x->rng ^= x->rng << 13;
	x->rng ^= x->rng >> 7;
	x->rng ^= x->rng << 17;
	return x->rng;
}

__attribute__((noreturn))
static void stress_finish(struct stress_ctx *x, uint32_t error, int err_no, int code)
{
	x->r.error = error;
	x->r.err_no = err_no;
	if (write_all(x->p->report_write_fd, &x->r, sizeof(x->r)) != 0)
		_exit(3);
	_exit(code);
}

/* Judges word w of a page and remembers its generation; 0 or PTSHARE_STRESS_FOREIGN with
 * offset/found/expected/refusal set. */
static uint32_t stress_judge(struct stress_ctx *x, uint32_t w, uint64_t v, uint64_t page)
{
	const struct ptshare_stress_plan *p = x->p;
	uint32_t *seen = &stress_seen[page * p->processes + w];
	uint64_t f = x->finished_at_walk[w];
	uint64_t finished = page >= (f & 0xffff) && page < (f >> 16 & 0xffff) ? f >> 32 : 0;
	int above = page * PAGE >= p->floor;
	int writes = w != p->truncator_slot;
	uint64_t gen = v & PTSHARE_STRESS_WORD_GENERATION_MASK;
	uint32_t why = ptshare_stress_judge_word(v, w, page, writes, x->published[w], finished, *seen, above);

	if (why == PTSHARE_WORD_FUTURE) {
		/* Newer than the last published generation read here: read it again, after the word
		 * (the writer's release fence ordered its publication before the word). */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		x->published[w] = __atomic_load_n(&x->generations[w], __ATOMIC_RELAXED);
		why = ptshare_stress_judge_word(v, w, page, writes, x->published[w], finished, *seen, above);
	}
	if (why == PTSHARE_WORD_ACCEPTED) {
		if (v != 0 && gen != *seen)
			*seen = (uint32_t)gen;
		return 0;
	}
	x->r.offset = page * PAGE + w * 8;
	x->r.found = v;
	x->r.refusal = why;
	if (why == PTSHARE_WORD_FUTURE)
		x->r.expected = x->published[w];
	else if (why == PTSHARE_WORD_BACKWARDS || why == PTSHARE_WORD_ZERO)
		x->r.expected = *seen;
	else if (why == PTSHARE_WORD_STALE)
		x->r.expected = finished;
	return PTSHARE_STRESS_FOREIGN;
}

/* Checks one page's words: every other owner's passes ptshare_stress_judge_word; this
 * process's own is what it wrote last (or 0 above the floor, where the truncator zeroes), and
 * before it wrote any, passes the judge like another's (a predecessor in the slot wrote it).
 * Returns 0 or an enum ptshare_stress_error with offset/found/expected set. */
static uint32_t stress_check_page(struct stress_ctx *x, volatile uint64_t *words, uint64_t page)
{
	const struct ptshare_stress_plan *p = x->p;

	for (uint32_t w = 0; w < p->processes; w++) {
		uint64_t v = __atomic_load_n(&words[w], __ATOMIC_RELAXED);

		if (w == x->slot && stress_last[page] != 0) {
			uint64_t last = stress_last[page];

			if (v == last)
				continue;
			if (v == 0 && page * PAGE >= p->floor)
				continue;
			x->r.offset = page * PAGE + w * 8;
			x->r.found = v;
			x->r.expected = last;
			return PTSHARE_STRESS_OWN;
		}
		if (stress_judge(x, w, v, page))
			return PTSHARE_STRESS_FOREIGN;
	}
	return 0;
}

/* Writes (write=1) or checks every page of a mapping of [off, off+len) at addr. SIGBUS above
 * the floor skips the page; below it, it is an error. */
static uint32_t stress_walk(struct stress_ctx *x, uint64_t addr, uint64_t off, uint64_t len,
			    int write, uint64_t gen)
{
	volatile uint64_t i = 0;
	uint32_t e;

	/* Lower bounds for every word this walk reads: read before the first. */
	for (uint32_t w = 0; !write && w < x->p->processes; w++)
		x->finished_at_walk[w] = __atomic_load_n(&x->finished[w], __ATOMIC_ACQUIRE);
	while (i < len) {
		if (sigsetjmp(bus_env, 1)) {
			if (fault_signal != SIGBUS) {
				x->r.offset = off + i;
				x->r.found = (uint64_t)fault_signal;
				return PTSHARE_STRESS_SIGSEGV;
			}
			x->r.sigbus++;
			if (off + i < x->p->floor) {
				x->r.offset = off + i;
				return PTSHARE_STRESS_SIGBUS;
			}
			i += PAGE;
			continue;
		}
		bus_armed = 1;
		for (; i < len; i += PAGE) {
			uint64_t page = (off + i) / PAGE;
			volatile uint64_t *words = (volatile uint64_t *)(uintptr_t)(addr + i);

			if (write) {
				uint64_t v = ptshare_stress_word(x->slot, page, gen);

				__atomic_store_n(&words[x->slot], v, __ATOMIC_RELAXED);
				stress_last[page] = v;
			} else {
				e = stress_check_page(x, words, page);
				if (e) {
					bus_armed = 0;
					return e;
				}
			}
		}
		bus_armed = 0;
	}
	return 0;
}

static void stress_sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

__attribute__((noreturn))
static void stress_truncator(struct stress_ctx *x)
{
	const struct ptshare_stress_plan *p = x->p;
	int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

	while (p->anon_addr && x->r.iterations < p->iterations && now_ns() < p->deadline_ns) {
		/* No size to change: the hole punch alone, through the inherited mapping. */
		if (madvise((void *)(uintptr_t)(p->anon_addr + p->floor), p->file_size - p->floor, MADV_REMOVE) != 0)
			stress_finish(x, PTSHARE_STRESS_TRUNCATE, errno, 1);
		stress_sleep_us(2000 + next_random(x) % 8000);
		x->r.iterations++;
	}
	while (x->r.iterations < p->iterations && now_ns() < p->deadline_ns) {
		if (ftruncate(p->fd, (off_t)p->floor) != 0)
			stress_finish(x, PTSHARE_STRESS_TRUNCATE, errno, 1);
		stress_sleep_us(500 + next_random(x) % 3000);
		if (ftruncate(p->fd, (off_t)p->file_size) != 0)
			stress_finish(x, PTSHARE_STRESS_TRUNCATE, errno, 1);
		stress_sleep_us(2000 + next_random(x) % 8000);
		if (fallocate(p->fd, punch, (off_t)p->floor, (off_t)(p->file_size - p->floor)) != 0)
			stress_finish(x, PTSHARE_STRESS_TRUNCATE, errno, 1);
		stress_sleep_us(2000 + next_random(x) % 8000);
		x->r.iterations++;
	}
	stress_finish(x, PTSHARE_STRESS_OK, 0, 0);
}

void ptshare_stress_main(const struct ptshare_stress_plan *p, uint32_t slot, uint32_t incarnation)
{
	struct stress_ctx x;
	uint64_t chunks = p->file_size / CHUNK;
	uint64_t gen = 0;
	uint32_t e;

	memset(&x, 0, sizeof(x));
	x.p = p;
	x.slot = slot;
	x.generations = (uint64_t *)(uintptr_t)p->generations;
	x.finished = x.generations + PAGE / 8;
	x.rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)slot << 32) ^ incarnation ^ now_ns();
	x.r.slot = slot;
	x.r.pid = (int32_t)getpid();
	close(p->report_read_fd);
	if (child_setup(p->driver_pid) != 0)
		stress_finish(&x, PTSHARE_STRESS_FORK, errno, 1);
	if (slot == p->truncator_slot)
		stress_truncator(&x);
	if (p->file_size / PAGE > STRESS_MAX_PAGES || p->processes > PAGE / 8 ||
	    p->file_size / PAGE * p->processes > STRESS_MAX_SEEN)
		stress_finish(&x, PTSHARE_STRESS_MMAP, EINVAL, 1);
	/* A respawned slot goes on from its predecessor's generation. */
	gen = __atomic_load_n(&x.generations[slot], __ATOMIC_RELAXED);

	while (x.r.iterations < p->iterations && now_ns() < p->deadline_ns) {
		uint64_t off = (next_random(&x) % chunks) * CHUNK;
		uint64_t len = p->file_size - off;
		void *a;

		if (x.r.iterations % 3 == 0) {
			off = 0;
			len = p->file_size;
		} else if (!p->anon_addr) {
			/*
			 * A length of its own, so that a mapping does not always end where the file
			 * does: mmap() places one at the top of the free range, and with one end the
			 * same for all, every process would map each file offset at one address, and a
			 * kernel that attached by address instead of by offset could not be told apart.
			 */
			len = (1 + next_random(&x) % (len / CHUNK)) * CHUNK;
		}
		if (++gen > PTSHARE_STRESS_WORD_GENERATION_MASK)
			stress_finish(&x, PTSHARE_STRESS_FORK, EOVERFLOW, 1);
		/* Published before any word of it is written (the fence orders the two). */
		__atomic_store_n(&x.generations[slot], gen, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		if (p->anon_addr) {
			a = (void *)(uintptr_t)(p->anon_addr + off);
		} else {
			a = mmap(NULL, len, PROT_READ | PROT_WRITE, ptshare_MAP_SHARED_VALIDATE | (int)p->flag, p->fd,
				 (off_t)off);
			if (a == MAP_FAILED)
				stress_finish(&x, PTSHARE_STRESS_MMAP, errno, 1);
		}
		e = stress_walk(&x, (uint64_t)(uintptr_t)a, off, len, 1, gen);
		if (!e) {
			/* Every page of [off, off + len) now holds this generation (or 0 above the floor). */
			__atomic_store_n(&x.finished[slot], gen << 32 | (off + len) / PAGE << 16 | off / PAGE,
					 __ATOMIC_RELEASE);
			e = stress_walk(&x, (uint64_t)(uintptr_t)a, off, len, 0, gen);
		}
		if (e)
			stress_finish(&x, e, 0, 1);

		if (x.r.iterations % 4 == 1) {
			/* A child of a sharer shares too: it checks what the parent wrote. */
			pid_t c = fork();
			int st = 0;

			if (c < 0)
				stress_finish(&x, PTSHARE_STRESS_FORK, errno, 1);
			if (c == 0) {
				x.r.pid = (int32_t)getpid();
				x.r.in_child = 1;
				if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
					_exit(2);
				e = stress_walk(&x, (uint64_t)(uintptr_t)a, off, len, 0, gen);
				if (e)
					stress_finish(&x, e, 0, 1);
				_exit(0);
			}
			while (waitpid(c, &st, 0) < 0 && errno == EINTR)
				;
			x.r.forks++;
			/* A child that found a mismatch reported it itself; any other death is ours to report. */
			if (!(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 1))) {
				x.r.found = (uint64_t)st;
				stress_finish(&x, PTSHARE_STRESS_CHILD, 0, 1);
			}
		}

		if (p->anon_addr) {
			/* The inherited mapping cannot come back: it is unmapped after the last round. */
			x.r.iterations++;
			continue;
		}
		if (len > CHUNK && x.r.iterations % 2 == 0) {
			/* Unmap the first 2 MiB, check the rest, then unmap it. */
			if (munmap(a, CHUNK) != 0)
				stress_finish(&x, PTSHARE_STRESS_MUNMAP, errno, 1);
			e = stress_walk(&x, (uint64_t)(uintptr_t)a + CHUNK, off + CHUNK, len - CHUNK, 0, gen);
			if (e)
				stress_finish(&x, e, 0, 1);
			if (munmap((char *)a + CHUNK, len - CHUNK) != 0)
				stress_finish(&x, PTSHARE_STRESS_MUNMAP, errno, 1);
		} else if (munmap(a, len) != 0) {
			stress_finish(&x, PTSHARE_STRESS_MUNMAP, errno, 1);
		}
		x.r.iterations++;
	}
	if (p->anon_addr && incarnation % 2 == 0) {
		/* Chunk by chunk from a random one on, checking what is left after each, so that the
		 * last sharer out differs from chunk to chunk; odd incarnations leave it to exit. */
		uint64_t first = next_random(&x) % chunks;

		for (uint64_t k = 0; k < chunks; k++) {
			uint64_t c = (first + k) % chunks;

			/* Still mapped: [c + 1, first) after the wrap, else [c + 1, chunks) and [0, first). */
			uint64_t end = c < first ? first : chunks;

			if (munmap((void *)(uintptr_t)(p->anon_addr + c * CHUNK), CHUNK) != 0)
				stress_finish(&x, PTSHARE_STRESS_MUNMAP, errno, 1);
			e = stress_walk(&x, p->anon_addr + (c + 1) * CHUNK, (c + 1) * CHUNK, (end - c - 1) * CHUNK, 0, gen);
			if (!e && c >= first)
				e = stress_walk(&x, p->anon_addr, 0, first * CHUNK, 0, gen);
			if (e)
				stress_finish(&x, e, 0, 1);
		}
	}
	stress_finish(&x, PTSHARE_STRESS_OK, 0, 0);
}

/* Writes `value` to `path` in one write(2): 0, or the errno. */
static int write_once(const char *path, const char *value)
{
	size_t n = strlen(value);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (write(fd, value, n) != (ssize_t)n)
		err = errno ? errno : EIO;
	close(fd);
	return err;
}

/* Whether `pid` is gone or a zombie (state Z or X after the last ')' of /proc/PID/stat): an
 * exiting process has no mm, and migrate_pages(2) answers EINVAL for it. */
static int exiting(int32_t pid)
{
	char path[32], buf[512];
	char *p = path + sizeof(path);
	uint32_t v = (uint32_t)pid;
	ssize_t n;
	int fd;

	/* "/proc/PID/stat" without snprintf, which is not async-signal-safe. */
	*--p = '\0';
	memcpy(p -= 5, "/stat", 5);
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(p -= 6, "/proc/", 6);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

int ptshare_squeeze_in_child(const struct ptshare_squeeze_plan *p)
{
	struct ptshare_squeeze_result r;
	unsigned long from = p->from_mask, to = p->to_mask;
	pid_t parent = getpid();
	pid_t pid = fork();
	uint32_t i;
	long left;

	if (pid != 0)
		return pid;
	/* Default stop signals, and dead with the driver. */
	if (child_setup(parent) != 0)
		_exit(2);
	memset(&r, 0, sizeof(r));
	r.reclaim_errno = write_once(p->reclaim_path, p->reclaim_value);
	r.compact_errno = write_once("/proc/sys/vm/compact_memory", "1");
	for (i = 0; i < p->npids; i++) {
		/* maxnode counts one more than the mask's bits, as libnuma passes it. */
		left = syscall(SYS_migrate_pages, p->pids[i], 8 * sizeof(from) + 1, &from, &to);
		if (left < 0 && (errno == ESRCH || (errno == EINVAL && exiting(p->pids[i]))))
			continue;
		r.pid = p->pids[i];
		if (left < 0)
			r.migrate_errno = errno;
		else
			r.unmoved = left;
		break;
	}
	_exit(write_all(p->result_fd, &r, sizeof(r)) == 0 ? 0 : 1);
}
