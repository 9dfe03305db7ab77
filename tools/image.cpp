// SPDX-License-Identifier: GPL-2.0
/* Block device / image file access shared by mkfs.twinfs and fsck.twinfs. */
#include "image.hpp"

#include <algorithm>
#include <cerrno>
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

} // namespace twinfs
