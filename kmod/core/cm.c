// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The change memory: change records, lane scanning, replay planning, ring
 * and header arithmetic; see twinfs_cm_core.h and include/twinfs/twinfs_cm.h.
 */
#include "twinfs_core.h"
#include "twinfs_cm_core.h"

#ifdef __KERNEL__
#include <linux/math64.h>
#define cm_div64(a, b) div64_u64(a, b)
#else
#define cm_div64(a, b) ((a) / (b))
#endif

/* Field offsets of struct twinfs_cm_rec. */
#define R_MAGIC		0
#define R_HDR_CRC	4
#define R_SEQ		8
#define R_ACKED		16
#define R_OP		24
#define R_FLAGS		26
#define R_LEN		28
#define R_PAYLOAD_CRC	32
#define R_GEN		36

#define CM_REC_FLAGS_KNOWN	0u
#define CM_HDR_FLAGS_KNOWN	0u
#define CM_ATTR_VALUE_MAX	0xffffu

/* File types and permission bits of a mode, as in <linux/stat.h>. */
#define CM_S_IFMT	0170000u
#define CM_S_IFSOCK	0140000u
#define CM_S_IFLNK	0120000u
#define CM_S_IFREG	0100000u
#define CM_S_IFBLK	0060000u
#define CM_S_IFDIR	0040000u
#define CM_S_IFCHR	0020000u
#define CM_S_IFIFO	0010000u
#define CM_S_IALL	07777u

#define BIT_A(t)	(1u << TWINFS_CM_A_##t)

static u16 get16(const u8 *p)
{
	__le16 v;

	memcpy(&v, p, sizeof(v));
	return le16_to_cpu(v);
}

static u32 get32(const u8 *p)
{
	__le32 v;

	memcpy(&v, p, sizeof(v));
	return le32_to_cpu(v);
}

static u64 get64(const u8 *p)
{
	__le64 v;

	memcpy(&v, p, sizeof(v));
	return le64_to_cpu(v);
}

static void put16(u8 *p, u16 x)
{
	__le16 v = cpu_to_le16(x);

	memcpy(p, &v, sizeof(v));
}

static void put32(u8 *p, u32 x)
{
	__le32 v = cpu_to_le32(x);

	memcpy(p, &v, sizeof(v));
}

static void put64(u8 *p, u64 x)
{
	__le64 v = cpu_to_le64(x);

	memcpy(p, &v, sizeof(v));
}

static int bad(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EUCLEAN;
}

static u32 payload_crc(const u8 *p, u32 len)
{
	return ~twinfs_crc32c(~0u, p, len);
}

/* ---------------------------------------------------------------- */
/* Encoding                                                         */
/* ---------------------------------------------------------------- */

int twinfs_cm_rec_begin(struct twinfs_cm_builder *b, void *buf, u32 cap,
			u16 op)
{
	b->buf = buf;
	b->cap = cap;
	b->len = 0;
	b->op = op;
	b->err = 0;
	if (cap < twinfs_cm_rec_size(0))
		b->err = -ENOSPC;
	return b->err;
}

/* Room for an attribute of vlen value bytes: its header is written and a
 * pointer to its value returned, or NULL with b->err set. */
static u8 *put_attr(struct twinfs_cm_builder *b, u16 type, u32 vlen)
{
	u32 need = TWINFS_CM_ATTR_HDR_SIZE + vlen;
	u8 *p;

	if (b->err)
		return NULL;
	if (vlen > CM_ATTR_VALUE_MAX) {
		b->err = -EINVAL;
		return NULL;
	}
	if (need > TWINFS_CM_PAYLOAD_MAX - b->len) {
		b->err = -E2BIG;
		return NULL;
	}
	if (need > b->cap - TWINFS_CM_REC_HDR_SIZE - b->len) {
		b->err = -ENOSPC;
		return NULL;
	}
	p = b->buf + TWINFS_CM_REC_HDR_SIZE + b->len;
	put16(p, type);
	put16(p + 2, (u16)vlen);
	b->len += need;
	return p + TWINFS_CM_ATTR_HDR_SIZE;
}

int twinfs_cm_put_u32(struct twinfs_cm_builder *b, u16 type, u32 v)
{
	u8 *p = put_attr(b, type, 4);

	if (p)
		put32(p, v);
	return b->err;
}

int twinfs_cm_put_u64(struct twinfs_cm_builder *b, u16 type, u64 v)
{
	u8 *p = put_attr(b, type, 8);

	if (p)
		put64(p, v);
	return b->err;
}

int twinfs_cm_put_time(struct twinfs_cm_builder *b, u16 type, __s64 sec,
		       u32 nsec)
{
	u8 *p = put_attr(b, type, TWINFS_CM_TIME_SIZE);

	if (p) {
		put64(p, (u64)sec);
		put32(p + 8, nsec);
	}
	return b->err;
}

int twinfs_cm_put_bytes(struct twinfs_cm_builder *b, u16 type,
			const void *v, u32 len)
{
	u8 *p = put_attr(b, type, len);

	if (p && len)
		memcpy(p, v, len);
	return b->err;
}

void *twinfs_cm_put_space(struct twinfs_cm_builder *b, u16 type, u32 len)
{
	return put_attr(b, type, len);
}

static void rec_hdr_crc(u8 *rec)
{
	put32(rec + R_HDR_CRC,
	      twinfs_csum_block(rec, TWINFS_CM_REC_HDR_SIZE, R_HDR_CRC));
}

int twinfs_cm_rec_end(struct twinfs_cm_builder *b, u64 seq, u64 acked_upto,
		      u32 gen)
{
	u32 size;
	u8 *rec = b->buf;

	if (b->err)
		return b->err;
	size = twinfs_cm_rec_size(b->len);
	if (size > b->cap) {
		b->err = -ENOSPC;
		return b->err;
	}
	memset(rec + TWINFS_CM_REC_HDR_SIZE + b->len, 0,
	       size - TWINFS_CM_REC_HDR_SIZE - b->len);
	put32(rec + R_MAGIC, TWINFS_CM_REC_MAGIC);
	put16(rec + R_OP, b->op);
	put16(rec + R_FLAGS, 0);
	put32(rec + R_LEN, b->len);
	put32(rec + R_PAYLOAD_CRC,
	      payload_crc(rec + TWINFS_CM_REC_HDR_SIZE, b->len));
	twinfs_cm_rec_seal(rec, seq, acked_upto, gen);
	return (int)size;
}

void twinfs_cm_rec_seal(void *rec, u64 seq, u64 acked_upto, u32 gen)
{
	u8 *p = rec;

	put64(p + R_SEQ, seq);
	put64(p + R_ACKED, acked_upto);
	put32(p + R_GEN, gen);
	rec_hdr_crc(p);
}

/* ---------------------------------------------------------------- */
/* Decoding                                                         */
/* ---------------------------------------------------------------- */

/* What is wrong with the header of the record at p (avail bytes, lap
 * generation gen), or NULL: the magic first, the checksum after it. */
static const char *rec_hdr_bad(const u8 *p, u32 avail, u32 gen)
{
	/* Even an empty record takes one 64-byte line. */
	if (avail < twinfs_cm_rec_size(0))
		return "record header beyond the end of its space";
	if (get32(p + R_MAGIC) != TWINFS_CM_REC_MAGIC)
		return "bad record magic";
	if (get32(p + R_HDR_CRC) !=
	    twinfs_csum_block(p, TWINFS_CM_REC_HDR_SIZE, R_HDR_CRC))
		return "record header checksum mismatch";
	if (get32(p + R_GEN) != gen)
		return "record of another lane generation";
	return NULL;
}

int twinfs_cm_rec_check(const void *buf, u32 avail, u32 gen,
			struct twinfs_cm_rec_info *ri, const char **why)
{
	const u8 *p = buf;
	const char *msg = rec_hdr_bad(p, avail, gen);
	u32 len, size;

	if (msg)
		return bad(why, msg);
	len = get32(p + R_LEN);
	if (len > TWINFS_CM_PAYLOAD_MAX)
		return bad(why, "record payload longer than the maximum");
	size = twinfs_cm_rec_size(len);
	if (size > avail)
		return bad(why, "record extends beyond the end of its space");
	if (get32(p + R_PAYLOAD_CRC) !=
	    payload_crc(p + TWINFS_CM_REC_HDR_SIZE, len))
		return bad(why, "record payload checksum mismatch");
	ri->seq = get64(p + R_SEQ);
	ri->acked_upto = get64(p + R_ACKED);
	ri->op = get16(p + R_OP);
	ri->flags = get16(p + R_FLAGS);
	ri->len = len;
	ri->size = size;
	ri->gen = gen;
	ri->payload = p + TWINFS_CM_REC_HDR_SIZE;
	return 0;
}

/* Attributes every op needs, and those it may have. */
#define CM_CREATE_REQ (BIT_A(PARENT_INO) | BIT_A(NAME) | BIT_A(INO) | \
		       BIT_A(MODE) | BIT_A(UID) | BIT_A(GID) | \
		       BIT_A(GENERATION) | BIT_A(CTIME))
#define CM_NAME_REQ (BIT_A(PARENT_INO) | BIT_A(NAME) | BIT_A(INO) | \
		     BIT_A(CTIME))
#define CM_RENAME_REQ (CM_NAME_REQ | BIT_A(NEW_PARENT_INO) | \
		       BIT_A(NEW_NAME))
#define CM_SETATTR_CHANGES (BIT_A(MODE) | BIT_A(UID) | BIT_A(GID) | \
			    BIT_A(ATIME) | BIT_A(MTIME) | BIT_A(FLAGS))

static const u32 cm_required[TWINFS_CM_OP_MAX + 1] = {
	[TWINFS_CM_OP_CREATE] = CM_CREATE_REQ,
	[TWINFS_CM_OP_MKNOD] = CM_CREATE_REQ | BIT_A(RDEV),
	[TWINFS_CM_OP_MKDIR] = CM_CREATE_REQ,
	[TWINFS_CM_OP_SYMLINK] = CM_CREATE_REQ | BIT_A(SYMLINK_TARGET),
	[TWINFS_CM_OP_LINK] = CM_NAME_REQ,
	[TWINFS_CM_OP_UNLINK] = CM_NAME_REQ,
	[TWINFS_CM_OP_RMDIR] = CM_NAME_REQ,
	[TWINFS_CM_OP_RENAME] = CM_RENAME_REQ,
	[TWINFS_CM_OP_SETATTR] = BIT_A(INO) | BIT_A(CTIME),
	[TWINFS_CM_OP_TRUNCATE] = BIT_A(INO) | BIT_A(SIZE) | BIT_A(CTIME),
	[TWINFS_CM_OP_WRITE] = BIT_A(INO) | BIT_A(OFFSET) | BIT_A(DATA) |
			       BIT_A(CTIME),
};

static const u32 cm_allowed[TWINFS_CM_OP_MAX + 1] = {
	[TWINFS_CM_OP_CREATE] = CM_CREATE_REQ,
	[TWINFS_CM_OP_MKNOD] = CM_CREATE_REQ | BIT_A(RDEV),
	[TWINFS_CM_OP_MKDIR] = CM_CREATE_REQ,
	[TWINFS_CM_OP_SYMLINK] = CM_CREATE_REQ | BIT_A(SYMLINK_TARGET),
	[TWINFS_CM_OP_LINK] = CM_NAME_REQ,
	[TWINFS_CM_OP_UNLINK] = CM_NAME_REQ,
	[TWINFS_CM_OP_RMDIR] = CM_NAME_REQ,
	[TWINFS_CM_OP_RENAME] = CM_RENAME_REQ | BIT_A(TARGET_INO) |
				BIT_A(FLAGS),
	[TWINFS_CM_OP_SETATTR] = BIT_A(INO) | BIT_A(CTIME) |
				 CM_SETATTR_CHANGES,
	[TWINFS_CM_OP_TRUNCATE] = BIT_A(INO) | BIT_A(SIZE) | BIT_A(CTIME),
	[TWINFS_CM_OP_WRITE] = BIT_A(INO) | BIT_A(OFFSET) | BIT_A(DATA) |
			       BIT_A(CTIME),
};

/* Expected value length of each attribute type; 0: variable. */
static const u8 cm_attr_len[TWINFS_CM_A_MAX + 1] = {
	[TWINFS_CM_A_PARENT_INO] = 8,
	[TWINFS_CM_A_INO] = 8,
	[TWINFS_CM_A_NEW_PARENT_INO] = 8,
	[TWINFS_CM_A_TARGET_INO] = 8,
	[TWINFS_CM_A_MODE] = 4,
	[TWINFS_CM_A_UID] = 4,
	[TWINFS_CM_A_GID] = 4,
	[TWINFS_CM_A_SIZE] = 8,
	[TWINFS_CM_A_ATIME] = TWINFS_CM_TIME_SIZE,
	[TWINFS_CM_A_MTIME] = TWINFS_CM_TIME_SIZE,
	[TWINFS_CM_A_CTIME] = TWINFS_CM_TIME_SIZE,
	[TWINFS_CM_A_RDEV] = 4,
	[TWINFS_CM_A_OFFSET] = 8,
	[TWINFS_CM_A_GENERATION] = 4,
	[TWINFS_CM_A_FLAGS] = 4,
};

static int check_name(const u8 *v, u32 len, const char **why)
{
	if (len == 0)
		return bad(why, "name is empty");
	if (len > TWINFS_NAME_MAX)
		return bad(why, "name longer than 255 bytes");
	if (memchr(v, '/', len))
		return bad(why, "name contains '/'");
	if (memchr(v, '\0', len))
		return bad(why, "name contains NUL");
	if (v[0] == '.' && (len == 1 || (len == 2 && v[1] == '.')))
		return bad(why, "name is . or ..");
	return 0;
}

static int get_ino(const u8 *v, u64 *ino, const char **why)
{
	*ino = get64(v);
	return *ino ? 0 : bad(why, "inode number 0");
}

static int get_time(const u8 *v, struct twinfs_cm_time *t, const char **why)
{
	t->sec = (__s64)get64(v);
	t->nsec = get32(v + 8);
	return t->nsec < 1000000000u ? 0 :
	       bad(why, "nanoseconds not below one second");
}

static int get_id(const u8 *v, u32 *id, const char **why)
{
	*id = get32(v);
	return *id != 0xffffffffu ? 0 : bad(why, "uid or gid is -1");
}

static int get_fsize(const u8 *v, u64 *x, const char **why)
{
	*x = get64(v);
	return *x <= TWINFS_CM_MAX_FILE_SIZE ? 0 :
	       bad(why, "size or offset beyond the maximum file size");
}

/* Validates and stores one attribute whose type and length framing are
 * already checked. */
static int parse_attr(u16 type, const u8 *v, u32 len,
		      struct twinfs_cm_attrs *a, const char **why)
{
	int ret;

	switch (type) {
	case TWINFS_CM_A_PARENT_INO:
		return get_ino(v, &a->parent_ino, why);
	case TWINFS_CM_A_INO:
		return get_ino(v, &a->ino, why);
	case TWINFS_CM_A_NEW_PARENT_INO:
		return get_ino(v, &a->new_parent_ino, why);
	case TWINFS_CM_A_TARGET_INO:
		return get_ino(v, &a->target_ino, why);
	case TWINFS_CM_A_NAME:
		ret = check_name(v, len, why);
		a->name = (const char *)v;
		a->name_len = len;
		return ret;
	case TWINFS_CM_A_NEW_NAME:
		ret = check_name(v, len, why);
		a->new_name = (const char *)v;
		a->new_name_len = len;
		return ret;
	case TWINFS_CM_A_MODE:
		a->mode = get32(v);
		if (a->mode & ~(CM_S_IFMT | CM_S_IALL))
			return bad(why, "mode has unknown bits");
		return 0;
	case TWINFS_CM_A_UID:
		return get_id(v, &a->uid, why);
	case TWINFS_CM_A_GID:
		return get_id(v, &a->gid, why);
	case TWINFS_CM_A_SIZE:
		return get_fsize(v, &a->size, why);
	case TWINFS_CM_A_OFFSET:
		return get_fsize(v, &a->offset, why);
	case TWINFS_CM_A_ATIME:
		return get_time(v, &a->atime, why);
	case TWINFS_CM_A_MTIME:
		return get_time(v, &a->mtime, why);
	case TWINFS_CM_A_CTIME:
		return get_time(v, &a->ctime, why);
	case TWINFS_CM_A_RDEV:
		a->rdev = get32(v);
		return 0;
	case TWINFS_CM_A_GENERATION:
		a->generation = get32(v);
		return 0;
	case TWINFS_CM_A_FLAGS:
		a->flags = get32(v);
		return 0;
	case TWINFS_CM_A_DATA:
		if (len == 0 || len > TWINFS_CM_DATA_MAX)
			return bad(why, "data length not 1 .. 32768");
		a->data = v;
		a->data_len = len;
		return 0;
	case TWINFS_CM_A_SYMLINK_TARGET:
		if (len == 0 || len > TWINFS_CM_SYMLINK_MAX)
			return bad(why, "symlink target length not 1 .. 4095");
		if (memchr(v, '\0', len))
			return bad(why, "symlink target contains NUL");
		a->symlink = (const char *)v;
		a->symlink_len = len;
		return 0;
	}
	return bad(why, "unknown attribute type");
}

/* The file type an op that creates an inode may give it. */
static bool create_type_ok(u16 op, u32 type)
{
	switch (op) {
	case TWINFS_CM_OP_CREATE:
		return type == CM_S_IFREG;
	case TWINFS_CM_OP_MKDIR:
		return type == CM_S_IFDIR;
	case TWINFS_CM_OP_SYMLINK:
		return type == CM_S_IFLNK;
	default:	/* MKNOD */
		return type == CM_S_IFCHR || type == CM_S_IFBLK ||
		       type == CM_S_IFIFO || type == CM_S_IFSOCK;
	}
}

/* The rules that tie attributes of one op together. */
static int check_op(u16 op, const struct twinfs_cm_attrs *a,
		    const char **why)
{
	u32 type = a->mode & CM_S_IFMT;
	u32 rf = a->flags;

	switch (op) {
	case TWINFS_CM_OP_CREATE:
	case TWINFS_CM_OP_MKDIR:
	case TWINFS_CM_OP_SYMLINK:
	case TWINFS_CM_OP_MKNOD:
		if (!create_type_ok(op, type))
			return bad(why, "file type in mode does not match the operation");
		break;
	case TWINFS_CM_OP_SETATTR:
		if (!(a->present & CM_SETATTR_CHANGES))
			return bad(why, "setattr changes nothing");
		if (twinfs_cm_has(a, TWINFS_CM_A_MODE) && type)
			return bad(why, "setattr mode has a file type");
		break;
	case TWINFS_CM_OP_RENAME:
		if (rf & ~(TWINFS_CM_RENAME_NOREPLACE |
			   TWINFS_CM_RENAME_EXCHANGE))
			return bad(why, "unknown rename flags");
		if ((rf & TWINFS_CM_RENAME_NOREPLACE) &&
		    (rf & TWINFS_CM_RENAME_EXCHANGE))
			return bad(why, "rename both noreplace and exchange");
		if ((rf & TWINFS_CM_RENAME_EXCHANGE) &&
		    !twinfs_cm_has(a, TWINFS_CM_A_TARGET_INO))
			return bad(why, "rename exchange without a target inode");
		if ((rf & TWINFS_CM_RENAME_NOREPLACE) &&
		    twinfs_cm_has(a, TWINFS_CM_A_TARGET_INO))
			return bad(why, "rename noreplace with a target inode");
		if (twinfs_cm_has(a, TWINFS_CM_A_TARGET_INO) &&
		    a->target_ino == a->ino)
			return bad(why, "rename target is the inode moved");
		break;
	case TWINFS_CM_OP_WRITE:
		if (a->offset > TWINFS_CM_MAX_FILE_SIZE - a->data_len)
			return bad(why, "write beyond the maximum file size");
		break;
	}
	return 0;
}

int twinfs_cm_payload_parse(u16 op, const u8 *payload, u32 len,
			    struct twinfs_cm_attrs *a, const char **why)
{
	u32 pos = 0;
	int ret;

	memset(a, 0, sizeof(*a));
	if (op == 0 || op > TWINFS_CM_OP_MAX)
		return bad(why, "unknown operation");
	if (len > TWINFS_CM_PAYLOAD_MAX)
		return bad(why, "record payload longer than the maximum");
	while (pos < len) {
		u16 type;
		u32 alen;
		const u8 *v;

		if (len - pos < TWINFS_CM_ATTR_HDR_SIZE)
			return bad(why, "attribute header truncated");
		type = get16(payload + pos);
		alen = get16(payload + pos + 2);
		pos += TWINFS_CM_ATTR_HDR_SIZE;
		if (alen > len - pos)
			return bad(why, "attribute value beyond the end of the payload");
		v = payload + pos;
		pos += alen;
		if (type == 0 || type > TWINFS_CM_A_MAX)
			return bad(why, "unknown attribute type");
		if (a->present & (1u << type))
			return bad(why, "duplicate attribute");
		if (!(cm_allowed[op] & (1u << type)))
			return bad(why, "attribute not allowed for this operation");
		if (cm_attr_len[type] && alen != cm_attr_len[type])
			return bad(why, "attribute has the wrong length");
		a->present |= 1u << type;
		ret = parse_attr(type, v, alen, a, why);
		if (ret)
			return ret;
	}
	if (cm_required[op] & ~a->present)
		return bad(why, "required attribute missing");
	return check_op(op, a, why);
}

int twinfs_cm_rec_parse(const struct twinfs_cm_rec_info *ri,
			struct twinfs_cm_attrs *a, const char **why)
{
	memset(a, 0, sizeof(*a));
	if (ri->seq == 0)
		return bad(why, "record seq is 0");
	if (ri->acked_upto >= ri->seq)
		return bad(why, "record acked_upto not below its seq");
	if (ri->op == 0 || ri->op > TWINFS_CM_OP_MAX)
		return bad(why, "unknown operation");
	if (ri->flags & ~CM_REC_FLAGS_KNOWN)
		return bad(why, "unknown record flags");
	return twinfs_cm_payload_parse(ri->op, ri->payload, ri->len, a, why);
}

int twinfs_cm_rec_decode(const void *buf, u32 avail, u32 gen,
			 struct twinfs_cm_rec_info *ri,
			 struct twinfs_cm_attrs *a, const char **why)
{
	int ret = twinfs_cm_rec_check(buf, avail, gen, ri, why);

	if (ret) {
		memset(a, 0, sizeof(*a));
		return ret;
	}
	return twinfs_cm_rec_parse(ri, a, why);
}

/* ---------------------------------------------------------------- */
/* Lane scanning                                                    */
/* ---------------------------------------------------------------- */

static u32 ring_dist(u32 size, u32 from, u32 from_gen, u32 to, u32 to_gen)
{
	return to_gen == from_gen ? to - from : size - from + to;
}

/*
 * Whether a whole record of generation gen with a seq above last_seq
 * begins at some 64-byte boundary in [from, limit) (both multiples of
 * 64).  Stale records of other laps fail on their generation, after the
 * magic and the 40-byte header checksum: only a record of the lap costs
 * a payload checksum.
 */
static bool later_record(const u8 *base, u32 from, u32 limit, u32 gen,
			 u64 last_seq)
{
	struct twinfs_cm_rec_info ri;
	u32 p;

	for (p = from; p < limit; p += TWINFS_CM_REC_ALIGN) {
		if (get32(base + p + R_MAGIC) != TWINFS_CM_REC_MAGIC)
			continue;
		if (!twinfs_cm_rec_check(base + p, limit - p, gen, &ri, NULL) &&
		    ri.seq > last_seq)
			return true;
	}
	return false;
}

/*
 * Where the walk stopped: the tail, the skipped end of a lap, or a record
 * that is not whole.  A lane is written in order, each record whole before
 * the next begins, so only its last record can be torn: one with a record
 * of the lane after it is corruption.  The walk took the first lap
 * (generation gen, from the head) up to end1, after the record with seq
 * last1; then the second lap (gen + 1, from 0, never past the head) up to
 * end2, after last2, taking n2 records there (end2 0, last2 last1 and n2
 * 0 when it did not wrap).  A record stood at end1 if its header survived
 * or if its lap goes on after it (a lap has no holes); a record stands at
 * end2 if its lap goes on after it (the second lap begins at 0, the first
 * may have ended anywhere).  True with *bad_off at such a record.
 */
static bool cut_short(const u8 *base, u32 lane_size, u32 head, u32 gen,
		      u32 end1, u64 last1, u32 end2, u64 last2, u32 n2,
		      u32 *bad_off)
{
	bool later2;

	later2 = end2 < head &&
		 later_record(base, end2 + TWINFS_CM_REC_ALIGN, head, gen + 1,
			      last2);
	if (end1 < lane_size &&
	    (later_record(base, end1 + TWINFS_CM_REC_ALIGN, lane_size, gen,
			  last1) ||
	     (!rec_hdr_bad(base + end1, lane_size - end1, gen) &&
	      (n2 || later2)))) {
		*bad_off = end1;
		return true;
	}
	if (later2) {
		*bad_off = end2;
		return true;
	}
	return false;
}

int twinfs_cm_lane_scan(const void *lane, u32 lane_size, u32 lane_idx,
			u32 head, u32 gen, struct twinfs_cm_scan_ent *ents,
			u32 max_ents, struct twinfs_cm_scan *res,
			const char **why)
{
	const u8 *base = lane;
	struct twinfs_cm_rec_info ri;
	struct twinfs_cm_attrs a;
	struct twinfs_cm_scan_ent *e;
	u32 pos = head, g = gen, limit = lane_size;
	u32 end1 = 0, n1 = 0;
	bool wrapped = false;
	u64 last_seq = 0, last1 = 0;
	int ret;

	memset(res, 0, sizeof(*res));
	if (lane_size < TWINFS_CM_REC_ALIGN ||
	    lane_size % TWINFS_CM_REC_ALIGN ||
	    head >= lane_size || head % TWINFS_CM_REC_ALIGN)
		return -EINVAL;
	for (;;) {
		if (pos >= limit || twinfs_cm_rec_check(base + pos, limit - pos,
							g, &ri, NULL)) {
			if (wrapped)
				break;
			/*
			 * End of this lap: either the tail, or the writer
			 * found no room before the end and went on at 0 with
			 * the next generation (never past the head).
			 */
			end1 = pos;
			last1 = last_seq;
			n1 = res->count;
			if (head && !twinfs_cm_rec_check(base, head, g + 1, &ri,
							 NULL)) {
				wrapped = true;
				pos = 0;
				g++;
				limit = head;
				continue;
			}
			break;
		}
		ret = twinfs_cm_rec_parse(&ri, &a, why);
		if (ret) {
			res->bad_off = pos;
			return ret;
		}
		if (ri.seq <= last_seq) {
			res->bad_off = pos;
			return bad(why, "record seq not above its predecessor's in the lane");
		}
		if (res->count >= max_ents)
			return -ENOSPC;
		e = &ents[res->count++];
		memset(e, 0, sizeof(*e));
		e->seq = ri.seq;
		e->acked_upto = ri.acked_upto;
		e->lane = lane_idx;
		e->off = pos;
		e->gen = g;
		e->size = ri.size;
		e->op = ri.op;
		last_seq = ri.seq;
		pos += ri.size;
	}
	if (cut_short(base, lane_size, head, gen, end1, last1,
		      wrapped ? pos : 0, last_seq, res->count - n1,
		      &res->bad_off))
		return bad(why, "corrupt record before the end of the lane");
	if (!wrapped && pos == lane_size) {
		/* The lap ended at the end of the lane. */
		pos = 0;
		g++;
	}
	res->tail = pos;
	res->tail_gen = g;
	res->used = ring_dist(lane_size, head, gen, pos, g);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Replay planning                                                  */
/* ---------------------------------------------------------------- */

static bool ent_less(const struct twinfs_cm_scan_ent *x,
		     const struct twinfs_cm_scan_ent *y)
{
	if (x->seq != y->seq)
		return x->seq < y->seq;
	if (x->lane != y->lane)
		return x->lane < y->lane;
	return x->off < y->off;
}

static void ent_swap(struct twinfs_cm_scan_ent *x,
		     struct twinfs_cm_scan_ent *y)
{
	struct twinfs_cm_scan_ent t = *x;

	*x = *y;
	*y = t;
}

static void sift_down(struct twinfs_cm_scan_ent *e, u32 root, u32 n)
{
	u32 child;

	while ((child = 2 * root + 1) < n) {
		if (child + 1 < n && ent_less(&e[child], &e[child + 1]))
			child++;
		if (!ent_less(&e[root], &e[child]))
			return;
		ent_swap(&e[root], &e[child]);
		root = child;
	}
}

void twinfs_cm_sort(struct twinfs_cm_scan_ent *ents, u32 n)
{
	u32 i;

	if (n < 2)
		return;
	for (i = n / 2; i-- > 0;)
		sift_down(ents, i, n);
	for (i = n - 1; i > 0; i--) {
		ent_swap(&ents[0], &ents[i]);
		sift_down(ents, 0, i);
	}
}

int twinfs_cm_plan_replay(struct twinfs_cm_scan_ent *ents, u32 n, u64 cp_seq,
			  struct twinfs_cm_plan *plan, const char **why)
{
	u32 i, j;
	u64 g;

	memset(plan, 0, sizeof(*plan));
	plan->last_seq = cp_seq;
	if (cp_seq == ~0ull)
		return -EINVAL;
	twinfs_cm_sort(ents, n);
	for (i = 0; i < n; i++) {
		if (ents[i].acked_upto > plan->max_acked)
			plan->max_acked = ents[i].acked_upto;
		if (i && ents[i].seq == ents[i - 1].seq) {
			plan->bad_seq = ents[i].seq;
			return bad(why, "two records with the same seq");
		}
	}
	if (n)
		plan->max_seq = ents[n - 1].seq;
	for (i = 0; i < n && ents[i].seq <= cp_seq; i++)
		;
	g = cp_seq + 1;
	for (j = i; j < n && ents[j].seq == g; j++)
		g++;
	plan->first = i;
	plan->skipped = i;
	plan->count = j - i;
	plan->discarded = n - j;
	plan->gap_seq = g;
	plan->last_seq = g - 1;
	if (plan->max_acked >= g) {
		/* G was durable once: a record lost before the tail. */
		plan->bad_seq = g;
		return bad(why, "record missing or corrupt before the tail");
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Ring arithmetic                                                  */
/* ---------------------------------------------------------------- */

int twinfs_cm_lane_state_check(const struct twinfs_cm_lane_state *s)
{
	if (s->size < TWINFS_CM_REC_ALIGN || s->size % TWINFS_CM_REC_ALIGN)
		return -EINVAL;
	if (s->head >= s->size || s->tail >= s->size ||
	    s->head % TWINFS_CM_REC_ALIGN || s->tail % TWINFS_CM_REC_ALIGN)
		return -EINVAL;
	if (s->tail_gen == s->head_gen)
		return s->tail >= s->head ? 0 : -EINVAL;
	if (s->tail_gen == s->head_gen + 1)
		return s->tail <= s->head ? 0 : -EINVAL;
	return -EINVAL;
}

u32 twinfs_cm_lane_used(const struct twinfs_cm_lane_state *s)
{
	return ring_dist(s->size, s->head, s->head_gen, s->tail, s->tail_gen);
}

u32 twinfs_cm_lane_free(const struct twinfs_cm_lane_state *s)
{
	return s->size - twinfs_cm_lane_used(s);
}

int twinfs_cm_lane_reserve(struct twinfs_cm_lane_state *s, u32 rec_size,
			   u32 *off, u32 *gen)
{
	if (rec_size == 0 || rec_size % TWINFS_CM_REC_ALIGN ||
	    rec_size > s->size)
		return -EINVAL;
	if (s->tail_gen == s->head_gen) {
		if (rec_size <= s->size - s->tail) {
			*off = s->tail;
			*gen = s->tail_gen;
			s->tail += rec_size;
			if (s->tail == s->size) {
				s->tail = 0;
				s->tail_gen++;
			}
			return 0;
		}
		/* Skip the end of this lap: next lap, from 0 to the head. */
		if (rec_size > s->head)
			return -ENOSPC;
		s->tail_gen++;
		*off = 0;
		*gen = s->tail_gen;
		s->tail = rec_size;
		return 0;
	}
	if (rec_size > s->head - s->tail)
		return -ENOSPC;
	*off = s->tail;
	*gen = s->tail_gen;
	s->tail += rec_size;
	return 0;
}

int twinfs_cm_lane_trim_to(struct twinfs_cm_lane_state *s, u32 off, u32 gen)
{
	u64 pos, tail;

	if (off == s->size) {
		off = 0;
		gen++;
	}
	if (off >= s->size || off % TWINFS_CM_REC_ALIGN)
		return -EINVAL;
	/* Positions as bytes from the start of the head's lap. */
	if (gen == s->head_gen)
		pos = off;
	else if (gen == s->head_gen + 1)
		pos = (u64)s->size + off;
	else
		return -EINVAL;
	tail = s->tail + (s->tail_gen == s->head_gen ? 0 : (u64)s->size);
	if (pos < s->head || pos > tail)
		return -EINVAL;
	s->head = off;
	s->head_gen = gen;
	return 0;
}

void twinfs_cm_lane_first_after(const void *lane,
				const struct twinfs_cm_lane_state *s,
				u64 cp_seq, u32 *off, u32 *gen)
{
	const u8 *base = lane;
	u32 o = s->head, g = s->head_gen, steps = 0;

	while (!(o == s->tail && g == s->tail_gen) &&
	       steps++ <= s->size / TWINFS_CM_REC_ALIGN) {
		const u8 *r = base + o;

		if (o + TWINFS_CM_REC_HDR_SIZE > s->size ||
		    get32(r + R_MAGIC) != TWINFS_CM_REC_MAGIC ||
		    get32(r + R_GEN) != g) {
			/* The writer wrapped here. */
			o = 0;
			g++;
			continue;
		}
		if (get64(r + R_SEQ) > cp_seq)
			break;
		o += twinfs_cm_rec_size(get32(r + R_LEN));
		if (o >= s->size) {
			o = 0;
			g++;
		}
	}
	*off = o;
	*gen = g;
}

int twinfs_cm_lane_trim(struct twinfs_cm_lane_state *s,
			const struct twinfs_cm_scan_ent *ents, u32 n,
			u64 cp_seq)
{
	u32 i;
	int ret;

	for (i = 0; i < n && ents[i].seq <= cp_seq; i++)
		;
	if (i < n)
		ret = twinfs_cm_lane_trim_to(s, ents[i].off, ents[i].gen);
	else
		ret = twinfs_cm_lane_trim_to(s, s->tail, s->tail_gen);
	return ret ? ret : (int)i;
}

void twinfs_cm_lane_reset(struct twinfs_cm_lane_state *s)
{
	s->head_gen = s->tail_gen + 2;
	s->tail_gen = s->head_gen;
	s->head = 0;
	s->tail = 0;
}

u32 twinfs_cm_fill_permille(u64 used, u64 size)
{
	if (!size || used >= size)
		return 1000;
	return (u32)cm_div64(used * 1000, size);
}

bool twinfs_cm_needs_cp(const struct twinfs_cm_lane_state *lanes, u32 n,
			u32 threshold_permille)
{
	u32 i;

	for (i = 0; i < n; i++)
		if ((u64)twinfs_cm_lane_used(&lanes[i]) * 1000 >=
		    (u64)threshold_permille * lanes[i].size)
			return true;
	return false;
}

/* ---------------------------------------------------------------- */
/* Region header                                                    */
/* ---------------------------------------------------------------- */

int twinfs_cm_geometry(u64 region_size, u32 lane_count, u32 *lane_size)
{
	u64 each;

	if (lane_count == 0 || lane_count > TWINFS_CM_LANES_MAX)
		return -EINVAL;
	if (region_size < TWINFS_CM_HDR_AREA)
		return -ENOSPC;
	each = cm_div64(region_size - TWINFS_CM_HDR_AREA, lane_count);
	each &= ~(u64)(TWINFS_CM_LANE_ALIGN - 1);
	if (each > TWINFS_CM_LANE_MAX)
		each = TWINFS_CM_LANE_MAX;
	if (each < TWINFS_CM_LANE_MIN)
		return -ENOSPC;
	*lane_size = (u32)each;
	return 0;
}

void twinfs_cm_header_seal(struct twinfs_cm_header *h)
{
	twinfs_csum_set(h, sizeof(*h),
			offsetof(struct twinfs_cm_header, h_checksum));
}

void twinfs_cm_header_init(struct twinfs_cm_header *h, const u8 *uuid,
			   u32 node_id, u64 region_size, u32 lane_count,
			   u32 lane_size, const u32 *gens)
{
	u32 i;

	memset(h, 0, sizeof(*h));
	h->h_magic = cpu_to_le32(TWINFS_CM_MAGIC);
	h->h_version = cpu_to_le32(TWINFS_CM_VERSION);
	memcpy(h->h_uuid, uuid, sizeof(h->h_uuid));
	h->h_node_id = cpu_to_le32(node_id);
	h->h_lane_count = cpu_to_le32(lane_count);
	h->h_region_size = cpu_to_le64(region_size);
	h->h_lane_size = cpu_to_le32(lane_size);
	for (i = 0; i < lane_count && i < TWINFS_CM_LANES_MAX; i++)
		h->h_lanes[i].l_gen = cpu_to_le32(gens[i]);
	twinfs_cm_header_seal(h);
}

int twinfs_cm_header_check(const struct twinfs_cm_header *h, u64 dev_size,
			   const char **why)
{
	u32 lanes, lane_size, i;
	u64 region;

	if (le32_to_cpu(h->h_magic) != TWINFS_CM_MAGIC)
		return bad(why, "bad change memory magic");
	if (!twinfs_csum_ok(h, sizeof(*h),
			    offsetof(struct twinfs_cm_header, h_checksum)))
		return bad(why, "change memory header checksum mismatch");
	if (le32_to_cpu(h->h_version) != TWINFS_CM_VERSION)
		return bad(why, "unsupported change memory version");
	if (le32_to_cpu(h->h_flags) & ~CM_HDR_FLAGS_KNOWN)
		return bad(why, "unknown change memory header flags");
	if (le32_to_cpu(h->h_node_id) >= TWINFS_MAX_NODES)
		return bad(why, "change memory node id out of range");
	lanes = le32_to_cpu(h->h_lane_count);
	if (lanes == 0 || lanes > TWINFS_CM_LANES_MAX)
		return bad(why, "change memory lane count out of range");
	lane_size = le32_to_cpu(h->h_lane_size);
	if (lane_size % TWINFS_CM_LANE_ALIGN ||
	    lane_size < TWINFS_CM_LANE_MIN || lane_size > TWINFS_CM_LANE_MAX)
		return bad(why, "change memory lane size out of range");
	region = le64_to_cpu(h->h_region_size);
	if (region < twinfs_cm_lane_offset(lane_size, lanes))
		return bad(why, "change memory region too small for its lanes");
	if (dev_size && region > dev_size)
		return bad(why, "change memory region larger than the device");
	for (i = 0; i < TWINFS_CM_LANES_MAX; i++) {
		u32 head = le32_to_cpu(h->h_lanes[i].l_head);

		if (i >= lanes) {
			if (head || h->h_lanes[i].l_gen)
				return bad(why, "unused change memory lane descriptor not zero");
			continue;
		}
		if (head >= lane_size || head % TWINFS_CM_REC_ALIGN)
			return bad(why, "change memory lane head out of range");
	}
	return 0;
}

int twinfs_cm_header_pick(const void *area, u64 dev_size, const char **why)
{
	const struct twinfs_cm_header *c[2];
	const char *why0 = NULL;
	bool ok[2];
	u64 u0, u1;
	int i;

	/* The area is 8-byte aligned (a page of the region). */
	c[0] = area;
	c[1] = (const void *)((const u8 *)area + TWINFS_CM_HDR_COPY);
	ok[0] = !twinfs_cm_header_check(c[0], dev_size, &why0);
	ok[1] = !twinfs_cm_header_check(c[1], dev_size, NULL);
	u0 = le64_to_cpu(c[0]->h_update);
	u1 = le64_to_cpu(c[1]->h_update);
	if (ok[0] && (u0 & 1)) {
		ok[0] = false;
		why0 = "change memory header copy in the wrong slot";
	}
	if (ok[1] && !(u1 & 1))
		ok[1] = false;
	/* Neither: say what is wrong with copy 0, where a region starts. */
	if (!ok[0] && !ok[1])
		return bad(why, why0);
	if (!ok[1])
		return 0;
	if (!ok[0])
		return 1;
	/* Both valid: they must describe the same region. */
	if (memcmp(c[0]->h_uuid, c[1]->h_uuid, sizeof(c[0]->h_uuid)) ||
	    c[0]->h_node_id != c[1]->h_node_id ||
	    c[0]->h_lane_count != c[1]->h_lane_count ||
	    c[0]->h_lane_size != c[1]->h_lane_size ||
	    c[0]->h_region_size != c[1]->h_region_size)
		return bad(why, "change memory header copies disagree");
	i = u1 > u0 ? 1 : 0;
	if (le64_to_cpu(c[i]->h_cp_seq) < le64_to_cpu(c[!i]->h_cp_seq))
		return bad(why, "change memory header cp_seq went backwards");
	return i;
}
