// SPDX-License-Identifier: GPL-2.0
// Unit tests of twinfsd's disk heartbeat (userspace/disk_heartbeat.cpp):
// the sector format and what a series of reads says about each node.
#include <catch2/catch.hpp>

#include "twinfs_user/disk_heartbeat.hpp"

#include "include/twinfs/twinfs_format.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <vector>

using namespace twinfs;
using namespace std::chrono_literals;
using Clock = HeartbeatTracker::Clock;

namespace {

HeartbeatRecord rec(std::uint32_t slot, std::uint32_t node, std::uint64_t counter,
		    std::uint64_t incarnation = 1234)
{
	HeartbeatRecord r;
	r.slot = slot;
	r.node_id = node;
	r.counter = counter;
	r.incarnation = incarnation;
	r.interval_ms = 200;
	return r;
}

// A heartbeat block (block 1) with the given sectors, the rest zero.
struct Block {
	std::vector<std::uint8_t> b = std::vector<std::uint8_t>(kHeartbeatBlockSize, 0);
	void put(const HeartbeatRecord &r, unsigned at)
	{
		const auto s = encode_heartbeat(r);
		std::copy(s.begin(), s.end(), b.begin() + at * kHeartbeatSector);
	}
	void put(const HeartbeatRecord &r) { put(r, r.slot); }
};

} // namespace

TEST_CASE("heartbeat sector: encode, decode, checksum", "[heartbeat]")
{
	STATIC_REQUIRE(sizeof(twinfs_heartbeat) == 512);
	const HeartbeatRecord r = rec(1, 2, 77, 0x1122334455667788ULL);
	const auto s = encode_heartbeat(r);
	REQUIRE(decode_heartbeat(s, 1) == r);
	// Little-endian fields where the header says.
	CHECK(s[offsetof(twinfs_heartbeat, hb_magic)] == 0x42);	// "TWHB"
	CHECK(s[offsetof(twinfs_heartbeat, hb_counter)] == 77);
	CHECK(s[offsetof(twinfs_heartbeat, hb_incarnation)] == 0x88);

	SECTION("a zero sector (mkfs) is no heartbeat")
	{
		const std::array<std::uint8_t, kHeartbeatSector> z{};
		CHECK(!decode_heartbeat(z, 1));
	}
	SECTION("every flipped bit is refused")
	{
		for (std::size_t byte : {std::size_t{0}, std::size_t{9}, std::size_t{16},
					 std::size_t{100}, std::size_t{508}, std::size_t{511}}) {
			auto c = s;
			c[byte] ^= 0x10;
			CHECK(!decode_heartbeat(c, 1));
		}
	}
	SECTION("a sector in the wrong place, of another version, or the wrong size")
	{
		CHECK(!decode_heartbeat(s, 0));
		auto v = s;
		v[offsetof(twinfs_heartbeat, hb_version)] = 2;
		CHECK(!decode_heartbeat(v, 1));
		CHECK(!decode_heartbeat(std::span<const std::uint8_t>(s).first(511), 1));
	}
}

TEST_CASE("heartbeat tracker: stale only after stale_ms unchanged, by recent reads", "[heartbeat]")
{
	// Slot 0 is node 1, slot 1 node 2.
	std::array<twinfs::cluster::NodeId, kHeartbeatSlots> nodes{};
	nodes[0] = 1;
	nodes[1] = 2;
	HeartbeatTracker t(nodes, 1000);
	const auto t0 = Clock::now();
	Block b;
	CHECK(!t.stale_for(0, t0));
	CHECK(!t.unchanged_for(0, t0));

	SECTION("a node that writes is fresh; one that stops is stale after stale_ms")
	{
		std::uint64_t c = 0;
		for (int i = 0; i <= 10; i++) {
			b.put(rec(0, 1, ++c));
			t.observe(b.b, t0 + i * 200ms);
		}
		CHECK(!t.stale_for(0, t0 + 2000ms));
		CHECK(t.unchanged_for(0, t0 + 2000ms) == 0ms);
		// It stops (same counter from now on).
		for (int i = 11; i <= 14; i++)
			t.observe(b.b, t0 + i * 200ms);
		CHECK(!t.stale_for(0, t0 + 2800ms));	// unchanged by reads 800 ms apart
		t.observe(b.b, t0 + 3000ms);
		CHECK(t.stale_for(0, t0 + 3000ms) == 1000ms);
		t.observe(b.b, t0 + 3200ms);
		REQUIRE(t.stale_for(0, t0 + 3200ms));
		CHECK(*t.stale_for(0, t0 + 3200ms) == 1200ms);
		// A restarted twinfsd (new incarnation, counter from 1) is alive.
		b.put(rec(0, 1, 1, 9999));
		t.observe(b.b, t0 + 3400ms);
		CHECK(!t.stale_for(0, t0 + 3400ms));
		CHECK(t.last(0)->incarnation == 9999u);
	}
	SECTION("a node never seen is stale only stale_ms after the first read")
	{
		t.observe(b.b, t0);
		t.observe(b.b, t0 + 800ms);
		CHECK(!t.stale_for(1, t0 + 800ms));
		t.observe(b.b, t0 + 1000ms);
		CHECK(t.stale_for(1, t0 + 1000ms) == 1000ms);
	}
	SECTION("our own reads stuck: no evidence, nobody is stale")
	{
		t.observe(b.b, t0);
		t.observe(b.b, t0 + 1200ms);
		CHECK(t.stale_for(1, t0 + 1200ms));
		CHECK(t.stale_for(1, t0 + 2200ms));	// last read 1000 ms old: still counts
		CHECK(!t.stale_for(1, t0 + 2300ms));	// older: it says nothing now
	}
	SECTION("a corrupt or foreign sector is ignored, not taken as a sign of life")
	{
		b.put(rec(1, 2, 5));
		t.observe(b.b, t0);
		t.observe(b.b, t0 + 600ms);
		// Corrupt: a bit flips in node 2's sector.
		b.b[kHeartbeatSector + 20] ^= 1;
		t.observe(b.b, t0 + 800ms);
		// Foreign: a valid sector of node 3 (not slot 1's node) there.
		b.put(rec(1, 3, 6));
		t.observe(b.b, t0 + 1000ms);
		REQUIRE(t.stale_for(1, t0 + 1000ms));
		CHECK(t.last(1)->counter == 5u);
		// A copy of slot 0's sector in slot 1 (wrong hb_slot): ignored too.
		b.put(rec(0, 2, 7), 1);
		t.observe(b.b, t0 + 1200ms);
		CHECK(t.stale_for(1, t0 + 1200ms));
		// Node 2 writes again: fresh.
		b.put(rec(1, 2, 8));
		t.observe(b.b, t0 + 1400ms);
		CHECK(!t.stale_for(1, t0 + 1400ms));
	}
	SECTION("a slot of no configured node is never stale-worthy of a name")
	{
		t.observe(b.b, t0);
		t.observe(b.b, t0 + 2000ms);
		CHECK(t.stale_for(5, t0 + 2000ms));	// unchanged, as any unwritten slot
		CHECK(!t.stale_for(kHeartbeatSlots, t0 + 2000ms));
	}
}
