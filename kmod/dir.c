// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: directories as extendible hash tables (format in
 * include/twinfs/twinfs_format.h, leaf algorithms in core/dir.c).
 *
 * A name costs three block lookups whatever the directory size: the
 * header (global depth), one hash-table block and the leaf.  Inserting into
 * a full leaf splits it (doubling the table first when the leaf is already
 * at the global depth); leaves at the maximum depth chain.  readdir walks
 * the leaves in key order (the bit-reversed hash), so its cookie, the key,
 * stays valid across splits between getdents calls.
 *
 * Callers hold the directory's i_rwsem: exclusive to change, shared to read.
 * The one exception is h_parent, which a rename of the directory changes
 * under the parent's lock: header fields change under the header buffer's
 * lock together with the checksum, and each is logged on its own.
 *
 * Undo: before a block is changed its before-image goes into the
 * operation's log (whole blocks for leaves and table blocks, single fields
 * for the header); new blocks need none, their mapping is undone.
 */
#include "op.h"
#include "fault.h"

#define HDR_CSUM_OFF offsetof(struct twinfs_dir_header, h_checksum)
#define LEAF_CSUM_OFF offsetof(struct twinfs_dir_leaf_hdr, d_checksum)
#define DIR_EOF_POS (2 + (1ull << 32))

static int twinfs_dir_corrupt(struct inode *dir, u32 lblk, const char *what)
{
	twinfs_corrupt(dir->i_sb, "directory",
		       "inode %lu: corrupt directory %s (file block %u)",
		       dir->i_ino, what, lblk);
	return -EUCLEAN;
}

/* Reads (or, with create, allocates zeroed) directory file block lblk. */
static int twinfs_dir_block(struct inode *dir, u32 lblk, bool create,
			    struct buffer_head **bhp)
{
	struct super_block *sb = dir->i_sb;
	struct buffer_head *bh;
	bool is_new;
	u64 pblk;
	u32 len;
	int err;

	err = twinfs_map_blocks(dir, lblk, 1, create, &pblk, &len, &is_new);
	if (err)
		return err;
	if (!pblk)
		return twinfs_dir_corrupt(dir, lblk, "block missing");
	if (is_new) {
		bh = sb_getblk(sb, pblk);
		if (bh) {
			lock_buffer(bh);
			memset(bh->b_data, 0, TWINFS_BLOCK_SIZE);
			set_buffer_uptodate(bh);
			set_buffer_twinfs_verified(bh);
			unlock_buffer(bh);
		}
	} else {
		bh = sb_bread(sb, pblk);
	}
	if (!bh) {
		twinfs_err(sb, "inode %lu: cannot read directory block %llu",
			   dir->i_ino, pblk);
		return -EIO;
	}
	*bhp = bh;
	return 0;
}

static void twinfs_dir_dirty(struct inode *dir, struct buffer_head *bh,
			     size_t csum_off)
{
	twinfs_csum_set(bh->b_data, TWINFS_BLOCK_SIZE, csum_off);
	twinfs_meta_dirty(dir->i_sb, bh);
}

static struct twinfs_dir_header *DHDR(struct buffer_head *bh)
{
	return (struct twinfs_dir_header *)bh->b_data;
}

static struct twinfs_dir_leaf_hdr *DLEAF(struct buffer_head *bh)
{
	return (struct twinfs_dir_leaf_hdr *)bh->b_data;
}

#define HDR_FIELD(f) offsetof(struct twinfs_dir_header, f), \
	sizeof(((struct twinfs_dir_header *)NULL)->f)

static int twinfs_save_block(struct inode *dir, struct buffer_head *bh,
			     enum twinfs_undo_tag tag)
{
	return twinfs_op_save(dir->i_sb, bh, tag, 0, TWINFS_BLOCK_SIZE);
}

/* Applies delta to h_entries: logged, under the buffer lock. */
static int twinfs_hdr_add_entries(struct inode *dir, struct buffer_head *hbh,
				  s64 delta)
{
	int err = twinfs_op_save(dir->i_sb, hbh, TWINFS_TAG_DIR_HDR,
				 HDR_FIELD(h_entries));

	if (err)
		return err;
	lock_buffer(hbh);
	le64_add_cpu(&DHDR(hbh)->h_entries, delta);
	twinfs_csum_set(hbh->b_data, TWINFS_BLOCK_SIZE, HDR_CSUM_OFF);
	unlock_buffer(hbh);
	twinfs_meta_dirty(dir->i_sb, hbh);
	return 0;
}

/* Sets a 32-bit header field: logged, under the buffer lock. */
static int twinfs_hdr_set32(struct inode *dir, struct buffer_head *hbh,
			    size_t off, size_t len, u32 val)
{
	int err = twinfs_op_save(dir->i_sb, hbh, TWINFS_TAG_DIR_HDR, off, len);

	if (err)
		return err;
	lock_buffer(hbh);
	*(__le32 *)(hbh->b_data + off) = cpu_to_le32(val);
	twinfs_csum_set(hbh->b_data, TWINFS_BLOCK_SIZE, HDR_CSUM_OFF);
	unlock_buffer(hbh);
	twinfs_meta_dirty(dir->i_sb, hbh);
	return 0;
}

/* Checks a block once after it came from disk; see twinfs.h. */
static bool twinfs_dir_verify(struct inode *dir, struct buffer_head *bh,
			      bool header)
{
	bool ok;

	if (buffer_twinfs_verified(bh))
		return true;
	lock_buffer(bh);
	ok = header ? !twinfs_dirhdr_check(DHDR(bh), dir->i_ino) :
		      !twinfs_dirleaf_check(bh->b_data, dir->i_ino);
	if (ok)
		set_buffer_twinfs_verified(bh);
	unlock_buffer(bh);
	return ok;
}

static int twinfs_dir_header(struct inode *dir, struct buffer_head **bhp)
{
	int err = twinfs_dir_block(dir, 0, false, bhp);

	if (err)
		return err;
	if (!twinfs_dir_verify(dir, *bhp, true)) {
		brelse(*bhp);
		return twinfs_dir_corrupt(dir, 0, "header");
	}
	return 0;
}

static int twinfs_dir_leaf(struct inode *dir, struct twinfs_dir_header *h,
			   u32 lblk, struct buffer_head **bhp)
{
	int err;

	if (lblk < 1 || lblk >= le32_to_cpu(h->h_next_leaf))
		return twinfs_dir_corrupt(dir, lblk, "hash table entry");
	err = twinfs_dir_block(dir, lblk, false, bhp);
	if (err)
		return err;
	if (!twinfs_dir_verify(dir, *bhp, false)) {
		brelse(*bhp);
		return twinfs_dir_corrupt(dir, lblk, "leaf");
	}
	return 0;
}

/* Hash-table slot access. */
static int twinfs_table_rw(struct inode *dir, u32 slot, u32 *val, bool write)
{
	struct buffer_head *bh;
	__le32 *ent;
	int err;

	err = twinfs_dir_block(dir, TWINFS_DIR_TABLE_LBLK +
			       slot / TWINFS_DIR_TABLE_PER_BLOCK, false, &bh);
	if (err)
		return err;
	ent = (__le32 *)bh->b_data + slot % TWINFS_DIR_TABLE_PER_BLOCK;
	if (write) {
		err = twinfs_save_block(dir, bh, TWINFS_TAG_DIR_TABLE);
		if (err) {
			brelse(bh);
			return err;
		}
		*ent = cpu_to_le32(*val);
		twinfs_meta_dirty(dir->i_sb, bh);
	} else {
		*val = le32_to_cpu(*ent);
	}
	brelse(bh);
	return 0;
}

/* Leaf block for hash. */
static int twinfs_dir_leaf_of(struct inode *dir, struct twinfs_dir_header *h,
			      u32 hash, u32 *slot, u32 *lblk)
{
	*slot = twinfs_dir_slot(hash, le32_to_cpu(h->h_depth));
	return twinfs_table_rw(dir, *slot, lblk, false);
}

struct twinfs_dir_pos {
	struct buffer_head *bh;	/* leaf holding the entry */
	u32 lblk;
	int off;
};

/* Finds name; on success pos->bh is held (caller brelse). */
static int twinfs_dir_find(struct inode *dir, struct twinfs_dir_header *h,
			   const struct qstr *name, struct twinfs_dir_pos *pos)
{
	u32 hash = twinfs_dirhash(name->name, name->len,
				  TWINFS_SB(dir->i_sb)->dirhash_seed);
	u32 slot, lblk, hops = 0;
	struct buffer_head *bh;
	int err;

	err = twinfs_dir_leaf_of(dir, h, hash, &slot, &lblk);
	while (!err) {
		err = twinfs_dir_leaf(dir, h, lblk, &bh);
		if (err)
			break;
		pos->off = twinfs_dirleaf_find(bh->b_data, name->name,
					       name->len, hash);
		if (pos->off >= 0) {
			pos->bh = bh;
			pos->lblk = lblk;
			return 0;
		}
		lblk = le32_to_cpu(DLEAF(bh)->d_next);
		brelse(bh);
		if (!lblk)
			return -ENOENT;
		if (++hops > TWINFS_DIR_TABLE_LBLK)
			return twinfs_dir_corrupt(dir, lblk, "leaf chain loop");
	}
	return err;
}

int twinfs_dir_lookup(struct inode *dir, const struct qstr *name, u32 *ino)
{
	struct twinfs_dir_pos pos;
	struct buffer_head *hbh;
	int err;

	err = twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	err = twinfs_dir_find(dir, DHDR(hbh), name, &pos);
	if (!err) {
		*ino = le32_to_cpu(twinfs_dirleaf_entry(pos.bh->b_data,
							pos.off)->de_ino);
		brelse(pos.bh);
	}
	brelse(hbh);
	return err;
}

/* Allocates the next leaf file block. */
static int twinfs_dir_new_leaf(struct inode *dir, struct buffer_head *hbh,
			       u32 depth, u32 *lblk, struct buffer_head **bhp)
{
	struct twinfs_dir_header *h = DHDR(hbh);
	u32 next = le32_to_cpu(h->h_next_leaf);
	int err;

	if (next >= TWINFS_DIR_TABLE_LBLK)
		return -ENOSPC;
	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_NEW_LEAF) ?:
	      twinfs_dir_block(dir, next, true, bhp);
	if (err)
		return err;
	err = twinfs_hdr_set32(dir, hbh, HDR_FIELD(h_next_leaf), next + 1);
	if (err) {
		brelse(*bhp);
		return err;
	}
	twinfs_dirleaf_init((*bhp)->b_data, dir->i_ino, depth);
	twinfs_meta_dirty(dir->i_sb, *bhp);
	*lblk = next;
	i_size_write(dir, (loff_t)(next + 1) << TWINFS_BLOCK_SHIFT);
	return 0;
}

/* Splits the leaf serving slot (local depth < global depth). */
static int twinfs_dir_split(struct inode *dir, struct buffer_head *hbh,
			    u32 slot, u32 lblk, struct buffer_head *old)
{
	u32 depth = le32_to_cpu(DHDR(hbh)->h_depth);
	u32 l = le16_to_cpu(DLEAF(old)->d_depth);
	u32 suffix = twinfs_dir_slot(slot, l) | (1u << l);
	struct buffer_head *nbh;
	u32 new_lblk, j;
	int err;

	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_SPLIT) ?:
	      twinfs_save_block(dir, old, TWINFS_TAG_DIR_LEAF) ?:
	      twinfs_dir_new_leaf(dir, hbh, l + 1, &new_lblk, &nbh);
	if (err)
		return err;
	DLEAF(old)->d_depth = cpu_to_le16(l + 1);
	twinfs_dirleaf_split(old->b_data, nbh->b_data, l);
	twinfs_dir_dirty(dir, old, LEAF_CSUM_OFF);
	twinfs_dir_dirty(dir, nbh, LEAF_CSUM_OFF);
	brelse(nbh);
	/* Every slot whose low l+1 bits are the new suffix moves. */
	for (j = suffix; j < (1u << depth) && !err; j += 1u << (l + 1))
		err = twinfs_table_rw(dir, j, &new_lblk, true);
	return err;
}

/* Doubles the hash table: slot j + 2^depth starts as a copy of slot j. */
static int twinfs_dir_grow_table(struct inode *dir, struct buffer_head *hbh)
{
	u32 depth = le32_to_cpu(DHDR(hbh)->h_depth);
	u32 half = 1u << depth, per = TWINFS_DIR_TABLE_PER_BLOCK, b;
	struct buffer_head *src, *dst;
	int err;

	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_GROW);
	if (err)
		return err;
	if (half < per) {
		err = twinfs_dir_block(dir, TWINFS_DIR_TABLE_LBLK, false, &src);
		if (err)
			return err;
		err = twinfs_save_block(dir, src, TWINFS_TAG_DIR_TABLE);
		if (err) {
			brelse(src);
			return err;
		}
		memcpy(src->b_data + half * 4, src->b_data, half * 4);
		twinfs_meta_dirty(dir->i_sb, src);
		brelse(src);
	} else {
		for (b = 0; b < half / per && !err; b++) {
			err = twinfs_dir_block(dir, TWINFS_DIR_TABLE_LBLK + b,
					       false, &src);
			if (err)
				break;
			err = twinfs_dir_block(dir, TWINFS_DIR_TABLE_LBLK +
					       half / per + b, true, &dst);
			if (!err) {
				memcpy(dst->b_data, src->b_data,
				       TWINFS_BLOCK_SIZE);
				twinfs_meta_dirty(dir->i_sb, dst);
				brelse(dst);
			}
			brelse(src);
		}
		if (err)
			return err;
	}
	return twinfs_hdr_set32(dir, hbh, HDR_FIELD(h_depth), depth + 1);
}

/* Tries each leaf of the chain at lblk; returns 0, -ENOSPC or an error. */
static int twinfs_dir_try_insert(struct inode *dir, struct buffer_head *hbh,
				 u32 lblk, const struct qstr *name, u32 hash,
				 u32 ino, u8 type, struct buffer_head **last)
{
	struct buffer_head *bh;
	u32 hops = 0;
	int err;

	for (;;) {
		err = twinfs_dir_leaf(dir, DHDR(hbh), lblk, &bh);
		if (err)
			return err;
		err = twinfs_save_block(dir, bh, TWINFS_TAG_DIR_LEAF);
		if (err) {
			brelse(bh);
			return err;
		}
		err = twinfs_dirleaf_insert(bh->b_data, name->name, name->len,
					    hash, ino, type);
		if (!err) {
			twinfs_meta_dirty(dir->i_sb, bh);
			brelse(bh);
			return 0;
		}
		lblk = le32_to_cpu(DLEAF(bh)->d_next);
		if (!lblk || ++hops > TWINFS_DIR_TABLE_LBLK)
			break;
		brelse(bh);
	}
	*last = bh;
	return -ENOSPC;
}

/* Chains a new leaf after the full leaf last (at the maximum depth). */
static int twinfs_dir_chain(struct inode *dir, struct buffer_head *hbh,
			    struct buffer_head *last, const struct qstr *name,
			    u32 hash, u32 ino, u8 type)
{
	struct buffer_head *nbh;
	u32 lblk;
	int err;

	err = twinfs_dir_new_leaf(dir, hbh, TWINFS_DIR_MAX_DEPTH, &lblk, &nbh);
	if (err)
		return err;
	err = twinfs_dirleaf_insert(nbh->b_data, name->name, name->len, hash,
				    ino, type);
	twinfs_meta_dirty(dir->i_sb, nbh);
	brelse(nbh);
	err = err ?: twinfs_save_block(dir, last, TWINFS_TAG_DIR_LEAF);
	if (err)
		return err;
	DLEAF(last)->d_next = cpu_to_le32(lblk);
	twinfs_dir_dirty(dir, last, LEAF_CSUM_OFF);
	return err;
}

int twinfs_dir_add(struct inode *dir, const struct qstr *name, u32 ino,
		   umode_t mode)
{
	u32 hash = twinfs_dirhash(name->name, name->len,
				  TWINFS_SB(dir->i_sb)->dirhash_seed);
	u8 type = fs_umode_to_dtype(mode);
	struct buffer_head *hbh, *last;
	u32 slot, lblk, depth, l;
	int err, tries;

	if (name->len > TWINFS_NAME_MAX)
		return -ENAMETOOLONG;
	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_INSERT) ?:
	      twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	for (tries = 0; ; tries++) {
		if (tries > 2 * TWINFS_DIR_MAX_DEPTH + 2) {
			err = twinfs_dir_corrupt(dir, 0, "leaf that never splits");
			break;
		}
		err = twinfs_dir_leaf_of(dir, DHDR(hbh), hash, &slot, &lblk);
		if (err)
			break;
		err = twinfs_dir_try_insert(dir, hbh, lblk, name, hash, ino,
					    type, &last);
		if (err != -ENOSPC)
			break;
		depth = le32_to_cpu(DHDR(hbh)->h_depth);
		l = le16_to_cpu(DLEAF(last)->d_depth);
		if (l < depth) {
			err = twinfs_dir_split(dir, hbh, slot, lblk, last);
		} else if (depth < TWINFS_DIR_MAX_DEPTH) {
			err = twinfs_dir_grow_table(dir, hbh);
		} else {
			err = twinfs_dir_chain(dir, hbh, last, name, hash,
					       ino, type);
			brelse(last);
			break;
		}
		brelse(last);
		if (err)
			break;
	}
	if (!err)
		err = twinfs_hdr_add_entries(dir, hbh, 1);
	brelse(hbh);
	return err;
}

int twinfs_dir_remove(struct inode *dir, const struct qstr *name)
{
	struct twinfs_dir_pos pos;
	struct buffer_head *hbh;
	int err;

	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_REMOVE) ?:
	      twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	err = twinfs_dir_find(dir, DHDR(hbh), name, &pos);
	if (!err) {
		err = twinfs_save_block(dir, pos.bh, TWINFS_TAG_DIR_LEAF);
		if (!err) {
			twinfs_dirleaf_remove(pos.bh->b_data, pos.off);
			twinfs_meta_dirty(dir->i_sb, pos.bh);
			err = twinfs_hdr_add_entries(dir, hbh, -1);
		}
		brelse(pos.bh);
	}
	brelse(hbh);
	return err;
}

/* Points an existing name at another inode (rename over a target). */
int twinfs_dir_replace(struct inode *dir, const struct qstr *name, u32 ino,
		       umode_t mode)
{
	struct twinfs_dir_pos pos;
	struct twinfs_dirent *de;
	struct buffer_head *hbh;
	int err;

	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_REPLACE) ?:
	      twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	err = twinfs_dir_find(dir, DHDR(hbh), name, &pos);
	brelse(hbh);
	if (err)
		return err;
	err = twinfs_save_block(dir, pos.bh, TWINFS_TAG_DIR_LEAF);
	if (err) {
		brelse(pos.bh);
		return err;
	}
	de = (struct twinfs_dirent *)(pos.bh->b_data + pos.off);
	de->de_ino = cpu_to_le32(ino);
	de->de_type = fs_umode_to_dtype(mode);
	twinfs_dir_dirty(dir, pos.bh, LEAF_CSUM_OFF);
	brelse(pos.bh);
	return 0;
}

int twinfs_dir_set_parent(struct inode *dir, u32 parent)
{
	struct buffer_head *hbh;
	int err;

	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_PARENT) ?:
	      twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	err = twinfs_hdr_set32(dir, hbh, HDR_FIELD(h_parent), parent);
	brelse(hbh);
	return err;
}

/* 1 if empty, 0 if not, or a negative error. */
int twinfs_dir_is_empty(struct inode *dir)
{
	struct buffer_head *hbh;
	int err;

	err = twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	err = DHDR(hbh)->h_entries == 0;
	brelse(hbh);
	return err;
}

/* Lays out a new, empty directory: header, one leaf, a one-slot table. */
int twinfs_dir_init(struct inode *dir, struct inode *parent)
{
	struct buffer_head *hbh, *lbh, *tbh;
	u32 one = 1;
	int err;

	err = twinfs_fault(dir->i_sb, TWINFS_FAULT_DIR_INIT) ?:
	      twinfs_dir_block(dir, 0, true, &hbh);
	if (err)
		return err;
	twinfs_dirhdr_init(DHDR(hbh), dir->i_ino, parent->i_ino);
	twinfs_meta_dirty(dir->i_sb, hbh);
	brelse(hbh);
	err = twinfs_dir_block(dir, 1, true, &lbh);
	if (err)
		return err;
	twinfs_dirleaf_init(lbh->b_data, dir->i_ino, 0);
	twinfs_meta_dirty(dir->i_sb, lbh);
	brelse(lbh);
	err = twinfs_dir_block(dir, TWINFS_DIR_TABLE_LBLK, true, &tbh);
	if (err)
		return err;
	brelse(tbh);
	err = twinfs_table_rw(dir, 0, &one, true);
	if (err)
		return err;
	i_size_write(dir, 2 * TWINFS_BLOCK_SIZE);
	return 0;
}

static bool twinfs_emit(struct dir_context *ctx,
			const struct twinfs_dirent *de)
{
	ctx->pos = 2 + (u64)twinfs_dir_key(le32_to_cpu(de->de_hash));
	return dir_emit(ctx, de->de_name, de->de_name_len,
			le32_to_cpu(de->de_ino), de->de_type);
}

/* Emits a single leaf's entries with key >= key; false when ctx is full. */
static bool twinfs_readdir_leaf(struct dir_context *ctx, const void *blk,
				u32 key)
{
	int off;

	for (off = twinfs_dirleaf_seek(blk, key); off >= 0;
	     off = twinfs_dirleaf_next(blk, off))
		if (!twinfs_emit(ctx, twinfs_dirleaf_entry(blk, off)))
			return false;
	return true;
}

/*
 * Emits a chain of leaves (rare: only at the maximum depth) in key order:
 * repeatedly the smallest key not yet emitted across the whole chain.
 */
static int twinfs_readdir_chain(struct inode *dir, struct twinfs_dir_header *h,
				struct dir_context *ctx, u32 first_lblk,
				u32 key, u32 last_key)
{
	struct buffer_head *bh;
	u64 k = key, next;
	u32 lblk;
	int err, off;

	while (k <= last_key) {
		bool again = true;

		next = 1ull << 32;
		for (lblk = first_lblk; lblk; ) {
			err = twinfs_dir_leaf(dir, h, lblk, &bh);
			if (err)
				return err;
			for (off = twinfs_dirleaf_seek(bh->b_data, (u32)k);
			     off >= 0 && again;
			     off = twinfs_dirleaf_next(bh->b_data, off)) {
				const struct twinfs_dirent *de =
					twinfs_dirleaf_entry(bh->b_data, off);
				u32 dk = twinfs_dir_key(le32_to_cpu(de->de_hash));

				if (dk == k)
					again = twinfs_emit(ctx, de);
				else if (dk < next)
					next = dk;
			}
			lblk = le32_to_cpu(DLEAF(bh)->d_next);
			brelse(bh);
			if (!again)
				return 1;
		}
		k = next;
	}
	return 0;
}

static int twinfs_readdir(struct file *file, struct dir_context *ctx)
{
	struct inode *dir = file_inode(file);
	struct buffer_head *hbh, *bh;
	u32 slot, lblk, first, last, depth;
	u64 key;
	int err = 0;

	if (!dir_emit_dots(file, ctx))
		return 0;
	if (ctx->pos >= DIR_EOF_POS)
		return 0;
	err = twinfs_dir_header(dir, &hbh);
	if (err)
		return err;
	depth = le32_to_cpu(DHDR(hbh)->h_depth);
	for (key = ctx->pos - 2; key <= U32_MAX; key = (u64)last + 1) {
		slot = twinfs_dir_slot(twinfs_dir_key((u32)key), depth);
		err = twinfs_table_rw(dir, slot, &lblk, false);
		if (err)
			break;
		err = twinfs_dir_leaf(dir, DHDR(hbh), lblk, &bh);
		if (err)
			break;
		twinfs_dir_leaf_range(slot, le16_to_cpu(DLEAF(bh)->d_depth),
				      &first, &last);
		if (!DLEAF(bh)->d_next) {
			bool more = twinfs_readdir_leaf(ctx, bh->b_data,
							(u32)key);

			brelse(bh);
			if (!more)
				goto out;
		} else {
			brelse(bh);
			err = twinfs_readdir_chain(dir, DHDR(hbh), ctx, lblk,
						   (u32)key, last);
			if (err)
				break;
		}
		ctx->pos = 2 + (u64)last + 1;
	}
out:
	brelse(hbh);
	return err < 0 ? err : 0;
}

const struct file_operations twinfs_dir_operations = {
	.llseek		= generic_file_llseek,
	.read		= generic_read_dir,
	.iterate_shared	= twinfs_readdir,
	.fsync		= twinfs_fsync,
};
