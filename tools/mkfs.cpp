// SPDX-License-Identifier: GPL-2.0
/*
 * mkfs.twinfs: creates a twinfs file system on a block device or an image
 * file.  The layout is described in Documentation/on-disk-format.md; all
 * geometry, checksums, bitmap and directory-leaf operations come from the
 * portable core (libtwinfscore) so mkfs, fsck and the kernel agree.
 *
 * Order of writes: the old superblock is invalidated first, then the
 * reserved block, node areas and inode tables are zeroed, then directory,
 * extent-leaf, inode and bitmap blocks are written, fsync, and only then the
 * new superblock, fsync.  A crash leaves either no twinfs or a complete one.
 */
#include "image.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <getopt.h>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

using namespace twinfs;

namespace {

constexpr const char *kProg = "mkfs.twinfs";

// Node areas hold the consistency-point headers and journal; by default
// they scale with the file system: blocks / (16 * max_nodes), so all of
// them together take about a sixteenth, within these bounds.
constexpr std::uint32_t kNodeAreaDefaultMin = 256;	// 1 MiB
constexpr std::uint32_t kNodeAreaDefaultMax = 8192;	// 32 MiB
constexpr std::uint32_t kNodeAreaMin = 64;		// --node-area-blocks

std::uint32_t default_node_area_blocks(std::uint64_t blocks,
				       std::uint32_t max_nodes)
{
	return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(
		blocks / (16ull * max_nodes), kNodeAreaDefaultMin,
		kNodeAreaDefaultMax));
}

struct Options {
	bool force = false;
	bool quiet = false;
	bool populate_test = false;
	std::string label;
	std::uint32_t max_nodes = 2;
	std::optional<std::array<std::uint8_t, 16>> uuid;
	std::optional<std::uint32_t> node_area_blocks;	// default: scaled
	std::uint32_t ag_blocks = 32768;
	std::uint32_t inodes_per_ag = 8192;
	std::string target;
	std::optional<std::string> size_arg;
};

void usage(std::ostream &os)
{
	os << "usage: " << kProg
	   << " [-f] [-q] [-L label] [-N max_nodes] [-U uuid]\n"
	      "       [--node-area-blocks N] [--ag-blocks N] "
	      "[--inodes-per-ag N]\n"
	      "       <device-or-image> [size]\n"
	      "\n"
	      "  -f                  overwrite an existing file system\n"
	      "  -q                  print nothing on success\n"
	      "  -L label            volume label, at most 31 bytes\n"
	      "  -N max_nodes        cluster nodes that may mount it "
	      "(1..8, default 2)\n"
	      "  -U uuid             file system UUID (default: random)\n"
	      "  --node-area-blocks  blocks of each node's area (consistency "
	      "point\n"
	      "                      headers and journal), at least "
	      << kNodeAreaMin << "; default\n"
	      "                      blocks / (16 * max_nodes), clamped to "
	      << kNodeAreaDefaultMin << ".." << kNodeAreaDefaultMax << "\n"
	      "  --ag-blocks         blocks per allocation group, a multiple "
	      "of 8\n"
	      "                      up to 32768 (default 32768)\n"
	      "  --inodes-per-ag     inodes per group, a multiple of 16 up "
	      "to 32768\n"
	      "                      (default 8192)\n"
	      "  size                blocks of 4096 bytes, or bytes with a "
	      "K, M, G or T\n"
	      "                      suffix; creates or extends an image "
	      "file\n";
}

std::uint32_t parse_u32(const std::string &s, const char *what)
{
	std::uint64_t v = parse_u64(s, what);

	if (v > 0xffffffffull)
		throw Error(str("invalid ", what, " '", s, "': too large"));
	return static_cast<std::uint32_t>(v);
}

// "1234" blocks, or "64M" / "1G" bytes.
std::uint64_t parse_size_blocks(const std::string &s)
{
	static const std::string_view suffixes = "KMGT";
	if (s.empty())
		throw Error("invalid size '': empty");
	char last = static_cast<char>(std::toupper(
		static_cast<unsigned char>(s.back())));
	auto pos = suffixes.find(last);
	if (pos == std::string_view::npos)
		return parse_u64(s, "size (blocks)");
	std::uint64_t n = parse_u64(s.substr(0, s.size() - 1), "size");
	unsigned shift = 10 * static_cast<unsigned>(pos + 1);
	if (n > (~0ull >> shift))
		throw Error(str("invalid size '", s, "': too large"));
	return (n << shift) / kBlockSize;
}

std::array<std::uint8_t, 16> parse_uuid(const std::string &s)
{
	std::array<std::uint8_t, 16> u{};
	std::size_t nib = 0;

	for (char c : s) {
		if (c == '-')
			continue;
		int v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			throw Error(str("invalid UUID '", s, "': bad character '",
					c, "'"));
		if (nib >= 32)
			throw Error(str("invalid UUID '", s,
					"': more than 32 hex digits"));
		u[nib / 2] = static_cast<std::uint8_t>(u[nib / 2] |
						       (v << (nib % 2 ? 0 : 4)));
		nib++;
	}
	if (nib != 32)
		throw Error(str("invalid UUID '", s,
				"': want 32 hex digits, got ", nib));
	return u;
}

std::string uuid_string(const std::uint8_t *u)
{
	char buf[40];
	std::snprintf(buf, sizeof(buf),
		      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		      "%02x%02x%02x%02x%02x%02x",
		      u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8],
		      u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	return buf;
}

void random_bytes(void *buf, std::size_t len)
{
	auto *p = static_cast<std::uint8_t *>(buf);
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			throw_errno("getrandom failed", errno);
		p += n;
		len -= static_cast<std::size_t>(n);
	}
}

Options parse_args(int argc, char **argv)
{
	enum { OPT_NODE_AREA = 256, OPT_AG_BLOCKS, OPT_INODES, OPT_POPULATE };
	static const struct option longopts[] = {
		{"force", no_argument, nullptr, 'f'},
		{"quiet", no_argument, nullptr, 'q'},
		{"label", required_argument, nullptr, 'L'},
		{"max-nodes", required_argument, nullptr, 'N'},
		{"uuid", required_argument, nullptr, 'U'},
		{"node-area-blocks", required_argument, nullptr, OPT_NODE_AREA},
		{"ag-blocks", required_argument, nullptr, OPT_AG_BLOCKS},
		{"inodes-per-ag", required_argument, nullptr, OPT_INODES},
		/* Test aid, deliberately not in the usage text. */
		{"populate-test", no_argument, nullptr, OPT_POPULATE},
		{"help", no_argument, nullptr, 'h'},
		{nullptr, 0, nullptr, 0},
	};
	Options o;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fqL:N:U:h", longopts,
				nullptr)) != -1) {
		switch (c) {
		case 'f': o.force = true; break;
		case 'q': o.quiet = true; break;
		case 'L':
			o.label = optarg;
			if (o.label.size() > 31)
				throw Error(str("label '", o.label, "' is ",
						o.label.size(),
						" bytes, at most 31 allowed"));
			break;
		case 'N':
			o.max_nodes = parse_u32(optarg, "node count (-N)");
			if (o.max_nodes < 1 || o.max_nodes > TWINFS_MAX_NODES)
				throw Error(str("invalid node count (-N) ",
						o.max_nodes, ": must be 1..",
						TWINFS_MAX_NODES));
			break;
		case 'U': o.uuid = parse_uuid(optarg); break;
		case OPT_NODE_AREA:
			o.node_area_blocks = parse_u32(optarg,
						       "--node-area-blocks");
			if (*o.node_area_blocks < kNodeAreaMin)
				throw Error(str("invalid --node-area-blocks ",
						*o.node_area_blocks,
						": must be at least ",
						kNodeAreaMin));
			break;
		case OPT_AG_BLOCKS:
			o.ag_blocks = parse_u32(optarg, "--ag-blocks");
			if (!o.ag_blocks || o.ag_blocks % 8 ||
			    o.ag_blocks > TWINFS_AG_BLOCKS_MAX)
				throw Error(str("invalid --ag-blocks ",
						o.ag_blocks,
						": must be a non-zero multiple"
						" of 8 up to ",
						TWINFS_AG_BLOCKS_MAX));
			break;
		case OPT_INODES:
			o.inodes_per_ag = parse_u32(optarg, "--inodes-per-ag");
			if (!o.inodes_per_ag ||
			    o.inodes_per_ag % TWINFS_INODES_PER_BLOCK ||
			    o.inodes_per_ag > TWINFS_AG_INODES_MAX)
				throw Error(str("invalid --inodes-per-ag ",
						o.inodes_per_ag,
						": must be a non-zero multiple"
						" of ", TWINFS_INODES_PER_BLOCK,
						" up to ",
						TWINFS_AG_INODES_MAX));
			break;
		case OPT_POPULATE: o.populate_test = true; break;
		case 'h': usage(std::cout); std::exit(0);
		case ':':
			throw Error(str("option ",
					optopt ? str("-", char(optopt))
					       : std::string(argv[optind - 1]),
					" needs an argument"));
		default:
			throw Error(str("unknown option ",
					optopt ? str("-", char(optopt))
					       : std::string(argv[optind - 1]),
					" (see --help)"));
		}
	}
	if (optind >= argc)
		throw Error("no device or image given (see --help)");
	o.target = argv[optind++];
	if (optind < argc)
		o.size_arg = argv[optind++];
	if (optind < argc)
		throw Error(str("unexpected argument '", argv[optind], "'"));
	return o;
}

// Names the file system or other signature found at the start of img.
std::optional<std::string> detect_signature(const Image &img)
{
	std::vector<std::uint8_t> buf(65536 + 128, 0);
	std::size_t have = static_cast<std::size_t>(
		std::min<std::uint64_t>(img.size_bytes(), buf.size()));

	if (have == 0)
		return std::nullopt;
	img.pread_bytes(buf.data(), have, 0);
	auto at = [&](std::size_t off, std::string_view magic) {
		return off + magic.size() <= have &&
		       std::memcmp(buf.data() + off, magic.data(),
				   magic.size()) == 0;
	};
	std::uint32_t m32;
	std::memcpy(&m32, buf.data(), 4);
	if (le32_to_cpu(m32) == TWINFS_MAGIC)
		return "a twinfs file system";
	if (at(0, "XFSB"))
		return "an XFS file system";
	if (at(1080, "\x53\xef"))
		return "an ext2/ext3/ext4 file system";
	if (at(65536 + 64, "_BHRfS_M"))
		return "a btrfs file system";
	if (at(4086, "SWAPSPACE2") || at(4086, "SWAP-SPACE"))
		return "Linux swap space";
	if (at(0, "LUKS\xba\xbe"))
		return "a LUKS encrypted volume";
	if (at(510, "\x55\xaa"))
		return "a partition table (MBR boot signature)";
	return std::nullopt;
}

/*
 * Builds the initial tree in memory through the portable core and writes
 * it out: block and inode bitmaps, inodes with their extent maps, and
 * directory blocks.  Used for the root directory and, under
 * --populate-test, for a small test tree.
 */
class Builder {
public:
	Builder(Image &img, const twinfs_geometry &g, std::uint32_t seed,
		std::uint64_t now)
		: img_(img), g_(g), seed_(seed), now_(now),
		  bbm_(g.ag_count), ibm_(g.ag_count)
	{
		const std::uint32_t meta = twinfs_ag_meta_blocks(&g_);
		for (std::uint32_t ag = 0; ag < g_.ag_count; ag++) {
			const std::uint32_t size = twinfs_ag_size(&g_, ag);
			for (std::uint32_t i = 0; i < meta; i++)
				twinfs_bit_set(bbm_[ag].data(), i);
			for (std::uint32_t i = size; i < kBlockSize * 8; i++)
				twinfs_bit_set(bbm_[ag].data(), i);
			for (std::uint32_t i = g_.inodes_per_ag;
			     i < kBlockSize * 8; i++)
				twinfs_bit_set(ibm_[ag].data(), i);
		}
		twinfs_bit_set(ibm_[0].data(), 0);	/* inode 0, reserved */
	}

	std::uint32_t mkroot()
	{
		std::uint32_t ino = new_inode(S_IFDIR | 0755, 0);
		if (ino != TWINFS_ROOT_INO)
			throw Error(str("internal: root got inode ", ino));
		new_dir(ino, ino);
		return ino;
	}

	std::uint32_t mkdir(std::uint32_t parent, std::string_view name,
			    std::uint32_t group)
	{
		std::uint32_t ino = new_inode(S_IFDIR | 0755, group);
		new_dir(ino, parent);
		dir_add(parent, name, ino);
		inodes_.at(parent).raw.i_nlink =
			cpu_to_le32(le(inodes_.at(parent).raw.i_nlink) + 1);
		return ino;
	}

	// A regular file holding data, written contiguously when possible.
	std::uint32_t create_file(std::uint32_t dir, std::string_view name,
				  std::string_view data)
	{
		std::uint32_t ino = new_inode(S_IFREG | 0644, group_of(dir));
		write_data(ino, 0, data);
		inodes_.at(ino).raw.i_size = cpu_to_le64(data.size());
		link(dir, name, ino);
		return ino;
	}

	std::uint32_t create_special(std::uint32_t dir, std::string_view name,
				     std::uint32_t mode, std::uint32_t rdev)
	{
		std::uint32_t ino = new_inode(mode, group_of(dir));
		inodes_.at(ino).raw.i_rdev = cpu_to_le32(rdev);
		link(dir, name, ino);
		return ino;
	}

	std::uint32_t symlink(std::uint32_t dir, std::string_view name,
			      std::string_view target)
	{
		std::uint32_t ino = new_inode(S_IFLNK | 0777, group_of(dir));
		write_data(ino, 0, target);
		inodes_.at(ino).raw.i_size = cpu_to_le64(target.size());
		link(dir, name, ino);
		return ino;
	}

	// Adds a directory entry for an existing non-directory inode.
	void link(std::uint32_t dir, std::string_view name, std::uint32_t ino)
	{
		auto &raw = inodes_.at(ino).raw;
		dir_add(dir, name, ino);
		raw.i_nlink = cpu_to_le32(le(raw.i_nlink) + 1);
	}

	// Maps file block lblk of ino to one newly allocated block holding
	// a recognisable pattern; grows i_size to cover it.
	void add_block(std::uint32_t ino, std::uint32_t lblk)
	{
		auto &in = inodes_.at(ino);
		std::uint64_t pblk = alloc_one(in.group);
		Block b;
		std::snprintf(reinterpret_cast<char *>(b.data()), 64,
			      "twinfs test inode %u block %u\n", ino, lblk);
		img_.write_block(pblk, b);
		map(ino, lblk, pblk, 1);
		std::uint64_t end = (std::uint64_t(lblk) + 1) * kBlockSize;
		if (le(in.raw.i_size) < end)
			in.raw.i_size = cpu_to_le64(end);
	}

	void set_size(std::uint32_t ino, std::uint64_t size)
	{
		inodes_.at(ino).raw.i_size = cpu_to_le64(size);
	}

	std::uint32_t group_count() const { return g_.ag_count; }

	// Writes everything but the superblock.
	void finish()
	{
		for (auto &[ino, d] : dirs_)
			flush_dir(ino, d);
		std::map<std::uint64_t, Block> itable;
		for (auto &[ino, in] : inodes_) {
			finish_extents(ino, in);
			in.raw.i_blocks = cpu_to_le64(in.blocks);
			twinfs_csum_set(&in.raw, sizeof(in.raw),
					offsetof(twinfs_inode, i_checksum));
			std::uint32_t off;
			std::uint64_t blk = twinfs_ino_block(&g_, ino, &off);
			std::memcpy(itable[blk].data() + off, &in.raw,
				    sizeof(in.raw));
		}
		for (const auto &[blk, b] : itable)
			img_.write_block(blk, b);
		for (std::uint32_t ag = 0; ag < g_.ag_count; ag++) {
			std::uint64_t start = twinfs_ag_start(&g_, ag);
			img_.write_block(start, bbm_[ag]);
			img_.write_block(start + 1, ibm_[ag]);
		}
	}

	std::uint64_t inodes_used() const { return inodes_.size(); }

private:
	struct Inode {
		twinfs_inode raw{};
		std::vector<twinfs_extent> ext;	// flattened, sorted
		std::uint64_t blocks = 0;	// i_blocks
		std::uint32_t group = 0;	// allocation goal
	};
	struct Dir {
		std::uint32_t depth = 0;
		std::uint64_t entries = 0;
		std::uint32_t next_leaf = 2;
		std::uint32_t table_blocks = 0;
		Block header;
		std::map<std::uint32_t, Block> leaves;	// by file block
		std::vector<std::uint32_t> table;	// 2^depth slots
	};

	std::uint32_t group_of(std::uint32_t ino) const
	{
		return ino / g_.inodes_per_ag;
	}

	std::uint32_t new_inode(std::uint32_t mode, std::uint32_t group)
	{
		for (std::uint32_t n = 0; n < g_.ag_count; n++) {
			std::uint32_t ag = (group + n) % g_.ag_count;
			std::uint32_t i = twinfs_bit_find_zero(
				ibm_[ag].data(), g_.inodes_per_ag, 0);
			if (i >= g_.inodes_per_ag)
				continue;
			twinfs_bit_set(ibm_[ag].data(), i);
			std::uint32_t ino = ag * g_.inodes_per_ag + i;
			Inode &in = inodes_[ino];
			in.group = ag;
			in.raw.i_mode = cpu_to_le16(static_cast<std::uint16_t>(
				mode));
			in.raw.i_nlink = cpu_to_le32(S_ISDIR(mode) ? 2 : 0);
			in.raw.i_atime = in.raw.i_mtime = in.raw.i_ctime =
				cpu_to_le64(now_);
			in.raw.i_generation = cpu_to_le32(generation_++);
			return ino;
		}
		throw Error("out of inodes while building the initial tree");
	}

	std::uint64_t alloc_one(std::uint32_t group)
	{
		for (std::uint32_t n = 0; n < g_.ag_count; n++) {
			std::uint32_t ag = (group + n) % g_.ag_count, start;
			if (!twinfs_bit_find_run(bbm_[ag].data(),
						 twinfs_ag_size(&g_, ag), 0, 1,
						 &start))
				continue;
			twinfs_bit_set(bbm_[ag].data(), start);
			return twinfs_ag_start(&g_, ag) + start;
		}
		throw Error("out of space while building the initial tree");
	}

	void map(std::uint32_t ino, std::uint32_t lblk, std::uint64_t pblk,
		 std::uint32_t len)
	{
		auto &in = inodes_.at(ino);
		const auto n = static_cast<std::uint32_t>(in.ext.size());
		in.ext.resize(n + 1);
		int r = twinfs_ext_insert(in.ext.data(), n, n + 1, lblk, len,
					  pblk);
		if (r < 0)
			throw Error(str("internal: inode ", ino, ": mapping "
					"file block ", lblk, " failed (",
					r, ")"));
		in.ext.resize(static_cast<std::size_t>(r));
		in.blocks += len;
	}

	std::uint64_t pblk_of(std::uint32_t ino, std::uint32_t lblk) const
	{
		const auto &in = inodes_.at(ino);
		twinfs_ext_map_result res;
		twinfs_ext_lookup(in.ext.data(),
				  static_cast<std::uint32_t>(in.ext.size()),
				  lblk, &res);
		if (!res.pblk)
			throw Error(str("internal: inode ", ino, " file block ",
					lblk, " is not mapped"));
		return res.pblk;
	}

	void write_data(std::uint32_t ino, std::uint32_t lblk,
			std::string_view data)
	{
		for (std::size_t off = 0; off < data.size();
		     off += kBlockSize, lblk++) {
			std::uint64_t pblk = alloc_one(inodes_.at(ino).group);
			Block b;
			std::memcpy(b.data(), data.data() + off,
				    std::min(kBlockSize, data.size() - off));
			img_.write_block(pblk, b);
			map(ino, lblk, pblk, 1);
		}
	}

	// Allocates and maps a directory block (header, leaf or table).
	void dir_block(std::uint32_t ino, std::uint32_t lblk)
	{
		map(ino, lblk, alloc_one(inodes_.at(ino).group), 1);
	}

	void new_dir(std::uint32_t ino, std::uint32_t parent)
	{
		Dir &d = dirs_[ino];
		twinfs_dirhdr_init(d.header.as<twinfs_dir_header>(), ino,
				   parent);
		dir_block(ino, 0);
		twinfs_dirleaf_init(d.leaves[1].data(), ino, 0);
		dir_block(ino, 1);
		d.table.assign(1, 1);
		grow_table(ino, d);
	}

	void grow_table(std::uint32_t ino, Dir &d)
	{
		const std::uint32_t need = static_cast<std::uint32_t>(
			(d.table.size() + TWINFS_DIR_TABLE_PER_BLOCK - 1) /
			TWINFS_DIR_TABLE_PER_BLOCK);
		for (; d.table_blocks < need; d.table_blocks++)
			dir_block(ino, TWINFS_DIR_TABLE_LBLK + d.table_blocks);
	}

	static std::uint32_t low_mask(std::uint32_t bits)
	{
		return bits ? 0xffffffffu >> (32 - bits) : 0;
	}

	static twinfs_dir_leaf_hdr *leaf_hdr(Block &b)
	{
		return b.as<twinfs_dir_leaf_hdr>();
	}

	std::uint32_t new_leaf(std::uint32_t ino, Dir &d, std::uint32_t depth)
	{
		if (d.next_leaf >= TWINFS_DIR_TABLE_LBLK)
			throw Error(str("directory inode ", ino,
					": too many leaf blocks"));
		std::uint32_t lblk = d.next_leaf++;
		twinfs_dirleaf_init(d.leaves[lblk].data(), ino, depth);
		dir_block(ino, lblk);
		return lblk;
	}

	// Extendible-hash insertion: split the full leaf (doubling the table
	// when its local depth is the global depth), chain at the maximum.
	void dir_add(std::uint32_t dir, std::string_view name,
		     std::uint32_t ino)
	{
		Dir &d = dirs_.at(dir);
		const auto len = static_cast<std::uint32_t>(name.size());
		const std::uint8_t type = mode_to_dtype(
			le(inodes_.at(ino).raw.i_mode));

		if (!len || len > TWINFS_NAME_MAX || name == "." ||
		    name == ".." || name.find('/') != name.npos ||
		    name.find('\0') != name.npos)
			throw Error(str("internal: invalid name '", name,
					"'"));
		const std::uint32_t h = twinfs_dirhash(name.data(), len, seed_);
		for (;;) {
			const std::uint32_t first =
				d.table[twinfs_dir_slot(h, d.depth)];
			std::uint32_t cur = first, last = first;
			for (; cur; cur = le(leaf_hdr(d.leaves.at(cur))
						     ->d_next)) {
				if (twinfs_dirleaf_find(
					    d.leaves.at(cur).data(),
					    name.data(), len, h) >= 0)
					throw Error(str("internal: '", name,
							"' exists"));
				last = cur;
			}
			for (cur = first; cur;
			     cur = le(leaf_hdr(d.leaves.at(cur))->d_next))
				if (!twinfs_dirleaf_insert(
					    d.leaves.at(cur).data(),
					    name.data(), len, h, ino, type)) {
					d.entries++;
					return;
				}
			Block &leaf = d.leaves.at(first);
			const std::uint32_t l = le(leaf_hdr(leaf)->d_depth);
			if (l >= TWINFS_DIR_MAX_DEPTH) {
				/* Overflow chain: append a leaf. */
				std::uint32_t nl = new_leaf(dir, d, l);
				Block &tail = d.leaves.at(last);
				leaf_hdr(tail)->d_next = cpu_to_le32(nl);
				twinfs_csum_set(tail.data(), kBlockSize,
						offsetof(twinfs_dir_leaf_hdr,
							 d_checksum));
				continue;
			}
			if (l == d.depth) {
				const auto n = d.table.size();
				d.table.resize(n * 2);
				std::copy_n(d.table.begin(), n,
					    d.table.begin() +
						    static_cast<long>(n));
				d.depth++;
				grow_table(dir, d);
			}
			const std::uint32_t nl = new_leaf(dir, d, l + 1);
			Block &old = d.leaves.at(first);
			leaf_hdr(old)->d_depth =
				cpu_to_le16(static_cast<std::uint16_t>(l + 1));
			twinfs_csum_set(old.data(), kBlockSize,
					offsetof(twinfs_dir_leaf_hdr,
						 d_checksum));
			twinfs_dirleaf_split(old.data(), d.leaves.at(nl).data(),
					     l);
			const std::uint32_t suffix = (h & low_mask(l)) | (1u << l);
			for (std::uint32_t s = 0; s < d.table.size(); s++)
				if ((s & low_mask(l + 1)) == suffix)
					d.table[s] = nl;
		}
	}

	void flush_dir(std::uint32_t ino, Dir &d)
	{
		auto *h = d.header.as<twinfs_dir_header>();
		h->h_depth = cpu_to_le32(d.depth);
		h->h_entries = cpu_to_le64(d.entries);
		h->h_next_leaf = cpu_to_le32(d.next_leaf);
		twinfs_csum_set(h, sizeof(*h),
				offsetof(twinfs_dir_header, h_checksum));
		img_.write_block(pblk_of(ino, 0), d.header);
		for (const auto &[lblk, b] : d.leaves)
			img_.write_block(pblk_of(ino, lblk), b);
		for (std::uint32_t t = 0; t < d.table_blocks; t++) {
			Block b;
			auto *slots = b.as<__le32>();
			for (std::uint32_t i = 0; i < TWINFS_DIR_TABLE_PER_BLOCK;
			     i++) {
				std::size_t s = std::size_t(t) *
						TWINFS_DIR_TABLE_PER_BLOCK + i;
				if (s < d.table.size())
					slots[i] = cpu_to_le32(d.table[s]);
			}
			img_.write_block(pblk_of(ino, TWINFS_DIR_TABLE_LBLK + t),
					 b);
		}
		inodes_.at(ino).raw.i_size =
			cpu_to_le64(std::uint64_t(d.next_leaf) * kBlockSize);
	}

	// Inline extents when they fit, else one level of extent leaves.
	void finish_extents(std::uint32_t ino, Inode &in)
	{
		const std::size_t n = in.ext.size();
		if (n <= TWINFS_INLINE_EXTENTS) {
			std::copy(in.ext.begin(), in.ext.end(), in.raw.i_ext);
			in.raw.i_ext_depth = 0;
			in.raw.i_ext_count = cpu_to_le16(
				static_cast<std::uint16_t>(n));
			return;
		}
		const std::size_t per = TWINFS_EXT_LEAF_MAX;
		const std::size_t leaves = (n + per - 1) / per;
		if (leaves > TWINFS_INLINE_EXTENTS)
			throw Error(str("internal: inode ", ino, " has ", n,
					" extents, too many for one level"));
		for (std::size_t l = 0; l < leaves; l++) {
			const std::size_t first = l * per;
			const std::size_t cnt = std::min(per, n - first);
			Block b;
			auto *leaf = b.as<twinfs_ext_leaf>();
			leaf->l_magic = cpu_to_le32(TWINFS_EXT_LEAF_MAGIC);
			leaf->l_count = cpu_to_le32(
				static_cast<std::uint32_t>(cnt));
			leaf->l_ino = cpu_to_le32(ino);
			std::copy_n(in.ext.begin() + static_cast<long>(first),
				    cnt, leaf->l_ext);
			twinfs_csum_set(leaf, sizeof(*leaf),
					offsetof(twinfs_ext_leaf, l_checksum));
			const std::uint64_t pblk = alloc_one(in.group);
			img_.write_block(pblk, b);
			in.blocks++;
			twinfs_extent &idx = in.raw.i_ext[l];
			idx.e_lblk = in.ext[first].e_lblk;
			idx.e_len = 0;
			idx.e_pblk = cpu_to_le64(pblk);
		}
		in.raw.i_ext_depth = cpu_to_le16(1);
		in.raw.i_ext_count = cpu_to_le16(
			static_cast<std::uint16_t>(leaves));
	}

	Image &img_;
	const twinfs_geometry &g_;
	const std::uint32_t seed_;
	const std::uint64_t now_;
	std::vector<Block> bbm_, ibm_;
	std::map<std::uint32_t, Inode> inodes_;
	std::map<std::uint32_t, Dir> dirs_;
	std::uint32_t generation_ = 1;
};

/*
 * TEST AID (--populate-test, not in --help): builds a small but non-trivial
 * tree so that fsck.twinfs and the module can be exercised without a
 * working mount: nested directories spread over the groups, a directory
 * with hundreds of names (leaf splits, table doubling), hard links, a
 * symlink, special files, a sparse file, and two interleaved files whose
 * hundreds of discontiguous extents need a depth-1 extent map.
 */
void populate_test(Builder &b, std::uint32_t root)
{
	const std::uint32_t groups = b.group_count();
	const std::uint32_t hello =
		b.create_file(root, "hello.txt", "hello from twinfs\n");
	b.create_file(root, "empty", "");
	b.symlink(root, "link", "hello.txt");
	b.create_special(root, "fifo", S_IFIFO | 0644, 0);
	b.create_special(root, "null", S_IFCHR | 0666, makedev(1, 3));
	b.create_special(root, "sock", S_IFSOCK | 0755, 0);
	b.create_file(root, std::string(TWINFS_NAME_MAX, 'n'), "long name\n");

	std::uint32_t a = b.mkdir(root, "a", 1 % groups);
	std::uint32_t ab = b.mkdir(a, "b", 2 % groups);
	std::uint32_t abc = b.mkdir(ab, "c", 3 % groups);
	b.create_file(abc, "deep.txt", std::string(10000, 'd'));
	b.link(abc, "hello-link", hello);

	std::uint32_t sparse = b.create_file(root, "sparse", "");
	for (std::uint32_t lblk : {0u, 7u, 100u, 1000u})
		b.add_block(sparse, lblk);
	b.set_size(sparse, 1000ull * kBlockSize + 123);

	/* Interleaved allocation: every extent of either file is one block. */
	std::uint32_t fa = b.create_file(root, "frag-a", "");
	std::uint32_t fb = b.create_file(root, "frag-b", "");
	for (std::uint32_t i = 0; i < 300; i++) {
		b.add_block(fa, i);
		b.add_block(fb, i);
	}

	std::uint32_t big = b.mkdir(root, "big", 4 % groups);
	for (std::uint32_t i = 0; i < 700; i++) {
		char name[64];
		std::snprintf(name, sizeof(name), "entry-%04u-%s", i,
			      i % 3 ? "with-a-longer-name-to-fill-leaves" : "x");
		if (i % 100 == 0)
			b.mkdir(big, name, (5 + i / 100) % groups);
		else if (i % 50 == 0)
			b.link(big, name, hello);
		else
			b.create_file(big, name, i % 7 ? "" : "data\n");
	}
}

int run(const Options &o)
{
	struct stat st;
	const bool existed = stat(o.target.c_str(), &st) == 0;
	if (!existed && !o.size_arg)
		throw Error(str(o.target, ": does not exist; give a size to "
				"create an image file"));
	Image img(o.target, Image::Mode::ReadWrite, o.size_arg.has_value());
	/* An image file this run created goes away again on failure. */
	struct RemoveOnFailure {
		const std::string *path;
		~RemoveOnFailure()
		{
			if (path)
				unlink(path->c_str());
		}
	} created{existed ? nullptr : &o.target};

	const bool was_empty = img.size_bytes() == 0;
	std::uint64_t blocks = img.size_blocks();
	if (o.size_arg) {
		blocks = parse_size_blocks(*o.size_arg);
		if (img.is_block_device() && blocks > img.size_blocks())
			throw Error(str(o.target, ": size ", blocks,
					" blocks exceeds the device (",
					img.size_blocks(), " blocks)"));
	}
	if (blocks == 0)
		throw Error(str(o.target, ": size is 0 blocks (an empty image "
				"file needs a size argument)"));

	if (!o.force && !was_empty) {
		if (auto sig = detect_signature(img))
			throw Error(str(o.target, " already holds ", *sig,
					"; use -f to overwrite it"));
	}

	const std::uint32_t node_area_blocks = o.node_area_blocks.value_or(
		default_node_area_blocks(blocks, o.max_nodes));
	twinfs_geometry g;
	int err = twinfs_geometry_compute(blocks, o.max_nodes,
					  node_area_blocks, o.ag_blocks,
					  o.inodes_per_ag, &g);
	if (err == -ENOSPC || (!err && twinfs_ag_size(&g, 0) <
			       twinfs_ag_meta_blocks(&g) + 16)) {
		std::uint64_t first = 2 + std::uint64_t(o.max_nodes) *
					      node_area_blocks;
		std::uint64_t need = first + 2 + o.inodes_per_ag /
			TWINFS_INODES_PER_BLOCK + 16;
		throw Error(str(o.target, ": too small: ", blocks,
				" blocks; this geometry needs at least ",
				need, " blocks (", need * kBlockSize / 1024,
				" KiB)"));
	}
	if (err)
		throw Error(str("invalid geometry: --ag-blocks ", o.ag_blocks,
				" cannot hold the 2 bitmap blocks, ",
				o.inodes_per_ag / TWINFS_INODES_PER_BLOCK,
				" inode table blocks (--inodes-per-ag ",
				o.inodes_per_ag, ") and 16 data blocks"));

	if (!img.is_block_device())
		img.extend(g.blocks * kBlockSize);

	/* No old superblock survives a crash part way through. */
	img.zero_blocks(0, 1);
	img.zero_blocks(1, g.node_area_start - 1);
	/* Zeroed node areas: no consistency point yet (cp_seq 0). */
	img.zero_blocks(g.node_area_start, g.first_ag_block -
					   g.node_area_start);
	for (std::uint32_t ag = 0; ag < g.ag_count; ag++)
		img.zero_blocks(twinfs_ag_start(&g, ag) + 2, g.itable_blocks);

	Block sbb;
	auto *sb = sbb.as<twinfs_super>();
	std::uint32_t seed;
	random_bytes(&seed, sizeof(seed));
	if (o.uuid) {
		std::copy(o.uuid->begin(), o.uuid->end(), sb->s_uuid);
	} else {
		random_bytes(sb->s_uuid, sizeof(sb->s_uuid));
		sb->s_uuid[6] = static_cast<std::uint8_t>(
			(sb->s_uuid[6] & 0x0f) | 0x40);
		sb->s_uuid[8] = static_cast<std::uint8_t>(
			(sb->s_uuid[8] & 0x3f) | 0x80);
	}
	const auto now = static_cast<std::uint64_t>(std::time(nullptr));

	Builder b(img, g, seed, now);
	std::uint32_t root = b.mkroot();
	if (o.populate_test)
		populate_test(b, root);
	b.finish();
	img.sync();

	sb->s_magic = cpu_to_le32(TWINFS_MAGIC);
	sb->s_version = cpu_to_le32(TWINFS_FORMAT_VERSION);
	sb->s_block_size = cpu_to_le32(TWINFS_BLOCK_SIZE);
	sb->s_inode_size = cpu_to_le32(TWINFS_INODE_SIZE);
	std::memcpy(sb->s_label, o.label.data(), o.label.size());
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
	sb->s_mkfs_time = cpu_to_le64(now);
	sb->s_mount_count = 0;
	sb->s_dirhash_seed = cpu_to_le32(seed);
	sb->s_features = 0;
	twinfs_csum_set(sb, sizeof(*sb), offsetof(twinfs_super, s_checksum));
	const char *why = nullptr;
	if (twinfs_super_check(sb, img.size_blocks(), nullptr, &why))
		throw Error(str("internal: the new superblock fails its own "
				"check: ", why));
	img.write_block(0, sbb);
	img.sync();
	created.path = nullptr;

	if (!o.quiet) {
		const std::uint32_t last = twinfs_ag_size(&g, g.ag_count - 1);
		std::cout << kProg << ": " << o.target << ": twinfs created\n"
			  << "  blocks:      " << g.blocks << " of "
			  << kBlockSize << " bytes ("
			  << g.blocks * kBlockSize / (1024 * 1024) << " MiB)";
		if (g.blocks < blocks)
			std::cout << ", " << blocks - g.blocks
				  << " trailing blocks unused";
		std::cout << "\n  groups:      " << g.ag_count << " of "
			  << g.ag_blocks << " blocks";
		if (last != g.ag_blocks)
			std::cout << " (the last has " << last << ")";
		std::cout << ", first at block " << g.first_ag_block
			  << "\n  inodes:      "
			  << std::uint64_t(g.ag_count) * g.inodes_per_ag
			  << " (" << g.inodes_per_ag << " per group, "
			  << b.inodes_used() << " in use)"
			  << "\n  node areas:  " << g.max_nodes << " of "
			  << g.node_area_blocks << " blocks from block "
			  << g.node_area_start
			  << "\n  uuid:        " << uuid_string(sb->s_uuid);
		if (!o.label.empty())
			std::cout << "\n  label:       " << o.label;
		if (o.populate_test)
			std::cout << "\n  test tree:   populated "
				     "(--populate-test)";
		std::cout << "\n";
	}
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	try {
		return run(parse_args(argc, argv));
	} catch (const Error &e) {
		std::cerr << kProg << ": " << e.what() << "\n";
	} catch (const std::exception &e) {
		std::cerr << kProg << ": unexpected error: " << e.what() << "\n";
	}
	return 1;
}
