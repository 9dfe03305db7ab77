// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Writes the seed corpus of fuzz_cm_decode into a directory: a valid record
 * of every op (for the decoder, with and without the checksum fix-up), the
 * payload of every op (for the payload parser), lane images whose walk
 * wraps around the ring (for the scanner and planner) and a header area.
 * Every seed is made by the encoder of the core, so the seeds follow the
 * format as the code has it.  See fuzz_cm_decode.c for the input layout.
 *
 *   gen_corpus DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twinfs_core.h"
#include "twinfs_cm_core.h"

#define LANE 4096u
#define PARAMS 17u

enum { M_DECODE, M_PAYLOAD, M_LANE, M_HEADER, M_RAW_LANE };

static const char *dir;
static int nfiles;

static void wr32(u8 *p, u32 x)
{
	p[0] = (u8)x;
	p[1] = (u8)(x >> 8);
	p[2] = (u8)(x >> 16);
	p[3] = (u8)(x >> 24);
}

static void wr64(u8 *p, u64 x)
{
	wr32(p, (u32)x);
	wr32(p + 4, (u32)(x >> 32));
}

static void emit(u8 mode, u32 gen, u64 cp_seq, u32 ctl, const u8 *data,
		 u32 len)
{
	char path[4096];
	u8 params[PARAMS];
	FILE *f;

	params[0] = mode;
	wr32(params + 1, gen);
	wr64(params + 5, cp_seq);
	wr32(params + 13, ctl);
	snprintf(path, sizeof(path), "%s/seed-%02x-%03d", dir, mode, nfiles++);
	f = fopen(path, "wb");
	if (!f || fwrite(params, 1, PARAMS, f) != PARAMS ||
	    fwrite(data, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static u32 create_mode(u16 op)
{
	switch (op) {
	case TWINFS_CM_OP_MKNOD:
		return 0020600;
	case TWINFS_CM_OP_MKDIR:
		return 0040755;
	case TWINFS_CM_OP_SYMLINK:
		return 0120777;
	default:
		return 0100644;
	}
}

/* A valid record of op with every attribute it allows; its size. */
static int build(u8 *buf, u32 cap, u16 op, u64 seq, u64 acked, u32 gen,
		 u32 data_len)
{
	static const u8 data[TWINFS_CM_DATA_MAX];
	struct twinfs_cm_builder b;
	bool named = op <= TWINFS_CM_OP_RENAME;
	bool creates = op <= TWINFS_CM_OP_SYMLINK;

	twinfs_cm_rec_begin(&b, buf, cap, op);
	if (named) {
		twinfs_cm_put_u64(&b, TWINFS_CM_A_PARENT_INO, 2);
		twinfs_cm_put_bytes(&b, TWINFS_CM_A_NAME, "name", 4);
	}
	twinfs_cm_put_u64(&b, TWINFS_CM_A_INO, 100 + seq);
	if (creates) {
		twinfs_cm_put_u32(&b, TWINFS_CM_A_MODE, create_mode(op));
		twinfs_cm_put_u32(&b, TWINFS_CM_A_UID, 1000);
		twinfs_cm_put_u32(&b, TWINFS_CM_A_GID, 1000);
		twinfs_cm_put_u32(&b, TWINFS_CM_A_GENERATION, 1);
	}
	switch (op) {
	case TWINFS_CM_OP_MKNOD:
		twinfs_cm_put_u32(&b, TWINFS_CM_A_RDEV, 0x801);
		break;
	case TWINFS_CM_OP_SYMLINK:
		twinfs_cm_put_bytes(&b, TWINFS_CM_A_SYMLINK_TARGET, "../t", 4);
		break;
	case TWINFS_CM_OP_RENAME:
		twinfs_cm_put_u64(&b, TWINFS_CM_A_NEW_PARENT_INO, 3);
		twinfs_cm_put_bytes(&b, TWINFS_CM_A_NEW_NAME, "new", 3);
		twinfs_cm_put_u64(&b, TWINFS_CM_A_TARGET_INO, 7);
		twinfs_cm_put_u32(&b, TWINFS_CM_A_FLAGS,
				  TWINFS_CM_RENAME_EXCHANGE);
		break;
	case TWINFS_CM_OP_SETATTR:
		twinfs_cm_put_u32(&b, TWINFS_CM_A_MODE, 0600);
		twinfs_cm_put_u32(&b, TWINFS_CM_A_UID, 0);
		twinfs_cm_put_u32(&b, TWINFS_CM_A_GID, 0);
		twinfs_cm_put_time(&b, TWINFS_CM_A_ATIME, 1, 2);
		twinfs_cm_put_time(&b, TWINFS_CM_A_MTIME, 3, 4);
		twinfs_cm_put_u32(&b, TWINFS_CM_A_FLAGS, 0);
		break;
	case TWINFS_CM_OP_TRUNCATE:
		twinfs_cm_put_u64(&b, TWINFS_CM_A_SIZE, 12345);
		break;
	case TWINFS_CM_OP_WRITE:
		twinfs_cm_put_u64(&b, TWINFS_CM_A_OFFSET, 4096);
		twinfs_cm_put_bytes(&b, TWINFS_CM_A_DATA, data,
				    data_len ? data_len : 1);
		break;
	}
	twinfs_cm_put_time(&b, TWINFS_CM_A_CTIME, 1700000000, 0);
	return twinfs_cm_rec_end(&b, seq, acked, gen);
}

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "gen_corpus: %s\n", what);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static u8 buf[TWINFS_CM_REC_MAX], lane[LANE];
	struct twinfs_cm_header h[2];
	struct twinfs_cm_rec_info ri;
	struct twinfs_cm_attrs a;
	u32 gens[4] = {5, 6, 7, 8}, pos;
	u64 seq;
	u16 op;
	int size;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	dir = argv[1];

	/* Records and payloads of every op. */
	for (op = 1; op <= TWINFS_CM_OP_MAX; op++) {
		size = build(buf, sizeof(buf), op, 10, 9, 3, 100);
		check(size > 0, "build");
		check(!twinfs_cm_rec_decode(buf, (u32)size, 3, &ri, &a, NULL),
		      "a seed does not decode");
		emit(M_DECODE, 3, 0, 0, buf, (u32)size);
		emit(M_DECODE | 0x80, 3, 0, 0, buf, (u32)size);
		emit(M_PAYLOAD, op, 0, 0, buf + TWINFS_CM_REC_HDR_SIZE, ri.len);
	}

	/*
	 * A lane: lap 7 from head 2048 to the end, lap 8 from 0, mixed ops;
	 * the records 0 .. 5 are below cp_seq 15, one is lost later on.
	 */
	memset(lane, 0, sizeof(lane));
	seq = 10;
	for (pos = 2048; pos + 256 <= LANE; seq++) {
		size = build(lane + pos, LANE - pos,
			     (u16)(1 + seq % TWINFS_CM_OP_MAX), seq, seq - 1, 7,
			     100);
		check(size > 0, "lane record");
		pos += (u32)size;
	}
	for (pos = 0; pos + 256 <= 2048; seq++) {
		size = build(lane + pos, 2048 - pos, TWINFS_CM_OP_WRITE, seq,
			     seq - 2, 8, 150);
		check(size > 0, "lane record");
		pos += (u32)size;
	}
	emit(M_RAW_LANE, 7, 15, 2048, lane, LANE);
	emit(M_LANE | 0x80, 7, 15, 2048 | 6u << 16, lane, LANE);
	emit(M_LANE, 7, 0, 2048, lane, LANE);
	emit(M_RAW_LANE, 8, 12, 0, lane, LANE);

	/* A header area: copy 0 from mkfs, copy 1 after one trim. */
	memset(h, 0, sizeof(h));
	twinfs_cm_header_init(&h[0], (const u8 *)"0123456789abcdef", 1,
			      twinfs_cm_lane_offset(TWINFS_CM_LANE_MIN, 4), 4,
			      TWINFS_CM_LANE_MIN, gens);
	h[1] = h[0];
	h[1].h_update = cpu_to_le64(1);
	h[1].h_cp_seq = cpu_to_le64(42);
	h[1].h_lanes[2].l_head = cpu_to_le32(4096);
	twinfs_cm_header_seal(&h[1]);
	check(twinfs_cm_header_pick(h, 0, NULL) == 1, "header seed");
	emit(M_HEADER, 0, 0, 0, (const u8 *)h, sizeof(h));
	emit(M_HEADER | 0x80, 0, 0, 0, (const u8 *)h, sizeof(h));

	printf("gen_corpus: %d seeds in %s\n", nfiles, dir);
	return 0;
}
