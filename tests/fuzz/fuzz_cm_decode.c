// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Fuzz target of the change memory core (kmod/core/cm.c): arbitrary bytes
 * into the record decoder, the payload parser, the lane scanner (followed
 * by the replay planner and the ring arithmetic on what it found) and the
 * region header picker.  None may crash, read outside its buffer or break
 * an invariant of its result.  Built with libFuzzer (clang
 * -fsanitize=fuzzer,address,undefined) or, with -DFUZZ_STANDALONE, linked
 * with tests/fuzz/standalone.c for gcc.
 *
 * Input: byte 0 selects the mode (low 3 bits, modulo 5) and whether the
 * checksums are fixed up first (bit 7: without it random bytes rarely get
 * past the checksums); bytes 1..4 a generation, 5..12 a cp_seq, 13..16 a
 * lane head (low 16 bits) and how many records the fix-up writes before it
 * wraps the lane (bits 16..23); the rest is the data.  tests/fuzz/
 * gen_corpus.c writes seeds in this layout.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "twinfs_core.h"
#include "twinfs_cm_core.h"

#define FUZZ_LANE_SIZE	4096u
#define FUZZ_MAX_ENTS	(FUZZ_LANE_SIZE / TWINFS_CM_REC_ALIGN)
#define FUZZ_PARAMS	17u

enum { M_DECODE, M_PAYLOAD, M_LANE, M_HEADER, M_RAW_LANE, M_COUNT };

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static u32 rd32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 rd64(const u8 *p)
{
	return (u64)rd32(p) | (u64)rd32(p + 4) << 32;
}

static void wr32(u8 *p, u32 x)
{
	p[0] = (u8)x;
	p[1] = (u8)(x >> 8);
	p[2] = (u8)(x >> 16);
	p[3] = (u8)(x >> 24);
}

/* Makes the record at p (avail >= 64 bytes) framed right for generation
 * gen: magic, a length that fits, both checksums.  Returns its size. */
static u32 fix_record(u8 *p, u32 avail, u32 gen)
{
	u32 max_len = (avail & ~(TWINFS_CM_REC_ALIGN - 1)) - TWINFS_CM_REC_HDR_SIZE;
	u32 len = rd32(p + 28);

	if (max_len > TWINFS_CM_PAYLOAD_MAX)
		max_len = TWINFS_CM_PAYLOAD_MAX;
	if (len > max_len)
		len %= max_len + 1;
	wr32(p, TWINFS_CM_REC_MAGIC);
	wr32(p + 28, len);
	wr32(p + 32, ~twinfs_crc32c(~0u, p + TWINFS_CM_REC_HDR_SIZE, len));
	twinfs_cm_rec_seal(p, rd64(p + 8), rd64(p + 16), gen);
	return twinfs_cm_rec_size(len);
}

static bool inside(const void *p, u32 len, const u8 *lo, u32 n)
{
	const u8 *q = p;

	return q >= lo && q <= lo + n && len <= (u32)(lo + n - q);
}

static void check_attrs(const struct twinfs_cm_attrs *a, const u8 *payload,
			u32 len)
{
	if (twinfs_cm_has(a, TWINFS_CM_A_NAME))
		CHECK(inside(a->name, a->name_len, payload, len) &&
		      a->name_len >= 1 && a->name_len <= TWINFS_NAME_MAX);
	if (twinfs_cm_has(a, TWINFS_CM_A_NEW_NAME))
		CHECK(inside(a->new_name, a->new_name_len, payload, len) &&
		      a->new_name_len >= 1 &&
		      a->new_name_len <= TWINFS_NAME_MAX);
	if (twinfs_cm_has(a, TWINFS_CM_A_SYMLINK_TARGET))
		CHECK(inside(a->symlink, a->symlink_len, payload, len) &&
		      a->symlink_len <= TWINFS_CM_SYMLINK_MAX);
	if (twinfs_cm_has(a, TWINFS_CM_A_DATA))
		CHECK(inside(a->data, a->data_len, payload, len) &&
		      a->data_len >= 1 && a->data_len <= TWINFS_CM_DATA_MAX);
	CHECK(a->ctime.nsec < 1000000000u);
}

static void fuzz_decode(const u8 *in, u32 n, u32 gen, bool fix)
{
	struct twinfs_cm_rec_info ri;
	struct twinfs_cm_attrs a;
	const char *why = NULL;
	u8 *buf = malloc(n ? n : 1);

	memcpy(buf, in, n);
	if (fix && n >= TWINFS_CM_REC_ALIGN)
		fix_record(buf, n, gen);
	if (twinfs_cm_rec_decode(buf, n, gen, &ri, &a, &why) == 0) {
		CHECK(ri.size <= n && ri.size % TWINFS_CM_REC_ALIGN == 0);
		CHECK(ri.len <= ri.size - TWINFS_CM_REC_HDR_SIZE);
		CHECK(ri.seq && ri.acked_upto < ri.seq);
		check_attrs(&a, ri.payload, ri.len);
	} else {
		CHECK(why && *why);
	}
	free(buf);
}

static void fuzz_payload(const u8 *in, u32 n, u16 op)
{
	struct twinfs_cm_attrs a;
	const char *why = NULL;
	u8 *buf = malloc(n ? n : 1);

	memcpy(buf, in, n);
	if (twinfs_cm_payload_parse(op, buf, n, &a, &why) == 0)
		check_attrs(&a, buf, n);
	else
		CHECK(why && *why);
	free(buf);
}

static void fuzz_lane(const u8 *in, u32 n, u32 gen, u64 cp_seq, u32 ctl,
		      bool fix)
{
	u8 *lane = calloc(1, FUZZ_LANE_SIZE);
	struct twinfs_cm_scan_ent *ents = malloc(sizeof(*ents) * FUZZ_MAX_ENTS);
	struct twinfs_cm_scan_ent *sorted = malloc(sizeof(*ents) * FUZZ_MAX_ENTS);
	u32 head = (ctl & 0xffff) % FUZZ_LANE_SIZE & ~(TWINFS_CM_REC_ALIGN - 1);
	u32 wrap_after = (ctl >> 16) & 0xff;
	struct twinfs_cm_scan res;
	struct twinfs_cm_plan plan;
	struct twinfs_cm_lane_state st;
	const char *why = NULL;
	u32 i, off, g;
	int ret;

	memcpy(lane, in, n < FUZZ_LANE_SIZE ? n : FUZZ_LANE_SIZE);
	if (fix) {
		/* Frame records along the walk the scanner will take. */
		u32 pos = head, limit = FUZZ_LANE_SIZE, k;
		bool wrapped = false;

		g = gen;
		for (k = 0; k < FUZZ_MAX_ENTS; k++) {
			if (limit - pos < TWINFS_CM_REC_ALIGN || k == wrap_after) {
				if (wrapped || !head)
					break;
				wrapped = true;
				pos = 0;
				g++;
				limit = head;
				continue;
			}
			pos += fix_record(lane + pos, limit - pos, g);
		}
	}
	ret = twinfs_cm_lane_scan(lane, FUZZ_LANE_SIZE, 3, head, gen, ents,
				  FUZZ_MAX_ENTS, &res, &why);
	if (ret) {
		CHECK(ret == -EUCLEAN && why && *why);
		goto out;
	}
	CHECK(res.count <= FUZZ_MAX_ENTS);
	CHECK(res.tail < FUZZ_LANE_SIZE && res.tail % TWINFS_CM_REC_ALIGN == 0);
	CHECK(res.used <= FUZZ_LANE_SIZE);
	for (i = 0; i < res.count; i++) {
		CHECK(ents[i].lane == 3);
		CHECK(ents[i].off + ents[i].size <= FUZZ_LANE_SIZE);
		CHECK(ents[i].gen == gen || ents[i].gen == gen + 1);
		CHECK(!i || ents[i].seq > ents[i - 1].seq);
	}
	st.size = FUZZ_LANE_SIZE;
	st.head = head;
	st.head_gen = gen;
	st.tail = res.tail;
	st.tail_gen = res.tail_gen;
	CHECK(twinfs_cm_lane_state_check(&st) == 0);
	CHECK(twinfs_cm_lane_used(&st) == res.used);

	memcpy(sorted, ents, sizeof(*ents) * res.count);
	ret = twinfs_cm_plan_replay(sorted, res.count, cp_seq, &plan, &why);
	if (ret == 0) {
		CHECK(plan.first + plan.count + plan.discarded == res.count);
		CHECK(plan.skipped == plan.first);
		for (i = 0; i < plan.count; i++)
			CHECK(sorted[plan.first + i].seq == cp_seq + 1 + i);
		CHECK(plan.max_acked < plan.gap_seq);
	} else {
		CHECK((ret == -EUCLEAN && why && *why) ||
		      (ret == -EINVAL && cp_seq == ~0ull));
	}

	/* Trim after a CP at cp_seq, then fill the lane again. */
	ret = twinfs_cm_lane_trim(&st, ents, res.count, cp_seq);
	CHECK(ret >= 0 && (u32)ret <= res.count);
	CHECK(twinfs_cm_lane_state_check(&st) == 0);
	for (i = 0; n && i < 8; i++) {
		u32 sz = (in[i % n] % 16 + 1) * TWINFS_CM_REC_ALIGN;
		u32 before = twinfs_cm_lane_used(&st);

		if (twinfs_cm_lane_reserve(&st, sz, &off, &g) == 0) {
			CHECK(off + sz <= FUZZ_LANE_SIZE);
			CHECK(twinfs_cm_lane_used(&st) >= before + sz);
		}
		CHECK(twinfs_cm_lane_state_check(&st) == 0);
	}
	CHECK(twinfs_cm_fill_permille(twinfs_cm_lane_used(&st), st.size) <= 1000);
out:
	free(sorted);
	free(ents);
	free(lane);
}

static void fuzz_header(const u8 *in, u32 n, bool fix)
{
	u8 *area = calloc(1, TWINFS_CM_HDR_AREA);
	const char *why = NULL;
	int i, ret;

	memcpy(area, in, n < TWINFS_CM_HDR_AREA ? n : TWINFS_CM_HDR_AREA);
	if (fix) {
		for (i = 0; i < 2; i++) {
			u8 *c = area + i * TWINFS_CM_HDR_COPY;

			wr32(c, TWINFS_CM_MAGIC);
			twinfs_cm_header_seal((struct twinfs_cm_header *)c);
		}
	}
	ret = twinfs_cm_header_pick(area, 0, &why);
	if (ret >= 0) {
		const struct twinfs_cm_header *h = (const void *)
			(area + ret * TWINFS_CM_HDR_COPY);
		u32 lanes = le32_to_cpu(h->h_lane_count);
		u32 ls = le32_to_cpu(h->h_lane_size);

		CHECK(ret <= 1);
		CHECK(twinfs_cm_header_check(h, 0, NULL) == 0);
		CHECK(lanes >= 1 && lanes <= TWINFS_CM_LANES_MAX);
		CHECK(twinfs_cm_lane_offset(ls, lanes) <=
		      le64_to_cpu(h->h_region_size));
		for (i = 0; i < (int)lanes; i++)
			CHECK(le32_to_cpu(h->h_lanes[i].l_head) < ls);
	} else {
		CHECK(ret == -EUCLEAN && why && *why);
	}
	free(area);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const u8 *in = data + FUZZ_PARAMS;
	u32 n, gen, ctl;
	u64 cp_seq;
	bool fix;

	if (size < FUZZ_PARAMS || size > FUZZ_PARAMS + 2 * TWINFS_CM_REC_MAX)
		return 0;
	n = (u32)(size - FUZZ_PARAMS);
	fix = data[0] & 0x80;
	gen = rd32(data + 1);
	cp_seq = rd64(data + 5);
	ctl = rd32(data + 13);
	switch ((data[0] & 7) % M_COUNT) {
	case M_DECODE:
		fuzz_decode(in, n, gen, fix);
		break;
	case M_PAYLOAD:
		fuzz_payload(in, n, (u16)gen);
		break;
	case M_LANE:
		fuzz_lane(in, n, gen, cp_seq, ctl, fix);
		break;
	case M_HEADER:
		fuzz_header(in, n, fix);
		break;
	case M_RAW_LANE:
		fuzz_lane(in, n, gen, cp_seq, ctl, false);
		break;
	}
	return 0;
}
