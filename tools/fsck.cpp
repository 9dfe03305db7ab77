// SPDX-License-Identifier: GPL-2.0
/*
 * fsck.twinfs: read-only consistency check of a twinfs file system.
 *
 *   pass 1  superblock (twinfs_super_check), then every node's
 *           consistency-point area: header copies and, for a committed
 *           journal, its descriptors and images.  A committed journal is
 *           what mount writes home before anything else, so the passes
 *           below read the blocks through an in-memory overlay of the
 *           journal images (BlockView): they check the file system as it
 *           will be after that mount.  Nothing is ever written.
 *   pass 2  every group: bitmap tails and metadata bits, every inode
 *           (bitmap vs contents, checksum, type, extent map, i_blocks, size)
 *   pass 3  block ownership: blocks claimed twice, block bitmaps against
 *           the blocks the inodes own
 *   pass 4  every directory: header, hash table, leaves, entries
 *   pass 5  link counts, ".." (h_parent), reachability from root; an
 *           unnamed inode with link count 0 is an orphan the kernel frees
 *           at the next mount (reported, not a problem)
 *
 * The rules checked are those of Documentation/on-disk-format.md.  Exit
 * status: 0 clean, 4 inconsistencies found, 8 operational error.
 */
#include "image.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <getopt.h>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace twinfs;

namespace {

constexpr const char *kProg = "fsck.twinfs";
constexpr int kExitClean = 0, kExitProblems = 4, kExitError = 8;
// File blocks are 32-bit and an extent's end must fit too (as in
// twinfs_ext_insert/twinfs_ext_check): file blocks 0 .. 2^32 - 2.
constexpr std::uint64_t kMaxFileBlocks = 0xffffffffull;
// Repetitive problems (misplaced entries of one leaf, leaked block runs of
// one group) are printed this many times, then summarised.
constexpr std::uint32_t kMaxLines = 8;

struct Options {
	bool verbose = false;
	bool json = false;
	std::string target;
};

std::string octal(std::uint32_t v)
{
	char buf[16];
	std::snprintf(buf, sizeof(buf), "0%" PRIo32, v);
	return buf;
}

// "block 7" or "blocks 7-9"; what is "block" or "file block".
std::string blocks(const char *what, std::uint64_t first, std::uint64_t count)
{
	if (count == 1)
		return str(what, " ", first);
	return str(what, "s ", first, "-", first + count - 1);
}

// A name as printable text: control and non-ASCII bytes escaped.
std::string printable(std::string_view s)
{
	std::string out;
	for (unsigned char c : s) {
		if (c < 0x20 || c >= 0x7f || c == '\\') {
			char buf[8];
			std::snprintf(buf, sizeof(buf), "\\x%02x", c);
			out += buf;
		} else {
			out += static_cast<char>(c);
		}
	}
	return out;
}

std::string json_string(std::string_view s)
{
	std::string out = "\"";
	for (unsigned char c : s) {
		if (c == '"' || c == '\\') {
			out += '\\';
			out += static_cast<char>(c);
		} else if (c < 0x20) {
			char buf[8];
			std::snprintf(buf, sizeof(buf), "\\u%04x", c);
			out += buf;
		} else {
			out += static_cast<char>(c);
		}
	}
	return out + "\"";
}

std::uint32_t low_mask(std::uint32_t bits)
{
	return bits ? 0xffffffffu >> (32 - bits) : 0;
}

// Output: problems and warnings one per line, -v location lines, and the
// summary.  With -j, stdout carries only the JSON summary; the lines go to
// stderr.
class Report {
public:
	Report(std::string image, const Options &o)
		: image_(std::move(image)), verbose_(o.verbose), json_(o.json)
	{
	}

	void problem(const std::string &msg)
	{
		problems_++;
		out() << kProg << ": " << image_ << ": " << msg << "\n";
		if (json_)
			messages_.push_back(msg);
	}
	void warning(const std::string &msg)
	{
		warnings_++;
		out() << kProg << ": " << image_ << ": warning: " << msg
		      << "\n";
		if (json_)
			messages_.push_back("warning: " + msg);
	}
	void info(const std::string &msg)
	{
		if (verbose_)
			out() << msg << "\n";
	}
	// Neither a problem nor a warning, but worth knowing without -v (an
	// orphan inode, a journal checked as applied).
	void note(const std::string &msg)
	{
		out() << kProg << ": " << image_ << ": " << msg << "\n";
		if (json_)
			messages_.push_back("info: " + msg);
	}
	bool verbose() const { return verbose_; }
	bool json() const { return json_; }
	std::uint64_t problems() const { return problems_; }
	std::uint64_t warnings() const { return warnings_; }
	const std::vector<std::string> &messages() const { return messages_; }
	const std::string &image() const { return image_; }

private:
	std::ostream &out() { return json_ ? std::cerr : std::cout; }

	std::string image_;
	bool verbose_, json_;
	std::uint64_t problems_ = 0, warnings_ = 0;
	std::vector<std::string> messages_;
};

// The superblock cannot be trusted: stop checking (exit 4).
struct FatalInconsistency {};

class Checker {
public:
	Checker(const Image &img, Report &rep)
		: img_(img), view_(img), rep_(rep)
	{
	}

	void run()
	{
		check_super();
		check_cp_areas();
		check_state();
		check_groups();
		check_ownership();
		check_directories();
		check_links();
	}

	void print_summary() const;

private:
	struct InodeInfo {
		std::uint32_t mode = 0;
		std::uint32_t nlink = 0;	// 0: an orphan (not the root)
		std::uint64_t size = 0;
		std::uint32_t refs = 0;		// entries naming it
		std::uint32_t entry_dir = 0;	// a directory naming it
		// Directories only:
		bool dir_ok = false;		// header and table usable
		bool complete = false;		// every entry was read
		std::uint32_t h_parent = 0;
		std::uint32_t subdirs = 0;
		std::vector<twinfs_extent> ext;	// flattened extent map
		std::vector<std::uint32_t> children;	// subdirectories
	};
	struct Claim {
		std::uint64_t pblk;
		std::uint32_t len;
		std::uint32_t ino;
		std::uint32_t lblk;
		bool ext_leaf;
	};

	static std::string inode_prefix(std::uint32_t ino)
	{
		return str("inode ", ino, ": ");
	}
	// Who owns [pblk, pblk + len), a part of claim c.
	static std::string claim_what(const Claim &c, std::uint64_t pblk,
				      std::uint64_t len)
	{
		if (c.ext_leaf)
			return str("inode ", c.ino, " (extent leaf)");
		return str("inode ", c.ino, " (",
			   blocks("file block", c.lblk + (pblk - c.pblk), len),
			   ")");
	}

	void problem(const std::string &m) { rep_.problem(m); }

	/* ---- pass 1 ---- */
	void check_super();
	void check_cp_areas();
	void check_cp_area(const CpArea &a);
	void check_state();

	/* ---- pass 2 ---- */
	void check_groups();
	void check_inode(std::uint32_t ino, const twinfs_inode &raw);
	std::optional<std::string> phys_problem(std::uint64_t pblk,
						std::uint64_t len) const;
	bool check_extents(std::uint32_t ino, const std::string &where,
			   const twinfs_extent *ext, std::uint32_t n,
			   std::uint64_t lo, std::uint64_t hi,
			   std::vector<twinfs_extent> &flat);
	bool check_extent_map(std::uint32_t ino, const twinfs_inode &raw,
			      std::vector<twinfs_extent> &flat,
			      std::uint64_t &leaf_blocks);

	/* ---- pass 3 ---- */
	void check_ownership();

	/* ---- pass 4 ---- */
	void check_directories();
	void check_dir(std::uint32_t ino, InodeInfo &d);
	std::uint64_t dir_pblk(const InodeInfo &d, std::uint32_t lblk) const;
	std::optional<std::string> leaf_problem(const Block &b,
						std::uint32_t dir) const;

	/* ---- pass 5 ---- */
	void check_links();

	const Image &img_;
	BlockView view_;	// img_ with the committed CP journals applied
	Report &rep_;
	twinfs_super sb_{};
	twinfs_geometry g_{};
	std::uint32_t seed_ = 0;
	std::vector<Block> bbm_;	// on-disk block bitmaps, per group
	std::unordered_map<std::uint32_t, InodeInfo> inodes_;
	std::vector<Claim> claims_;
	std::vector<std::uint32_t> incomplete_dirs_;	// entries unknown
	bool incomplete_maps_ = false;	// some inode's blocks unknown
	std::uint64_t blocks_used_ = 0;
	std::uint64_t dirs_ = 0, files_ = 0, symlinks_ = 0, specials_ = 0;
	std::uint64_t orphans_ = 0;
	// Per node, for the JSON summary.
	struct NodeSummary {
		std::uint32_t node;
		const char *area;	// "fresh", "valid", "invalid"
		std::uint64_t cp_seq, cp_count;
		// "empty", "committed", "corrupt"; "unknown" if invalid
		const char *journal;
		std::uint64_t journal_blocks;
	};
	std::vector<NodeSummary> nodes_;
	std::uint32_t journals_applied_ = 0;
};

/* ------------------------------------------------------------------ */
/* pass 1: superblock                                                  */

void Checker::check_super()
{
	if (img_.size_bytes() < kBlockSize)
		throw Error(str(img_.path(), ": only ", img_.size_bytes(),
				" bytes, too small to hold a superblock"));
	Block b;
	img_.read_block(0, b);
	std::memcpy(&sb_, b.data(), sizeof(sb_));

	if (le(sb_.s_magic) != TWINFS_MAGIC)
		throw Error(str(img_.path(), ": not a twinfs file system "
				"(superblock magic ", hex32(le(sb_.s_magic)),
				", expected ", hex32(TWINFS_MAGIC), ")"));
	if (le(sb_.s_version) != TWINFS_FORMAT_VERSION)
		throw Error(str(img_.path(), ": unsupported twinfs format "
				"version ", le(sb_.s_version), " (this fsck "
				"knows version ", TWINFS_FORMAT_VERSION, ")"));

	const char *why = nullptr;
	int err = twinfs_super_check(&sb_, img_.size_blocks(), &g_, &why);
	if (err && !twinfs_csum_ok(&sb_, sizeof(sb_),
				   offsetof(twinfs_super, s_checksum))) {
		problem(str("superblock: checksum mismatch (stored ",
			    hex32(le(sb_.s_checksum)), ", computed ",
			    hex32(twinfs_csum_block(
				    &sb_, sizeof(sb_),
				    offsetof(twinfs_super, s_checksum))),
			    ")"));
		/* Go on if the fields are otherwise consistent. */
		twinfs_super fixed = sb_;
		twinfs_csum_set(&fixed, sizeof(fixed),
				offsetof(twinfs_super, s_checksum));
		err = twinfs_super_check(&fixed, img_.size_blocks(), &g_,
					 &why);
		if (!err)
			rep_.warning("the superblock's fields are consistent; "
				     "checking with them");
	}
	if (err) {
		problem(str("superblock: ", why));
		twinfs_geometry g;
		if (!twinfs_geometry_compute(le(sb_.s_blocks),
					     le(sb_.s_max_nodes),
					     le(sb_.s_node_area_blocks),
					     le(sb_.s_ag_blocks),
					     le(sb_.s_inodes_per_ag), &g)) {
			auto cmp = [&](const char *f, std::uint64_t have,
				       std::uint64_t want) {
				if (have != want)
					problem(str("superblock: ", f, " is ",
						    have, ", the geometry "
						    "gives ", want));
			};
			cmp("s_blocks", le(sb_.s_blocks), g.blocks);
			cmp("s_first_ag_block", le(sb_.s_first_ag_block),
			    g.first_ag_block);
			cmp("s_node_area_start", le(sb_.s_node_area_start),
			    g.node_area_start);
			cmp("s_ag_count", le(sb_.s_ag_count), g.ag_count);
			cmp("s_itable_blocks", le(sb_.s_itable_blocks),
			    g.itable_blocks);
			cmp("s_root_ino", le(sb_.s_root_ino), TWINFS_ROOT_INO);
			if (g.blocks > img_.size_blocks())
				problem(str("superblock: the file system has ",
					    g.blocks, " blocks, the device ",
					    img_.size_blocks()));
		} else {
			problem(str("superblock: invalid geometry parameters "
				    "(max_nodes ", le(sb_.s_max_nodes),
				    ", ag_blocks ", le(sb_.s_ag_blocks),
				    ", inodes_per_ag ",
				    le(sb_.s_inodes_per_ag), ", blocks ",
				    le(sb_.s_blocks), ")"));
		}
		problem("superblock unusable: nothing else can be checked");
		throw FatalInconsistency{};
	}

	seed_ = le(sb_.s_dirhash_seed);
	rep_.info(str("superblock: ", g_.blocks, " blocks, ", g_.ag_count,
		      " groups of ", g_.ag_blocks, " blocks from block ",
		      g_.first_ag_block, ", ", g_.inodes_per_ag,
		      " inodes per group, ", g_.max_nodes, " node areas of ",
		      g_.node_area_blocks, " blocks from block ",
		      g_.node_area_start));
}

/* ------------------------------------------------------------------ */
/* pass 1: consistency-point areas                                     */

void Checker::check_cp_areas()
{
	if (g_.node_area_blocks < TWINFS_CP_HDR_BLOCKS) {
		problem(str("superblock: node areas of ", g_.node_area_blocks,
			    " blocks cannot hold the ", TWINFS_CP_HDR_BLOCKS,
			    " consistency point header blocks; the node "
			    "areas are not checked"));
		return;
	}

	/* Apply the usable journals in node order; a block two nodes
	 * journal gets the higher node's image. */
	std::map<std::uint64_t, std::uint32_t> owner;	// home -> node
	struct Overlap {
		std::uint64_t count = 0, first = 0;
	};
	std::map<std::pair<std::uint32_t, std::uint32_t>, Overlap> overlaps;
	for (std::uint32_t n = 0; n < g_.max_nodes; n++) {
		const CpArea a = read_cp_area(img_, sb_, g_, n);
		check_cp_area(a);
		if (!a.journal_usable())
			continue;
		for (const CpJournalBlock &jb : a.journal) {
			auto [it, added] = owner.emplace(jb.home, n);
			if (!added && it->second != n) {
				Overlap &o = overlaps[{it->second, n}];
				if (!o.count++)
					o.first = jb.home;
				it->second = n;
			}
			view_.put(jb.home, jb.image);
		}
		journals_applied_++;
	}
	for (const auto &[nodes, o] : overlaps)
		rep_.warning(str(blocks("block", o.first, 1), o.count > 1
				 ? str(" and ", o.count - 1, " more") : "",
				 " in the consistency point journals of both "
				 "node ", nodes.first, " and node ",
				 nodes.second, "; checking with node ",
				 nodes.second, "'s images"));
}

void Checker::check_cp_area(const CpArea &a)
{
	const std::string np = str("node ", a.node, ": ");
	const std::string area = str("area at ", blocks("block", a.start,
							 a.blocks));

	if (a.fresh) {
		rep_.info(str(np, area, ": cp_seq 0, cp_count 0, journal empty "
			      "(header blocks zero: no consistency point "
			      "yet)"));
		nodes_.push_back({a.node, "fresh", 0, 0, "empty", 0});
		return;
	}
	for (const std::string &w : a.warnings)
		rep_.warning(str(np, "consistency point ", w));
	for (const std::string &p : a.problems)
		problem(np + p);
	if (!a.valid()) {
		std::string why;
		for (const CpHeaderCopy &c : a.copy)
			why += str(why.empty() ? "" : "; ", "copy at block ",
				   c.blk, ": ", *c.invalid);
		problem(str(np, "no valid consistency point header (", why,
			    ")"));
		nodes_.push_back({a.node, "invalid", 0, 0, "unknown", 0});
		return;
	}

	const twinfs_cp_header &h = a.header();
	const std::uint64_t jblocks = le(h.c_jblocks);
	const char *journal = !a.committed() ? "empty"
		: a.journal_usable() ? "committed" : "corrupt";
	rep_.info(str(np, area, ": cp_seq ", le(h.c_cp_seq), ", cp_count ",
		      le(h.c_cp_count), ", journal ", journal,
		      a.committed() ? str(" (seq ", le(h.c_jseq), ", ",
					  jblocks, " blocks)") : "",
		      ", header copy ", a.current, " (update ",
		      le(h.c_update), ")"));
	nodes_.push_back({a.node, "valid", le(h.c_cp_seq), le(h.c_cp_count),
			  journal, a.committed() ? jblocks : 0});
	if (!a.committed())
		return;
	if (a.journal_usable()) {
		rep_.note(str(np, "consistency point journal of ", jblocks,
			      " blocks (seq ", le(h.c_jseq), ") not yet "
			      "written home; checking with it applied"));
		return;
	}
	for (const std::string &e : a.journal_errors)
		problem(str(np, "committed consistency point journal (seq ",
			    le(h.c_jseq), ", ", jblocks, " blocks) is "
			    "corrupt: ", e));
	rep_.note(str(np, "the file system is checked without that journal, "
		      "as it is on disk"));
}

void Checker::check_state()
{
	const std::uint32_t state = le(sb_.s_state);
	if (state == TWINFS_STATE_MOUNTED)
		rep_.warning("state is MOUNTED: mounted now or not unmounted "
			     "cleanly; fsck checks the disk with the committed "
			     "consistency point journals applied, but not the "
			     "change memory, so the latest changes may be "
			     "missing");
	else if (state != TWINFS_STATE_CLEAN)
		problem(str("superblock: unknown state ", state));
	if (le(sb_.s_features))
		rep_.warning(str("unknown feature bits ",
				 hex32(le(sb_.s_features)), " are set"));
}

/* ------------------------------------------------------------------ */
/* pass 2: groups and inodes                                           */

void Checker::check_groups()
{
	const std::uint32_t meta = twinfs_ag_meta_blocks(&g_);
	const std::uint32_t bits = kBlockSize * 8;
	std::vector<Block> area;

	bbm_.resize(g_.ag_count);
	for (std::uint32_t ag = 0; ag < g_.ag_count; ag++) {
		const std::uint64_t start = twinfs_ag_start(&g_, ag);
		const std::uint32_t size = twinfs_ag_size(&g_, ag);
		const std::string gp = str("group ", ag, ": ");

		view_.read_blocks(start, meta, area);
		bbm_[ag] = area[0];
		const std::uint8_t *bbm = area[0].data();
		const std::uint8_t *ibm = area[1].data();
		blocks_used_ += twinfs_bit_count(bbm, size);

		std::uint32_t clear = 0;
		for (std::uint32_t i = 0; i < meta; i++)
			clear += !twinfs_bit_test(bbm, i);
		if (clear)
			problem(str(gp, "block bitmap: ", clear, " of the ",
				    meta, " metadata blocks (bitmaps, inode "
				    "table: ", blocks("block", start, meta),
				    ") are marked free"));
		clear = 0;
		for (std::uint32_t i = size; i < bits; i++)
			clear += !twinfs_bit_test(bbm, i);
		if (clear)
			problem(str(gp, "block bitmap: ", clear, " bits beyond "
				    "the group's ", size, " blocks are clear "
				    "(must be set)"));
		clear = 0;
		for (std::uint32_t i = g_.inodes_per_ag; i < bits; i++)
			clear += !twinfs_bit_test(ibm, i);
		if (clear)
			problem(str(gp, "inode bitmap: ", clear, " bits beyond "
				    "the group's ", g_.inodes_per_ag,
				    " inodes are clear (must be set)"));

		for (std::uint32_t idx = 0; idx < g_.inodes_per_ag; idx++) {
			const std::uint32_t ino = ag * g_.inodes_per_ag + idx;
			twinfs_inode raw;
			std::memcpy(&raw,
				    area[2 + idx / TWINFS_INODES_PER_BLOCK]
						    .data() +
					    (idx % TWINFS_INODES_PER_BLOCK) *
						    TWINFS_INODE_SIZE,
				    sizeof(raw));
			const bool used = twinfs_bit_test(ibm, idx);
			const auto *rb = reinterpret_cast<const std::uint8_t *>(
				&raw);
			const bool zero = std::all_of(
				rb, rb + sizeof(raw),
				[](std::uint8_t c) { return !c; });
			const std::uint32_t mode = le(raw.i_mode);

			if (ino == 0) {
				if (!used)
					problem("inode 0: reserved, but clear "
						"in the inode bitmap (must be "
						"set)");
				if (!zero)
					problem("inode 0: reserved, but not "
						"all zeros");
				continue;
			}
			if (!used) {
				if (!zero)
					problem(str(inode_prefix(ino),
						    "free in the inode bitmap "
						    "but not zeroed (mode ",
						    octal(mode), ")"));
				continue;
			}
			if (!mode) {
				problem(str(inode_prefix(ino),
					    "marked in use in the inode bitmap"
					    " but free (mode 0)",
					    zero ? "" : " and not zeroed"));
				continue;
			}
			std::uint32_t off;
			std::uint64_t iblk = twinfs_ino_block(&g_, ino, &off);
			rep_.info(str("inode ", ino, " at block ", iblk,
				      " offset ", off, " (",
				      mode_type_name(mode), ")"));
			check_inode(ino, raw);
		}
	}
}

std::optional<std::string> Checker::phys_problem(std::uint64_t pblk,
						 std::uint64_t len) const
{
	const BlockPlace a = place_block(g_, pblk);
	if (!a.in_group || !a.data || len > g_.blocks ||
	    pblk > g_.blocks - len)
		return str(blocks("block", pblk, len),
			   " not in a group's data area");
	const BlockPlace b = place_block(g_, pblk + len - 1);
	if (!b.in_group || b.ag != a.ag)
		return str(blocks("block", pblk, len), " cross from group ",
			   a.ag, " into the next group's metadata");
	return std::nullopt;
}

// Checks a sorted extent array whose file blocks must lie in [lo, hi);
// appends the usable extents to flat and claims their blocks.
bool Checker::check_extents(std::uint32_t ino, const std::string &where,
			    const twinfs_extent *ext, std::uint32_t n,
			    std::uint64_t lo, std::uint64_t hi,
			    std::vector<twinfs_extent> &flat)
{
	std::uint32_t bad = 0;
	std::uint64_t prev_end = 0;

	for (std::uint32_t i = 0; i < n; i++) {
		const std::uint32_t lblk = le(ext[i].e_lblk);
		const std::uint32_t len = le(ext[i].e_len);
		const std::uint64_t pblk = le(ext[i].e_pblk);
		const std::uint64_t end = std::uint64_t(lblk) + len;
		std::optional<std::string> why;

		if (!len)
			why = "length 0";
		else if (end > kMaxFileBlocks)
			why = "ends beyond the last file block (2^32 - 2)";
		else if (lblk < lo || end > hi)
			why = hi > lo ? str("outside ",
					    blocks("file block", lo, hi - lo),
					    " of its index entry")
				      : std::string("its index entry covers "
						    "no file blocks");
		else if (i && lblk < prev_end)
			why = "overlaps or is out of order with the previous "
			      "extent";
		else
			why = phys_problem(pblk, len);
		prev_end = std::max(prev_end, end);
		if (!why) {
			flat.push_back(ext[i]);
			claims_.push_back({pblk, len, ino, lblk, false});
			continue;
		}
		if (++bad <= kMaxLines)
			problem(str(inode_prefix(ino), where, "extent ", i, " (",
				    blocks("file block", lblk, len ? len : 1),
				    " at ", blocks("block", pblk, len ? len : 1),
				    "): ", *why));
	}
	if (bad)
		incomplete_maps_ = true;
	if (bad > kMaxLines)
		problem(str(inode_prefix(ino), where, bad - kMaxLines,
			    " more bad extents"));
	if (!bad && twinfs_ext_check(ext, n, g_.first_ag_block, g_.blocks)) {
		problem(str(inode_prefix(ino), where,
			    "extents rejected by twinfs_ext_check"));
		bad++;
	}
	return !bad;
}

bool Checker::check_extent_map(std::uint32_t ino, const twinfs_inode &raw,
			       std::vector<twinfs_extent> &flat,
			       std::uint64_t &leaf_blocks)
{
	const std::uint32_t depth = le(raw.i_ext_depth);
	const std::uint32_t count = le(raw.i_ext_count);

	if (depth > 1) {
		problem(str(inode_prefix(ino), "extent depth ", depth,
			    " (only 0 and 1 exist)"));
		incomplete_maps_ = true;
		return false;
	}
	if (count > TWINFS_INLINE_EXTENTS) {
		problem(str(inode_prefix(ino), "i_ext_count ", count,
			    " exceeds ", TWINFS_INLINE_EXTENTS));
		incomplete_maps_ = true;
		return false;
	}
	if (depth == 0)
		return check_extents(ino, "", raw.i_ext, count, 0,
				     kMaxFileBlocks, flat);

	bool ok = true;
	for (std::uint32_t i = 0; i < count; i++) {
		const twinfs_extent &idx = raw.i_ext[i];
		const std::uint32_t lo = le(idx.e_lblk);
		const std::uint64_t hi = i + 1 < count
			? le(raw.i_ext[i + 1].e_lblk) : kMaxFileBlocks;
		const std::uint64_t pblk = le(idx.e_pblk);
		const std::string what = str("index entry ", i,
					     " (extent leaf at block ", pblk,
					     ")");

		if (le(idx.e_len)) {
			problem(str(inode_prefix(ino), what, ": e_len ",
				    le(idx.e_len), ", must be 0"));
			ok = false;
		}
		if (hi <= lo) {
			problem(str(inode_prefix(ino), what, ": first file "
				    "block ", lo, " is not below the next "
				    "entry's ", hi));
			ok = false;
		}
		if (auto why = phys_problem(pblk, 1)) {
			problem(str(inode_prefix(ino), what, ": ", *why));
			ok = false;
			incomplete_maps_ = true;
			continue;
		}
		claims_.push_back({pblk, 1, ino, 0, true});
		leaf_blocks++;
		rep_.info(str("inode ", ino, " extent leaf ", i, " at block ",
			      pblk));

		Block b;
		view_.read_block(pblk, b);
		const auto *leaf = b.as<twinfs_ext_leaf>();
		const std::string lp = str(inode_prefix(ino), "extent leaf ",
					   i, " at block ", pblk, ": ");
		if (le(leaf->l_magic) != TWINFS_EXT_LEAF_MAGIC) {
			problem(str(lp, "bad magic ", hex32(le(leaf->l_magic)),
				    ", expected ",
				    hex32(TWINFS_EXT_LEAF_MAGIC)));
			ok = false;
			incomplete_maps_ = true;
			continue;
		}
		if (!twinfs_csum_ok(leaf, sizeof(*leaf),
				    offsetof(twinfs_ext_leaf, l_checksum))) {
			problem(str(lp, "checksum mismatch (stored ",
				    hex32(le(leaf->l_checksum)), ", computed ",
				    hex32(twinfs_csum_block(
					    leaf, sizeof(*leaf),
					    offsetof(twinfs_ext_leaf,
						     l_checksum))),
				    ")"));
			ok = false;
		}
		if (le(leaf->l_ino) != ino) {
			problem(str(lp, "owner l_ino is ", le(leaf->l_ino)));
			ok = false;
		}
		const std::uint32_t n = le(leaf->l_count);
		if (n > TWINFS_EXT_LEAF_MAX) {
			problem(str(lp, "l_count ", n, " exceeds ",
				    TWINFS_EXT_LEAF_MAX));
			ok = false;
			incomplete_maps_ = true;
			continue;
		}
		ok &= check_extents(ino, str("extent leaf ", i, " at block ",
					     pblk, ": "),
				    leaf->l_ext, n, lo, hi, flat);
	}
	return ok;
}

void Checker::check_inode(std::uint32_t ino, const twinfs_inode &raw)
{
	const std::string ip = inode_prefix(ino);
	const std::uint32_t mode = le(raw.i_mode);
	const std::uint64_t size = le(raw.i_size);
	InodeInfo info;

	info.mode = mode;
	info.nlink = le(raw.i_nlink);
	info.size = size;

	if (!twinfs_csum_ok(&raw, sizeof(raw),
			    offsetof(twinfs_inode, i_checksum)))
		problem(str(ip, "checksum mismatch (stored ",
			    hex32(le(raw.i_checksum)), ", computed ",
			    hex32(twinfs_csum_block(
				    &raw, sizeof(raw),
				    offsetof(twinfs_inode, i_checksum))),
			    ")"));
	const bool valid_type = mode_to_dtype(mode) != 0;
	if (!valid_type)
		problem(str(ip, "invalid file type in mode ", octal(mode)));
	/* Any other inode with link count 0: an orphan, judged in pass 5. */
	if (!info.nlink && ino == TWINFS_ROOT_INO)
		problem(str(ip, "in use (", mode_type_name(mode),
			    ") but its link count is 0"));

	std::vector<twinfs_extent> flat;
	std::uint64_t leaf_blocks = 0;
	const bool ext_ok = check_extent_map(ino, raw, flat, leaf_blocks);
	std::uint64_t data_blocks = 0;
	for (const auto &e : flat)
		data_blocks += le(e.e_len);
	if (ext_ok && data_blocks + leaf_blocks != le(raw.i_blocks))
		problem(str(ip, "i_blocks is ", le(raw.i_blocks), ", but it "
			    "owns ", data_blocks + leaf_blocks, " blocks (",
			    data_blocks, " data, ", leaf_blocks,
			    " extent leaf)"));

	switch (mode & S_IFMT) {
	case S_IFREG: {
		files_++;
		const std::uint64_t size_blocks =
			(size + kBlockSize - 1) / kBlockSize;
		if (size_blocks > kMaxFileBlocks)
			problem(str(ip, "size ", size, " exceeds the maximum "
				    "file size"));
		for (const auto &e : flat) {
			const std::uint64_t end = std::uint64_t(
				le(e.e_lblk)) + le(e.e_len);
			if (end > size_blocks) {
				problem(str(ip, "maps ",
					    blocks("file block", le(e.e_lblk),
						   le(e.e_len)),
					    " beyond its size ", size, " (",
					    size_blocks, " blocks)"));
				break;
			}
		}
		break;
	}
	case S_IFDIR:
		dirs_++;
		info.ext = std::move(flat);
		break;
	case S_IFLNK: {
		symlinks_++;
		if (!size || size >= kBlockSize) {
			problem(str(ip, "symlink size ", size, " (must be 1.."
				    "4095)"));
			break;
		}
		if (flat.size() != 1 || le(flat[0].e_lblk) != 0 ||
		    le(flat[0].e_len) != 1) {
			if (ext_ok)
				problem(str(ip, "symlink must map exactly file "
					    "block 0, it has ", flat.size(),
					    " extents"));
			break;
		}
		Block b;
		view_.read_block(le(flat[0].e_pblk), b);
		if (std::memchr(b.data(), 0, size))
			problem(str(ip, "symlink target contains a NUL byte "
				    "within its ", size, " bytes"));
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		specials_++;
		if (le(raw.i_ext_count) || le(raw.i_blocks) || size)
			problem(str(ip, mode_type_name(mode), " has blocks or a "
				    "size (i_ext_count ", le(raw.i_ext_count),
				    ", i_blocks ", le(raw.i_blocks), ", i_size ",
				    size, ")"));
		break;
	default:
		break;
	}
	inodes_.emplace(ino, std::move(info));
}

/* ------------------------------------------------------------------ */
/* pass 3: block ownership and block bitmaps                           */

void Checker::check_ownership()
{
	std::sort(claims_.begin(), claims_.end(),
		  [](const Claim &a, const Claim &b) {
			  return a.pblk < b.pblk;
		  });

	/* Blocks claimed twice: sweep with the claims still open. */
	std::vector<const Claim *> open;
	for (const Claim &c : claims_) {
		std::erase_if(open, [&](const Claim *o) {
			return o->pblk + o->len <= c.pblk;
		});
		for (const Claim *o : open) {
			const std::uint64_t first = c.pblk;
			const std::uint64_t last = std::min(
				o->pblk + o->len, c.pblk + c.len);
			problem(str(inode_prefix(c.ino),
				    blocks("block", first, last - first),
				    " used by ", claim_what(c, first,
							    last - first),
				    " also used by ",
				    claim_what(*o, first, last - first)));
		}
		open.push_back(&c);
	}

	/* Owned blocks must be marked used... */
	std::vector<Block> expect(g_.ag_count);
	for (const Claim &c : claims_) {
		const BlockPlace p = place_block(g_, c.pblk);
		const std::uint8_t *map = bbm_[p.ag].data();
		std::uint64_t run = 0;
		for (std::uint32_t i = 0; i <= c.len; i++) {
			const bool marked = i < c.len &&
				twinfs_bit_test(map, p.index + i);
			if (i < c.len) {
				twinfs_bit_set(expect[p.ag].data(), p.index + i);
				if (!marked) {
					run++;
					continue;
				}
			}
			if (run)
				problem(str(inode_prefix(c.ino),
					    blocks("block", c.pblk + i - run,
						   run),
					    " used by ",
					    claim_what(c, c.pblk + i - run,
						       run),
					    " marked free in group ", p.ag,
					    "'s block bitmap"));
			run = 0;
		}
	}
	/* ...and every used data block must be owned. */
	const std::uint32_t meta = twinfs_ag_meta_blocks(&g_);
	for (std::uint32_t ag = 0; ag < g_.ag_count; ag++) {
		const std::uint32_t size = twinfs_ag_size(&g_, ag);
		const std::uint64_t start = twinfs_ag_start(&g_, ag);
		std::uint32_t run = 0, runs = 0, more = 0;
		for (std::uint32_t i = meta; i <= size; i++) {
			if (i < size && twinfs_bit_test(bbm_[ag].data(), i) &&
			    !twinfs_bit_test(expect[ag].data(), i)) {
				run++;
				continue;
			}
			if (run && ++runs <= kMaxLines)
				problem(str("group ", ag, ": ",
					    blocks("block", start + i - run,
						   run),
					    " marked used but owned by no "
					    "inode"));
			else if (run)
				more += run;
			run = 0;
		}
		if (more)
			problem(str("group ", ag, ": ", more, " more blocks in ",
				    runs - kMaxLines, " runs marked used but "
				    "owned by no inode", incomplete_maps_
				    ? " (some extent maps were unreadable)"
				    : ""));
	}
}

/* ------------------------------------------------------------------ */
/* pass 4: directories                                                 */

std::uint64_t Checker::dir_pblk(const InodeInfo &d, std::uint32_t lblk) const
{
	twinfs_ext_map_result res;
	twinfs_ext_lookup(d.ext.data(), static_cast<std::uint32_t>(d.ext.size()),
			  lblk, &res);
	return res.pblk;
}

std::optional<std::string> Checker::leaf_problem(const Block &b,
						 std::uint32_t dir) const
{
	const auto *h = b.as<twinfs_dir_leaf_hdr>();
	const std::uint32_t used = le(h->d_used);
	constexpr std::size_t hdr = sizeof(twinfs_dir_leaf_hdr);
	constexpr std::size_t csum_off = offsetof(twinfs_dir_leaf_hdr,
						  d_checksum);

	if (le(h->d_magic) != TWINFS_DIR_LEAF_MAGIC)
		return str("bad magic ", hex32(le(h->d_magic)), ", expected ",
			   hex32(TWINFS_DIR_LEAF_MAGIC));
	if (le(h->d_ino) != dir)
		return str("owner d_ino is ", le(h->d_ino));
	if (le(h->d_depth) > TWINFS_DIR_MAX_DEPTH)
		return str("local depth ", le(h->d_depth), " exceeds ",
			   TWINFS_DIR_MAX_DEPTH);
	if (used > TWINFS_DIR_LEAF_SPACE)
		return str("d_used ", used, " exceeds the leaf space ",
			   TWINFS_DIR_LEAF_SPACE);
	if (!twinfs_csum_ok(b.data(), kBlockSize, csum_off))
		return str("checksum mismatch (stored ",
			   hex32(le(h->d_checksum)), ", computed ",
			   hex32(twinfs_csum_block(b.data(), kBlockSize,
						   csum_off)),
			   ")");
	std::uint32_t off = hdr, end = hdr + used, n = 0, prev_key = 0;
	while (off < end) {
		const twinfs_dirent *de = twinfs_dirleaf_entry(b.data(), off);
		if (off + 10 > end)
			return str("truncated entry at offset ", off);
		if (!de->de_name_len)
			return str("empty name at offset ", off);
		if (off + TWINFS_DIRENT_SIZE(de->de_name_len) > end)
			return str("entry at offset ", off, " runs past d_used");
		if (!le(de->de_ino))
			return str("entry at offset ", off, " names inode 0");
		const std::string_view name(de->de_name, de->de_name_len);
		if (name.find('/') != name.npos || name.find('\0') != name.npos)
			return str("entry at offset ", off, " has a name with "
				   "'/' or NUL: '", printable(name), "'");
		const std::uint32_t key = twinfs_dir_key(le(de->de_hash));
		if (n && key < prev_key)
			return str("entry '", printable(name), "' at offset ",
				   off, " is out of hash order");
		prev_key = key;
		off += TWINFS_DIRENT_SIZE(de->de_name_len);
		n++;
	}
	if (n != le(h->d_count))
		return str("d_count is ", le(h->d_count), " but ", n,
			   " entries are present");
	if (twinfs_dirleaf_check(b.data(), dir))
		return std::string("rejected by twinfs_dirleaf_check");
	return std::nullopt;
}

void Checker::check_directories()
{
	std::vector<std::uint32_t> dirs;
	for (const auto &[ino, info] : inodes_)
		if (S_ISDIR(info.mode))
			dirs.push_back(ino);
	std::sort(dirs.begin(), dirs.end());
	for (std::uint32_t ino : dirs) {
		InodeInfo &d = inodes_.at(ino);
		check_dir(ino, d);
		if (!d.complete)
			incomplete_dirs_.push_back(ino);
	}
}

void Checker::check_dir(std::uint32_t ino, InodeInfo &d)
{
	const std::string ip = inode_prefix(ino);
	const std::uint64_t hpblk = dir_pblk(d, 0);

	if (!hpblk) {
		problem(str(ip, "directory header (file block 0) is not "
			    "mapped"));
		return;
	}
	rep_.info(str("dir ", ino, " header at block ", hpblk));
	Block hb;
	view_.read_block(hpblk, hb);
	const auto *h = hb.as<twinfs_dir_header>();
	const std::string hp = str(ip, "directory header at block ", hpblk,
				   ": ");
	const std::uint32_t depth = le(h->h_depth);
	const std::uint32_t next_leaf = le(h->h_next_leaf);
	std::optional<std::string> bad;
	if (le(h->h_magic) != TWINFS_DIR_HDR_MAGIC)
		bad = str("bad magic ", hex32(le(h->h_magic)), ", expected ",
			  hex32(TWINFS_DIR_HDR_MAGIC));
	else if (le(h->h_ino) != ino)
		bad = str("owner h_ino is ", le(h->h_ino));
	else if (depth > TWINFS_DIR_MAX_DEPTH)
		bad = str("global depth ", depth, " exceeds ",
			  TWINFS_DIR_MAX_DEPTH);
	else if (next_leaf < 2 || next_leaf > TWINFS_DIR_TABLE_LBLK)
		bad = str("h_next_leaf ", next_leaf, " out of range");
	else if (!le(h->h_parent))
		bad = std::string("h_parent is 0");
	else if (!twinfs_csum_ok(h, sizeof(*h),
				 offsetof(twinfs_dir_header, h_checksum)))
		bad = str("checksum mismatch (stored ",
			  hex32(le(h->h_checksum)), ", computed ",
			  hex32(twinfs_csum_block(
				  h, sizeof(*h),
				  offsetof(twinfs_dir_header, h_checksum))),
			  ")");
	else if (twinfs_dirhdr_check(h, ino))
		bad = std::string("rejected by twinfs_dirhdr_check");
	if (bad) {
		problem(hp + *bad + "; its entries are not checked");
		return;
	}
	d.h_parent = le(h->h_parent);
	if (d.size != std::uint64_t(next_leaf) * kBlockSize)
		problem(str(ip, "directory size ", d.size, ", expected ",
			    std::uint64_t(next_leaf) * kBlockSize,
			    " (h_next_leaf ", next_leaf, " blocks)"));

	const std::uint64_t nslots = 1ull << depth;
	const std::uint32_t tblocks = static_cast<std::uint32_t>(
		(nslots + TWINFS_DIR_TABLE_PER_BLOCK - 1) /
		TWINFS_DIR_TABLE_PER_BLOCK);

	/* Mapped file blocks: header, leaves below h_next_leaf, table. */
	for (const auto &e : d.ext) {
		const std::uint64_t first = le(e.e_lblk);
		const std::uint64_t end = first + le(e.e_len);
		for (std::uint64_t l = first; l < end; l++) {
			if (l < next_leaf || (l >= TWINFS_DIR_TABLE_LBLK &&
					      l < TWINFS_DIR_TABLE_LBLK +
							  tblocks))
				continue;
			problem(str(ip, "directory maps file block ", l,
				    " outside its header, leaves (1..",
				    next_leaf - 1, ") and hash table"));
			break;
		}
	}

	/* The hash table. */
	std::vector<std::uint32_t> table(nslots, 0);
	bool table_ok = true;
	for (std::uint32_t t = 0; t < tblocks; t++) {
		const std::uint64_t p = dir_pblk(d, TWINFS_DIR_TABLE_LBLK + t);
		if (!p) {
			problem(str(ip, "hash table block ", t, " (file block ",
				    TWINFS_DIR_TABLE_LBLK + t,
				    ") is not mapped"));
			table_ok = false;
			continue;
		}
		rep_.info(str("dir ", ino, " table ", TWINFS_DIR_TABLE_LBLK + t,
			      " at block ", p));
		Block tb;
		view_.read_block(p, tb);
		const auto *slots = tb.as<__le32>();
		for (std::uint32_t i = 0; i < TWINFS_DIR_TABLE_PER_BLOCK; i++) {
			const std::uint64_t s = std::uint64_t(t) *
						TWINFS_DIR_TABLE_PER_BLOCK + i;
			if (s < nslots)
				table[s] = le(slots[i]);
		}
	}
	if (!table_ok) {
		problem(str(ip, "hash table incomplete; its entries are not "
			    "checked"));
		return;
	}
	d.dir_ok = true;

	struct Leaf {
		bool loaded = false, ok = false;
		std::uint64_t pblk = 0;
		std::uint32_t depth = 0;
		std::optional<std::uint32_t> suffix;
		std::map<std::uint32_t, std::uint64_t> slot_suffixes;
		std::uint64_t slots = 0;	// table slots pointing here
		bool chained = false;		// reached through d_next
		std::uint32_t next = 0;
		Block b;
	};
	std::map<std::uint32_t, Leaf> leaves;
	auto leaf_at = [&](std::uint32_t lblk) -> Leaf & {
		Leaf &lf = leaves[lblk];
		if (lf.loaded)
			return lf;
		lf.loaded = true;
		lf.pblk = dir_pblk(d, lblk);
		if (!lf.pblk) {
			problem(str(ip, "directory leaf ", lblk,
				    " is not mapped"));
			return lf;
		}
		rep_.info(str("dir ", ino, " leaf ", lblk, " at block ",
			      lf.pblk));
		view_.read_block(lf.pblk, lf.b);
		if (auto why = leaf_problem(lf.b, ino)) {
			problem(str(ip, "directory leaf ", lblk, " at block ",
				    lf.pblk, ": ", *why));
			return lf;
		}
		const auto *lh = lf.b.as<twinfs_dir_leaf_hdr>();
		lf.ok = true;
		lf.depth = le(lh->d_depth);
		lf.next = le(lh->d_next);
		return lf;
	};

	for (std::uint64_t s = 0; s < nslots; s++) {
		const std::uint32_t lblk = table[s];
		if (lblk < 1 || lblk >= next_leaf) {
			problem(str(ip, "hash table slot ", s, " holds ", lblk,
				    ", not a leaf (1..", next_leaf - 1, ")"));
			continue;
		}
		Leaf &lf = leaf_at(lblk);
		lf.slots++;
		if (!lf.ok)
			continue;
		if (lf.depth > depth) {
			if (lf.slots == 1)
				problem(str(ip, "directory leaf ", lblk,
					    ": local depth ", lf.depth,
					    " exceeds the global depth ",
					    depth));
			continue;
		}
		lf.slot_suffixes[static_cast<std::uint32_t>(
			s & low_mask(lf.depth))]++;
	}
	/* A leaf's suffix: its entries say it, else most of its slots. */
	for (auto &[lblk, lf] : leaves) {
		if (!lf.ok || lf.depth > depth || lf.slot_suffixes.empty())
			continue;
		const auto *lh = lf.b.as<twinfs_dir_leaf_hdr>();
		if (le(lh->d_count)) {
			const twinfs_dirent *de = twinfs_dirleaf_entry(
				lf.b.data(), sizeof(twinfs_dir_leaf_hdr));
			lf.suffix = le(de->de_hash) & low_mask(lf.depth);
		} else {
			lf.suffix = std::max_element(
				lf.slot_suffixes.begin(),
				lf.slot_suffixes.end(),
				[](const auto &a, const auto &b) {
					return a.second < b.second;
				})->first;
		}
		for (const auto &[suf, n] : lf.slot_suffixes)
			if (suf != *lf.suffix)
				problem(str(ip, "directory leaf ", lblk,
					    " (local depth ", lf.depth,
					    ", suffix ", *lf.suffix, ") is in ",
					    n, " hash table slot(s) whose low ",
					    lf.depth, " bits are ", suf));
		const std::uint64_t want = 1ull << (depth - lf.depth);
		if (lf.slots != want)
			problem(str(ip, "directory leaf ", lblk, " (local depth ",
				    lf.depth, ", suffix ", *lf.suffix,
				    ") is in ", lf.slots, " hash table slots, "
				    "expected ", want));
	}

	/* Overflow chains, only at the maximum depth. */
	bool complete = true;
	std::vector<std::uint32_t> heads;
	for (const auto &[lblk, lf] : leaves)
		if (lf.ok && lf.suffix)
			heads.push_back(lblk);
	for (std::uint32_t head : heads) {
		std::uint32_t cur = head;
		while (leaves[cur].next) {
			Leaf &prev = leaves[cur];
			const std::uint32_t nx = prev.next;
			if (prev.depth != TWINFS_DIR_MAX_DEPTH) {
				problem(str(ip, "directory leaf ", cur, " has "
					    "an overflow chain (d_next ", nx,
					    ") below depth ",
					    TWINFS_DIR_MAX_DEPTH));
				complete = false;
				break;
			}
			if (nx >= next_leaf) {
				problem(str(ip, "directory leaf ", cur,
					    ": d_next ", nx, " is not a leaf "
					    "(1..", next_leaf - 1, ")"));
				complete = false;
				break;
			}
			auto it = leaves.find(nx);
			if (it != leaves.end() && it->second.loaded &&
			    (it->second.slots || it->second.chained)) {
				problem(str(ip, "directory leaf ", cur,
					    ": d_next ", nx, " is a leaf "
					    "already reached (loop or shared "
					    "chain)"));
				complete = false;
				break;
			}
			Leaf &lf = leaf_at(nx);
			lf.chained = true;
			if (!lf.ok) {
				complete = false;
				break;
			}
			if (lf.depth != TWINFS_DIR_MAX_DEPTH) {
				problem(str(ip, "directory leaf ", nx, " in an "
					    "overflow chain has local depth ",
					    lf.depth));
				lf.ok = false;
				break;
			}
			lf.suffix = leaves[head].suffix;
			cur = nx;
		}
	}

	/* Mapped leaves nothing reaches. */
	for (const auto &e : d.ext) {
		const std::uint64_t first = std::max<std::uint64_t>(
			le(e.e_lblk), 1);
		const std::uint64_t end = std::min<std::uint64_t>(
			std::uint64_t(le(e.e_lblk)) + le(e.e_len), next_leaf);
		for (std::uint64_t l = first; l < end; l++)
			if (!leaves.count(static_cast<std::uint32_t>(l)) &&
			    (complete = false, true))
				problem(str(ip, "directory leaf ", l, " at block ",
					    dir_pblk(d, static_cast<
						     std::uint32_t>(l)),
					    " is mapped but neither the hash "
					    "table nor a chain reaches it"));
	}

	/* Entries. */
	std::unordered_set<std::string> names;
	std::uint64_t entries = 0;
	bool all_ok = true;
	for (auto &[lblk, lf] : leaves) {
		if (!lf.ok || !lf.suffix) {
			all_ok = false;
			continue;
		}
		const std::string lp = str(ip, "directory leaf ", lblk,
					   " at block ", lf.pblk, ": ");
		std::uint32_t misplaced = 0;	/* reported up to kMaxLines */
		const auto *lh = lf.b.as<twinfs_dir_leaf_hdr>();
		const std::uint32_t end = sizeof(twinfs_dir_leaf_hdr) +
					  le(lh->d_used);
		for (std::uint32_t off = sizeof(twinfs_dir_leaf_hdr); off < end;
		     off += TWINFS_DIRENT_SIZE(
			     twinfs_dirleaf_entry(lf.b.data(), off)
				     ->de_name_len)) {
			const twinfs_dirent *de = twinfs_dirleaf_entry(
				lf.b.data(), off);
			const std::string_view name(de->de_name,
						    de->de_name_len);
			const std::string pn = printable(name);
			const std::uint32_t hash = le(de->de_hash);
			const std::uint32_t child = le(de->de_ino);
			entries++;
			if (name == "." || name == "..")
				problem(str(lp, "stores a '", pn, "' entry"));
			if (!names.emplace(name).second)
				problem(str(lp, "name '", pn, "' appears more "
					    "than once in the directory"));
			const std::uint32_t want = twinfs_dirhash(
				name.data(),
				static_cast<std::uint32_t>(name.size()),
				seed_);
			if ((hash != want ||
			     (hash & low_mask(lf.depth)) != *lf.suffix) &&
			    ++misplaced > kMaxLines)
				;	/* summarised after the leaf */
			else if (hash != want)
				problem(str(lp, "entry '", pn, "' has hash ",
					    hex32(hash), ", expected ",
					    hex32(want)));
			else if ((hash & low_mask(lf.depth)) != *lf.suffix)
				problem(str(lp, "entry '", pn, "' (hash ",
					    hex32(hash), ") does not belong in "
					    "this leaf (local depth ",
					    lf.depth, ", suffix ", *lf.suffix,
					    ")"));
			auto it = inodes_.find(child);
			if (it == inodes_.end()) {
				problem(str(lp, "entry '", pn, "' names inode ",
					    child, ", which is not in use"));
				continue;
			}
			InodeInfo &ci = it->second;
			const std::uint8_t dt = mode_to_dtype(ci.mode);
			if (dt && de->de_type != dt)
				problem(str(lp, "entry '", pn, "' has type ",
					    unsigned(de->de_type), ", but inode ",
					    child, " is a ",
					    mode_type_name(ci.mode), " (type ",
					    unsigned(dt), ")"));
			ci.refs++;
			if (!ci.entry_dir)
				ci.entry_dir = ino;
			if (S_ISDIR(ci.mode)) {
				d.subdirs++;
				d.children.push_back(child);
			}
		}
		if (misplaced > kMaxLines)
			problem(str(lp, misplaced - kMaxLines, " more entries "
				    "with a wrong hash or in the wrong leaf"));
	}
	d.complete = complete && all_ok;
	if (all_ok && entries != le(h->h_entries))
		problem(str(ip, "h_entries is ", le(h->h_entries), ", but the "
			    "leaves hold ", entries, " names"));
}

/* ------------------------------------------------------------------ */
/* pass 5: link counts, parents, orphans, reachability                 */

void Checker::check_links()
{
	auto root_it = inodes_.find(TWINFS_ROOT_INO);
	if (root_it == inodes_.end() || !S_ISDIR(root_it->second.mode)) {
		problem(str("inode ", TWINFS_ROOT_INO, ": the root directory "
			    "is missing or not a directory"));
	}

	std::vector<std::uint32_t> order;
	for (const auto &[ino, info] : inodes_)
		order.push_back(ino);
	std::sort(order.begin(), order.end());

	/* Directories reachable from the root. */
	std::unordered_set<std::uint32_t> reached;
	if (root_it != inodes_.end() && S_ISDIR(root_it->second.mode)) {
		std::deque<std::uint32_t> todo{TWINFS_ROOT_INO};
		reached.insert(TWINFS_ROOT_INO);
		while (!todo.empty()) {
			const std::uint32_t dir = todo.front();
			todo.pop_front();
			for (std::uint32_t c : inodes_.at(dir).children)
				if (reached.insert(c).second)
					todo.push_back(c);
		}
	}

	/* With directories partly unreadable, names may be missing: a
	 * count that is too low or an orphan proves nothing then. */
	const bool partial = !incomplete_dirs_.empty();
	std::uint64_t unverified = 0;
	for (std::uint32_t ino : order) {
		const InodeInfo &in = inodes_.at(ino);
		const std::string ip = inode_prefix(ino);
		if (!in.nlink && ino != TWINFS_ROOT_INO) {
			/* Unlinked, not yet freed (open, or a crash between
			 * the unlink and the freeing): the kernel frees it at
			 * the next mount.  Its blocks stay in use until then
			 * and were accounted for in pass 3. */
			if (in.refs)
				problem(str(ip, mode_type_name(in.mode),
					    " has link count 0, but ", in.refs,
					    " directory entries name it"));
			else if (++orphans_ <= kMaxLines)
				rep_.note(str("orphan inode ", ino, " (freed at "
					      "the next mount)"));
			continue;
		}
		if (S_ISDIR(in.mode)) {
			if (ino == TWINFS_ROOT_INO) {
				if (in.refs)
					problem(str(ip, "the root directory is "
						    "named by ", in.refs,
						    " directory entries"));
				if (in.dir_ok && in.h_parent != TWINFS_ROOT_INO)
					problem(str(ip, "the root directory's "
						    "parent (h_parent) is ",
						    in.h_parent, ", must be ",
						    TWINFS_ROOT_INO));
			} else if (!in.refs || !reached.count(ino)) {
				if (partial)
					unverified++;
				else if (!in.refs)
					problem(str(ip, "directory is in use but "
						    "no directory entry names "
						    "it (orphan)"));
				else
					problem(str(ip, "directory is not "
						    "reachable from the root "
						    "(disconnected loop)"));
			}
			if (in.refs > 1)
				problem(str(ip, "directory is named by ",
					    in.refs, " entries (a directory "
					    "has one)"));
			if (ino != TWINFS_ROOT_INO && in.refs && in.dir_ok &&
			    in.h_parent != in.entry_dir)
				problem(str(ip, "parent (h_parent) is ",
					    in.h_parent, ", but directory ",
					    in.entry_dir, " holds it"));
			if (in.complete && in.nlink != 2 + in.subdirs)
				problem(str(ip, "directory link count is ",
					    in.nlink, ", expected ",
					    2 + in.subdirs, " (2 + ",
					    in.subdirs, " subdirectories)"));
		} else if (partial && in.refs < in.nlink) {
			unverified++;
		} else if (!in.refs) {
			problem(str(ip, mode_type_name(in.mode), " is in use "
				    "but no directory entry names it "
				    "(orphan)"));
		} else if (in.nlink != in.refs) {
			problem(str(ip, "link count is ", in.nlink, ", but ",
				    in.refs, " directory entries name it"));
		}
	}
	if (orphans_ > kMaxLines)
		rep_.note(str(orphans_ - kMaxLines, " more orphan inodes (freed "
			      "at the next mount)"));
	if (unverified) {
		std::string list;
		for (std::size_t i = 0; i < incomplete_dirs_.size(); i++) {
			if (i == kMaxLines) {
				list += ", ...";
				break;
			}
			list += str(i ? ", " : "", incomplete_dirs_[i]);
		}
		rep_.warning(str("link counts of ", unverified, " inodes not "
				 "verified: directories ", list, " could not "
				 "be read completely"));
	}
}

/* ------------------------------------------------------------------ */

void Checker::print_summary() const
{
	const std::uint64_t problems = rep_.problems();
	const std::uint64_t total_inodes =
		std::uint64_t(g_.ag_count) * g_.inodes_per_ag;

	if (rep_.json()) {
		std::cout << "{\"image\": " << json_string(rep_.image())
			  << ", \"clean\": " << (problems ? "false" : "true")
			  << ", \"state\": "
			  << (le(sb_.s_state) == TWINFS_STATE_CLEAN
				      ? "\"clean\"" : "\"mounted\"")
			  << ", \"blocks\": " << g_.blocks
			  << ", \"blocks_used\": " << blocks_used_
			  << ", \"inodes\": " << inodes_.size()
			  << ", \"inodes_total\": " << total_inodes
			  << ", \"directories\": " << dirs_
			  << ", \"files\": " << files_
			  << ", \"symlinks\": " << symlinks_
			  << ", \"special\": " << specials_
			  << ", \"groups\": " << g_.ag_count
			  << ", \"orphans\": " << orphans_
			  << ", \"journals_applied\": " << journals_applied_
			  << ", \"nodes\": [";
		for (std::size_t i = 0; i < nodes_.size(); i++) {
			const NodeSummary &n = nodes_[i];
			std::cout << (i ? ", " : "") << "{\"node\": " << n.node
				  << ", \"area\": \"" << n.area
				  << "\", \"cp_seq\": " << n.cp_seq
				  << ", \"cp_count\": " << n.cp_count
				  << ", \"journal\": \"" << n.journal
				  << "\", \"journal_blocks\": "
				  << n.journal_blocks << "}";
		}
		std::cout << "]"
			  << ", \"problems\": " << problems
			  << ", \"warnings\": " << rep_.warnings()
			  << ", \"messages\": [";
		const auto &m = rep_.messages();
		for (std::size_t i = 0; i < m.size(); i++)
			std::cout << (i ? ", " : "") << json_string(m[i]);
		std::cout << "]}\n";
		return;
	}
	std::cout << kProg << ": " << rep_.image() << ": " << inodes_.size()
		  << "/" << total_inodes << " inodes (" << dirs_
		  << " directories, " << files_ << " files, " << symlinks_
		  << " symlinks, " << specials_ << " special), "
		  << blocks_used_ << "/" << g_.blocks << " blocks used, "
		  << problems << (problems == 1 ? " problem" : " problems")
		  << (problems ? " found" : ": clean") << "\n";
}

Options parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"verbose", no_argument, nullptr, 'v'},
		{"json", no_argument, nullptr, 'j'},
		{"help", no_argument, nullptr, 'h'},
		{nullptr, 0, nullptr, 0},
	};
	Options o;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "nvjh", longopts, nullptr)) != -1) {
		switch (c) {
		case 'n': break;	/* always read-only */
		case 'v': o.verbose = true; break;
		case 'j': o.json = true; break;
		case 'h':
			std::cout << "usage: " << kProg
				  << " [-n] [-v] [-j] <device-or-image>\n"
				     "  -n  read-only (always; accepted for "
				     "compatibility)\n"
				     "  -v  also print where inodes, extent "
				     "leaves and directory blocks are,\n"
				     "      and each node's consistency point "
				     "state (cp_seq, cp_count, journal)\n"
				     "  -j  print the summary as JSON on stdout "
				     "(problem lines go to stderr)\n"
				     "A committed consistency point journal "
				     "is checked and, when intact, applied\n"
				     "in memory: the file system is checked as "
				     "the next mount will see it.\n"
				     "exit status: 0 clean, 4 inconsistencies "
				     "found, 8 operational error\n";
			std::exit(kExitClean);
		default:
			throw Error(str("unknown option ",
					optopt ? str("-", char(optopt))
					       : std::string(argv[optind - 1]),
					" (see --help)"));
		}
	}
	if (optind + 1 != argc)
		throw Error("give exactly one device or image (see --help)");
	o.target = argv[optind];
	return o;
}

} // namespace

int main(int argc, char **argv)
{
	Options o;
	try {
		o = parse_args(argc, argv);
	} catch (const Error &e) {
		std::cerr << kProg << ": " << e.what() << "\n";
		return kExitError;
	}
	try {
		const Image img(o.target, Image::Mode::ReadOnly);
		Report rep(o.target, o);
		Checker chk(img, rep);
		try {
			chk.run();
		} catch (const FatalInconsistency &) {
			if (o.json)
				chk.print_summary();
			else
				std::cout << kProg << ": " << o.target << ": "
					  << rep.problems()
					  << " problems found; check "
					     "stopped at the superblock\n";
			return kExitProblems;
		}
		chk.print_summary();
		return rep.problems() ? kExitProblems : kExitClean;
	} catch (const Error &e) {
		std::cerr << kProg << ": " << e.what() << "\n";
	} catch (const std::exception &e) {
		std::cerr << kProg << ": " << o.target
			  << ": unexpected error: " << e.what() << "\n";
	}
	return kExitError;
}
