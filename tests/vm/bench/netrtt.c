// SPDX-License-Identifier: GPL-2.0
/*
 * netrtt: the network round trip of the mirroring benchmark
 * (tests/vm/bench-mirror.sh), measured between the two guests in the same
 * run as the file-system numbers.
 *
 *   netrtt server PORT                  echo every message back, forever
 *   netrtt client HOST PORT [SIZE] [N]  N ping-pongs of SIZE bytes (64,
 *                                       1000) after 20 not counted; prints
 *                                       one JSON line (µs)
 *
 * One TCP connection with TCP_NODELAY on both ends: a request of SIZE
 * bytes, the same SIZE bytes back, timed with CLOCK_MONOTONIC; what a
 * mirrored acknowledgement costs at least.  The client retries the
 * connection for 60 s (the server may still be starting).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXSZ 65536
#define WARMUP 20

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int full(int fd, char *buf, size_t n, int rd)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = rd ? read(fd, buf + done, n - done) :
				 write(fd, buf + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int server(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port) };
	static char buf[MAXSZ];
	int ls, one = 1;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(ls, (struct sockaddr *)&sin, sizeof(sin)) || listen(ls, 4)) {
		perror("netrtt: listen");
		return 1;
	}
	for (;;) {
		uint32_t sz;
		int c = accept(ls, NULL, NULL);

		if (c < 0)
			continue;
		nodelay(c);
		/* Each message: a 4-byte size, then that many bytes. */
		while (!full(c, (char *)&sz, 4, 1) && sz <= MAXSZ &&
		       !full(c, buf, sz, 1) && !full(c, buf, sz, 0))
			;
		close(c);
	}
}

static int client(const char *host, int port, uint32_t size, int n)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port) };
	static char buf[MAXSZ + 4];
	uint64_t *lat, sum = 0, t0;
	int fd = -1, i, tries;

	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || size < 1 ||
	    size > MAXSZ || n < 1) {
		fprintf(stderr, "netrtt: bad arguments\n");
		return 2;
	}
	for (tries = 0; tries < 120; tries++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && !connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
		usleep(500000);
	}
	if (fd < 0) {
		fprintf(stderr, "netrtt: cannot connect to %s:%d\n", host, port);
		return 1;
	}
	nodelay(fd);
	lat = calloc((size_t)n, sizeof(*lat));
	if (!lat)
		return 1;
	memcpy(buf, &size, 4);
	memset(buf + 4, 'x', size);
	for (i = 0; i < n + WARMUP; i++) {
		t0 = now_ns();
		if (full(fd, buf, size + 4, 0) || full(fd, buf + 4, size, 1)) {
			fprintf(stderr, "netrtt: connection lost\n");
			return 1;
		}
		if (i >= WARMUP)
			lat[i - WARMUP] = now_ns() - t0;
	}
	close(fd);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	for (i = 0; i < n; i++)
		sum += lat[i];
	printf("{\"kind\": \"tcp\", \"size\": %u, \"n\": %d, \"min_us\": %.1f, "
	       "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
	       "\"mean_us\": %.1f, \"max_us\": %.1f}\n", size, n,
	       lat[0] / 1e3, lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3,
	       lat[n * 99 / 100] / 1e3, (double)sum / n / 1e3, lat[n - 1] / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if (argc >= 4 && argc <= 6 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]),
			      argc > 4 ? (uint32_t)atoi(argv[4]) : 64,
			      argc > 5 ? atoi(argv[5]) : 1000);
	fprintf(stderr, "usage: netrtt server PORT | netrtt client HOST PORT [SIZE] [N]\n");
	return 2;
}
