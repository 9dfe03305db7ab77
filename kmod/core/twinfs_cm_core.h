/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The portable core of the change memory (seeds 001, 004): encoding and
 * decoding of change records (include/twinfs/twinfs_cm.h), scanning a
 * lane, planning a replay, the arithmetic of the lane rings and the region
 * header.  Like the rest of the core it never allocates and never locks:
 * the caller owns every buffer and serialises each lane (a lock per lane in
 * the kernel).  Errors are negative errno values; corruption is -EUCLEAN
 * with *why (when why is non-NULL) set to a static string saying what was
 * wrong.
 *
 * Writers must take a record's seq and its place in the lane together
 * (under the lane's lock), so along a lane seqs increase; the scanner
 * treats anything else as corruption.  They must also make each record
 * durable before the next one of its lane begins (also under the lock), so
 * that a crash can tear only the last record of a lane: the scanner takes
 * a record that is not whole with a record of its lane after it for
 * corruption too.
 */
#ifndef TWINFS_CM_CORE_H
#define TWINFS_CM_CORE_H

#include "twinfs_shim.h"
#include "../../include/twinfs/twinfs_cm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes a record with len payload bytes takes in a lane. */
static inline u32 twinfs_cm_rec_size(u32 len)
{
	return (TWINFS_CM_REC_HDR_SIZE + len + TWINFS_CM_REC_ALIGN - 1) &
	       ~(TWINFS_CM_REC_ALIGN - 1);
}

/* ---- encoding ---- */

/*
 * Builds one record in a caller buffer: begin, any number of put_*, end.
 * The first error sticks: later calls return it and do nothing, so a
 * caller may check only the result of end.  -ENOSPC: the buffer is too
 * small; -E2BIG: the payload would pass TWINFS_CM_PAYLOAD_MAX; -EINVAL:
 * a value longer than an attribute can hold (65535 bytes).  The builder
 * checks framing only: the decoder says whether the record is valid.
 */
struct twinfs_cm_builder {
	u8 *buf;
	u32 cap;
	u32 len;		/* payload bytes so far */
	u16 op;
	int err;
};

int twinfs_cm_rec_begin(struct twinfs_cm_builder *b, void *buf, u32 cap,
			u16 op);
int twinfs_cm_put_u32(struct twinfs_cm_builder *b, u16 type, u32 v);
int twinfs_cm_put_u64(struct twinfs_cm_builder *b, u16 type, u64 v);
int twinfs_cm_put_time(struct twinfs_cm_builder *b, u16 type, __s64 sec,
		       u32 nsec);
int twinfs_cm_put_bytes(struct twinfs_cm_builder *b, u16 type,
			const void *v, u32 len);
/* Room for an attribute of len value bytes that the caller fills in
 * before twinfs_cm_rec_end (say, data gathered from several pages):
 * a pointer to the value, or NULL with the error kept in b->err. */
void *twinfs_cm_put_space(struct twinfs_cm_builder *b, u16 type, u32 len);
/* Fills the header (checksums included) and zeroes the padding.  Returns
 * the record's size in the lane (twinfs_cm_rec_size()) or the error. */
int twinfs_cm_rec_end(struct twinfs_cm_builder *b, u64 seq, u64 acked_upto,
		      u32 gen);
/* Restamps a finished record (say, copied from a staging buffer into its
 * lane slot) with its seq, watermark and generation: only the header
 * changes, the payload checksum stays. */
void twinfs_cm_rec_seal(void *rec, u64 seq, u64 acked_upto, u32 gen);

/* ---- decoding ---- */

struct twinfs_cm_rec_info {
	u64 seq;
	u64 acked_upto;
	u32 len;		/* payload bytes */
	u32 size;		/* bytes in the lane, padding included */
	u32 gen;
	u16 op;
	u16 flags;
	const u8 *payload;
};

struct twinfs_cm_time {
	__s64 sec;
	u32 nsec;
};

/* The attributes of one record; present has bit 1 << TWINFS_CM_A_* set for
 * each attribute found.  Names, target and data point into the payload. */
struct twinfs_cm_attrs {
	u32 present;
	u64 parent_ino;
	u64 ino;
	u64 new_parent_ino;
	u64 target_ino;
	u64 size;
	u64 offset;
	u32 mode;
	u32 uid;
	u32 gid;
	u32 rdev;
	u32 generation;
	u32 flags;
	struct twinfs_cm_time atime;
	struct twinfs_cm_time mtime;
	struct twinfs_cm_time ctime;
	const char *name;
	const char *new_name;
	const char *symlink;
	const u8 *data;
	u32 name_len;
	u32 new_name_len;
	u32 symlink_len;
	u32 data_len;
};

static inline bool twinfs_cm_has(const struct twinfs_cm_attrs *a,
				 unsigned int type)
{
	return a->present & (1u << type);
}

/*
 * Framing of the record at buf, which may use avail bytes: magic, header
 * checksum, generation gen, payload length (against TWINFS_CM_PAYLOAD_MAX
 * and avail), payload checksum.  A record that fails here was torn, is
 * stale or was never written: to a scan it is no record.  0 and *ri
 * filled, or -EUCLEAN.
 */
int twinfs_cm_rec_check(const void *buf, u32 avail, u32 gen,
			struct twinfs_cm_rec_info *ri, const char **why);
/* Contents of a record whose framing is valid: seq, watermark, op, flags,
 * then the payload (twinfs_cm_payload_parse).  0 or -EUCLEAN. */
int twinfs_cm_rec_parse(const struct twinfs_cm_rec_info *ri,
			struct twinfs_cm_attrs *a, const char **why);
/* The payload of an op: attribute framing, known types, no duplicate,
 * allowed and required attributes of the op, every value.  0 or
 * -EUCLEAN. */
int twinfs_cm_payload_parse(u16 op, const u8 *payload, u32 len,
			    struct twinfs_cm_attrs *a, const char **why);
/* rec_check, then rec_parse. */
int twinfs_cm_rec_decode(const void *buf, u32 avail, u32 gen,
			 struct twinfs_cm_rec_info *ri,
			 struct twinfs_cm_attrs *a, const char **why);

/* ---- lane scanning ---- */

struct twinfs_cm_scan_ent {
	u64 seq;
	u64 acked_upto;
	u32 lane;
	u32 off;		/* offset of the record in its lane */
	u32 gen;		/* its generation */
	u32 size;		/* bytes it takes */
	u16 op;
	u16 pad;
	u32 pad2;
};

struct twinfs_cm_scan {
	u32 count;		/* records found */
	u32 tail;		/* where the next record goes */
	u32 tail_gen;
	u32 used;		/* bytes from head to tail */
	u32 bad_off;		/* -EUCLEAN: offset of the bad record */
};

/*
 * Walks the lane (lane_size bytes at lane, lane number lane_idx) from its
 * head (offset head, generation gen) and appends an entry for each record
 * to ents (room for max_ents; lane_size / 64 always suffices).  The walk
 * stops at the first position holding no record of the lap's generation;
 * there, if offset 0 holds a record of generation gen + 1, the writer had
 * wrapped: the walk goes on from 0 up to the head.  Where it stops for
 * good is the tail, unless a record stood there that is not whole while
 * the lane goes on after it: a record of the lap's generation with a
 * higher seq later in the lap (found 64 bytes at a time), or, if the
 * record's header survived, any record of the next lap.  Only the last
 * record of a lane can be torn, so that record is corrupt.  0; -EUCLEAN
 * when a record whose framing is valid has bad contents or a seq not above
 * its predecessor's, or for such a corrupt record (res->bad_off says
 * where); -ENOSPC when ents is too small; -EINVAL for a bad head or size.
 */
int twinfs_cm_lane_scan(const void *lane, u32 lane_size, u32 lane_idx,
			u32 head, u32 gen, struct twinfs_cm_scan_ent *ents,
			u32 max_ents, struct twinfs_cm_scan *res,
			const char **why);

/* ---- replay planning ---- */

struct twinfs_cm_plan {
	u32 first;		/* ents[first .. first + count) to replay */
	u32 count;
	u32 skipped;		/* seq <= cp_seq: already on disk */
	u32 discarded;		/* at or after the gap: never acknowledged */
	u64 last_seq;		/* highest replayed seq (cp_seq if none) */
	u64 gap_seq;		/* G: first seq > cp_seq with no record */
	u64 max_seq;		/* highest seq of any record */
	u64 max_acked;		/* highest acked_upto of any record */
	u64 bad_seq;		/* -EUCLEAN: the seq at fault */
};

/*
 * Plans a replay from the records of every lane (in any order; sorted in
 * place by seq) and the seq of the last durable consistency point.  The
 * replay set is the records with seq in (cp_seq, G), G the first seq above
 * cp_seq with no record; the rest are discarded.  -EUCLEAN when two
 * records have one seq, or when a record says G was durable (acked_upto
 * >= G): then G was lost, and plan->bad_seq names it.  -EINVAL when
 * cp_seq is U64_MAX.
 */
int twinfs_cm_plan_replay(struct twinfs_cm_scan_ent *ents, u32 n, u64 cp_seq,
			  struct twinfs_cm_plan *plan, const char **why);
/* In-place heapsort by seq (then lane, offset); no recursion. */
void twinfs_cm_sort(struct twinfs_cm_scan_ent *ents, u32 n);

/* ---- ring arithmetic of one lane ---- */

/*
 * head: the oldest live record; tail: where the next one goes.  Both are
 * 64-byte aligned offsets below size; tail_gen is head_gen (tail at or
 * after head) or head_gen + 1 (the writer wrapped: tail at or before
 * head).  tail == head is empty in the first case and full in the second.
 */
struct twinfs_cm_lane_state {
	u32 size;
	u32 head;
	u32 head_gen;
	u32 tail;
	u32 tail_gen;
};

/* 0 if the state keeps the invariants above, else -EINVAL. */
int twinfs_cm_lane_state_check(const struct twinfs_cm_lane_state *s);
/* Bytes the writer cannot use: records and the skipped end of a lap. */
u32 twinfs_cm_lane_used(const struct twinfs_cm_lane_state *s);
u32 twinfs_cm_lane_free(const struct twinfs_cm_lane_state *s);
/* Takes the place of a record of rec_size bytes (a multiple of 64): at the
 * tail, or at offset 0 of the next lap (generation + 1) when it does not
 * fit before the end.  0 with *off, *gen set; -ENOSPC when there is no
 * room (the caller needs a consistency point); -EINVAL for a bad size. */
int twinfs_cm_lane_reserve(struct twinfs_cm_lane_state *s, u32 rec_size,
			   u32 *off, u32 *gen);
/* Moves the head to (off, gen), which must lie between head and tail in
 * ring order (off == size means offset 0 of the next lap).  0 or
 * -EINVAL. */
int twinfs_cm_lane_trim_to(struct twinfs_cm_lane_state *s, u32 off, u32 gen);
/* After a consistency point up to cp_seq: moves the head to the first of
 * the lane's live records (ents, in lane order, from head) with seq above
 * cp_seq, or to the tail.  Returns the number of records reclaimed, or
 * -EINVAL if an entry is not between head and tail. */
int twinfs_cm_lane_trim(struct twinfs_cm_lane_state *s,
			const struct twinfs_cm_scan_ent *ents, u32 n,
			u64 cp_seq);
/* Where the lane's first record with seq above cp_seq starts (*off, *gen),
 * or its tail: for a lane its own writer filled (records from head to tail,
 * written by this node), so only headers are read, no checksum.  A
 * position without a record of the lap's generation is the skipped end of
 * a lap.  The result is what twinfs_cm_lane_trim_to() takes. */
void twinfs_cm_lane_first_after(const void *lane,
				const struct twinfs_cm_lane_state *s,
				u64 cp_seq, u32 *off, u32 *gen);
/* After a replay and its consistency point: empties the lane at offset 0
 * with a generation no record in it can have (tail_gen + 2). */
void twinfs_cm_lane_reset(struct twinfs_cm_lane_state *s);

/* Fill in thousandths (used of size), capped at 1000. */
u32 twinfs_cm_fill_permille(u64 used, u64 size);
/* True when some lane is at least threshold_permille full: its writers
 * are the first to stall, so the fullest lane triggers the CP. */
bool twinfs_cm_needs_cp(const struct twinfs_cm_lane_state *lanes, u32 n,
			u32 threshold_permille);

/* ---- region header ---- */

/* Lane size for a region: the bytes after the header split into
 * lane_count lanes, rounded down to 4096, at most TWINFS_CM_LANE_MAX.
 * -EINVAL for a bad lane count, -ENOSPC when lanes would be smaller than
 * TWINFS_CM_LANE_MIN. */
int twinfs_cm_geometry(u64 region_size, u32 lane_count, u32 *lane_size);
static inline u64 twinfs_cm_lane_offset(u32 lane_size, u32 lane)
{
	return TWINFS_CM_HDR_AREA + (u64)lane * lane_size;
}
/* A new header (h_update 0, so copy 0; cp_seq 0; heads 0) with each lane's
 * first generation from gens[] (random at format: stale records of an
 * earlier format then carry a foreign generation). */
void twinfs_cm_header_init(struct twinfs_cm_header *h, const u8 *uuid,
			   u32 node_id, u64 region_size, u32 lane_count,
			   u32 lane_size, const u32 *gens);
void twinfs_cm_header_seal(struct twinfs_cm_header *h);
/* Validates one copy; dev_size is the region's real size (0: unknown). */
int twinfs_cm_header_check(const struct twinfs_cm_header *h, u64 dev_size,
			   const char **why);
/* Picks the header from the 4 KiB header area: the valid copy with the
 * higher h_update.  Returns its index (0 or 1) or -EUCLEAN. */
int twinfs_cm_header_pick(const void *area, u64 dev_size, const char **why);

#ifdef __cplusplus
}
#endif

#endif /* TWINFS_CM_CORE_H */
