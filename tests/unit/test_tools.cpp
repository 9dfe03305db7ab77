// SPDX-License-Identifier: GPL-2.0
// Tests of the tools: mkfs.twinfs's default node area size, and the
// consistency-point area checks of fsck.twinfs (tools/image.cpp and the
// programs themselves).  Images are small files in a temporary directory,
// made by build/mkfs.twinfs and changed block by block through
// twinfs::Image; build/fsck.twinfs then checks them.
#include <catch2/catch.hpp>

#include "twinfs_user/disk_heartbeat.hpp"

#include "temp_dir.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tools/image.hpp"
#include "twinfs_user/fd.hpp"

namespace fs = std::filesystem;
using twinfs::Block;
using twinfs::Image;
using twinfs::le;

namespace {

using twinfs_test::TempDir;

// The tools are next to build/unit-tests; $TWINFS_BIN overrides.
fs::path tool(const char *name)
{
	if (const char *env = std::getenv("TWINFS_BIN"); env && *env)
		return fs::path(env) / name;
	return fs::read_symlink("/proc/self/exe").parent_path() / name;
}

struct RunResult {
	int status = -1;	// exit status, -1 if killed by a signal
	std::string output;	// stdout and stderr, interleaved
};

// Runs a program with stdout and stderr captured.
RunResult run(const fs::path &prog, std::vector<std::string> args)
{
	int p[2];
	if (::pipe2(p, O_CLOEXEC) < 0)
		throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
	const twinfs::Fd rd(p[0]);
	std::optional<twinfs::Fd> wr(std::in_place, p[1]);
	args.insert(args.begin(), prog.string());
	std::vector<char *> argv;
	for (auto &a : args)
		argv.push_back(a.data());
	argv.push_back(nullptr);

	const pid_t pid = ::fork();
	if (pid < 0)
		throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
	if (pid == 0) {
		::dup2(wr->get(), 1);
		::dup2(wr->get(), 2);
		::execv(argv[0], argv.data());
		::_exit(127);
	}
	wr.reset();	// the child holds the only write end now
	RunResult r;
	char buf[4096];
	for (;;) {
		const ssize_t n = ::read(rd.get(), buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r.output.append(buf, static_cast<std::size_t>(n));
	}
	int st = 0;
	while (::waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return r;
}

bool contains(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

// The fields of a consistency-point header a test chooses.
struct Cp {
	std::uint32_t node = 0;
	std::uint64_t update = 1;
	std::uint64_t cp_seq = 0;
	std::uint64_t cp_count = 0;
	std::uint32_t jstate = TWINFS_CP_JOURNAL_EMPTY;
	std::uint64_t jseq = 0;
	std::uint32_t jblocks = 0;
	std::uint32_t jdesc_blocks = 0;
	std::uint32_t jdesc_crc = 0;
};

// A file system made by mkfs.twinfs in a temporary directory, open for
// writing, with helpers to write node areas the way the kernel does.
class TestFs {
public:
	explicit TestFs(std::vector<std::string> mkfs_args = {},
			std::string size = "4096")
		: path_(dir_.path() / "fs.img")
	{
		mkfs_args.insert(mkfs_args.begin(), {"-q", "-f"});
		mkfs_args.push_back(path_.string());
		mkfs_args.push_back(size);
		const RunResult r = run(tool("mkfs.twinfs"), mkfs_args);
		if (r.status != 0)
			throw std::runtime_error("mkfs.twinfs failed: " + r.output);
		img_.emplace(path_.string(), Image::Mode::ReadWrite);
		Block b;
		img_->read_block(0, b);
		std::memcpy(&sb_, b.data(), sizeof(sb_));
		const char *why = nullptr;
		if (twinfs_super_check(&sb_, img_->size_blocks(), &g_, &why))
			throw std::runtime_error(std::string("new superblock: ") + why);
	}

	std::string path() const { return path_.string(); }
	Image &img() { return *img_; }
	const twinfs_super &sb() const { return sb_; }
	const twinfs_geometry &g() const { return g_; }
	std::uint64_t area(std::uint32_t node) const
	{
		return g_.node_area_start + std::uint64_t(node) * g_.node_area_blocks;
	}

	Block read(std::uint64_t blk)
	{
		Block b;
		img_->read_block(blk, b);
		return b;
	}
	void write(std::uint64_t blk, const Block &b) { img_->write_block(blk, b); }

	// A valid header block with c's fields.
	Block header(const Cp &c) const
	{
		Block b;
		auto *h = b.as<twinfs_cp_header>();
		h->c_magic = cpu_to_le32(TWINFS_CP_MAGIC);
		h->c_version = cpu_to_le32(TWINFS_FORMAT_VERSION);
		std::memcpy(h->c_uuid, sb_.s_uuid, sizeof(h->c_uuid));
		h->c_node_id = cpu_to_le32(c.node);
		h->c_jstate = cpu_to_le32(c.jstate);
		h->c_update = cpu_to_le64(c.update);
		h->c_cp_seq = cpu_to_le64(c.cp_seq);
		h->c_cp_count = cpu_to_le64(c.cp_count);
		h->c_jseq = cpu_to_le64(c.jseq);
		h->c_jblocks = cpu_to_le32(c.jblocks);
		h->c_jdesc_blocks = cpu_to_le32(c.jdesc_blocks);
		h->c_jdesc_crc = cpu_to_le32(c.jdesc_crc);
		twinfs_csum_set(h, sizeof(*h), offsetof(twinfs_cp_header, c_checksum));
		return b;
	}
	// Writes header c into copy c.update % 2 of its node's area.
	void write_header(const Cp &c)
	{
		write(area(c.node) + c.update % TWINFS_CP_HDR_BLOCKS, header(c));
	}

	// What a consistency point leaves after it committed its journal and
	// before it wrote the blocks home: the previous header (EMPTY, update
	// c.update - 1) in one copy, c (COMMITTED, with the journal's size and
	// descriptor crc filled in) in the other, and the journal.  Returns c
	// as written.
	Cp commit_journal(Cp c, const std::vector<std::pair<std::uint64_t, Block>> &blocks)
	{
		const auto n = static_cast<std::uint32_t>(blocks.size());
		const std::uint32_t ndesc =
			(n + TWINFS_CP_JENTS_PER_BLOCK - 1) / TWINFS_CP_JENTS_PER_BLOCK;
		std::vector<Block> desc(ndesc);
		for (std::uint32_t j = 0; j < n; j++) {
			auto &e = desc[j / TWINFS_CP_JENTS_PER_BLOCK]
					  .as<twinfs_cp_jent>()[j % TWINFS_CP_JENTS_PER_BLOCK];
			e.j_home = cpu_to_le64(blocks[j].first);
			e.j_crc = cpu_to_le32(twinfs::crc32c(blocks[j].second.data(),
							     twinfs::kBlockSize));
		}
		const std::uint64_t start = area(c.node) + TWINFS_CP_HDR_BLOCKS;
		img_->write_blocks(start, desc);
		for (std::uint32_t j = 0; j < n; j++)
			write(start + ndesc + j, blocks[j].second);

		write_header({.node = c.node, .update = c.update - 1, .cp_seq = c.cp_seq,
			      .cp_count = c.cp_count});
		c.jstate = TWINFS_CP_JOURNAL_COMMITTED;
		c.jblocks = n;
		c.jdesc_blocks = ndesc;
		c.jdesc_crc = twinfs::crc32c(desc.data(), desc.size() * twinfs::kBlockSize);
		write_header(c);
		return c;
	}

	// The block of the root inode and the inode itself.
	std::uint64_t root_block() const
	{
		return twinfs_ino_block(&g_, TWINFS_ROOT_INO, nullptr);
	}
	// Block blk with the root inode's link count set to nlink (checksum
	// recomputed): a consistent inode the rest of the file system
	// contradicts.
	Block with_root_nlink(std::uint32_t nlink)
	{
		std::uint32_t off;
		const std::uint64_t blk = twinfs_ino_block(&g_, TWINFS_ROOT_INO, &off);
		Block b = read(blk);
		auto *in = reinterpret_cast<twinfs_inode *>(b.data() + off);
		in->i_nlink = cpu_to_le32(nlink);
		twinfs_csum_set(in, sizeof(*in), offsetof(twinfs_inode, i_checksum));
		return b;
	}

	RunResult fsck(std::vector<std::string> args = {})
	{
		args.push_back(path());
		return run(tool("fsck.twinfs"), args);
	}

private:
	TempDir dir_;
	fs::path path_;
	std::optional<Image> img_;
	twinfs_super sb_{};
	twinfs_geometry g_{};
};

std::uint32_t node_area_of(TestFs &t) { return le(t.sb().s_node_area_blocks); }

} // namespace

/* ---------------------------------------------------------------- */
/* mkfs.twinfs: node area size                                      */

TEST_CASE("mkfs: the default node area scales with the file system", "[tools][mkfs]")
{
	struct Case {
		const char *size;
		std::vector<std::string> args;
		std::uint32_t want;
	};
	const std::vector<Case> cases = {
		{"4096", {}, 256},		// 16 MiB / 32 = 128: the minimum
		{"64M", {}, 512},		// 16384 / (16 * 2)
		{"64M", {"-N", "4"}, 256},	// 16384 / 64
		{"64M", {"-N", "1"}, 1024},	// 16384 / 16
		{"1G", {}, 8192},		// 262144 / 32: the maximum
		{"2G", {}, 8192},		// clamped
		{"64M", {"--node-area-blocks", "64"}, 64},	// explicit minimum
		{"64M", {"--node-area-blocks", "3000"}, 3000},	// explicit
	};
	for (const auto &c : cases) {
		std::string what = std::string("size ") + c.size;
		for (const auto &a : c.args)
			what += " " + a;
		INFO(what);
		TestFs t(c.args, c.size);
		CHECK(node_area_of(t) == c.want);
		CHECK(t.g().first_ag_block == 2 + std::uint64_t(t.g().max_nodes) * c.want);
		// Zeroed areas: no consistency point yet, and fsck agrees.
		CHECK(t.read(t.area(0)).is_zero());
		CHECK(t.read(t.area(t.g().max_nodes - 1) + 1).is_zero());
		const RunResult r = t.fsck();
		CHECK(r.status == 0);
	}
}

TEST_CASE("mkfs: --node-area-blocks below 64 is refused", "[tools][mkfs]")
{
	TempDir tmp("twinfs-tools");
	const RunResult r = run(tool("mkfs.twinfs"),
				{"-q", "--node-area-blocks", "63",
				 (tmp.path() / "x.img").string(), "64M"});
	CHECK(r.status == 1);
	CHECK(contains(r.output, "invalid --node-area-blocks 63: must be at least 64"));
	CHECK_FALSE(fs::exists(tmp.path() / "x.img"));
	const RunResult help = run(tool("mkfs.twinfs"), {"--help"});
	CHECK(contains(help.output, "blocks / (16 * max_nodes), clamped to 256..8192"));
}

TEST_CASE("mkfs zeroes block 1; fsck leaves twinfsd's disk heartbeat there alone",
	  "[tools][mkfs][fsck][heartbeat]")
{
	TestFs t;
	CHECK(t.read(TWINFS_HEARTBEAT_BLOCK).is_zero());
	// Two nodes' sectors, as twinfsd writes them, and junk in a third.
	Block b;
	for (std::uint32_t slot : {0u, 1u}) {
		twinfs::HeartbeatRecord r;
		r.slot = slot;
		r.node_id = slot + 1;
		r.counter = 42;
		const auto s = twinfs::encode_heartbeat(r);
		std::memcpy(b.data() + slot * TWINFS_HEARTBEAT_SECTOR, s.data(), s.size());
	}
	std::memset(b.data() + 2 * TWINFS_HEARTBEAT_SECTOR, 0xa5, TWINFS_HEARTBEAT_SECTOR);
	t.write(TWINFS_HEARTBEAT_BLOCK, b);
	const RunResult r = t.fsck({"-v"});
	CHECK(r.status == 0);
	CHECK(contains(r.output, "0 problems"));
}

/* ---------------------------------------------------------------- */
/* fsck.twinfs: consistency-point areas                              */

TEST_CASE("fsck: zeroed node areas are fresh", "[tools][fsck][cp]")
{
	TestFs t;
	const RunResult r = t.fsck({"-v"});
	CHECK(r.status == 0);
	CHECK(contains(r.output, "node 0: area at blocks 2-257: cp_seq 0, cp_count 0, "
				 "journal empty (header blocks zero: no consistency point yet)"));
	CHECK(contains(r.output, "node 1: area at blocks 258-513: cp_seq 0"));
	CHECK_FALSE(contains(r.output, "warning"));

	// A first consistency point that crashed before its header leaves a
	// journal behind zero headers: still no consistency point.
	Block junk;
	std::memset(junk.data(), 0xa5, twinfs::kBlockSize);
	t.write(t.area(0) + 2, junk);
	t.write(t.area(0) + 3, junk);
	const RunResult r2 = t.fsck({"-v"});
	CHECK(r2.status == 0);
	CHECK(contains(r2.output, "node 0: area at blocks 2-257: cp_seq 0"));
}

TEST_CASE("fsck: valid empty consistency point headers", "[tools][fsck][cp]")
{
	TestFs t;
	t.write_header({.node = 0, .update = 4, .cp_seq = 90, .cp_count = 3});
	t.write_header({.node = 0, .update = 5, .cp_seq = 100, .cp_count = 4});
	// Node 1: only its first header write happened (copy 0 still zero).
	t.write_header({.node = 1, .update = 1, .cp_seq = 7, .cp_count = 1});

	const RunResult r = t.fsck({"-v"});
	CHECK(r.status == 0);
	CHECK(contains(r.output, "node 0: area at blocks 2-257: cp_seq 100, cp_count 4, "
				 "journal empty, header copy 1 (update 5)"));
	CHECK(contains(r.output, "node 1: area at blocks 258-513: cp_seq 7, cp_count 1, "
				 "journal empty, header copy 1 (update 1)"));
	CHECK_FALSE(contains(r.output, "warning"));

	const RunResult j = t.fsck({"-j"});
	CHECK(j.status == 0);
	CHECK(contains(j.output, "\"nodes\": [{\"node\": 0, \"area\": \"valid\", \"cp_seq\": 100, "
				 "\"cp_count\": 4, \"journal\": \"empty\", \"journal_blocks\": 0}, "
				 "{\"node\": 1, \"area\": \"valid\", \"cp_seq\": 7"));

	// The library view of the same area.
	const twinfs::CpArea a = twinfs::read_cp_area(t.img(), t.sb(), t.g(), 0);
	CHECK_FALSE(a.fresh);
	REQUIRE(a.valid());
	CHECK(a.current == 1);
	CHECK(le(a.header().c_cp_seq) == 100);
	CHECK_FALSE(a.committed());
	CHECK(a.warnings.empty());
}

TEST_CASE("fsck: one corrupt header copy, the other valid", "[tools][fsck][cp]")
{
	TestFs t;
	const std::uint64_t a0 = t.area(1);
	t.write_header({.node = 1, .update = 6, .cp_seq = 50, .cp_count = 5});
	Block bad = t.header({.node = 1, .update = 7, .cp_seq = 60, .cp_count = 6});
	std::string why;

	SECTION("torn write: checksum mismatch") {
		bad.as<twinfs_cp_header>()->c_cp_seq = cpu_to_le64(61);
		why = "checksum mismatch";
	}
	SECTION("bad magic") {
		bad.as<twinfs_cp_header>()->c_magic = cpu_to_le32(0x12345678);
		why = "bad magic 0x12345678";
	}
	SECTION("another file system's UUID") {
		bad.as<twinfs_cp_header>()->c_uuid[3] ^= 1;
		twinfs_csum_set(bad.data(), twinfs::kBlockSize,
				offsetof(twinfs_cp_header, c_checksum));
		why = "UUID differs";
	}
	SECTION("another node's header") {
		bad.as<twinfs_cp_header>()->c_node_id = cpu_to_le32(0);
		twinfs_csum_set(bad.data(), twinfs::kBlockSize,
				offsetof(twinfs_cp_header, c_checksum));
		why = "node id 0, expected 1";
	}
	SECTION("unsupported version") {
		bad.as<twinfs_cp_header>()->c_version = cpu_to_le32(2);
		twinfs_csum_set(bad.data(), twinfs::kBlockSize,
				offsetof(twinfs_cp_header, c_checksum));
		why = "version 2, expected 1";
	}
	t.write(a0 + 1, bad);

	const RunResult r = t.fsck({"-v"});
	INFO(r.output);
	CHECK(r.status == 0);
	CHECK(contains(r.output, "warning: node 1: consistency point header copy 1 (block " +
					 std::to_string(a0 + 1) + ") is invalid: " + why));
	CHECK(contains(r.output, "using copy 0 (update 6)"));
	CHECK(contains(r.output, "node 1: area at blocks 258-513: cp_seq 50, cp_count 5, "
				 "journal empty, header copy 0 (update 6)"));
	CHECK(contains(r.output, "0 problems: clean"));
}

TEST_CASE("fsck: both header copies corrupt", "[tools][fsck][cp]")
{
	TestFs t;
	const std::uint64_t a0 = t.area(0);
	Block c0 = t.header({.node = 0, .update = 2, .cp_seq = 9});
	c0.data()[100] ^= 0x40;	// in c_pad: the checksum catches it

	SECTION("both damaged") {
		Block c1 = t.header({.node = 0, .update = 3, .cp_seq = 10});
		c1.as<twinfs_cp_header>()->c_magic = 0;
		t.write(a0, c0);
		t.write(a0 + 1, c1);
		const RunResult r = t.fsck();
		INFO(r.output);
		CHECK(r.status == 4);
		CHECK(contains(r.output, "node 0: no valid consistency point header (copy at "
					 "block 2: checksum mismatch"));
		CHECK(contains(r.output, "copy at block 3: bad magic 0x00000000"));
	}
	SECTION("one damaged, the other zero") {
		t.write(a0, c0);
		const RunResult r = t.fsck();
		INFO(r.output);
		CHECK(r.status == 4);
		CHECK(contains(r.output, "node 0: no valid consistency point header (copy at "
					 "block 2: checksum mismatch"));
		CHECK(contains(r.output, "copy at block 3: all zeros (never written)"));
	}
	const twinfs::CpArea a = twinfs::read_cp_area(t.img(), t.sb(), t.g(), 0);
	CHECK_FALSE(a.fresh);
	CHECK_FALSE(a.valid());
}

TEST_CASE("fsck: the higher valid update wins and copies are checked against each other",
	  "[tools][fsck][cp]")
{
	TestFs t;
	// Update 9 in copy 0 (it belongs in copy 1), update 8 in copy 1.
	Cp c9{.node = 0, .update = 9, .cp_seq = 80, .cp_count = 8};
	t.write(t.area(0), t.header(c9));
	t.write(t.area(0) + 1, t.header({.node = 0, .update = 8, .cp_seq = 85, .cp_count = 7}));
	const twinfs::CpArea a = twinfs::read_cp_area(t.img(), t.sb(), t.g(), 0);
	REQUIRE(a.valid());
	CHECK(a.current == 0);
	REQUIRE(a.warnings.size() == 3);
	CHECK(contains(a.warnings[0], "header copy 0 (block 2) holds update 9, which belongs in copy 1"));
	CHECK(contains(a.warnings[1], "header copy 1 (block 3) holds update 8, which belongs in copy 0"));
	CHECK(contains(a.warnings[2], "header copy 1 (update 8, cp_seq 85, cp_count 7) is ahead of "
				      "the newer copy 0"));
	const RunResult r = t.fsck();
	CHECK(r.status == 0);	// warnings only
	CHECK(contains(r.output, "warning: node 0: consistency point header copy 0"));
}

TEST_CASE("fsck: a committed journal is checked as applied", "[tools][fsck][cp]")
{
	TestFs t({"--node-area-blocks", "512"});
	const std::uint64_t root = t.root_block();
	const Block good = t.read(root);

	SECTION("the journal repairs what is not yet home") {
		// On disk the root inode block is half written (bad checksum);
		// the journal holds its new image, which mount writes home.
		Block torn = good;
		torn.data()[TWINFS_INODE_SIZE + 40] ^= 0xff;	// root inode's i_mtime
		t.write(root, torn);
		REQUIRE(t.fsck().status == 4);

		t.commit_journal({.node = 1, .update = 12, .cp_seq = 40, .cp_count = 11,
				  .jseq = 42},
				 {{root, good}});
		const RunResult r = t.fsck({"-v"});
		INFO(r.output);
		CHECK(r.status == 0);
		CHECK(contains(r.output, "fsck.twinfs: " + t.path() + ": node 1: consistency point "
					 "journal of 1 blocks (seq 42) not yet written home; checking "
					 "with it applied"));
		CHECK(contains(r.output, "node 1: area at blocks 514-1025: cp_seq 40, cp_count 11, "
					 "journal committed (seq 42, 1 blocks), header copy 0 (update 12)"));
		CHECK(contains(r.output, "0 problems: clean"));
		// fsck never writes: the home block is still the torn one.
		CHECK(std::memcmp(t.read(root).data(), torn.data(), twinfs::kBlockSize) == 0);

		const RunResult j = t.fsck({"-j"});
		CHECK(j.status == 0);
		CHECK(contains(j.output, "\"journals_applied\": 1"));
		CHECK(contains(j.output, "{\"node\": 1, \"area\": \"valid\", \"cp_seq\": 40, "
					 "\"cp_count\": 11, \"journal\": \"committed\", "
					 "\"journal_blocks\": 1}"));
		CHECK(contains(j.output, "info: node 1: consistency point journal of 1 blocks"));
	}
	SECTION("the journal's images are what fsck reads, across descriptor blocks") {
		// 300 entries need two descriptor blocks.  299 images of free
		// data blocks (zeros: harmless), then the root inode's block
		// with a link count the directory tree contradicts: only an
		// applied journal makes fsck see it.
		std::vector<std::pair<std::uint64_t, Block>> blocks;
		const std::uint64_t free0 = t.g().blocks - 400;
		for (std::uint64_t i = 0; i < 299; i++)
			blocks.emplace_back(free0 + i, Block{});
		blocks.emplace_back(root, t.with_root_nlink(5));
		const Cp c = t.commit_journal({.node = 0, .update = 3, .cp_seq = 10,
					       .cp_count = 1, .jseq = 25},
					      blocks);
		REQUIRE(c.jdesc_blocks == 2);
		const RunResult r = t.fsck();
		INFO(r.output);
		CHECK(r.status == 4);
		CHECK(contains(r.output, "node 0: consistency point journal of 300 blocks (seq 25) "
					 "not yet written home; checking with it applied"));
		CHECK(contains(r.output, "inode 1: directory link count is 5, expected 2"));
		CHECK(std::memcmp(t.read(root).data(), good.data(), twinfs::kBlockSize) == 0);

		// Once written home (header EMPTY, cp_seq = jseq), the same
		// journal blocks are not looked at any more.
		t.write_header({.node = 0, .update = 4, .cp_seq = 25, .cp_count = 2});
		const RunResult after = t.fsck({"-v"});
		CHECK(after.status == 0);
		CHECK(contains(after.output, "node 0: area at blocks 2-513: cp_seq 25, cp_count 2, "
					     "journal empty, header copy 0 (update 4)"));
	}
	SECTION("two nodes journal the same block: the later node's image is used") {
		t.commit_journal({.node = 0, .update = 2, .jseq = 5}, {{root, t.with_root_nlink(7)}});
		t.commit_journal({.node = 1, .update = 2, .jseq = 6}, {{root, good}});
		const RunResult r = t.fsck();
		INFO(r.output);
		CHECK(r.status == 0);
		CHECK(contains(r.output, "warning: block " + std::to_string(root) +
					 " in the consistency point journals of both node 0 and "
					 "node 1; checking with node 1's images"));
	}
}

TEST_CASE("fsck: a corrupt committed journal is a problem", "[tools][fsck][cp]")
{
	TestFs t;	// node areas of 256 blocks
	const std::uint64_t root = t.root_block();
	const std::uint64_t a0 = t.area(0);
	// A journal whose image would make fsck fail: it must not be applied.
	Cp c = t.commit_journal({.node = 0, .update = 8, .cp_seq = 70, .cp_count = 7,
				 .jseq = 77},
				{{root, t.with_root_nlink(9)}});
	std::string why;

	SECTION("an image fails its checksum") {
		Block img = t.read(a0 + 3);
		img.data()[4000] ^= 1;
		t.write(a0 + 3, img);
		why = "entry 0 (home block " + std::to_string(root) + ", image at block " +
		      std::to_string(a0 + 3) + "): the image fails its checksum (j_crc ";
	}
	SECTION("a descriptor block fails the descriptor checksum") {
		Block d = t.read(a0 + 2);
		d.as<twinfs_cp_jent>()[0].j_home = cpu_to_le64(root + 1);
		t.write(a0 + 2, d);
		why = "descriptor blocks (block 4) fail their checksum (c_jdesc_crc ";
	}
	SECTION("a home block in the node areas") {
		c = t.commit_journal(c, {{t.area(1) + 5, Block{}}});
		why = "entry 0 (home block " + std::to_string(t.area(1) + 5) +
		      ", image at block " + std::to_string(a0 + 3) + "): home is in the node areas";
	}
	SECTION("a home block beyond the file system") {
		c = t.commit_journal(c, {{t.g().blocks, Block{}}});
		why = "entry 0 (home block " + std::to_string(t.g().blocks) + ", image at block " +
		      std::to_string(a0 + 3) + "): home is beyond the file system's " +
		      std::to_string(t.g().blocks) + " blocks";
	}
	SECTION("a home block outside the allocation groups") {
		c = t.commit_journal(c, {{root, t.read(root)}, {0, t.read(0)}});
		why = "entry 1 (home block 0, image at block " + std::to_string(a0 + 4) +
		      "): home is the superblock or the reserved block 1, not in an allocation group";
	}
	SECTION("more images than the descriptors describe") {
		c.jblocks = TWINFS_CP_JENTS_PER_BLOCK + 1;
		t.write_header(c);
		why = "257 block images (c_jblocks) take 2 descriptor blocks of 256 entries, "
		      "not 1 (c_jdesc_blocks)";
	}
	SECTION("a journal larger than the node area") {
		// 254 blocks after the headers: 253 images and 1 descriptor.
		REQUIRE(twinfs::cp_journal_capacity(256) == 253);
		c.jblocks = 254;
		t.write_header(c);
		why = "254 block images (c_jblocks) exceed the 253 a node area of 256 blocks can hold";
	}

	const RunResult r = t.fsck();
	INFO(r.output);
	CHECK(r.status == 4);
	CHECK(contains(r.output, "node 0: committed consistency point journal (seq " +
					 std::to_string(c.jseq) + ", " + std::to_string(c.jblocks) +
					 " blocks) is corrupt: " + why));
	CHECK(contains(r.output, "node 0: the file system is checked without that journal"));
	CHECK_FALSE(contains(r.output, "checking with it applied"));
	CHECK_FALSE(contains(r.output, "link count is 9"));

	const twinfs::CpArea a = twinfs::read_cp_area(t.img(), t.sb(), t.g(), 0);
	CHECK(a.committed());
	CHECK_FALSE(a.journal_usable());
	CHECK(a.journal.empty());
}

TEST_CASE("fsck: a journal seq below cp_seq is a problem, the journal still applies",
	  "[tools][fsck][cp]")
{
	TestFs t;
	t.commit_journal({.node = 0, .update = 8, .cp_seq = 70, .cp_count = 7, .jseq = 69},
			 {{t.root_block(), t.read(t.root_block())}});
	const RunResult r = t.fsck();
	INFO(r.output);
	CHECK(r.status == 4);
	CHECK(contains(r.output, "node 0: committed consistency point journal seq 69 (c_jseq) "
				 "is below the last consistency point's 70 (c_cp_seq)"));
	CHECK(contains(r.output, "node 0: consistency point journal of 1 blocks (seq 69) not "
				 "yet written home; checking with it applied"));
	CHECK(contains(r.output, "1 problem found"));
}

/* ---------------------------------------------------------------- */
/* fsck.twinfs: orphan inodes                                        */

TEST_CASE("fsck: an unnamed inode with link count 0 is an orphan, not a problem",
	  "[tools][fsck]")
{
	TestFs t;
	const twinfs_geometry &g = t.g();
	const std::uint64_t ag0 = twinfs_ag_start(&g, 0);
	const std::uint32_t ino = 2;

	// Inode 2: a regular file of one data block, unlinked, not freed.
	Block bbm = t.read(ag0), ibm = t.read(ag0 + 1);
	const std::uint32_t bit = twinfs_bit_find_zero(bbm.data(), twinfs_ag_size(&g, 0),
						       twinfs_ag_meta_blocks(&g));
	twinfs_bit_set(bbm.data(), bit);
	twinfs_bit_set(ibm.data(), ino);
	t.write(ag0, bbm);
	t.write(ag0 + 1, ibm);
	std::uint32_t off;
	const std::uint64_t iblk = twinfs_ino_block(&g, ino, &off);
	Block ib = t.read(iblk);
	auto *in = reinterpret_cast<twinfs_inode *>(ib.data() + off);
	in->i_mode = cpu_to_le16(S_IFREG | 0644);
	in->i_nlink = 0;
	in->i_size = cpu_to_le64(twinfs::kBlockSize);
	in->i_blocks = cpu_to_le64(1);
	in->i_ext_count = cpu_to_le16(1);
	in->i_ext[0].e_lblk = 0;
	in->i_ext[0].e_len = cpu_to_le32(1);
	in->i_ext[0].e_pblk = cpu_to_le64(ag0 + bit);
	twinfs_csum_set(in, sizeof(*in), offsetof(twinfs_inode, i_checksum));
	t.write(iblk, ib);

	const RunResult r = t.fsck();
	INFO(r.output);
	CHECK(r.status == 0);
	CHECK(contains(r.output, "fsck.twinfs: " + t.path() +
					 ": orphan inode 2 (freed at the next mount)"));
	CHECK(contains(r.output, "2/8192 inodes"));
	CHECK(contains(r.output, "0 problems: clean"));
	const RunResult j = t.fsck({"-j"});
	CHECK(j.status == 0);
	CHECK(contains(j.output, "\"orphans\": 1"));

	// Its block is still owned: freeing it in the bitmap is a problem.
	twinfs_bit_clear(bbm.data(), bit);
	t.write(ag0, bbm);
	const RunResult freed = t.fsck();
	CHECK(freed.status == 4);
	CHECK(contains(freed.output, "marked free in group 0's block bitmap"));
}
