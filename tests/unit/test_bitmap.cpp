// SPDX-License-Identifier: GPL-2.0
// Unit tests of kmod/core/bitmap.c.
#include "test_util.hpp"

#include <algorithm>
#include <vector>

using twinfs_test::Block;

namespace {

constexpr u32 kBits = TWINFS_BLOCK_SIZE * 8;

void set_range(u8 *map, u32 from, u32 to)
{
	for (u32 i = from; i < to; i++)
		twinfs_bit_set(map, i);
}

void clear_range(u8 *map, u32 from, u32 to)
{
	for (u32 i = from; i < to; i++)
		twinfs_bit_clear(map, i);
}

// Length of the clear run starting at i, stopping at `to`.
u32 naive_run(const u8 *map, u32 i, u32 to)
{
	u32 n = 0;
	while (i + n < to && !twinfs_bit_test(map, i + n))
		n++;
	return n;
}

// First start s in [from, to) of a clear run of want bits lying inside
// [from, to), or `to`.
u32 naive_first_fit(const u8 *map, u32 from, u32 to, u32 want)
{
	for (u32 s = from; s < to; s++)
		if (naive_run(map, s, to) >= want)
			return s;
	return to;
}

} // namespace

TEST_CASE("bit set, clear, test use little-endian bit order", "[bitmap]")
{
	Block b;
	twinfs_bit_set(b.data(), 0);
	CHECK(b.bytes[0] == 0x01);
	twinfs_bit_set(b.data(), 9);
	CHECK(b.bytes[1] == 0x02);
	twinfs_bit_set(b.data(), 7);
	CHECK(b.bytes[0] == 0x81);
	twinfs_bit_set(b.data(), kBits - 1);
	CHECK(b.bytes[TWINFS_BLOCK_SIZE - 1] == 0x80);
	CHECK(twinfs_bit_test(b.data(), 0));
	CHECK(twinfs_bit_test(b.data(), 9));
	CHECK_FALSE(twinfs_bit_test(b.data(), 8));
	CHECK_FALSE(twinfs_bit_test(b.data(), 10));
	twinfs_bit_clear(b.data(), 0);
	CHECK(b.bytes[0] == 0x80);
	CHECK_FALSE(twinfs_bit_test(b.data(), 0));
	// Setting a set bit and clearing a clear one change nothing.
	twinfs_bit_set(b.data(), 9);
	twinfs_bit_clear(b.data(), 10);
	CHECK(b.bytes[1] == 0x02);
}

TEST_CASE("bit count", "[bitmap]")
{
	Block b;
	CHECK(twinfs_bit_count(b.data(), kBits) == 0);
	b.bytes.fill(0xff);
	CHECK(twinfs_bit_count(b.data(), kBits) == kBits);
	CHECK(twinfs_bit_count(b.data(), 0) == 0);
	// Bits beyond nbits are not counted, whole bytes or not.
	for (u32 n : {1u, 7u, 8u, 9u, 13u, 100u, 1001u})
		CHECK(twinfs_bit_count(b.data(), n) == n);

	auto rng = twinfs_test::make_rng(0xb17c);
	for (int iter = 0; iter < 50; iter++) {
		Block r;
		for (auto &byte : r.bytes)
			byte = static_cast<u8>(twinfs_test::uniform<unsigned>(rng, 0, 255));
		const u32 n = twinfs_test::uniform<u32>(rng, 0, kBits);
		u32 want = 0;
		for (u32 i = 0; i < n; i++)
			want += twinfs_bit_test(r.data(), i);
		REQUIRE(twinfs_bit_count(r.data(), n) == want);
	}
}

TEST_CASE("find_zero", "[bitmap]")
{
	Block b;
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 0) == 0);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 77) == 77);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, kBits) == kBits);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, kBits + 5) == kBits);

	set_range(b.data(), 0, 1000);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 0) == 1000);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 3) == 1000);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 1000) == 1000);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 1001) == 1001);
	// Searching stops at nbits.
	CHECK(twinfs_bit_find_zero(b.data(), 1000, 0) == 1000);
	CHECK(twinfs_bit_find_zero(b.data(), 999, 5) == 999);
	// Unaligned start inside a full byte, then a clear bit mid-byte.
	twinfs_bit_clear(b.data(), 517);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 1) == 517);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 517) == 517);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 518) == 1000);
	// A full map, with nbits not a whole number of bytes.
	b.bytes.fill(0xff);
	CHECK(twinfs_bit_find_zero(b.data(), kBits, 0) == kBits);
	CHECK(twinfs_bit_find_zero(b.data(), 1003, 0) == 1003);
	b.bytes[125] = 0xf0;	// bits 1000..1003 clear
	CHECK(twinfs_bit_find_zero(b.data(), 1000, 0) == 1000);
	CHECK(twinfs_bit_find_zero(b.data(), 1003, 0) == 1000);

	auto rng = twinfs_test::make_rng(0xf1d0);
	for (int iter = 0; iter < 200; iter++) {
		Block r;
		r.bytes.fill(0xff);
		const u32 holes = twinfs_test::uniform<u32>(rng, 0, 20);
		for (u32 i = 0; i < holes; i++)
			twinfs_bit_clear(r.data(), twinfs_test::uniform<u32>(rng, 0, kBits - 1));
		const u32 n = twinfs_test::uniform<u32>(rng, 1, kBits);
		const u32 start = twinfs_test::uniform<u32>(rng, 0, n);
		u32 want = start;
		while (want < n && twinfs_bit_test(r.data(), want))
			want++;
		REQUIRE(twinfs_bit_find_zero(r.data(), n, start) == want);
	}
}

TEST_CASE("find_run", "[bitmap]")
{
	Block b;
	u32 start = 0xdead;

	SECTION("empty map: the run starts at the goal") {
		CHECK(twinfs_bit_find_run(b.data(), kBits, 100, 10, &start) == 10);
		CHECK(start == 100);
		CHECK(twinfs_bit_find_run(b.data(), kBits, 0, kBits, &start) == kBits);
		CHECK(start == 0);
	}
	SECTION("want 0 is taken as 1") {
		CHECK(twinfs_bit_find_run(b.data(), kBits, 5, 0, &start) == 1);
		CHECK(start == 5);
	}
	SECTION("goal beyond the map is taken as 0") {
		set_range(b.data(), 0, 3);
		CHECK(twinfs_bit_find_run(b.data(), kBits, kBits, 4, &start) == 4);
		CHECK(start == 3);
		CHECK(twinfs_bit_find_run(b.data(), 100, 5000, 4, &start) == 4);
		CHECK(start == 3);
	}
	SECTION("skips set bits and runs too short after the goal") {
		b.bytes.fill(0xff);
		clear_range(b.data(), 10, 500);	 // before the goal, long
		clear_range(b.data(), 560, 565); // after, too short
		clear_range(b.data(), 600, 610); // after, long enough
		CHECK(twinfs_bit_find_run(b.data(), kBits, 550, 8, &start) == 8);
		CHECK(start == 600);
		CHECK(twinfs_bit_find_run(b.data(), kBits, 562, 3, &start) == 3);
		CHECK(start == 562);
	}
	SECTION("wraps around to runs before the goal") {
		b.bytes.fill(0xff);
		clear_range(b.data(), 10, 20);
		clear_range(b.data(), 700, 703);
		CHECK(twinfs_bit_find_run(b.data(), kBits, 500, 5, &start) == 5);
		CHECK(start == 10);
		CHECK(twinfs_bit_find_run(b.data(), kBits, 500, 10, &start) == 10);
		CHECK(start == 10);
	}
	SECTION("no run long enough: the longest one found") {
		b.bytes.fill(0xff);
		clear_range(b.data(), 10, 13);	// 3
		clear_range(b.data(), 100, 106); // 6
		clear_range(b.data(), 200, 202); // 2
		CHECK(twinfs_bit_find_run(b.data(), kBits, 150, 20, &start) == 6);
		CHECK(start == 100);
		CHECK(twinfs_bit_find_run(b.data(), kBits, 0, 20, &start) == 6);
		CHECK(start == 100);
	}
	SECTION("runs end at nbits") {
		CHECK(twinfs_bit_find_run(b.data(), 100, 95, 10, &start) == 10);
		CHECK(start == 0);
		set_range(b.data(), 0, 95);
		CHECK(twinfs_bit_find_run(b.data(), 100, 95, 10, &start) == 5);
		CHECK(start == 95);
	}
	SECTION("a full map returns 0 and leaves start alone") {
		b.bytes.fill(0xff);
		CHECK(twinfs_bit_find_run(b.data(), kBits, 123, 1, &start) == 0);
		CHECK(start == 0xdead);
		b.bytes.fill(0);
		set_range(b.data(), 0, 64);
		CHECK(twinfs_bit_find_run(b.data(), 64, 0, 1, &start) == 0);
		CHECK(start == 0xdead);
	}
}

// The contract of find_run, checked on random maps:
//  - the result is a clear run inside the map, at most want bits long;
//  - 0 only when the map has no clear bit;
//  - if a run of want bits starts at or after the goal, the first one;
//  - a shorter result only when no run of want bits lies wholly after
//    the goal or wholly before it.
TEST_CASE("find_run against a model on random maps", "[bitmap][random]")
{
	auto rng = twinfs_test::make_rng(0x7a11);
	std::vector<u8> map(TWINFS_BLOCK_SIZE);

	for (int iter = 0; iter < 3000; iter++) {
		const u32 nbits = twinfs_test::uniform<u32>(rng, 1, 2048);
		// Maps from nearly empty to nearly full, with clustered holes.
		const u32 density = twinfs_test::uniform<u32>(rng, 0, 100);
		std::fill(map.begin(), map.end(), 0);
		for (u32 i = 0; i < nbits;) {
			const u32 len = twinfs_test::uniform<u32>(rng, 1, 40);
			if (twinfs_test::uniform<u32>(rng, 0, 99) < density)
				set_range(map.data(), i, std::min(nbits, i + len));
			i += len;
		}
		const u32 goal = twinfs_test::uniform<u32>(rng, 0, nbits + 10);
		const u32 want = twinfs_test::uniform<u32>(rng, 0, 60);
		const u32 w = want ? want : 1;
		const u32 g = goal < nbits ? goal : 0;
		INFO("iteration " << iter << " nbits " << nbits << " goal " << goal
		     << " want " << want);

		u32 start = 0xdeadbeef;
		const u32 len = twinfs_bit_find_run(map.data(), nbits, goal, want, &start);
		const bool any_clear = twinfs_bit_find_zero(map.data(), nbits, 0) < nbits;
		if (!any_clear) {
			REQUIRE(len == 0);
			REQUIRE(start == 0xdeadbeef);
			continue;
		}
		REQUIRE(len >= 1);
		REQUIRE(len <= w);
		REQUIRE(start < nbits);
		REQUIRE(start + len <= nbits);
		REQUIRE(naive_run(map.data(), start, nbits) >= len);

		const u32 after = naive_first_fit(map.data(), g, nbits, w);
		if (after < nbits) {
			REQUIRE(len == w);
			REQUIRE(start == after);
			continue;
		}
		if (len < w) {
			REQUIRE(naive_first_fit(map.data(), 0, g, w) == g);
		}
	}
}

// A clear run that straddles the goal is found whole (the wrap-around pass
// once stopped runs at the goal).
TEST_CASE("find_run finds a run straddling the goal", "[bitmap]")
{
	Block b;
	b.bytes.fill(0xff);
	clear_range(b.data(), 995, 1005);
	u32 start = 0;
	CHECK(twinfs_bit_find_run(b.data(), kBits, 1000, 8, &start) == 8);
	CHECK(start == 995);
}
