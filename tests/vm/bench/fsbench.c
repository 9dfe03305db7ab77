// SPDX-License-Identifier: GPL-2.0
/*
 * fsbench: the guest-side driver of the twinfs benchmark (tests/vm/bench.sh).
 *
 * Runs one workload with N threads on a directory of a mounted file system
 * and prints one JSON line: ops, wall time, ops/s and per-operation latency
 * (p50, p99, mean, max; each operation timed with CLOCK_MONOTONIC).
 *
 *   fsbench -w WORKLOAD -d DIR [-t THREADS] [-s SECS] [-n MAX_OPS]
 *           [-f FILES] [-D DIRS] [-R REPS] [-m FILE_MB] [-c CONFIG] [-r ROUND]
 *
 * Workloads (DIR is created, except for write_fsync, and must not exist):
 *   create_fsync  open(O_CREAT|O_EXCL|O_WRONLY), fsync, close of a new empty
 *                 file; thread i works in DIR/t<i> (made beforehand).  Runs
 *                 SECS seconds (or MAX_OPS operations in all, whichever
 *                 comes first).
 *   create_fsync_dir  the same plus an fsync of the directory DIR/t<i>
 *                 after the file's: what POSIX asks for to make the new
 *                 name durable, and what a file system that (like ext2)
 *                 does not persist the name with the file's fsync needs.
 *   write_fsync   pwrite of 4096 bytes at a random 4 KiB-aligned offset, then
 *                 fsync, on DIR/write.dat, FILE_MB MiB (default 64) written
 *                 and fsynced beforehand (not timed; reused if the size is
 *                 right).  Thread i stays in its own 1/THREADS of the file.
 *                 Runs SECS seconds (or MAX_OPS).
 *   untar         FILES files (default 2000) of 1-16 KiB in DIRS directories
 *                 (default 50) under DIR/r<k>, no fsync, then one syncfs();
 *                 thread i makes the directories d with d % THREADS == i and
 *                 their files.  Repeated REPS times (default 1), k = 0..,
 *                 each with its syncfs.  One operation = open(O_CREAT|
 *                 O_EXCL)+write+close of a file; ops/s counts the files over
 *                 the whole time, mkdirs and syncfs included (sync_ms is the
 *                 time spent in syncfs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096

enum workload { W_CREATE_FSYNC, W_CREATE_FSYNC_DIR, W_WRITE_FSYNC, W_UNTAR, W_COUNT };
static const char *const wl_names[] = {
	"create_fsync", "create_fsync_dir", "write_fsync", "untar",
};

static struct {
	enum workload wl;
	const char *dir;
	const char *config;
	int round;
	int threads;
	double secs;
	long max_ops;
	long files;
	int dirs;
	int reps;
	int rep;			/* untar: the repetition running */
	long file_mb;
	int wfd;			/* write_fsync: the shared file */
	uint64_t deadline_ns;
	pthread_barrier_t start;
} opt = {
	.threads = 1, .secs = 5, .max_ops = 1000000, .files = 2000,
	.dirs = 50, .reps = 1, .file_mb = 64, .config = "", .round = 0, .wfd = -1,
};

struct thread {
	pthread_t tid;
	int idx;
	long cap;		/* room in lat[] */
	long n;			/* operations done */
	uint64_t *lat;		/* ns per operation */
	int err;		/* errno of a failure, 0 if none */
	char what[160];		/* the call that failed */
};

static __attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fsbench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: cheap and deterministic per thread. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static int fail(struct thread *t, const char *fmt, ...)
{
	va_list ap;

	t->err = errno ? errno : EIO;
	va_start(ap, fmt);
	vsnprintf(t->what, sizeof(t->what), fmt, ap);
	va_end(ap);
	return -1;
}

static void record(struct thread *t, uint64_t ns)
{
	if (t->n < t->cap)
		t->lat[t->n] = ns;
	t->n++;
}

static int done(const struct thread *t, long per_thread_max)
{
	return t->n >= per_thread_max || now_ns() >= opt.deadline_ns;
}

static long per_thread_max(void)
{
	long m = opt.max_ops / opt.threads;

	return m > 0 ? m : 1;
}

static int run_create_fsync(struct thread *t)
{
	long max = per_thread_max();
	char path[4096];
	int fd, dfd = -1;

	if (opt.wl == W_CREATE_FSYNC_DIR) {
		snprintf(path, sizeof(path), "%s/t%d", opt.dir, t->idx);
		dfd = open(path, O_RDONLY | O_DIRECTORY);
	}
	pthread_barrier_wait(&opt.start);
	if (opt.wl == W_CREATE_FSYNC_DIR && dfd < 0)
		return fail(t, "open %s", path);
	while (!done(t, max)) {
		uint64_t t0 = now_ns();

		snprintf(path, sizeof(path), "%s/t%d/f%ld", opt.dir, t->idx, t->n);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0)
			return fail(t, "open %s", path);
		if (fsync(fd))
			return fail(t, "fsync %s", path);
		if (dfd >= 0 && fsync(dfd))
			return fail(t, "fsync of directory t%d", t->idx);
		if (close(fd))
			return fail(t, "close %s", path);
		record(t, now_ns() - t0);
	}
	if (dfd >= 0)
		close(dfd);
	return 0;
}

static int run_write_fsync(struct thread *t)
{
	uint64_t blocks = (uint64_t)opt.file_mb * (1 << 20) / BLK;
	uint64_t per = blocks / (uint64_t)opt.threads;
	uint64_t first = per * (uint64_t)t->idx, seed;
	long max = per_thread_max();
	char *buf;

	buf = aligned_alloc(BLK, BLK);
	seed = 0x9e3779b97f4a7c15ull * (uint64_t)(t->idx + 1) + (uint64_t)opt.round;
	pthread_barrier_wait(&opt.start);
	if (!buf)
		return fail(t, "aligned_alloc");
	memset(buf, 0x5a ^ t->idx, BLK);
	while (!done(t, max)) {
		uint64_t blk = first + rnd(&seed) % per;
		uint64_t t0 = now_ns();

		/* Fresh bytes each time: the write is never a no-op. */
		*(uint64_t *)buf = t0;
		if (pwrite(opt.wfd, buf, BLK, (off_t)(blk * BLK)) != BLK)
			return fail(t, "pwrite block %llu", (unsigned long long)blk);
		if (fsync(opt.wfd))
			return fail(t, "fsync");
		record(t, now_ns() - t0);
	}
	free(buf);
	return 0;
}

static char untar_data[16384];

static void init_untar_data(void)
{
	uint64_t s = 42;

	for (size_t i = 0; i < sizeof(untar_data); i += 8) {
		uint64_t v = rnd(&s);

		memcpy(untar_data + i, &v, 8);
	}
}

static int run_untar(struct thread *t)
{
	long per_dir = opt.files / opt.dirs;
	char path[4096];
	int d, fd;
	long f;

	pthread_barrier_wait(&opt.start);
	for (d = t->idx; d < opt.dirs; d += opt.threads) {
		long n = per_dir + (d < opt.files % opt.dirs ? 1 : 0);

		snprintf(path, sizeof(path), "%s/r%d/d%02d", opt.dir, opt.rep, d);
		if (mkdir(path, 0755))
			return fail(t, "mkdir %s", path);
		for (f = 0; f < n; f++) {
			uint64_t s = (uint64_t)d * 100003 + (uint64_t)f + 1;
			size_t size = 1024 + rnd(&s) % (16384 - 1024 + 1);
			uint64_t t0 = now_ns();

			snprintf(path, sizeof(path), "%s/r%d/d%02d/file%04ld.dat",
				 opt.dir, opt.rep, d, f);
			fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
			if (fd < 0)
				return fail(t, "open %s", path);
			if (write(fd, untar_data, size) != (ssize_t)size)
				return fail(t, "write %s", path);
			if (close(fd))
				return fail(t, "close %s", path);
			record(t, now_ns() - t0);
		}
	}
	return 0;
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;

	switch (opt.wl) {
	case W_CREATE_FSYNC:
	case W_CREATE_FSYNC_DIR: run_create_fsync(t); break;
	case W_WRITE_FSYNC: run_write_fsync(t); break;
	case W_UNTAR: run_untar(t); break;
	case W_COUNT: break;
	}
	return NULL;
}

/* write_fsync: DIR/write.dat of FILE_MB MiB, written and fsynced once. */
static void prepare_write_file(void)
{
	off_t size = (off_t)opt.file_mb << 20;
	char path[4096], *buf;
	struct stat st;
	off_t off;

	if (mkdir(opt.dir, 0755) && errno != EEXIST)
		die("mkdir %s: %s", opt.dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/write.dat", opt.dir);
	opt.wfd = open(path, O_CREAT | O_RDWR, 0644);
	if (opt.wfd < 0)
		die("open %s: %s", path, strerror(errno));
	if (fstat(opt.wfd, &st))
		die("fstat %s: %s", path, strerror(errno));
	if (st.st_size == size)
		return;
	buf = malloc(1 << 20);
	if (!buf)
		die("out of memory");
	memset(buf, 0xa5, 1 << 20);
	if (ftruncate(opt.wfd, 0))
		die("ftruncate %s: %s", path, strerror(errno));
	for (off = 0; off < size; off += 1 << 20)
		if (pwrite(opt.wfd, buf, 1 << 20, off) != 1 << 20)
			die("pwrite %s: %s", path, strerror(errno));
	if (fsync(opt.wfd))
		die("fsync %s: %s", path, strerror(errno));
	free(buf);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct_us(const uint64_t *v, long n, double p)
{
	long k;

	if (!n)
		return 0;
	k = (long)(p / 100.0 * (double)n + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return (double)v[k] / 1000.0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fsbench -w create_fsync|create_fsync_dir|write_fsync|untar\n"
		"       -d DIR [-t THREADS] [-s SECS] [-n MAX_OPS] [-f FILES] [-D DIRS]\n"
		"       [-R REPS] [-m FILE_MB] [-c CONFIG] [-r ROUND]\n");
	exit(2);
}

/* One pass of the threads over the workload (untar: one repetition). */
static void run_threads(struct thread *th)
{
	int i;

	for (i = 0; i < opt.threads; i++)
		if (pthread_create(&th[i].tid, NULL, thread_main, &th[i]))
			die("pthread_create failed");
	/* The deadline is set before the threads are released. */
	if (opt.wl != W_UNTAR)
		opt.deadline_ns = now_ns() + (uint64_t)(opt.secs * 1e9);
	pthread_barrier_wait(&opt.start);
	for (i = 0; i < opt.threads; i++)
		pthread_join(th[i].tid, NULL);
	for (i = 0; i < opt.threads; i++)
		if (th[i].err)
			die("thread %d: %s: %s", i, th[i].what, strerror(th[i].err));
}

int main(int argc, char **argv)
{
	const char *wl = NULL;
	struct thread *th;
	uint64_t t0, t1, t2, sync_ns = 0, *all, sum = 0;
	long total = 0, kept = 0, cap;
	char path[4096];
	double secs;
	int c, i, dirfd;

	while ((c = getopt(argc, argv, "w:d:t:s:n:f:D:R:m:c:r:h")) != -1) {
		switch (c) {
		case 'w': wl = optarg; break;
		case 'd': opt.dir = optarg; break;
		case 't': opt.threads = atoi(optarg); break;
		case 's': opt.secs = atof(optarg); break;
		case 'n': opt.max_ops = atol(optarg); break;
		case 'f': opt.files = atol(optarg); break;
		case 'D': opt.dirs = atoi(optarg); break;
		case 'R': opt.reps = atoi(optarg); break;
		case 'm': opt.file_mb = atol(optarg); break;
		case 'c': opt.config = optarg; break;
		case 'r': opt.round = atoi(optarg); break;
		default: usage();
		}
	}
	if (!wl || !opt.dir || optind != argc || opt.threads < 1 ||
	    opt.threads > 256 || opt.secs <= 0 || opt.max_ops < 1 ||
	    opt.files < 1 || opt.dirs < 1 || opt.dirs > 100 ||
	    opt.reps < 1 || opt.reps > 100 || opt.file_mb < 1)
		usage();
	for (i = 0; i < W_COUNT; i++)
		if (!strcmp(wl, wl_names[i]))
			opt.wl = (enum workload)i;
	if (strcmp(wl, wl_names[opt.wl]))
		usage();

	if (opt.wl == W_WRITE_FSYNC)
		prepare_write_file();
	else if (mkdir(opt.dir, 0755))
		die("mkdir %s: %s", opt.dir, strerror(errno));
	if (opt.wl == W_UNTAR)
		init_untar_data();
	for (i = 0; i < opt.threads; i++) {
		if (opt.wl != W_CREATE_FSYNC && opt.wl != W_CREATE_FSYNC_DIR)
			break;
		snprintf(path, sizeof(path), "%s/t%d", opt.dir, i);
		if (mkdir(path, 0755))
			die("mkdir %s: %s", path, strerror(errno));
	}
	dirfd = open(opt.dir, O_RDONLY | O_DIRECTORY);
	if (dirfd < 0)
		die("open %s: %s", opt.dir, strerror(errno));
	/* Nothing of the preparation may be written during the measurement. */
	if (syncfs(dirfd))
		die("syncfs %s: %s", opt.dir, strerror(errno));

	cap = opt.wl == W_UNTAR ? opt.files * opt.reps : per_thread_max();
	th = calloc((size_t)opt.threads, sizeof(*th));
	if (!th)
		die("out of memory");
	pthread_barrier_init(&opt.start, NULL, (unsigned)opt.threads + 1);
	opt.deadline_ns = UINT64_MAX;
	for (i = 0; i < opt.threads; i++) {
		th[i].idx = i;
		th[i].cap = cap;
		th[i].lat = malloc((size_t)cap * sizeof(uint64_t));
		if (!th[i].lat)
			die("out of memory");
	}

	t0 = now_ns();
	if (opt.wl != W_UNTAR) {
		run_threads(th);
	} else {
		for (opt.rep = 0; opt.rep < opt.reps; opt.rep++) {
			snprintf(path, sizeof(path), "%s/r%d", opt.dir, opt.rep);
			if (mkdir(path, 0755))
				die("mkdir %s: %s", path, strerror(errno));
			run_threads(th);
			t1 = now_ns();
			if (syncfs(dirfd))
				die("syncfs %s: %s", opt.dir, strerror(errno));
			sync_ns += now_ns() - t1;
		}
	}
	t2 = now_ns();

	for (i = 0; i < opt.threads; i++)
		total += th[i].n;
	all = malloc((size_t)(total ? total : 1) * sizeof(uint64_t));
	if (!all)
		die("out of memory");
	for (i = 0; i < opt.threads; i++) {
		long n = th[i].n < th[i].cap ? th[i].n : th[i].cap;

		memcpy(all + kept, th[i].lat, (size_t)n * sizeof(uint64_t));
		kept += n;
	}
	qsort(all, (size_t)kept, sizeof(uint64_t), cmp_u64);
	for (i = 0; i < kept; i++)
		sum += all[i];
	secs = (double)(t2 - t0) / 1e9;
	printf("{\"config\": \"%s\", \"round\": %d, \"workload\": \"%s\", "
	       "\"threads\": %d, \"ops\": %ld, \"secs\": %.3f, "
	       "\"ops_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
	       "\"mean_us\": %.1f, \"max_us\": %.1f",
	       opt.config, opt.round, wl_names[opt.wl], opt.threads, total,
	       secs, total / secs, pct_us(all, kept, 50), pct_us(all, kept, 99),
	       kept ? (double)sum / (double)kept / 1000.0 : 0.0,
	       kept ? (double)all[kept - 1] / 1000.0 : 0.0);
	if (opt.wl == W_UNTAR)
		printf(", \"reps\": %d, \"sync_ms\": %.1f", opt.reps,
		       (double)sync_ns / 1e6);
	printf("}\n");
	return 0;
}
