// SPDX-License-Identifier: GPL-2.0
/*
 * Shared by mkfs.twinfs and fsck.twinfs: error reporting with context, and
 * Image, an RAII handle on a twinfs block device or image file with block
 * granular I/O.
 */
#pragma once

#include <cstddef>
#include <cstdint>
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

} // namespace twinfs
