// SPDX-License-Identifier: GPL-2.0
// twinfsd's disk heartbeat: see include/twinfs_user/disk_heartbeat.hpp.
#include "twinfs_user/disk_heartbeat.hpp"

#include "twinfs_user/fd.hpp"

#include "include/twinfs/twinfs_format.h"
#include "twinfs_core.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <set>
#include <system_error>

namespace twinfs {

static_assert(kHeartbeatSector == TWINFS_HEARTBEAT_SECTOR);
static_assert(kHeartbeatSlots == TWINFS_HEARTBEAT_SLOTS);
static_assert(kHeartbeatBlockSize == TWINFS_BLOCK_SIZE);

using cluster::NodeId;
using std::chrono::milliseconds;

namespace {

template <typename T>
void put(std::uint8_t *p, T v)
{
	for (std::size_t i = 0; i < sizeof(T); i++)
		p[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i));
}

template <typename T>
T get(const std::uint8_t *p)
{
	std::uint64_t v = 0;
	for (std::size_t i = 0; i < sizeof(T); i++)
		v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
	return static_cast<T>(v);
}

#define HB_OFF(f) offsetof(struct twinfs_heartbeat, f)

milliseconds ms(std::chrono::steady_clock::duration d)
{
	return std::chrono::duration_cast<milliseconds>(d);
}

std::string errno_text(int err) { return std::strerror(err); }

} // namespace

std::array<std::uint8_t, kHeartbeatSector> encode_heartbeat(const HeartbeatRecord &r)
{
	std::array<std::uint8_t, kHeartbeatSector> s{};
	put<std::uint32_t>(&s[HB_OFF(hb_magic)], TWINFS_HEARTBEAT_MAGIC);
	put<std::uint32_t>(&s[HB_OFF(hb_version)], TWINFS_HEARTBEAT_VERSION);
	put<std::uint32_t>(&s[HB_OFF(hb_slot)], r.slot);
	put<std::uint32_t>(&s[HB_OFF(hb_node_id)], r.node_id);
	put<std::uint64_t>(&s[HB_OFF(hb_counter)], r.counter);
	put<std::uint64_t>(&s[HB_OFF(hb_incarnation)], r.incarnation);
	put<std::uint32_t>(&s[HB_OFF(hb_interval_ms)], r.interval_ms);
	twinfs_csum_set(s.data(), s.size(), HB_OFF(hb_checksum));
	return s;
}

std::optional<HeartbeatRecord> decode_heartbeat(std::span<const std::uint8_t> sector, unsigned slot)
{
	if (sector.size() != kHeartbeatSector)
		return std::nullopt;
	const std::uint8_t *p = sector.data();
	if (get<std::uint32_t>(p + HB_OFF(hb_magic)) != TWINFS_HEARTBEAT_MAGIC ||
	    get<std::uint32_t>(p + HB_OFF(hb_version)) != TWINFS_HEARTBEAT_VERSION ||
	    !twinfs_csum_ok(p, sector.size(), HB_OFF(hb_checksum)))
		return std::nullopt;
	HeartbeatRecord r;
	r.slot = get<std::uint32_t>(p + HB_OFF(hb_slot));
	r.node_id = get<std::uint32_t>(p + HB_OFF(hb_node_id));
	r.counter = get<std::uint64_t>(p + HB_OFF(hb_counter));
	r.incarnation = get<std::uint64_t>(p + HB_OFF(hb_incarnation));
	r.interval_ms = get<std::uint32_t>(p + HB_OFF(hb_interval_ms));
	if (r.slot != slot)
		return std::nullopt;
	return r;
}

// ---- HeartbeatTracker --------------------------------------------------

HeartbeatTracker::HeartbeatTracker(std::array<NodeId, kHeartbeatSlots> nodes, unsigned stale_ms)
	: nodes_(nodes), stale_ms_(stale_ms)
{
}

void HeartbeatTracker::observe(std::span<const std::uint8_t> block, Clock::time_point now)
{
	if (block.size() != kHeartbeatBlockSize)
		return;
	const bool first = !last_read_;
	for (unsigned i = 0; i < kHeartbeatSlots; i++) {
		Slot &s = slots_[i];
		if (first)
			s.changed = now;
		const auto r = decode_heartbeat(block.subspan(i * kHeartbeatSector, kHeartbeatSector), i);
		if (!r || nodes_[i] == 0 || r->node_id != nodes_[i])
			continue;	// never written, corrupt or foreign: no sign of life
		if (!s.rec || s.rec->counter != r->counter || s.rec->incarnation != r->incarnation) {
			if (!first)
				s.changed = now;
			s.rec = r;
		}
	}
	last_read_ = now;
}

std::optional<milliseconds> HeartbeatTracker::stale_for(unsigned slot, Clock::time_point now) const
{
	if (!last_read_ || slot >= kHeartbeatSlots)
		return std::nullopt;
	const milliseconds stale(stale_ms_);
	if (ms(now - *last_read_) > stale)
		return std::nullopt;	// our reads are stuck: no evidence
	const Slot &s = slots_[slot];
	if (ms(*last_read_ - s.changed) < stale)
		return std::nullopt;
	return ms(now - s.changed);
}

std::optional<milliseconds> HeartbeatTracker::unchanged_for(unsigned slot, Clock::time_point now) const
{
	if (!last_read_ || slot >= kHeartbeatSlots)
		return std::nullopt;
	return ms(now - slots_[slot].changed);
}

// ---- DiskHeartbeat -----------------------------------------------------

DiskHeartbeat::DiskHeartbeat(Params p, HeartbeatLog log)
	: p_(std::move(p)), log_(std::move(log)), tracker_(p_.nodes, p_.stale_ms),
	  thread_([this](std::stop_token st) { run(st); })
{
}

DiskHeartbeat::~DiskHeartbeat()
{
	thread_.request_stop();
	cv_.notify_all();
}

std::optional<milliseconds> DiskHeartbeat::stale_for(unsigned slot) const
{
	const std::lock_guard lock(mu_);
	return tracker_.stale_for(slot, HeartbeatTracker::Clock::now());
}

std::optional<milliseconds> DiskHeartbeat::unchanged_for(unsigned slot) const
{
	const std::lock_guard lock(mu_);
	return tracker_.unchanged_for(slot, HeartbeatTracker::Clock::now());
}

// The first error is logged, then at most one line a minute (with how
// many were not logged); the recovery is logged too (run()).
void DiskHeartbeat::error(const std::string &what)
{
	const auto now = std::chrono::steady_clock::now();
	if (failing_ && now - last_error_log_ < std::chrono::minutes(1)) {
		errors_unlogged_++;
		return;
	}
	std::string more;
	if (errors_unlogged_)
		more = " (" + std::to_string(errors_unlogged_) + " more errors in the last minute)";
	log_(LOG_ERR, "disk heartbeat on " + p_.device + ": " + what + more +
			      "; fences of holders keep fence_delay_ms while this lasts");
	failing_ = true;
	last_error_log_ = now;
	errors_unlogged_ = 0;
}

void DiskHeartbeat::run(std::stop_token st)
{
	alignas(TWINFS_BLOCK_SIZE) std::array<std::uint8_t, TWINFS_BLOCK_SIZE> block{};
	alignas(TWINFS_BLOCK_SIZE) std::array<std::uint8_t, TWINFS_BLOCK_SIZE> sector{};
	std::optional<Fd> fd;
	bool can_write = p_.my_slot.has_value();
	std::uint64_t counter = 0;
	const off_t base = static_cast<off_t>(TWINFS_HEARTBEAT_BLOCK) * TWINFS_BLOCK_SIZE;
	{
		std::string how = p_.my_slot ? "writing sector " + std::to_string(*p_.my_slot) +
						       " (node " + std::to_string(p_.my_node) + ")"
					     : std::string("reading only");
		log_(LOG_INFO, "disk heartbeat on " + p_.device + ": " + how + " every " +
				       std::to_string(p_.interval_ms) + " ms; a node is dead after " +
				       std::to_string(p_.stale_ms) + " ms unchanged");
	}
	std::mutex wait_mu;
	while (!st.stop_requested()) {
		const auto next = std::chrono::steady_clock::now() + milliseconds(p_.interval_ms);
		std::string err;
		if (!fd) {
			const int flags = (can_write ? O_RDWR | O_DSYNC : O_RDONLY) | O_DIRECT | O_CLOEXEC;
			fd.emplace(::open(p_.device.c_str(), flags));
			const std::uint8_t *sb = block.data();
			if (fd->get() < 0) {
				err = "open: " + errno_text(errno);
			} else if (::pread(fd->get(), block.data(), block.size(), 0) !=
				   static_cast<ssize_t>(block.size())) {
				err = "reading the superblock: " + errno_text(errno);
			} else if (get<std::uint32_t>(sb + offsetof(struct twinfs_super, s_magic)) != TWINFS_MAGIC ||
				   get<std::uint64_t>(sb + offsetof(struct twinfs_super, s_node_area_start)) <=
					   TWINFS_HEARTBEAT_BLOCK) {
				err = "block 0 is not a twinfs superblock (not made by mkfs.twinfs?): "
				      "block 1 is left alone";
			} else {
				int lbs = 0;
				if (can_write && ::ioctl(fd->get(), BLKSSZGET, &lbs) == 0 &&
				    lbs > static_cast<int>(kHeartbeatSector)) {
					log_(LOG_ERR, "disk heartbeat on " + p_.device + ": logical sector size " +
							      std::to_string(lbs) + " bytes: a 512-byte heartbeat "
							      "sector cannot be written alone; reading only (the "
							      "others keep this node's fence delayed)");
					can_write = false;
				}
			}
		}
		if (fd && err.empty() && can_write) {
			HeartbeatRecord r;
			r.slot = *p_.my_slot;
			r.node_id = p_.my_node;
			r.counter = ++counter;
			r.incarnation = p_.incarnation;
			r.interval_ms = p_.interval_ms;
			const auto s = encode_heartbeat(r);
			std::copy(s.begin(), s.end(), sector.begin());
			const off_t off = base + static_cast<off_t>(*p_.my_slot) * kHeartbeatSector;
			const ssize_t n = ::pwrite(fd->get(), sector.data(), kHeartbeatSector, off);
			if (n != static_cast<ssize_t>(kHeartbeatSector))
				err = "writing sector " + std::to_string(*p_.my_slot) + ": " +
				      (n < 0 ? errno_text(errno) : "short write");
		}
		if (fd && err.empty()) {
			const ssize_t n = ::pread(fd->get(), block.data(), block.size(), base);
			if (n != static_cast<ssize_t>(block.size())) {
				err = "reading block 1: " + (n < 0 ? errno_text(errno) : std::string("short read"));
			} else {
				const auto now = HeartbeatTracker::Clock::now();
				std::vector<std::string> lines;
				{
					const std::lock_guard lock(mu_);
					tracker_.observe(block, now);
					for (unsigned i = 0; i < kHeartbeatSlots; i++) {
						if (!p_.nodes[i] || (p_.my_slot && *p_.my_slot == i))
							continue;
						const bool stale = tracker_.stale_for(i, now).has_value();
						if (stale == stale_logged_[i])
							continue;
						stale_logged_[i] = stale;
						lines.push_back(
							"disk heartbeat on " + p_.device + ": node " +
							std::to_string(p_.nodes[i]) +
							(stale ? " stopped: its sector has not changed for " +
									 std::to_string(tracker_.unchanged_for(i, now)->count()) + " ms"
							       : " is alive (its sector changes)"));
					}
				}
				for (const auto &l : lines)
					log_(LOG_INFO, l);
			}
		}
		if (!err.empty()) {
			error(err);
			fd.reset();	// reopened (and checked again) next time
		} else if (failing_) {
			failing_ = false;
			log_(LOG_NOTICE, "disk heartbeat on " + p_.device + ": working again" +
						 (errors_unlogged_ ? " (" + std::to_string(errors_unlogged_) +
									     " errors not logged)"
								   : std::string()));
			errors_unlogged_ = 0;
		}
		std::unique_lock lock(wait_mu);
		cv_.wait_until(lock, st, next, [] { return false; });
	}
}

// ---- HeartbeatMonitor --------------------------------------------------

HeartbeatMonitor::HeartbeatMonitor(const cluster::Config &cfg, NodeId me, HeartbeatLog log)
	: cfg_(cfg)
{
	if (cfg.disk_heartbeat_ms == 0)
		return;
	// crc32c's table is built on first use: here, before any thread.
	(void)encode_heartbeat(HeartbeatRecord{});
	timespec ts{};
	::clock_gettime(CLOCK_REALTIME, &ts);
	const std::uint64_t incarnation =
		static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
	std::set<std::string> done;
	for (const auto &f : cfg.filesystems) {
		const std::string dev = cfg.device_path(f);
		if (!done.insert(dev).second)
			continue;
		DiskHeartbeat::Params p;
		p.device = dev;
		p.my_node = me;
		p.incarnation = incarnation;
		p.interval_ms = cfg.disk_heartbeat_ms;
		p.stale_ms = cfg.heartbeat_stale_ms();
		Watch w;
		for (const auto &g : cfg.filesystems) {
			if (cfg.device_path(g) != dev)
				continue;
			const cluster::Pair *pr = cfg.pair(g.pair);
			for (NodeId id : {pr->owner, pr->partner})
				if (std::find(w.writers.begin(), w.writers.end(), id) == w.writers.end())
					w.writers.push_back(id);
		}
		// parse_config checked: the writers' disk areas are distinct
		// slots.
		for (NodeId id : w.writers) {
			const cluster::Node *n = cfg.node(id);
			p.nodes.at(n->disk_area) = id;
			if (id == me)
				p.my_slot = n->disk_area;
		}
		w.hb = std::make_unique<DiskHeartbeat>(std::move(p), log);
		watches_.push_back(std::move(w));
	}
}

template <typename Get>
std::optional<milliseconds> HeartbeatMonitor::shortest(NodeId n, bool all_needed, Get get) const
{
	const cluster::Node *node = cfg_.node(n);
	if (!node)
		return std::nullopt;
	std::optional<milliseconds> out;
	for (const auto &w : watches_) {
		if (std::find(w.writers.begin(), w.writers.end(), n) == w.writers.end())
			continue;
		const auto v = get(*w.hb, node->disk_area);
		if (!v && all_needed)
			return std::nullopt;
		if (v)
			out = out ? std::min(*out, *v) : *v;
	}
	return out;
}

std::optional<milliseconds> HeartbeatMonitor::stale_for(NodeId n) const
{
	// Fresh on one device, or not known there: not stale.
	return shortest(n, true,
			[](const DiskHeartbeat &hb, unsigned slot) { return hb.stale_for(slot); });
}

std::optional<milliseconds> HeartbeatMonitor::unchanged_for(NodeId n) const
{
	return shortest(n, false,
			[](const DiskHeartbeat &hb, unsigned slot) { return hb.unchanged_for(slot); });
}

} // namespace twinfs
