// SPDX-License-Identifier: GPL-2.0
/*
 * Shared by mkfs.twinfs, fsck.twinfs and their unit tests: error reporting
 * with context; Image, an RAII handle on a twinfs block device or image file
 * with block granular I/O; BlockView, reads through an in-memory overlay;
 * and the reading and validation of the nodes' consistency-point areas.
 */
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "twinfs_core.h"

namespace twinfs {

constexpr std::size_t kBlockSize = TWINFS_BLOCK_SIZE;

// Concatenates its arguments with operator<< (GCC 12 has no std::format).
template <typename... Args>
std::string str(Args &&...args)
{
	std::ostringstream os;
	(os << ... << std::forward<Args>(args));
	return os.str();
}

// An operational failure (cannot open, cannot read, bad argument): the
// message says what failed, where, and why.
class Error : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// "what: strerror(err)"
[[noreturn]] void throw_errno(const std::string &what, int err);

// One 4096-byte block, zero-initialised, suitably aligned for the on-disk
// structures.
struct alignas(16) Block {
	std::uint8_t b[kBlockSize] = {};

	std::uint8_t *data() { return b; }
	const std::uint8_t *data() const { return b; }
	template <typename T> T *as()
	{
		static_assert(sizeof(T) <= kBlockSize);
		return reinterpret_cast<T *>(b);
	}
	template <typename T> const T *as() const
	{
		static_assert(sizeof(T) <= kBlockSize);
		return reinterpret_cast<const T *>(b);
	}
	bool is_zero() const;
};

class Image {
public:
	enum class Mode { ReadOnly, ReadWrite };

	// Opens path.  ReadWrite opens a block device with O_EXCL; create
	// creates a missing regular file.
	Image(std::string path, Mode mode, bool create = false);
	~Image();
	Image(const Image &) = delete;
	Image &operator=(const Image &) = delete;
	Image(Image &&other) noexcept;
	Image &operator=(Image &&other) = delete;

	const std::string &path() const { return path_; }
	bool is_block_device() const { return blockdev_; }
	// Size in bytes (BLKGETSIZE64 for a device, st_size for a file).
	std::uint64_t size_bytes() const { return size_; }
	std::uint64_t size_blocks() const { return size_ / kBlockSize; }

	// Grows an image file to bytes (sparse); devices cannot grow.
	void extend(std::uint64_t bytes);

	// Raw byte I/O; a short read or write is an error.
	void pread_bytes(void *buf, std::size_t len, std::uint64_t off) const;
	void pwrite_bytes(const void *buf, std::size_t len, std::uint64_t off);

	void read_block(std::uint64_t blk, Block &out) const;
	// count consecutive blocks into out (resized).
	void read_blocks(std::uint64_t blk, std::uint64_t count,
			 std::vector<Block> &out) const;
	void write_block(std::uint64_t blk, const Block &in);
	void write_blocks(std::uint64_t blk, std::span<const Block> in);
	// Makes [blk, blk + count) read back as zeros: punches a hole in an
	// image file, BLKZEROOUT on a device, plain writes as a fallback.
	void zero_blocks(std::uint64_t blk, std::uint64_t count);
	void sync();

private:
	std::string path_;
	int fd_ = -1;
	bool blockdev_ = false;
	std::uint64_t size_ = 0;
};

// Parses an unsigned decimal (or 0x hex) number; throws Error naming what.
std::uint64_t parse_u64(const std::string &s, const char *what);

// Little-endian field accessors that read well in C++.
inline std::uint16_t le(__le16 v) { return le16_to_cpu(v); }
inline std::uint32_t le(__le32 v) { return le32_to_cpu(v); }
inline std::uint64_t le(__le64 v) { return le64_to_cpu(v); }

// Group of a block, and whether it lies in that group's data area.
struct BlockPlace {
	bool in_group;		// inside some allocation group
	std::uint32_t ag;	// the group
	std::uint32_t index;	// bit in the group's block bitmap
	bool data;		// in the data area (not bitmap or inode table)
};
BlockPlace place_block(const twinfs_geometry &g, std::uint64_t blk);

const char *mode_type_name(std::uint32_t mode);
// DT_* value for a mode's type, 0 if the type is invalid.
std::uint8_t mode_to_dtype(std::uint32_t mode);

std::string hex32(std::uint32_t v);	// "0x0000abcd"

// Reads the blocks of an Image through an in-memory overlay: a block put
// into the overlay is what every later read of it returns.  fsck checks
// the file system as it will be once mount has written the committed
// consistency-point journals home, without writing anything.
class BlockView {
public:
	explicit BlockView(const Image &img) : img_(img) {}

	const Image &image() const { return img_; }
	// From now on block blk reads as b (a later put replaces it).
	void put(std::uint64_t blk, const Block &b) { overlay_[blk] = b; }
	bool overlaid(std::uint64_t blk) const { return overlay_.contains(blk); }
	std::size_t overlay_size() const { return overlay_.size(); }

	void read_block(std::uint64_t blk, Block &out) const;
	void read_blocks(std::uint64_t blk, std::uint64_t count,
			 std::vector<Block> &out) const;

private:
	const Image &img_;
	std::map<std::uint64_t, Block> overlay_;
};

/*
 * Consistency-point areas (twinfs_format.h, "Consistency points"; the
 * format is in Documentation/on-disk-format.md).  Node n's area starts at
 * node_area_start + n * node_area_blocks: two header copies, then the CP
 * journal (descriptor blocks of struct twinfs_cp_jent, then block images).
 */

// crc32c with the ~0 seed and the final inversion, the convention of every
// twinfs checksum: j_crc (one block image) and c_jdesc_crc (the descriptor
// blocks, in order).
std::uint32_t crc32c(const void *buf, std::size_t len);

// Most block images one consistency point can journal in a node area of
// area_blocks blocks: n images take n + ceil(n / TWINFS_CP_JENTS_PER_BLOCK)
// blocks after the two headers, and mount refuses a journal of more.
std::uint32_t cp_journal_capacity(std::uint32_t area_blocks);

// One header copy (block +0 or +1 of the area) as read.
struct CpHeaderCopy {
	std::uint64_t blk = 0;		// where it is
	bool zero = false;		// all zeros: never written
	std::optional<std::string> invalid;	// why it is not valid
	twinfs_cp_header h{};
};

// One journalled block: its home and the image mount writes there.
struct CpJournalBlock {
	std::uint64_t home;
	Block image;
};

struct CpArea {
	std::uint32_t node = 0;
	std::uint64_t start = 0;	// first block of the area
	std::uint32_t blocks = 0;	// node_area_blocks
	std::array<CpHeaderCopy, TWINFS_CP_HDR_BLOCKS> copy;
	// Both copies all zeros: no consistency point was ever written
	// (cp_seq 0, no journal).  Blocks from +2 are then not looked at: a
	// first CP that crashed before its header leaves a journal there.
	bool fresh = false;
	int current = -1;		// the valid copy in use, -1: none
	// Findings that leave the area usable: a bad copy next to a good one,
	// copies that disagree.
	std::vector<std::string> warnings;
	// Inconsistencies mount does not refuse (a journal seq below
	// c_cp_seq).
	std::vector<std::string> problems;
	// The header says COMMITTED: what is wrong with its journal (mount
	// refuses such a journal), and, when nothing is, the journal's blocks
	// in order.  The checks are mount's: c_jdesc_blocks =
	// ceil(c_jblocks / TWINFS_CP_JENTS_PER_BLOCK), c_jblocks at most
	// cp_journal_capacity(), c_jdesc_crc, every home inside an allocation
	// group (not the superblock, block 1 or a node area) and every
	// image's j_crc.
	std::vector<std::string> journal_errors;
	std::vector<CpJournalBlock> journal;

	bool valid() const { return current >= 0; }
	// The header in use; valid() only.
	const twinfs_cp_header &header() const
	{
		return copy[static_cast<std::size_t>(current)].h;
	}
	bool committed() const
	{
		return valid() && le(header().c_jstate) ==
			TWINFS_CP_JOURNAL_COMMITTED;
	}
	// valid(), committed and the journal passed every check.
	bool journal_usable() const
	{
		return committed() && journal_errors.empty();
	}
};

// Why header copy h is not a valid header of node `node` of the file
// system whose UUID is uuid, or nullopt.
std::optional<std::string> cp_header_problem(const twinfs_cp_header &h,
					     const std::uint8_t *uuid,
					     std::uint32_t node);

// Reads node `node`'s area of the file system sb (geometry g): both header
// copies, the choice between them (the valid one with the higher c_update,
// as mount does) and, for a COMMITTED header, the journal with every check
// mount makes (see CpArea::journal_errors).  Reads only from img; throws
// Error only when reading fails.  The area must hold at least
// TWINFS_CP_HDR_BLOCKS blocks.
CpArea read_cp_area(const Image &img, const twinfs_super &sb,
		    const twinfs_geometry &g, std::uint32_t node);

} // namespace twinfs
