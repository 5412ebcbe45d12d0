/* libnuma's error hooks. Its void calls (numa_set_membind, numa_set_interleave_mask,
 * numa_set_localalloc) report a failed set_mempolicy only by calling numa_error(), and its node
 * parser says why it refused a list only through numa_warn(). Both are weak symbols that print to
 * stderr (numa_warn once per kind per process) and then return. These strong definitions record
 * what libnuma said instead, so that Numa.swift turns it into a typed error naming the call and the
 * value, and nothing reaches stderr behind the driver's back. numa_warn is variadic: Swift cannot
 * define it. */
#include "cptshare.h"

#include <errno.h>
#include <numa.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __thread int numa_first_errno;
static __thread int numa_count;
static __thread char numa_text[512];

static void numa_record(const char *what)
{
	size_t used = strlen(numa_text);

	if (numa_count++ > 0 && used + 2 < sizeof(numa_text)) {
		memcpy(numa_text + used, "; ", 3);
		used += 2;
	}
	if (used + 1 < sizeof(numa_text))
		snprintf(numa_text + used, sizeof(numa_text) - used, "%s", what);
}

void numa_error(char *where)
{
	int saved = errno;

	if (numa_first_errno == 0)
		numa_first_errno = saved;
	numa_record(where);
	errno = saved;
}

void numa_warn(int num, char *fmt, ...)
{
	int saved = errno;
	char line[256];
	size_t n;
	va_list ap;

	(void)num;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* libnuma's formats end in "\n", " " or nothing; the record is one line. */
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = 0;
	numa_record(line);
	errno = saved;
}

void ptshare_numa_clear(void)
{
	numa_first_errno = 0;
	numa_count = 0;
	numa_text[0] = 0;
}

int ptshare_numa_complaints(int *err, const char **text)
{
	*err = numa_first_errno;
	*text = numa_text;
	return numa_count;
}
