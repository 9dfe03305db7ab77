// SPDX-License-Identifier: GPL-2.0
/*
 * Block device / image file access shared by mkfs.twinfs and fsck.twinfs,
 * and the reading of the consistency-point areas (see image.hpp).
 */
#include "image.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace twinfs {

void throw_errno(const std::string &what, int err)
{
	throw Error(str(what, ": ", std::strerror(err)));
}

bool Block::is_zero() const
{
	return std::all_of(std::begin(b), std::end(b),
			   [](std::uint8_t c) { return c == 0; });
}

Image::Image(std::string path, Mode mode, bool create) : path_(std::move(path))
{
	int flags = O_CLOEXEC | (mode == Mode::ReadOnly ? O_RDONLY : O_RDWR);
	struct stat st;

	if (mode == Mode::ReadWrite && stat(path_.c_str(), &st) == 0 &&
	    S_ISBLK(st.st_mode))
		flags |= O_EXCL;	/* not while mounted or in use */
	else if (create)
		flags |= O_CREAT;
	fd_ = ::open(path_.c_str(), flags, 0644);
	if (fd_ < 0)
		throw_errno(str("cannot open ", path_), errno);
	if (fstat(fd_, &st) < 0) {
		int err = errno;
		::close(fd_);
		throw_errno(str("cannot stat ", path_), err);
	}
	if (S_ISBLK(st.st_mode)) {
		blockdev_ = true;
		if (ioctl(fd_, BLKGETSIZE64, &size_) < 0) {
			int err = errno;
			::close(fd_);
			throw_errno(str(path_, ": cannot get the device size "
					"(BLKGETSIZE64)"), err);
		}
	} else if (S_ISREG(st.st_mode)) {
		size_ = static_cast<std::uint64_t>(st.st_size);
	} else {
		::close(fd_);
		throw Error(str(path_, ": not a block device or a regular file"));
	}
}

Image::~Image()
{
	if (fd_ >= 0)
		::close(fd_);
}

Image::Image(Image &&other) noexcept
	: path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)),
	  blockdev_(other.blockdev_), size_(other.size_)
{
}

void Image::extend(std::uint64_t bytes)
{
	if (bytes <= size_)
		return;
	if (blockdev_)
		throw Error(str(path_, ": the device has ", size_,
				" bytes, fewer than the ", bytes, " asked for"));
	if (ftruncate(fd_, static_cast<off_t>(bytes)) < 0)
		throw_errno(str(path_, ": cannot extend the image to ", bytes,
				" bytes"), errno);
	size_ = bytes;
}

void Image::pread_bytes(void *buf, std::size_t len, std::uint64_t off) const
{
	auto *p = static_cast<std::uint8_t *>(buf);
	std::uint64_t pos = off;

	while (len) {
		ssize_t n = ::pread(fd_, p, len, static_cast<off_t>(pos));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			throw_errno(str(path_, ": read of ", len,
					" bytes at byte ", pos, " (block ",
					pos / kBlockSize, ") failed"), errno);
		if (n == 0)
			throw Error(str(path_, ": read at byte ", pos,
					" (block ", pos / kBlockSize,
					") is beyond the end of the image"));
		p += n;
		pos += static_cast<std::uint64_t>(n);
		len -= static_cast<std::size_t>(n);
	}
}

void Image::pwrite_bytes(const void *buf, std::size_t len, std::uint64_t off)
{
	const auto *p = static_cast<const std::uint8_t *>(buf);
	std::uint64_t pos = off;

	while (len) {
		ssize_t n = ::pwrite(fd_, p, len, static_cast<off_t>(pos));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			throw_errno(str(path_, ": write of ", len,
					" bytes at byte ", pos, " (block ",
					pos / kBlockSize, ") failed"),
				    n < 0 ? errno : ENOSPC);
		p += n;
		pos += static_cast<std::uint64_t>(n);
		len -= static_cast<std::size_t>(n);
	}
}

void Image::read_block(std::uint64_t blk, Block &out) const
{
	pread_bytes(out.data(), kBlockSize, blk * kBlockSize);
}

void Image::read_blocks(std::uint64_t blk, std::uint64_t count,
			std::vector<Block> &out) const
{
	out.resize(count);
	if (count)
		pread_bytes(out.data(), count * kBlockSize, blk * kBlockSize);
}

void Image::write_block(std::uint64_t blk, const Block &in)
{
	pwrite_bytes(in.data(), kBlockSize, blk * kBlockSize);
}

void Image::write_blocks(std::uint64_t blk, std::span<const Block> in)
{
	if (!in.empty())
		pwrite_bytes(in.data(), in.size() * kBlockSize,
			     blk * kBlockSize);
}

void Image::zero_blocks(std::uint64_t blk, std::uint64_t count)
{
	const std::uint64_t off = blk * kBlockSize, len = count * kBlockSize;

	if (!count)
		return;
	if (blockdev_) {
		std::uint64_t range[2] = {off, len};
		if (ioctl(fd_, BLKZEROOUT, range) == 0)
			return;
	} else if (off + len <= size_ &&
		   fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     static_cast<off_t>(off),
			     static_cast<off_t>(len)) == 0) {
		return;
	}
	/* Fallback: write zeros, 1 MiB at a time. */
	const std::vector<Block> zeros(256);
	for (std::uint64_t done = 0; done < count;) {
		std::uint64_t n = std::min<std::uint64_t>(count - done,
							  zeros.size());
		write_blocks(blk + done, std::span(zeros.data(), n));
		done += n;
	}
}

void Image::sync()
{
	if (fsync(fd_) < 0)
		throw_errno(str(path_, ": fsync failed"), errno);
}

std::uint64_t parse_u64(const std::string &s, const char *what)
{
	std::size_t used = 0;
	unsigned long long v;

	if (s.empty() || s[0] == '-' || s[0] == '+')
		throw Error(str("invalid ", what, " '", s,
				"': not an unsigned number"));
	try {
		v = std::stoull(s, &used, 0);
	} catch (const std::exception &) {
		throw Error(str("invalid ", what, " '", s,
				"': not a number or out of range"));
	}
	if (used != s.size())
		throw Error(str("invalid ", what, " '", s,
				"': trailing characters"));
	return v;
}

BlockPlace place_block(const twinfs_geometry &g, std::uint64_t blk)
{
	BlockPlace p{false, 0, 0, false};

	if (blk < g.first_ag_block || blk >= g.blocks)
		return p;
	p.in_group = true;
	p.ag = static_cast<std::uint32_t>((blk - g.first_ag_block) /
					  g.ag_blocks);
	p.index = static_cast<std::uint32_t>(blk - twinfs_ag_start(&g, p.ag));
	p.data = p.index >= twinfs_ag_meta_blocks(&g);
	return p;
}

const char *mode_type_name(std::uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	default: return "invalid type";
	}
}

std::uint8_t mode_to_dtype(std::uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return 8;		/* DT_REG */
	case S_IFDIR: return 4;		/* DT_DIR */
	case S_IFLNK: return 10;	/* DT_LNK */
	case S_IFCHR: return 2;		/* DT_CHR */
	case S_IFBLK: return 6;		/* DT_BLK */
	case S_IFIFO: return 1;		/* DT_FIFO */
	case S_IFSOCK: return 12;	/* DT_SOCK */
	default: return 0;
	}
}

std::string hex32(std::uint32_t v)
{
	char buf[16];
	std::snprintf(buf, sizeof(buf), "0x%08" PRIx32, v);
	return buf;
}

/* ---- BlockView ---- */

void BlockView::read_block(std::uint64_t blk, Block &out) const
{
	if (auto it = overlay_.find(blk); it != overlay_.end())
		out = it->second;
	else
		img_.read_block(blk, out);
}

void BlockView::read_blocks(std::uint64_t blk, std::uint64_t count,
			    std::vector<Block> &out) const
{
	img_.read_blocks(blk, count, out);
	for (auto it = overlay_.lower_bound(blk);
	     it != overlay_.end() && it->first - blk < count; ++it)
		out[it->first - blk] = it->second;
}

/* ---- consistency-point areas ---- */

std::uint32_t crc32c(const void *buf, std::size_t len)
{
	return ~twinfs_crc32c(~0u, buf, len);
}

std::uint32_t cp_journal_capacity(std::uint32_t area_blocks)
{
	if (area_blocks < TWINFS_CP_HDR_BLOCKS)
		return 0;
	return static_cast<std::uint32_t>(
		std::uint64_t(area_blocks - TWINFS_CP_HDR_BLOCKS) *
		TWINFS_CP_JENTS_PER_BLOCK / (TWINFS_CP_JENTS_PER_BLOCK + 1));
}

std::optional<std::string> cp_header_problem(const twinfs_cp_header &h,
					     const std::uint8_t *uuid,
					     std::uint32_t node)
{
	constexpr std::size_t csum_off = offsetof(twinfs_cp_header,
						  c_checksum);

	if (le(h.c_magic) != TWINFS_CP_MAGIC)
		return str("bad magic ", hex32(le(h.c_magic)), ", expected ",
			   hex32(TWINFS_CP_MAGIC));
	if (!twinfs_csum_ok(&h, sizeof(h), csum_off))
		return str("checksum mismatch (stored ",
			   hex32(le(h.c_checksum)), ", computed ",
			   hex32(twinfs_csum_block(&h, sizeof(h), csum_off)),
			   ")");
	if (le(h.c_version) != TWINFS_FORMAT_VERSION)
		return str("version ", le(h.c_version), ", expected ",
			   TWINFS_FORMAT_VERSION);
	if (std::memcmp(h.c_uuid, uuid, sizeof(h.c_uuid)))
		return std::string("UUID differs from the superblock's (an "
				   "area of another file system)");
	if (le(h.c_node_id) != node)
		return str("node id ", le(h.c_node_id), ", expected ", node);
	if (le(h.c_jstate) != TWINFS_CP_JOURNAL_EMPTY &&
	    le(h.c_jstate) != TWINFS_CP_JOURNAL_COMMITTED)
		return str("unknown journal state ", le(h.c_jstate));
	return std::nullopt;
}

namespace {

// "block 7", "blocks 7-9" or "no blocks".
std::string blocks_text(std::uint64_t first, std::uint64_t count)
{
	if (!count)
		return "no blocks";
	if (count == 1)
		return str("block ", first);
	return str("blocks ", first, "-", first + count - 1);
}

// Checks the journal of a COMMITTED header and loads it into a.journal;
// what is wrong goes to a.journal_errors.
void read_cp_journal(const Image &img, const twinfs_geometry &g, CpArea &a)
{
	constexpr std::uint32_t kMaxErrors = 8;
	const twinfs_cp_header &h = a.header();
	const std::uint64_t jblocks = le(h.c_jblocks);
	const std::uint64_t jdesc = le(h.c_jdesc_blocks);
	const std::uint64_t desc_start = a.start + TWINFS_CP_HDR_BLOCKS;
	const std::uint64_t img_start = desc_start + jdesc;
	auto &errs = a.journal_errors;

	/* Mount writes it home all the same, but goes back in time. */
	if (le(h.c_jseq) < le(h.c_cp_seq))
		a.problems.push_back(str("committed consistency point journal "
					 "seq ", le(h.c_jseq), " (c_jseq) is "
					 "below the last consistency point's ",
					 le(h.c_cp_seq), " (c_cp_seq)"));
	if (jdesc != (jblocks + TWINFS_CP_JENTS_PER_BLOCK - 1) /
			     TWINFS_CP_JENTS_PER_BLOCK)
		errs.push_back(str(jblocks, " block images (c_jblocks) take ",
				   (jblocks + TWINFS_CP_JENTS_PER_BLOCK - 1) /
					   TWINFS_CP_JENTS_PER_BLOCK,
				   " descriptor blocks of ",
				   TWINFS_CP_JENTS_PER_BLOCK,
				   " entries, not ", jdesc,
				   " (c_jdesc_blocks)"));
	else if (jblocks > cp_journal_capacity(a.blocks))
		errs.push_back(str(jblocks, " block images (c_jblocks) exceed "
				   "the ", cp_journal_capacity(a.blocks),
				   " a node area of ", a.blocks,
				   " blocks can hold"));
	if (!errs.empty())
		return;

	std::vector<Block> desc;
	img.read_blocks(desc_start, jdesc, desc);
	const std::uint32_t dcrc = crc32c(desc.data(), desc.size() * kBlockSize);
	if (dcrc != le(h.c_jdesc_crc)) {
		errs.push_back(str("descriptor blocks (",
				   blocks_text(desc_start, jdesc),
				   ") fail their checksum (c_jdesc_crc ",
				   hex32(le(h.c_jdesc_crc)), ", computed ",
				   hex32(dcrc), ")"));
		return;
	}

	std::vector<Block> images;
	img.read_blocks(img_start, jblocks, images);
	std::uint32_t bad = 0;
	auto error = [&](std::string msg) {
		if (++bad <= kMaxErrors)
			errs.push_back(std::move(msg));
	};
	for (std::uint64_t j = 0; j < jblocks; j++) {
		const auto &e = desc[j / TWINFS_CP_JENTS_PER_BLOCK]
			.as<twinfs_cp_jent>()[j % TWINFS_CP_JENTS_PER_BLOCK];
		const std::uint64_t home = le(e.j_home);
		const std::string what = str("entry ", j, " (home block ",
					     home, ", image at block ",
					     img_start + j, ")");
		if (home >= g.blocks)
			error(str(what, ": home is beyond the file system's ",
				  g.blocks, " blocks"));
		else if (home >= g.node_area_start &&
			 home < g.first_ag_block)
			error(str(what, ": home is in the node areas (blocks ",
				  g.node_area_start, "-",
				  g.first_ag_block - 1, ")"));
		else if (home < g.first_ag_block)
			error(str(what, ": home is the superblock or the "
				  "reserved block 1, not in an allocation "
				  "group"));
		const std::uint32_t icrc = crc32c(images[j].data(),
						  kBlockSize);
		if (icrc != le(e.j_crc))
			error(str(what, ": the image fails its checksum "
				  "(j_crc ", hex32(le(e.j_crc)), ", computed ",
				  hex32(icrc), ")"));
	}
	if (bad > kMaxErrors)
		errs.push_back(str(bad - kMaxErrors, " more bad entries"));
	if (!errs.empty())
		return;
	a.journal.reserve(jblocks);
	for (std::uint64_t j = 0; j < jblocks; j++)
		a.journal.push_back(
			{le(desc[j / TWINFS_CP_JENTS_PER_BLOCK]
				    .as<twinfs_cp_jent>()
					    [j % TWINFS_CP_JENTS_PER_BLOCK]
				    .j_home),
			 images[j]});
}

} // namespace

CpArea read_cp_area(const Image &img, const twinfs_super &sb,
		    const twinfs_geometry &g, std::uint32_t node)
{
	static_assert(sizeof(twinfs_cp_header) == kBlockSize);
	CpArea a;

	a.node = node;
	a.blocks = g.node_area_blocks;
	a.start = g.node_area_start + std::uint64_t(node) * g.node_area_blocks;
	if (a.blocks < TWINFS_CP_HDR_BLOCKS)
		throw Error(str("internal: node area of ", a.blocks,
				" blocks has no room for the headers"));

	std::vector<Block> hdr;
	img.read_blocks(a.start, TWINFS_CP_HDR_BLOCKS, hdr);
	for (std::size_t i = 0; i < a.copy.size(); i++) {
		CpHeaderCopy &c = a.copy[i];
		c.blk = a.start + i;
		c.zero = hdr[i].is_zero();
		std::memcpy(&c.h, hdr[i].data(), sizeof(c.h));
		if (c.zero)
			c.invalid = "all zeros (never written)";
		else
			c.invalid = cp_header_problem(c.h, sb.s_uuid, node);
	}
	if (a.copy[0].zero && a.copy[1].zero) {
		a.fresh = true;
		return a;
	}

	for (std::size_t i = 0; i < a.copy.size(); i++) {
		const CpHeaderCopy &c = a.copy[i];
		if (c.invalid)
			continue;
		if (a.current < 0 ||
		    le(c.h.c_update) > le(a.header().c_update))
			a.current = static_cast<int>(i);
		if (le(c.h.c_update) % TWINFS_CP_HDR_BLOCKS != i)
			a.warnings.push_back(str(
				"header copy ", i, " (block ", c.blk,
				") holds update ", le(c.h.c_update),
				", which belongs in copy ",
				le(c.h.c_update) % TWINFS_CP_HDR_BLOCKS));
	}
	if (!a.valid())
		return a;

	const std::size_t cur = static_cast<std::size_t>(a.current);
	const CpHeaderCopy &other = a.copy[1 - cur];
	if (other.invalid && !other.zero)
		a.warnings.push_back(str("header copy ", 1 - cur, " (block ",
					 other.blk, ") is invalid: ",
					 *other.invalid, "; using copy ", cur,
					 " (update ",
					 le(a.header().c_update), ")"));
	else if (!other.invalid &&
		 (le(other.h.c_cp_seq) > le(a.header().c_cp_seq) ||
		  le(other.h.c_cp_count) > le(a.header().c_cp_count)))
		a.warnings.push_back(str(
			"header copy ", 1 - cur, " (update ",
			le(other.h.c_update), ", cp_seq ",
			le(other.h.c_cp_seq), ", cp_count ",
			le(other.h.c_cp_count), ") is ahead of the newer copy ",
			cur, " (update ", le(a.header().c_update),
			", cp_seq ", le(a.header().c_cp_seq), ", cp_count ",
			le(a.header().c_cp_count), "); using copy ", cur));

	if (a.committed())
		read_cp_journal(img, g, a);
	return a;
}

} // namespace twinfs
