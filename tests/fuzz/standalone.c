// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * A stand-in for libFuzzer where clang is missing: runs
 * LLVMFuzzerTestOneInput over the seed files given on the command line,
 * then over random mutations of them (bit flips, byte stores, inserts,
 * deletes, splices) for -max_total_time seconds or -runs inputs.  Build it
 * with gcc -fsanitize=address,undefined: a sanitizer report or a trap ends
 * the run with a non-zero status.  No coverage guidance: a smoke test, not
 * a fuzzer.
 *
 *   standalone [-max_total_time=S] [-runs=N] [-seed=N] FILE|DIR...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1u << 17)
#define MAX_SEEDS 4096

struct input {
	uint8_t *data;
	size_t size;
};

static struct input seeds[MAX_SEEDS];
static size_t nseeds;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void add_file(const char *path)
{
	FILE *f;
	long len;

	if (nseeds == MAX_SEEDS)
		return;
	f = fopen(path, "rb");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (len >= 0 && (size_t)len <= FUZZ_MAX_INPUT) {
		seeds[nseeds].data = malloc((size_t)len + 1);
		seeds[nseeds].size = fread(seeds[nseeds].data, 1, (size_t)len, f);
		nseeds++;
	}
	fclose(f);
}

static void add_path(const char *path)
{
	struct stat st;
	struct dirent *d;
	DIR *dir;
	char sub[4096];

	if (stat(path, &st))
		return;
	if (!S_ISDIR(st.st_mode)) {
		add_file(path);
		return;
	}
	dir = opendir(path);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, d->d_name);
		add_path(sub);
	}
	closedir(dir);
}

static size_t mutate(uint8_t *buf, size_t size)
{
	int rounds = 1 + (int)(rnd() % 8), i;

	for (i = 0; i < rounds; i++) {
		size_t at = size ? rnd() % size : 0;

		switch (rnd() % 7) {
		case 0:
			if (size)
				buf[at] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1:
			if (size)
				buf[at] = (uint8_t)rnd();
			break;
		case 2: {
			static const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 64, 63};

			if (size)
				buf[at] = interesting[rnd() % sizeof(interesting)];
			break;
		}
		case 3: {	/* insert */
			size_t n = 1 + rnd() % 16;

			if (size + n <= FUZZ_MAX_INPUT) {
				memmove(buf + at + n, buf + at, size - at);
				for (size_t k = 0; k < n; k++)
					buf[at + k] = (uint8_t)rnd();
				size += n;
			}
			break;
		}
		case 4: {	/* delete */
			size_t n = 1 + rnd() % 16;

			if (at + n <= size) {
				memmove(buf + at, buf + at + n, size - at - n);
				size -= n;
			}
			break;
		}
		case 5: {	/* splice from another seed */
			const struct input *o = &seeds[rnd() % nseeds];
			size_t from, n;

			if (!o->size || !size)
				break;
			from = rnd() % o->size;
			n = 1 + rnd() % 64;
			if (n > o->size - from)
				n = o->size - from;
			if (n > size - at)
				n = size - at;
			memcpy(buf + at, o->data + from, n);
			break;
		}
		default:	/* truncate */
			if (size)
				size = at;
			break;
		}
	}
	return size;
}

int main(int argc, char **argv)
{
	double max_time = 10;
	unsigned long long runs = 0, execs = 0;
	uint8_t *buf = malloc(FUZZ_MAX_INPUT);
	struct timespec t0, t;
	size_t i;
	int a;

	for (a = 1; a < argc; a++) {
		if (!strncmp(argv[a], "-max_total_time=", 16))
			max_time = atof(argv[a] + 16);
		else if (!strncmp(argv[a], "-runs=", 6))
			runs = strtoull(argv[a] + 6, NULL, 0);
		else if (!strncmp(argv[a], "-seed=", 6))
			rng_state = strtoull(argv[a] + 6, NULL, 0) | 1;
		else if (argv[a][0] != '-')
			add_path(argv[a]);
	}
	if (!nseeds) {
		seeds[0].data = calloc(1, 64);
		seeds[0].size = 64;
		nseeds = 1;
	}
	for (i = 0; i < nseeds; i++, execs++)
		LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].size);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		const struct input *s = &seeds[rnd() % nseeds];
		size_t size;
		uint8_t *exact;

		if (runs && execs >= runs)
			break;
		if (!(execs & 255)) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (!runs && (double)(t.tv_sec - t0.tv_sec) +
					     (t.tv_nsec - t0.tv_nsec) / 1e9 >= max_time)
				break;
		}
		memcpy(buf, s->data, s->size);
		size = mutate(buf, s->size);
		/* An exact-size copy, so that ASan sees reads past the end. */
		exact = malloc(size ? size : 1);
		memcpy(exact, buf, size);
		LLVMFuzzerTestOneInput(exact, size);
		free(exact);
		execs++;
	}
	printf("stat::number_of_executed_units: %llu\n", execs);
	printf("standalone: %llu inputs, %zu seeds, no crash\n", execs, nseeds);
	free(buf);
	return 0;
}
