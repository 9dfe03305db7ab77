/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The undo log of one file-system operation (seed 000): before an
 * operation changes a range of an inode or directory page it records the
 * range's before-image; if the operation fails, the log is played back
 * newest first, so every range ends as it was before the operation, and
 * then discarded.  Besides byte images the log holds logical records
 * (undone by a caller's function: "clear the bits I set in a bitmap") and
 * deferred actions (done only when the operation commits: "free these
 * blocks", which must not happen while the operation can still roll back).
 *
 * The log lives in segments the caller supplies through grow(); it never
 * allocates or locks by itself.  One log belongs to one thread.
 */
#ifndef TWINFS_UNDO_H
#define TWINFS_UNDO_H

#include "twinfs_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

enum twinfs_undo_kind {
	TWINFS_UNDO_BYTES = 1,	/* restore payload into obj + off on rollback */
	TWINFS_UNDO_CALL = 2,	/* call the caller's function on rollback */
	TWINFS_UNDO_DEFER = 3,	/* call the caller's function on commit */
};

struct twinfs_undo_rec {
	u16 kind;
	u16 tag;		/* the caller's subtype */
	u32 len;		/* payload bytes */
	u32 off;		/* BYTES: offset of the range in obj */
	u32 prev;		/* offset of the previous record in the segment */
	void *obj;		/* BYTES: base of the range; else caller's */
	void *owner;		/* BYTES: the caller's (e.g. the buffer) */
	/* payload follows, padded to 8 bytes */
};

struct twinfs_undo_seg {
	struct twinfs_undo_seg *prev, *next;
	u32 size;		/* bytes of data[] */
	u32 used;
	u32 last;		/* offset of the newest record, or NONE */
	u32 pad;
	u8 data[];
};

struct twinfs_undo_log;
typedef void (*twinfs_undo_fn)(void *arg, const struct twinfs_undo_rec *rec,
			       void *payload);

struct twinfs_undo_log {
	struct twinfs_undo_seg *head, *tail;
	u32 records;
	u64 bytes;
	/* Supplies a segment with at least need bytes of data (NULL: none). */
	struct twinfs_undo_seg *(*grow)(void *ctx, u32 need);
	void (*release)(void *ctx, struct twinfs_undo_seg *seg);
	void *ctx;
};

void twinfs_undo_init(struct twinfs_undo_log *log,
		      struct twinfs_undo_seg *(*grow)(void *ctx, u32 need),
		      void (*release)(void *ctx, struct twinfs_undo_seg *seg),
		      void *ctx);
/* Records the before-image of base[off, off + len) unless a record of the
 * same operation already holds it.  Returns 1 when it recorded (owner is
 * kept in the record), 0 when the range was already held, or -ENOMEM
 * (nothing recorded). */
int twinfs_undo_save(struct twinfs_undo_log *log, u16 tag, void *owner,
		     void *base, u32 off, u32 len);
/* Makes sure the next records totalling need payload bytes (at most 8
 * records) can be added without growing the log.  0 or -ENOMEM. */
int twinfs_undo_reserve(struct twinfs_undo_log *log, u32 need);
/* Adds a CALL or DEFER record with a copy of payload.  0 or -ENOMEM. */
int twinfs_undo_add(struct twinfs_undo_log *log, enum twinfs_undo_kind kind,
		    u16 tag, void *obj, const void *payload, u32 len);
/* Plays the log back newest first: BYTES records are copied back, then fn
 * sees every BYTES and CALL record.  The log is empty afterwards.  Returns
 * the number of records undone. */
u32 twinfs_undo_rollback(struct twinfs_undo_log *log, twinfs_undo_fn fn,
			 void *arg);
/* Commits: fn sees every DEFER record oldest first, and every BYTES record
 * (so the caller can drop references); the log is empty afterwards. */
void twinfs_undo_commit(struct twinfs_undo_log *log, twinfs_undo_fn fn,
			void *arg);
/* No record (a reservation alone may still hold a segment). */
static inline bool twinfs_undo_empty(const struct twinfs_undo_log *log)
{
	return log->records == 0;
}

#ifdef __cplusplus
}
#endif

#endif /* TWINFS_UNDO_H */
