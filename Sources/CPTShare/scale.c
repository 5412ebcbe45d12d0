/* The scale benchmark's sharers (ptshare scale): each maps the file, reads one word in every
 * 2 MiB chunk (attaching the file's tables, or faulting its own), says so with one byte and
 * then waits, touching nothing, until the driver closes the hold pipe. Async-signal-safe between
 * fork() and _exit(): it runs in a child of a Swift process. */
#include "cptshare.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

pid_t ptshare_scale_spawn(int fd, uint64_t size, int flags, int ready_fd, int hold_fd,
			  const int *close_fds, int nclose)
{
	pid_t pid = fork();
	volatile uint64_t sum = 0;
	char b = 1;
	char *p;

	if (pid != 0)
		return pid;
	for (int i = 0; i < nclose; i++)
		close(close_fds[i]);
	/* Dies with the driver: never left behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		_exit(2);
	for (uint64_t off = 0; off < size; off += 2u << 20)
		sum += *(volatile uint64_t *)(p + off);
	if (write(ready_fd, &b, 1) != 1)
		_exit(3);
	/* EOF when the driver closes its end: every sharer exits at once. */
	while (read(hold_fd, &b, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}
