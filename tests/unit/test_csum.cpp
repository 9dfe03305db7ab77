// SPDX-License-Identifier: GPL-2.0
// Unit tests of kmod/core/csum.c and the user-space crc32c.
#include "test_util.hpp"

#include <cstring>
#include <string_view>
#include <vector>

using twinfs_test::Block;

namespace {

u32 crc32c_std(const void *buf, size_t len)
{
	return ~twinfs_crc32c(~0u, buf, len);
}

} // namespace

TEST_CASE("crc32c matches the standard check values", "[csum][crc32c]")
{
	const std::string_view check = "123456789";
	CHECK(crc32c_std(check.data(), check.size()) == 0xE3069283u);

	// RFC 3720 (iSCSI) appendix B.4 test vectors.
	std::array<u8, 32> buf{};
	CHECK(crc32c_std(buf.data(), buf.size()) == 0x8A9136AAu);
	buf.fill(0xff);
	CHECK(crc32c_std(buf.data(), buf.size()) == 0x62A8AB43u);
	for (size_t i = 0; i < buf.size(); i++)
		buf[i] = static_cast<u8>(i);
	CHECK(crc32c_std(buf.data(), buf.size()) == 0x46DD794Eu);
	for (size_t i = 0; i < buf.size(); i++)
		buf[i] = static_cast<u8>(31 - i);
	CHECK(crc32c_std(buf.data(), buf.size()) == 0x113FDB5Cu);
}

TEST_CASE("crc32c has the kernel convention: no inversion, chainable",
	  "[csum][crc32c]")
{
	const std::string_view s = "twinfs: a cluster file system";

	// An empty buffer leaves the seed alone (no pre/post inversion).
	CHECK(twinfs_crc32c(0x12345678u, s.data(), 0) == 0x12345678u);

	// Feeding the buffer in pieces gives the same result as in one go.
	const u32 whole = twinfs_crc32c(~0u, s.data(), s.size());
	for (size_t cut = 0; cut <= s.size(); cut++) {
		u32 c = twinfs_crc32c(~0u, s.data(), cut);
		c = twinfs_crc32c(c, s.data() + cut, s.size() - cut);
		CHECK(c == whole);
	}
}

TEST_CASE("block checksum: set then verify, field taken as zero", "[csum]")
{
	auto rng = twinfs_test::make_rng(0xc5c5);
	Block b;
	for (auto &byte : b.bytes)
		byte = static_cast<u8>(twinfs_test::uniform<unsigned>(rng, 0, 255));

	for (size_t off : {size_t{0}, size_t{12}, size_t{2048},
			   size_t{TWINFS_BLOCK_SIZE - 4}}) {
		INFO("checksum field at offset " << off);
		Block c = b;
		twinfs_csum_set(c.data(), TWINFS_BLOCK_SIZE, off);
		CHECK(twinfs_csum_ok(c.data(), TWINFS_BLOCK_SIZE, off));

		// Only the checksum field changed.
		for (size_t i = 0; i < TWINFS_BLOCK_SIZE; i++)
			if (i < off || i >= off + 4)
				REQUIRE(c.bytes[i] == b.bytes[i]);

		// The stored value is the little-endian crc32c of the block
		// with the field zeroed.
		Block z = c;
		std::memset(z.data() + off, 0, 4);
		const u32 want = crc32c_std(z.data(), TWINFS_BLOCK_SIZE);
		const u8 *f = c.data() + off;
		CHECK((u32(f[0]) | u32(f[1]) << 8 | u32(f[2]) << 16 |
		       u32(f[3]) << 24) == want);
		CHECK(twinfs_csum_block(c.data(), TWINFS_BLOCK_SIZE, off) == want);
		// The block checksum ignores whatever the field holds.
		CHECK(twinfs_csum_block(b.data(), TWINFS_BLOCK_SIZE, off) == want);
	}
}

TEST_CASE("block checksum detects every flipped byte", "[csum]")
{
	Block b;
	for (size_t i = 0; i < TWINFS_BLOCK_SIZE; i++)
		b.bytes[i] = static_cast<u8>(i * 7 + 3);
	const size_t off = offsetof(struct twinfs_super, s_checksum);
	twinfs_csum_set(b.data(), TWINFS_BLOCK_SIZE, off);
	REQUIRE(twinfs_csum_ok(b.data(), TWINFS_BLOCK_SIZE, off));

	size_t undetected = 0;
	for (size_t i = 0; i < TWINFS_BLOCK_SIZE; i++) {
		for (u8 mask : {u8{0x01}, u8{0x80}, u8{0xff}}) {
			b.bytes[i] ^= mask;
			if (twinfs_csum_ok(b.data(), TWINFS_BLOCK_SIZE, off))
				undetected++;
			b.bytes[i] ^= mask;
		}
	}
	CHECK(undetected == 0);
	CHECK(twinfs_csum_ok(b.data(), TWINFS_BLOCK_SIZE, off));
}

TEST_CASE("checksum of short structures (inode-sized)", "[csum]")
{
	std::vector<u8> inode(TWINFS_INODE_SIZE, 0x5a);
	const size_t off = offsetof(struct twinfs_inode, i_checksum);
	twinfs_csum_set(inode.data(), inode.size(), off);
	CHECK(twinfs_csum_ok(inode.data(), inode.size(), off));
	inode[TWINFS_INODE_SIZE - 1] ^= 1;
	CHECK_FALSE(twinfs_csum_ok(inode.data(), inode.size(), off));
}
