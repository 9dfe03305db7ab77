// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The per-operation undo log; see twinfs_undo.h. */
#include "twinfs_undo.h"

#define UNDO_NONE 0xffffffffu
#define UNDO_ALIGN(x) (((x) + 7u) & ~7u)
/* How many recent records a save looks through for the same range. */
#define UNDO_DEDUP_SCAN 64

void twinfs_undo_init(struct twinfs_undo_log *log,
		      struct twinfs_undo_seg *(*grow)(void *ctx, u32 need),
		      void (*release)(void *ctx, struct twinfs_undo_seg *seg),
		      void *ctx)
{
	memset(log, 0, sizeof(*log));
	log->grow = grow;
	log->release = release;
	log->ctx = ctx;
}

static u32 rec_size(u32 len)
{
	return (u32)UNDO_ALIGN(sizeof(struct twinfs_undo_rec) + len);
}

static struct twinfs_undo_rec *rec_at(struct twinfs_undo_seg *seg, u32 off)
{
	return (struct twinfs_undo_rec *)(seg->data + off);
}

static void *rec_payload(struct twinfs_undo_rec *rec)
{
	return (u8 *)rec + sizeof(*rec);
}

/* Makes room for need bytes of records in the tail segment. */
static struct twinfs_undo_seg *undo_room(struct twinfs_undo_log *log,
					 u32 need)
{
	struct twinfs_undo_seg *seg = log->tail;

	if (!seg || seg->size - seg->used < need) {
		seg = log->grow(log->ctx, need);
		if (!seg)
			return NULL;
		seg->used = 0;
		seg->last = UNDO_NONE;
		seg->next = NULL;
		seg->prev = log->tail;
		if (log->tail)
			log->tail->next = seg;
		else
			log->head = seg;
		log->tail = seg;
	}
	return seg;
}

int twinfs_undo_reserve(struct twinfs_undo_log *log, u32 need)
{
	/* Each record may pad its payload by up to 7 bytes. */
	return undo_room(log, need + 8 * (rec_size(0) + 7)) ? 0 : -ENOMEM;
}

static struct twinfs_undo_rec *undo_alloc(struct twinfs_undo_log *log,
					  u32 len)
{
	u32 need = rec_size(len);
	struct twinfs_undo_seg *seg = undo_room(log, need);
	struct twinfs_undo_rec *rec;

	if (!seg)
		return NULL;
	rec = rec_at(seg, seg->used);
	memset(rec, 0, sizeof(*rec));
	rec->len = len;
	rec->prev = seg->last;
	seg->last = seg->used;
	seg->used += need;
	log->records++;
	log->bytes += need;
	return rec;
}

/* True if a recent BYTES record already holds base[off, off + len). */
static bool undo_holds(struct twinfs_undo_log *log, void *base, u32 off,
		       u32 len)
{
	struct twinfs_undo_seg *seg;
	u32 seen = 0, o;

	for (seg = log->tail; seg; seg = seg->prev) {
		for (o = seg->last; o != UNDO_NONE; o = rec_at(seg, o)->prev) {
			struct twinfs_undo_rec *r = rec_at(seg, o);

			if (r->kind == TWINFS_UNDO_BYTES && r->obj == base &&
			    r->off <= off && off + len <= r->off + r->len)
				return true;
			if (++seen >= UNDO_DEDUP_SCAN)
				return false;
		}
	}
	return false;
}

int twinfs_undo_save(struct twinfs_undo_log *log, u16 tag, void *owner,
		     void *base, u32 off, u32 len)
{
	struct twinfs_undo_rec *rec;

	if (!len || undo_holds(log, base, off, len))
		return 0;
	rec = undo_alloc(log, len);
	if (!rec)
		return -ENOMEM;
	rec->kind = TWINFS_UNDO_BYTES;
	rec->tag = tag;
	rec->obj = base;
	rec->owner = owner;
	rec->off = off;
	memcpy(rec_payload(rec), (u8 *)base + off, len);
	return 1;
}

int twinfs_undo_add(struct twinfs_undo_log *log, enum twinfs_undo_kind kind,
		    u16 tag, void *obj, const void *payload, u32 len)
{
	struct twinfs_undo_rec *rec = undo_alloc(log, len);

	if (!rec)
		return -ENOMEM;
	rec->kind = (u16)kind;
	rec->tag = tag;
	rec->obj = obj;
	if (len)
		memcpy(rec_payload(rec), payload, len);
	return 0;
}

static void undo_release_all(struct twinfs_undo_log *log)
{
	struct twinfs_undo_seg *seg = log->tail, *prev;

	while (seg) {
		prev = seg->prev;
		log->release(log->ctx, seg);
		seg = prev;
	}
	log->head = log->tail = NULL;
	log->records = 0;
	log->bytes = 0;
}

u32 twinfs_undo_rollback(struct twinfs_undo_log *log, twinfs_undo_fn fn,
			 void *arg)
{
	struct twinfs_undo_seg *seg;
	u32 n = 0, o;

	for (seg = log->tail; seg; seg = seg->prev) {
		for (o = seg->last; o != UNDO_NONE; o = rec_at(seg, o)->prev) {
			struct twinfs_undo_rec *r = rec_at(seg, o);

			if (r->kind == TWINFS_UNDO_DEFER)
				continue;
			if (r->kind == TWINFS_UNDO_BYTES)
				memcpy((u8 *)r->obj + r->off, rec_payload(r),
				       r->len);
			if (fn)
				fn(arg, r, rec_payload(r));
			n++;
		}
	}
	undo_release_all(log);
	return n;
}

void twinfs_undo_commit(struct twinfs_undo_log *log, twinfs_undo_fn fn,
			void *arg)
{
	struct twinfs_undo_seg *seg;
	u32 o;

	for (seg = log->head; seg && fn; seg = seg->next) {
		for (o = 0; o < seg->used;
		     o += rec_size(rec_at(seg, o)->len)) {
			struct twinfs_undo_rec *r = rec_at(seg, o);

			if (r->kind != TWINFS_UNDO_CALL)
				fn(arg, r, rec_payload(r));
		}
	}
	undo_release_all(log);
}
