// SPDX-License-Identifier: GPL-2.0
// Unit tests of kmod/core/extent.c, with a randomized comparison against a
// block-by-block model.
#include "test_util.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <ostream>
#include <tuple>
#include <utility>
#include <vector>

namespace {

struct Ext {
	u32 lblk;
	u32 len;
	u64 pblk;
	bool operator==(const Ext &) const = default;
};

std::ostream &operator<<(std::ostream &os, const Ext &e)
{
	return os << "[" << e.lblk << "+" << e.len << " -> " << e.pblk << "]";
}

struct Array {
	std::vector<twinfs_extent> ext;
	u32 count = 0;

	explicit Array(u32 cap) : ext(cap) {}
	u32 cap() const { return static_cast<u32>(ext.size()); }

	int insert(u32 lblk, u32 len, u64 pblk)
	{
		const int rc = twinfs_ext_insert(ext.data(), count, cap(), lblk, len, pblk);
		if (rc >= 0)
			count = static_cast<u32>(rc);
		return rc;
	}

	std::vector<Ext> view() const
	{
		std::vector<Ext> v;
		for (u32 i = 0; i < count; i++)
			v.push_back({le32_to_cpu(ext[i].e_lblk), le32_to_cpu(ext[i].e_len),
				     le64_to_cpu(ext[i].e_pblk)});
		return v;
	}

	int remove(u32 lblk, u32 len)
	{
		const int rc = twinfs_ext_remove(ext.data(), count, cap(), lblk, len);
		if (rc >= 0)
			count = static_cast<u32>(rc);
		return rc;
	}

	twinfs_ext_map_result lookup(u32 lblk) const
	{
		twinfs_ext_map_result r{0xdead, 0xdead};
		twinfs_ext_lookup(ext.data(), count, lblk, &r);
		return r;
	}
};

// (file block, disk block, length) of each range truncate releases.
using Freed = std::vector<std::tuple<u32, u64, u32>>;

void record_free(void *arg, u32 lblk, u64 pblk, u32 len)
{
	static_cast<Freed *>(arg)->emplace_back(lblk, pblk, len);
}

Freed truncate(Array &a, u32 from)
{
	Freed freed;
	a.count = twinfs_ext_truncate(a.ext.data(), a.count, from, record_free, &freed);
	return freed;
}

twinfs_extent raw(u32 lblk, u32 len, u64 pblk)
{
	twinfs_extent e;
	e.e_lblk = cpu_to_le32(lblk);
	e.e_len = cpu_to_le32(len);
	e.e_pblk = cpu_to_le64(pblk);
	return e;
}

} // namespace

TEST_CASE("extent lookup in holes and extents", "[extent]")
{
	Array a(8);
	auto r = a.lookup(0);
	CHECK(r.pblk == 0);
	CHECK(r.len == 0);	// a hole to the end of the file

	REQUIRE(a.insert(10, 5, 1000) == 1);
	REQUIRE(a.insert(20, 3, 2000) == 2);

	r = a.lookup(0);
	CHECK(r.pblk == 0);
	CHECK(r.len == 10);
	r = a.lookup(9);
	CHECK(r.pblk == 0);
	CHECK(r.len == 1);
	r = a.lookup(10);
	CHECK(r.pblk == 1000);
	CHECK(r.len == 5);
	r = a.lookup(14);
	CHECK(r.pblk == 1004);
	CHECK(r.len == 1);
	r = a.lookup(15);
	CHECK(r.pblk == 0);
	CHECK(r.len == 5);
	r = a.lookup(22);
	CHECK(r.pblk == 2002);
	CHECK(r.len == 1);
	r = a.lookup(23);
	CHECK(r.pblk == 0);
	CHECK(r.len == 0);
	r = a.lookup(0xffffffffu);
	CHECK(r.pblk == 0);
	CHECK(r.len == 0);
}

TEST_CASE("extent insert keeps order and merges neighbours", "[extent]")
{
	Array a(4);

	SECTION("sorted whatever the insertion order") {
		REQUIRE(a.insert(50, 2, 500) == 1);
		REQUIRE(a.insert(10, 2, 100) == 2);
		REQUIRE(a.insert(30, 2, 300) == 3);
		CHECK(a.view() == std::vector<Ext>{{10, 2, 100}, {30, 2, 300}, {50, 2, 500}});
	}
	SECTION("merge left") {
		REQUIRE(a.insert(10, 5, 1000) == 1);
		REQUIRE(a.insert(15, 3, 1005) == 1);
		CHECK(a.view() == std::vector<Ext>{{10, 8, 1000}});
	}
	SECTION("merge right") {
		REQUIRE(a.insert(10, 5, 1000) == 1);
		REQUIRE(a.insert(7, 3, 997) == 1);
		CHECK(a.view() == std::vector<Ext>{{7, 8, 997}});
	}
	SECTION("merge both") {
		REQUIRE(a.insert(0, 4, 100) == 1);
		REQUIRE(a.insert(10, 5, 110) == 2);
		REQUIRE(a.insert(30, 1, 7) == 3);
		REQUIRE(a.insert(4, 6, 104) == 2);
		CHECK(a.view() == std::vector<Ext>{{0, 15, 100}, {30, 1, 7}});
	}
	SECTION("logically adjacent but not physically: no merge") {
		REQUIRE(a.insert(10, 5, 1000) == 1);
		REQUIRE(a.insert(15, 3, 2000) == 2);
		REQUIRE(a.insert(5, 5, 999) == 3);
		CHECK(a.view() == std::vector<Ext>{{5, 5, 999}, {10, 5, 1000}, {15, 3, 2000}});
	}
	SECTION("physically adjacent but not logically: no merge") {
		REQUIRE(a.insert(10, 5, 1000) == 1);
		REQUIRE(a.insert(16, 3, 1005) == 2);
	}
	SECTION("overlap is -EEXIST and changes nothing") {
		REQUIRE(a.insert(10, 5, 1000) == 1);
		REQUIRE(a.insert(20, 5, 2000) == 2);
		const auto before = a.view();
		CHECK(a.insert(10, 5, 1000) == -EEXIST);	// the same range
		CHECK(a.insert(14, 1, 1004) == -EEXIST);	// last block
		CHECK(a.insert(8, 3, 998) == -EEXIST);	// overlaps the start
		CHECK(a.insert(5, 30, 5000) == -EEXIST);	// covers both
		CHECK(a.insert(15, 6, 1005) == -EEXIST);	// runs into the next
		CHECK(a.insert(11, 1, 1) == -EEXIST);	// inside
		CHECK(a.view() == before);
		CHECK(a.insert(15, 5, 1005) == 2);		// exactly the gap
		CHECK(a.view() == std::vector<Ext>{{10, 10, 1000}, {20, 5, 2000}});
	}
	SECTION("full array: -ENOSPC unless the range merges") {
		for (u32 i = 0; i < 4; i++)
			REQUIRE(a.insert(i * 10, 2, 100 + i * 10) == int(i) + 1);
		const auto before = a.view();
		CHECK(a.insert(5, 1, 9999) == -ENOSPC);
		CHECK(a.insert(100, 1, 9999) == -ENOSPC);
		CHECK(a.insert(3, 6, 9999) == -ENOSPC);	// adjacent, not contiguous
		CHECK(a.view() == before);
		CHECK(a.insert(2, 1, 102) == 4);	// merges left
		CHECK(a.insert(9, 1, 109) == 4);	// merges right
		CHECK(a.insert(3, 6, 103) == 3);	// merges both
		CHECK(a.view() == std::vector<Ext>{{0, 12, 100}, {20, 2, 120}, {30, 2, 130}});
	}
	SECTION("invalid ranges") {
		CHECK(a.insert(10, 0, 1000) == -EINVAL);
		// An extent must end below 2^32: file block 0xffffffff is
		// never mapped (twinfs_ext_check agrees).
		CHECK(a.insert(0xfffffff0u, 0x20, 1000) == -EINVAL);
		CHECK(a.insert(0xfffffff0u, 0x10, 1000) == -EINVAL);
		CHECK(a.insert(0xfffffff0u, 0xf, 1000) == 1);
		CHECK(a.count == 1);
		CHECK(twinfs_ext_check(a.ext.data(), a.count, 0, 2000) == 0);
	}
}

TEST_CASE("extent truncate frees the right ranges", "[extent]")
{
	Array a(8);
	REQUIRE(a.insert(0, 4, 100) == 1);
	REQUIRE(a.insert(10, 10, 200) == 2);
	REQUIRE(a.insert(30, 2, 300) == 3);

	SECTION("from 0 frees everything") {
		CHECK(truncate(a, 0) == Freed{{0, 100, 4}, {10, 200, 10}, {30, 300, 2}});
		CHECK(a.count == 0);
	}
	SECTION("in the middle of an extent splits it") {
		CHECK(truncate(a, 13) == Freed{{13, 203, 7}, {30, 300, 2}});
		CHECK(a.view() == std::vector<Ext>{{0, 4, 100}, {10, 3, 200}});
	}
	SECTION("at an extent boundary") {
		CHECK(truncate(a, 10) == Freed{{10, 200, 10}, {30, 300, 2}});
		CHECK(a.view() == std::vector<Ext>{{0, 4, 100}});
	}
	SECTION("at the end of an extent") {
		CHECK(truncate(a, 20) == Freed{{30, 300, 2}});
		CHECK(a.view() == std::vector<Ext>{{0, 4, 100}, {10, 10, 200}});
	}
	SECTION("in a hole") {
		CHECK(truncate(a, 25) == Freed{{30, 300, 2}});
		CHECK(a.count == 2);
	}
	SECTION("at the last block") {
		CHECK(truncate(a, 31) == Freed{{31, 301, 1}});
		CHECK(a.view().back() == Ext{30, 1, 300});
	}
	SECTION("beyond the end frees nothing") {
		CHECK(truncate(a, 32).empty());
		CHECK(truncate(a, 0xffffffffu).empty());
		CHECK(a.count == 3);
	}
	SECTION("an empty array") {
		Array e(2);
		CHECK(truncate(e, 0).empty());
		CHECK(e.count == 0);
	}
}

TEST_CASE("extent remove unmaps a range inside one extent", "[extent]")
{
	Array a(4);
	REQUIRE(a.insert(0, 4, 100) == 1);
	REQUIRE(a.insert(10, 10, 200) == 2);
	REQUIRE(a.insert(30, 2, 300) == 3);

	SECTION("a whole extent") {
		CHECK(a.remove(10, 10) == 2);
		CHECK(a.view() == std::vector<Ext>{{0, 4, 100}, {30, 2, 300}});
		CHECK(a.remove(0, 4) == 1);
		CHECK(a.remove(30, 2) == 0);
		CHECK(a.count == 0);
	}
	SECTION("the head") {
		CHECK(a.remove(10, 3) == 3);
		CHECK(a.view()[1] == Ext{13, 7, 203});
	}
	SECTION("the tail") {
		CHECK(a.remove(17, 3) == 3);
		CHECK(a.view()[1] == Ext{10, 7, 200});
	}
	SECTION("the middle splits the extent") {
		CHECK(a.remove(12, 5) == 4);
		CHECK(a.view() == std::vector<Ext>{{0, 4, 100}, {10, 2, 200}, {17, 3, 207},
						   {30, 2, 300}});
		// The array is full now: another split does not fit.
		CHECK(a.remove(1, 2) == -ENOSPC);
		CHECK(a.count == 4);
		CHECK(a.remove(0, 1) == 4);	// a head needs no slot
		CHECK(a.view().front() == Ext{1, 3, 101});
	}
	SECTION("not inside one extent: -ENOENT, nothing changes") {
		const auto before = a.view();
		CHECK(a.remove(5, 1) == -ENOENT);	// a hole
		CHECK(a.remove(3, 2) == -ENOENT);	// runs into a hole
		CHECK(a.remove(8, 4) == -ENOENT);	// starts in a hole
		CHECK(a.remove(0, 32) == -ENOENT);	// several extents
		CHECK(a.remove(40, 1) == -ENOENT);	// beyond the end
		CHECK(a.remove(10, 0) == -ENOENT);	// nothing
		CHECK(a.view() == before);
		Array e(2);
		CHECK(e.remove(0, 1) == -ENOENT);
	}
}

TEST_CASE("extent check", "[extent]")
{
	std::vector<twinfs_extent> v{raw(0, 4, 100), raw(10, 10, 200), raw(30, 2, 300)};
	CHECK(twinfs_ext_check(v.data(), 3, 100, 302) == 0);
	CHECK(twinfs_ext_check(v.data(), 0, 0, 0) == 0);
	// Blocks outside [lo, hi).
	CHECK(twinfs_ext_check(v.data(), 3, 101, 1000) == -EUCLEAN);
	CHECK(twinfs_ext_check(v.data(), 3, 0, 301) == -EUCLEAN);

	SECTION("overlap") {
		v[1] = raw(3, 10, 200);
		CHECK(twinfs_ext_check(v.data(), 3, 0, 1000) == -EUCLEAN);
	}
	SECTION("unsorted") {
		std::swap(v[0], v[2]);
		CHECK(twinfs_ext_check(v.data(), 3, 0, 1000) == -EUCLEAN);
	}
	SECTION("duplicate start") {
		v[1] = raw(0, 1, 200);
		CHECK(twinfs_ext_check(v.data(), 3, 0, 1000) == -EUCLEAN);
	}
	SECTION("zero length") {
		v[2] = raw(30, 0, 300);
		CHECK(twinfs_ext_check(v.data(), 3, 0, 1000) == -EUCLEAN);
	}
	SECTION("beyond 2^32 file blocks") {
		v[2] = raw(0xfffffff0u, 0x20, 300);
		CHECK(twinfs_ext_check(v.data(), 3, 0, 1000) == -EUCLEAN);
	}
	SECTION("adjacent extents are fine") {
		v[1] = raw(4, 26, 200);
		CHECK(twinfs_ext_check(v.data(), 3, 0, 1000) == 0);
	}
}

TEST_CASE("extent index find", "[extent]")
{
	std::vector<twinfs_extent> idx{raw(0, 0, 7), raw(100, 0, 8), raw(5000, 0, 9)};
	CHECK(twinfs_ext_index_find(idx.data(), 0, 10) == -1);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 0) == 0);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 99) == 0);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 100) == 1);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 4999) == 1);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 5000) == 2);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 0xffffffffu) == 2);
	// Before the first entry: the first entry (where an insert goes).
	idx[0] = raw(50, 0, 7);
	CHECK(twinfs_ext_index_find(idx.data(), 3, 10) == 0);
}

namespace {

// The block model: file block -> disk block.  Its canonical extent list is
// the maximal runs of consecutive file blocks on consecutive disk blocks;
// an array built by insert/truncate always equals it, because inserts
// merge whatever they touch and truncation cannot create adjacency.
using Model = std::map<u32, u64>;

std::vector<Ext> runs(const Model &m)
{
	std::vector<Ext> v;
	for (const auto &[l, p] : m) {
		if (!v.empty() && u64{v.back().lblk} + v.back().len == l &&
		    v.back().pblk + v.back().len == p)
			v.back().len++;
		else
			v.push_back({l, 1, p});
	}
	return v;
}

twinfs_ext_map_result expected_lookup(const std::vector<Ext> &rs, u32 lblk)
{
	for (const auto &r : rs) {
		if (lblk < r.lblk)
			return {0, r.lblk - lblk};
		if (lblk < r.lblk + r.len)
			return {r.pblk + (lblk - r.lblk), r.lblk + r.len - lblk};
	}
	return {0, 0};
}

} // namespace

TEST_CASE("extent array against a block model: insert, remove, truncate, lookup",
	  "[extent][random]")
{
	for (u32 cap : {TWINFS_INLINE_EXTENTS, 24u, u32{TWINFS_EXT_LEAF_MAX}}) {
		auto rng = twinfs_test::make_rng(0xe47 + cap);
		Array a(cap);
		Model m;
		u64 next_fresh = 10'000'000;
		const u64 identity_base = 100'000;
		const u32 space = cap * 40;
		int inserted = 0, merged_away = 0, eexist = 0, enospc = 0, truncs = 0,
		    removed = 0;

		for (int op = 0; op < 6000; op++) {
			INFO("capacity " << cap << " operation " << op);
			const u32 r = twinfs_test::uniform<u32>(rng, 0, 99);
			if (r < 80) {
				u32 lblk = twinfs_test::uniform<u32>(rng, 0, space);
				const u32 len = r < 70 ? twinfs_test::uniform<u32>(rng, 1, 8)
						       : twinfs_test::uniform<u32>(rng, 1, 64);
				// Disk blocks: the identity layout (neighbours
				// merge), fresh blocks (no merge), or growing an
				// existing mapping at either end (merges).
				u64 pblk;
				const u32 mode = twinfs_test::uniform<u32>(rng, 0, 3);
				const auto near = m.lower_bound(lblk);
				if (mode == 2 && near != m.end() && near->first < 0xffff0000u) {
					lblk = near->first + 1;
					pblk = near->second + 1;
				} else if (mode == 3 && near != m.end() && near->first >= len &&
					   near->second - len >= identity_base) {
					lblk = near->first - len;
					pblk = near->second - len;
				} else if (mode & 1) {
					pblk = next_fresh;
					next_fresh += len + twinfs_test::uniform<u32>(rng, 0, 1);
				} else {
					pblk = identity_base + lblk;
				}
				bool hole = true;
				for (u32 i = 0; i < len; i++)
					hole = hole && !m.count(lblk + i);
				const auto before = a.view();
				const int rc = a.insert(lblk, len, pblk);
				if (!hole) {
					REQUIRE(rc == -EEXIST);
					REQUIRE(a.view() == before);
					eexist++;
					continue;
				}
				Model after = m;
				for (u32 i = 0; i < len; i++)
					after[lblk + i] = pblk + i;
				const auto want = runs(after);
				if (want.size() > cap) {
					REQUIRE(rc == -ENOSPC);
					REQUIRE(a.view() == before);
					enospc++;
					continue;
				}
				REQUIRE(rc == int(want.size()));
				if (want.size() <= before.size())
					merged_away++;
				m = std::move(after);
				inserted++;
			} else if (r < 88 && !m.empty()) {
				// Unmap part of one extent, or a range that is not.
				const auto rs = runs(m);
				const Ext &e = rs[twinfs_test::uniform<size_t>(rng, 0, rs.size() - 1)];
				u32 lblk = e.lblk + twinfs_test::uniform<u32>(rng, 0, e.len - 1);
				u32 len = twinfs_test::uniform<u32>(rng, 1, e.lblk + e.len - lblk);
				const bool outside = twinfs_test::uniform<u32>(rng, 0, 3) == 0;
				if (outside) {
					if (lblk > 0 && !m.count(lblk - 1))
						lblk--, len++;		// from a hole
					else
						len += 1 + twinfs_test::uniform<u32>(rng, 0, 3); // past the end
				}
				bool inside = true;
				for (u32 i = 0; i < len; i++)
					inside = inside && m.count(lblk + i) &&
						 m.at(lblk + i) == m.at(lblk) + i;
				inside = inside && len > 0;
				// Inside one extent: one run covers the range.
				inside = inside && std::any_of(rs.begin(), rs.end(), [&](const Ext &x) {
					return x.lblk <= lblk && u64{lblk} + len <= u64{x.lblk} + x.len;
				});
				const auto before = a.view();
				const int rc = a.remove(lblk, len);
				if (!inside) {
					REQUIRE(rc == -ENOENT);
					REQUIRE(a.view() == before);
					continue;
				}
				Model after = m;
				for (u32 i = 0; i < len; i++)
					after.erase(lblk + i);
				const auto want = runs(after);
				if (want.size() > cap) {
					REQUIRE(rc == -ENOSPC);
					REQUIRE(a.view() == before);
					enospc++;
					continue;
				}
				REQUIRE(rc == int(want.size()));
				m = std::move(after);
				removed++;
			} else if (r < 95) {
				const auto rs = runs(m);
				for (int k = 0; k < 16; k++) {
					const u32 lblk = twinfs_test::uniform<u32>(rng, 0, space + 70);
					const auto got = a.lookup(lblk);
					const auto want = expected_lookup(rs, lblk);
					INFO("lookup " << lblk);
					REQUIRE(got.pblk == want.pblk);
					REQUIRE(got.len == want.len);
				}
			} else {
				const u32 from = twinfs_test::uniform<u32>(rng, 0, space + 70);
				// What the model says is freed, as runs of disk blocks.
				Model tail(m.lower_bound(from), m.end());
				Freed want;
				for (const auto &e : runs(tail))
					want.emplace_back(e.lblk, e.pblk, e.len);
				CHECK(truncate(a, from) == want);
				m.erase(m.lower_bound(from), m.end());
				truncs++;
			}
			REQUIRE(a.view() == runs(m));
			REQUIRE(twinfs_ext_check(a.ext.data(), a.count, identity_base,
						 1ull << 40) == 0);
		}
		// The operation mix reached every interesting case.
		CHECK(inserted > 500);
		CHECK(merged_away > 100);
		CHECK(eexist > 50);
		if (cap <= 24)
			CHECK(enospc > 10);
		CHECK(truncs > 50);
		CHECK(removed > 200);
	}
}

TEST_CASE("extent check rejects disk ranges wrapping around 2^64", "[extent]")
{
	const std::vector<twinfs_extent> v{raw(0, 0x20, 0xfffffffffffffff0ull)};
	CHECK(twinfs_ext_check(v.data(), 1, 0, 1000) == -EUCLEAN);
	const std::vector<twinfs_extent> w{raw(0, 1, 5000)};	// start beyond hi
	CHECK(twinfs_ext_check(w.data(), 1, 0, 1000) == -EUCLEAN);
	const std::vector<twinfs_extent> x{raw(0, 2, 999)};	// ends beyond hi
	CHECK(twinfs_ext_check(x.data(), 1, 0, 1000) == -EUCLEAN);
	const std::vector<twinfs_extent> y{raw(0, 1, 999)};	// ends at hi
	CHECK(twinfs_ext_check(y.data(), 1, 0, 1000) == 0);
}
