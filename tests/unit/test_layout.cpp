// SPDX-License-Identifier: GPL-2.0
// Unit tests of kmod/core/layout.c: geometry and superblock validation.
#include "test_util.hpp"

#include <cstring>
#include <memory>
#include <string>

namespace {

constexpr u32 kMinAgData = 16; // TWINFS_MIN_AG_DATA in layout.c

struct Params {
	u32 max_nodes = 2;
	u32 node_area_blocks = 256;
	u32 ag_blocks = 32768;
	u32 inodes_per_ag = 8192;
};

int compute(u64 blocks, const Params &p, twinfs_geometry &g)
{
	return twinfs_geometry_compute(blocks, p.max_nodes, p.node_area_blocks,
				       p.ag_blocks, p.inodes_per_ag, &g);
}

// A superblock as mkfs writes it for the geometry g.
std::unique_ptr<twinfs_super> make_super(const twinfs_geometry &g)
{
	auto sb = std::make_unique<twinfs_super>();
	std::memset(sb.get(), 0, sizeof(*sb));
	sb->s_magic = cpu_to_le32(TWINFS_MAGIC);
	sb->s_version = cpu_to_le32(TWINFS_FORMAT_VERSION);
	sb->s_block_size = cpu_to_le32(TWINFS_BLOCK_SIZE);
	sb->s_inode_size = cpu_to_le32(TWINFS_INODE_SIZE);
	std::memcpy(sb->s_label, "unit-test", 9);
	sb->s_blocks = cpu_to_le64(g.blocks);
	sb->s_first_ag_block = cpu_to_le64(g.first_ag_block);
	sb->s_ag_blocks = cpu_to_le32(g.ag_blocks);
	sb->s_ag_count = cpu_to_le32(g.ag_count);
	sb->s_inodes_per_ag = cpu_to_le32(g.inodes_per_ag);
	sb->s_itable_blocks = cpu_to_le32(g.itable_blocks);
	sb->s_node_area_start = cpu_to_le64(g.node_area_start);
	sb->s_node_area_blocks = cpu_to_le32(g.node_area_blocks);
	sb->s_max_nodes = cpu_to_le32(g.max_nodes);
	sb->s_root_ino = cpu_to_le32(TWINFS_ROOT_INO);
	sb->s_state = cpu_to_le32(TWINFS_STATE_CLEAN);
	sb->s_dirhash_seed = cpu_to_le32(0x1234abcdu);
	twinfs_csum_set(sb.get(), sizeof(*sb),
			offsetof(twinfs_super, s_checksum));
	return sb;
}

void reseal(twinfs_super &sb)
{
	twinfs_csum_set(&sb, sizeof(sb), offsetof(twinfs_super, s_checksum));
}

bool same_geometry(const twinfs_geometry &a, const twinfs_geometry &b)
{
	return a.blocks == b.blocks && a.node_area_start == b.node_area_start &&
	       a.node_area_blocks == b.node_area_blocks &&
	       a.max_nodes == b.max_nodes &&
	       a.first_ag_block == b.first_ag_block &&
	       a.ag_blocks == b.ag_blocks && a.ag_count == b.ag_count &&
	       a.inodes_per_ag == b.inodes_per_ag &&
	       a.itable_blocks == b.itable_blocks;
}

} // namespace

TEST_CASE("geometry rejects bad parameters", "[layout]")
{
	twinfs_geometry g;
	const u64 big = 1u << 20;

	CHECK(twinfs_geometry_compute(big, 0, 256, 32768, 8192, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, TWINFS_MAX_NODES + 1, 256, 32768,
				      8192, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, TWINFS_MAX_NODES, 256, 32768, 8192,
				      &g) == 0);
	CHECK(twinfs_geometry_compute(big, 2, 256, 0, 8192, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, 2, 256, 32764, 8192, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, 2, 256, TWINFS_AG_BLOCKS_MAX + 8,
				      8192, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, 2, 256, 32768, 0, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, 2, 256, 32768, 8200, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, 2, 256, 32768,
				      TWINFS_AG_INODES_MAX + 16, &g) == -EINVAL);
	// A group must hold its bitmaps, its inode table and some data.
	// 1024 inodes: 64 table blocks, 66 metadata blocks.
	CHECK(twinfs_geometry_compute(big, 2, 256, 80, 1024, &g) == -EINVAL);
	CHECK(twinfs_geometry_compute(big, 2, 256, 88, 1024, &g) == 0);
	CHECK(g.itable_blocks == 64);
	CHECK(twinfs_ag_meta_blocks(&g) == 66);
}

TEST_CASE("geometry of a tiny device is an error", "[layout]")
{
	const Params p;
	twinfs_geometry g;
	const u64 first_ag = 2 + u64{p.max_nodes} * p.node_area_blocks;
	const u32 meta = 2 + p.inodes_per_ag / TWINFS_INODES_PER_BLOCK;

	CHECK(compute(0, p, g) == -ENOSPC);
	CHECK(compute(1, p, g) == -ENOSPC);
	CHECK(compute(first_ag, p, g) == -ENOSPC);
	CHECK(compute(first_ag + 1, p, g) == -ENOSPC);
	// Room for the metadata of one group but not for its minimum data.
	CHECK(compute(first_ag + meta + kMinAgData - 1, p, g) == -ENOSPC);
	// The smallest file system: one partial group.
	REQUIRE(compute(first_ag + meta + kMinAgData, p, g) == 0);
	CHECK(g.ag_count == 1);
	CHECK(g.blocks == first_ag + meta + kMinAgData);
	CHECK(twinfs_ag_size(&g, 0) == meta + kMinAgData);
}

TEST_CASE("geometry for several device sizes", "[layout]")
{
	const Params p;
	twinfs_geometry g;
	const u64 first_ag = 2 + u64{p.max_nodes} * p.node_area_blocks;
	const u32 meta = 2 + p.inodes_per_ag / TWINFS_INODES_PER_BLOCK;

	SECTION("exactly whole groups") {
		REQUIRE(compute(first_ag + 4 * u64{p.ag_blocks}, p, g) == 0);
		CHECK(g.node_area_start == 2);
		CHECK(g.first_ag_block == first_ag);
		CHECK(g.itable_blocks == p.inodes_per_ag / TWINFS_INODES_PER_BLOCK);
		CHECK(g.ag_count == 4);
		CHECK(g.blocks == first_ag + 4 * u64{p.ag_blocks});
		for (u32 ag = 0; ag < 4; ag++) {
			CHECK(twinfs_ag_start(&g, ag) == first_ag + ag * u64{p.ag_blocks});
			CHECK(twinfs_ag_size(&g, ag) == p.ag_blocks);
		}
	}
	SECTION("a partial last group large enough is kept") {
		const u64 tail = meta + kMinAgData;
		REQUIRE(compute(first_ag + 3 * u64{p.ag_blocks} + tail, p, g) == 0);
		CHECK(g.ag_count == 4);
		CHECK(g.blocks == first_ag + 3 * u64{p.ag_blocks} + tail);
		CHECK(twinfs_ag_size(&g, 2) == p.ag_blocks);
		CHECK(twinfs_ag_size(&g, 3) == tail);
	}
	SECTION("a partial last group too small is dropped") {
		const u64 tail = meta + kMinAgData - 1;
		REQUIRE(compute(first_ag + 3 * u64{p.ag_blocks} + tail, p, g) == 0);
		CHECK(g.ag_count == 3);
		CHECK(g.blocks == first_ag + 3 * u64{p.ag_blocks});
		CHECK(twinfs_ag_size(&g, 2) == p.ag_blocks);
	}
	SECTION("a 1 GiB, 10 GiB and 1 TiB device") {
		for (u64 bytes : {1ull << 30, 10ull << 30, 1ull << 40}) {
			const u64 blocks = bytes / TWINFS_BLOCK_SIZE;
			INFO("device of " << blocks << " blocks");
			REQUIRE(compute(blocks, p, g) == 0);
			const u64 rest = blocks - first_ag;
			u64 groups = rest / p.ag_blocks;
			if (rest % p.ag_blocks >= meta + kMinAgData)
				groups++;
			CHECK(g.ag_count == groups);
			CHECK(g.blocks <= blocks);
		}
	}
}

TEST_CASE("geometry invariants over many sizes", "[layout]")
{
	auto rng = twinfs_test::make_rng(0x1a7);
	for (int iter = 0; iter < 2000; iter++) {
		Params p;
		p.max_nodes = twinfs_test::uniform<u32>(rng, 1, TWINFS_MAX_NODES);
		p.node_area_blocks = twinfs_test::uniform<u32>(rng, 0, 1024);
		p.inodes_per_ag = 16 * twinfs_test::uniform<u32>(rng, 1, 128);
		const u32 meta = 2 + p.inodes_per_ag / TWINFS_INODES_PER_BLOCK;
		p.ag_blocks = 8 * twinfs_test::uniform<u32>(rng, (meta + kMinAgData + 7) / 8,
							    TWINFS_AG_BLOCKS_MAX / 8);
		const u64 blocks = twinfs_test::uniform<u64>(rng, 1, 1ull << 26);
		twinfs_geometry g;
		INFO("blocks " << blocks << " nodes " << p.max_nodes << "x"
		     << p.node_area_blocks << " ag_blocks " << p.ag_blocks
		     << " inodes_per_ag " << p.inodes_per_ag);
		const int rc = compute(blocks, p, g);
		if (rc) {
			REQUIRE(rc == -ENOSPC);
			// Nothing fits: no group of the minimum size.
			const u64 first_ag = 2 + u64{p.max_nodes} * p.node_area_blocks;
			CHECK((blocks <= first_ag ||
			       blocks - first_ag < meta + kMinAgData));
			continue;
		}
		REQUIRE(g.ag_count >= 1);
		CHECK(g.blocks <= blocks);
		CHECK(blocks - g.blocks < meta + kMinAgData);
		CHECK(twinfs_ag_meta_blocks(&g) == meta);
		u64 sum = 0;
		for (u32 ag = 0; ag < g.ag_count; ag++) {
			const u32 size = twinfs_ag_size(&g, ag);
			REQUIRE(size >= meta + kMinAgData);
			REQUIRE(size <= g.ag_blocks);
			if (ag + 1 < g.ag_count)
				REQUIRE(size == g.ag_blocks);
			sum += size;
		}
		CHECK(g.first_ag_block + sum == g.blocks);
		// The last inode's block is inside the last group's table.
		const u64 last_ino = u64{g.ag_count} * g.inodes_per_ag - 1;
		const u64 blk = twinfs_ino_block(&g, last_ino, nullptr);
		CHECK(blk == twinfs_ag_start(&g, g.ag_count - 1) + 2 + g.itable_blocks - 1);
		CHECK(blk < g.blocks);
	}
}

TEST_CASE("inode number to block and offset", "[layout]")
{
	const Params p;
	twinfs_geometry g;
	REQUIRE(compute(1u << 20, p, g) == 0);
	REQUIRE(g.ag_count >= 3);
	u32 off = 12345;

	CHECK(twinfs_ino_block(&g, 0, &off) == g.first_ag_block + 2);
	CHECK(off == 0);
	CHECK(twinfs_ino_block(&g, TWINFS_ROOT_INO, &off) == g.first_ag_block + 2);
	CHECK(off == TWINFS_INODE_SIZE);
	CHECK(twinfs_ino_block(&g, TWINFS_INODES_PER_BLOCK - 1, &off) ==
	      g.first_ag_block + 2);
	CHECK(off == (TWINFS_INODES_PER_BLOCK - 1) * TWINFS_INODE_SIZE);
	CHECK(twinfs_ino_block(&g, TWINFS_INODES_PER_BLOCK, &off) ==
	      g.first_ag_block + 3);
	CHECK(off == 0);
	// Last inode of group 0, first of group 1, one in group 2.
	CHECK(twinfs_ino_block(&g, p.inodes_per_ag - 1, &off) ==
	      g.first_ag_block + 2 + g.itable_blocks - 1);
	CHECK(off == (TWINFS_INODES_PER_BLOCK - 1) * TWINFS_INODE_SIZE);
	CHECK(twinfs_ino_block(&g, p.inodes_per_ag, &off) ==
	      twinfs_ag_start(&g, 1) + 2);
	CHECK(off == 0);
	CHECK(twinfs_ino_block(&g, 2 * u64{p.inodes_per_ag} + 35, &off) ==
	      twinfs_ag_start(&g, 2) + 2 + 35 / TWINFS_INODES_PER_BLOCK);
	CHECK(off == (35 % TWINFS_INODES_PER_BLOCK) * TWINFS_INODE_SIZE);
	// The offset pointer is optional.
	CHECK(twinfs_ino_block(&g, 17, nullptr) == g.first_ag_block + 3);

	// Every inode of a group maps into that group's table, 16 a block,
	// each (block, offset) pair exactly once.
	for (u32 ag = 0; ag < 3; ag++) {
		const u64 table = twinfs_ag_start(&g, ag) + 2;
		for (u32 i = 0; i < p.inodes_per_ag; i++) {
			const u64 ino = u64{ag} * p.inodes_per_ag + i;
			const u64 blk = twinfs_ino_block(&g, ino, &off);
			REQUIRE(blk == table + i / TWINFS_INODES_PER_BLOCK);
			REQUIRE(off == (i % TWINFS_INODES_PER_BLOCK) * TWINFS_INODE_SIZE);
		}
	}
}

TEST_CASE("super_check accepts a good superblock", "[layout][super]")
{
	const Params p;
	twinfs_geometry g;
	REQUIRE(compute(100000, p, g) == 0);
	auto sb = make_super(g);
	twinfs_geometry out{};
	const char *why = nullptr;

	CHECK(twinfs_super_check(sb.get(), 0, &out, &why) == 0);
	CHECK(same_geometry(out, g));
	CHECK(twinfs_super_check(sb.get(), 100000, &out, &why) == 0);
	CHECK(twinfs_super_check(sb.get(), g.blocks, nullptr, nullptr) == 0);
	// A device larger than the file system is fine.
	CHECK(twinfs_super_check(sb.get(), 1ull << 40, &out, &why) == 0);
	// A file system with a partial last group.
	REQUIRE(compute(g.first_ag_block + 3 * u64{p.ag_blocks} + 1000, p, g) == 0);
	REQUIRE(g.ag_count == 4);
	sb = make_super(g);
	CHECK(twinfs_super_check(sb.get(), g.blocks, &out, &why) == 0);
	CHECK(same_geometry(out, g));
}

TEST_CASE("super_check rejects bad superblocks with a reason", "[layout][super]")
{
	const Params p;
	twinfs_geometry g;
	REQUIRE(compute(200000, p, g) == 0);
	auto sb = make_super(g);
	twinfs_geometry out{};
	const char *why = nullptr;

	auto expect = [&](int err, const char *needle) {
		why = nullptr;
		CHECK(twinfs_super_check(sb.get(), g.blocks, &out, &why) == err);
		REQUIRE(why != nullptr);
		INFO("why: " << why);
		CHECK(std::string(why).find(needle) != std::string::npos);
		// A NULL why is allowed.
		CHECK(twinfs_super_check(sb.get(), g.blocks, nullptr, nullptr) == err);
	};

	SECTION("bad magic, checked before the checksum") {
		sb->s_magic = cpu_to_le32(0xef53);
		expect(-EINVAL, "magic");
		reseal(*sb);
		expect(-EINVAL, "magic");
	}
	SECTION("unsupported version") {
		sb->s_version = cpu_to_le32(TWINFS_FORMAT_VERSION + 1);
		reseal(*sb);
		expect(-EINVAL, "version");
	}
	SECTION("checksum mismatch") {
		sb->s_label[3] ^= 0x20;
		expect(-EUCLEAN, "checksum");
	}
	SECTION("checksum field itself damaged") {
		sb->s_checksum = cpu_to_le32(le32_to_cpu(sb->s_checksum) ^ 1);
		expect(-EUCLEAN, "checksum");
	}
	SECTION("block size") {
		sb->s_block_size = cpu_to_le32(1024);
		reseal(*sb);
		expect(-EINVAL, "block or inode size");
	}
	SECTION("inode size") {
		sb->s_inode_size = cpu_to_le32(512);
		reseal(*sb);
		expect(-EINVAL, "block or inode size");
	}
	SECTION("group count") {
		sb->s_ag_count = cpu_to_le32(g.ag_count + 1);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("first group block") {
		sb->s_first_ag_block = cpu_to_le64(g.first_ag_block + 8);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("node area start") {
		sb->s_node_area_start = cpu_to_le64(1);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("inode table size") {
		sb->s_itable_blocks = cpu_to_le32(g.itable_blocks - 1);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("root inode") {
		sb->s_root_ino = cpu_to_le32(2);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("size with a tail too small for a group") {
		// A size the geometry would trim: the unusable tail is counted.
		twinfs_geometry whole;
		REQUIRE(compute(g.first_ag_block + 6 * u64{p.ag_blocks}, p, whole) == 0);
		REQUIRE(whole.blocks == g.first_ag_block + 6 * u64{p.ag_blocks});
		sb = make_super(whole);
		REQUIRE(twinfs_super_check(sb.get(), 0, &out, &why) == 0);
		sb->s_blocks = cpu_to_le64(whole.blocks + 1);
		reseal(*sb);
		why = nullptr;
		CHECK(twinfs_super_check(sb.get(), 0, &out, &why) == -EUCLEAN);
		REQUIRE(why != nullptr);
		CHECK(std::string(why).find("geometry") != std::string::npos);
	}
	SECTION("size with a larger partial group than the device has") {
		// Consistent geometry, but the device is too small.
		sb->s_blocks = cpu_to_le64(g.blocks + 1);
		reseal(*sb);
		expect(-EINVAL, "larger than the device");
	}
	SECTION("parameters that do not make a geometry") {
		sb->s_max_nodes = cpu_to_le32(0);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("group size not a multiple of 8") {
		sb->s_ag_blocks = cpu_to_le32(g.ag_blocks - 4);
		reseal(*sb);
		expect(-EUCLEAN, "geometry");
	}
	SECTION("file system larger than the device") {
		why = nullptr;
		CHECK(twinfs_super_check(sb.get(), g.blocks - 1, &out, &why) == -EINVAL);
		REQUIRE(why != nullptr);
		CHECK(std::string(why).find("larger than the device") != std::string::npos);
	}
}

// Inode numbers are 32 bits in directory entries (de_ino), the directory
// header (h_parent) and the superblock (s_root_ino): a geometry whose
// ag_count * inodes_per_ag exceeds 2^32 is refused.
TEST_CASE("geometry keeps inode numbers within 32 bits", "[layout]")
{
	twinfs_geometry g;
	for (u64 blocks : {1ull << 32, 1ull << 40, (1ull << 47) + 1000000}) {
		INFO("blocks " << blocks);
		const int rc = twinfs_geometry_compute(blocks, 2, 256, TWINFS_AG_BLOCKS_MAX,
						       TWINFS_AG_INODES_MAX, &g);
		if (rc)
			continue;
		CHECK(u64{g.ag_count} * g.inodes_per_ag <= 1ull << 32);
		// The groups cover the file system exactly.
		CHECK(g.first_ag_block + u64{g.ag_count} * g.ag_blocks >= g.blocks);
	}
}
