// SPDX-License-Identifier: GPL-2.0
// The disk heartbeat of twinfsd (Documentation/twinfsd.md, "Disk
// heartbeat"): block 1 of every shared twinfs disk holds one 512-byte
// sector per node (struct twinfs_heartbeat, include/twinfs/
// twinfs_format.h), sector n written only by the twinfsd of the node whose
// disk_area is n.  Every disk_heartbeat_ms a thread per disk writes this
// node's sector (O_DIRECT|O_DSYNC) and reads the whole block (O_DIRECT),
// remembering when each other node's sector last changed.  A lost holder
// whose sector has not changed for Config::heartbeat_stale_ms() is dead,
// not cut off: its fence skips fence_delay_ms (cluster.hpp, plan()).
//
// The sector format and HeartbeatTracker are portable and unit-tested
// (tests/unit/test_cluster.cpp, [heartbeat]); DiskHeartbeat and
// HeartbeatMonitor do the I/O.
#pragma once

#include "twinfs_user/cluster_config.hpp"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace twinfs {

inline constexpr unsigned kHeartbeatSector = 512;	// TWINFS_HEARTBEAT_SECTOR
inline constexpr unsigned kHeartbeatSlots = 8;		// TWINFS_HEARTBEAT_SLOTS
inline constexpr unsigned kHeartbeatBlockSize = kHeartbeatSector * kHeartbeatSlots;

// One sector, decoded.
struct HeartbeatRecord {
	std::uint32_t slot = 0;
	std::uint32_t node_id = 0;		// the writer's corosync node id
	std::uint64_t counter = 0;
	std::uint64_t incarnation = 0;		// the writer's start, ns since 1970
	std::uint32_t interval_ms = 0;
	bool operator==(const HeartbeatRecord &) const = default;
};

// The sector of r (kHeartbeatSector bytes, little-endian, crc32c).
std::array<std::uint8_t, kHeartbeatSector> encode_heartbeat(const HeartbeatRecord &r);
// The record in `sector` (kHeartbeatSector bytes) if it is a valid
// heartbeat of `slot`: nullopt for a zero sector (never written), a
// foreign one (magic, version, another slot) or a checksum that fails.
std::optional<HeartbeatRecord> decode_heartbeat(std::span<const std::uint8_t> sector,
						unsigned slot);

// What the reads of one disk's heartbeat block tell about each slot.  Not
// thread-safe (DiskHeartbeat locks it).
class HeartbeatTracker {
public:
	using Clock = std::chrono::steady_clock;
	// `nodes[slot]`: the node id whose sector that is (0: none); a
	// sector naming another node is ignored like a corrupt one.
	HeartbeatTracker(std::array<cluster::NodeId, kHeartbeatSlots> nodes, unsigned stale_ms);

	// A whole block (kHeartbeatBlockSize bytes) read at `now`.  A slot's
	// clock restarts when its (incarnation, counter) changes; an invalid
	// sector changes nothing (it is not a sign of life).  The first read
	// starts every slot's clock: a node never seen is stale only
	// stale_ms after that.
	void observe(std::span<const std::uint8_t> block, Clock::time_point now);
	// How long slot's sector has been unchanged if that is at least
	// stale_ms, by reads the last of which is at most stale_ms old (our
	// own I/O stuck tells nothing about the others); else nullopt.
	std::optional<std::chrono::milliseconds> stale_for(unsigned slot,
							   Clock::time_point now) const;
	// Since the slot's sector last changed (by the last read); nullopt
	// before the first read.
	std::optional<std::chrono::milliseconds> unchanged_for(unsigned slot,
							       Clock::time_point now) const;
	// The last valid record of the slot.
	const std::optional<HeartbeatRecord> &last(unsigned slot) const { return slots_.at(slot).rec; }
	unsigned stale_ms() const { return stale_ms_; }

private:
	struct Slot {
		std::optional<HeartbeatRecord> rec;
		Clock::time_point changed;
	};
	std::array<cluster::NodeId, kHeartbeatSlots> nodes_;
	unsigned stale_ms_;
	std::array<Slot, kHeartbeatSlots> slots_{};
	std::optional<Clock::time_point> last_read_;
};

using HeartbeatLog = std::function<void(int prio, const std::string &msg)>;

// The heartbeat thread of one disk: writes `self`'s sector (when it is a
// writer there) and reads the block every interval_ms.  Errors are logged
// (the first, then at most one a minute, and the recovery), never fatal.
// Before the first write it checks that block 0 is a twinfs superblock:
// twinfsd never writes into a disk that is not twinfs.
class DiskHeartbeat {
public:
	struct Params {
		std::string device;
		std::optional<unsigned> my_slot;	// nullopt: read only
		cluster::NodeId my_node = 0;
		std::uint64_t incarnation = 0;
		std::array<cluster::NodeId, kHeartbeatSlots> nodes{};
		unsigned interval_ms = 200;
		unsigned stale_ms = 1000;
	};
	DiskHeartbeat(Params p, HeartbeatLog log);
	~DiskHeartbeat();	// stops and joins the thread
	DiskHeartbeat(const DiskHeartbeat &) = delete;
	DiskHeartbeat &operator=(const DiskHeartbeat &) = delete;

	const std::string &device() const { return p_.device; }
	// Thread-safe: HeartbeatTracker's queries at Clock::now().
	std::optional<std::chrono::milliseconds> stale_for(unsigned slot) const;
	std::optional<std::chrono::milliseconds> unchanged_for(unsigned slot) const;

private:
	void run(std::stop_token st);
	void error(const std::string &what);

	const Params p_;
	const HeartbeatLog log_;
	mutable std::mutex mu_;
	HeartbeatTracker tracker_;		// under mu_
	std::condition_variable_any cv_;
	std::chrono::steady_clock::time_point last_error_log_{};
	unsigned errors_unlogged_ = 0;
	bool failing_ = false;
	std::array<bool, kHeartbeatSlots> stale_logged_{};
	std::jthread thread_;			// last: starts after the rest
};

// twinfsd's heartbeats: one DiskHeartbeat per distinct device of the
// configured file systems (Config::device_path).  This node writes on the
// devices of its pair's file systems and reads all of them.
class HeartbeatMonitor {
public:
	HeartbeatMonitor(const cluster::Config &cfg, cluster::NodeId me, HeartbeatLog log);
	// The node's heartbeat has been unchanged for at least
	// Config::heartbeat_stale_ms() on every device it writes to: for how
	// long (the shortest of them); nullopt when it is fresh anywhere, not
	// known, or the node writes nowhere.
	std::optional<std::chrono::milliseconds> stale_for(cluster::NodeId n) const;
	// For the log: since its heartbeat last changed (the shortest over its
	// devices); nullopt when not known.
	std::optional<std::chrono::milliseconds> unchanged_for(cluster::NodeId n) const;

private:
	struct Watch {
		std::unique_ptr<DiskHeartbeat> hb;
		std::vector<cluster::NodeId> writers;
	};
	// The shortest get(heartbeat, slot) over the devices node n writes to;
	// with all_needed, nullopt as soon as one of them gives none.
	template <typename Get>
	std::optional<std::chrono::milliseconds> shortest(cluster::NodeId n, bool all_needed,
							  Get get) const;

	const cluster::Config &cfg_;
	std::vector<Watch> watches_;
};

} // namespace twinfs
