// SPDX-License-Identifier: GPL-2.0
// The replicated state of twinfsd and the decisions taken from it: pure
// functions of the corosync CPG event stream, without I/O, so every member
// that sees the same configuration changes and messages in the same
// (agreed) order computes the same ownership map, the same leader and the
// same plan.  Unit tests: tests/unit/test_cluster.cpp [cluster].
//
// Ownership of one file system (FsEntry::state):
//
//   Waiting ──holder joins──> Serving(holder) <──OWNED(target)──┐
//                               │        │                       │
//               holder leaves   │        │ giveback: RELEASED     │
//                               v        v                       │
//                     HolderLost(holder)  Released(target) ──────┤
//                               │ FENCED(holder) ok              │
//                               v                                │
//                         Fenced(target = other node) ───────────┘
//
// A target that leaves while it may have mounted (Fenced or Released with
// target == node) makes the entry HolderLost with that node as holder: it
// is fenced before anybody mounts the file system again.  A partner (the
// other node of a pair whose file system is Serving) that is lost is
// fenced too: in a split it would otherwise take over from a copy the
// holder no longer updates.
//
// A node whose twinfsd left the group without a clean stop while the node
// stays in corosync's membership (CPG reason procdown) is `absent`, not
// lost: its entries stay as they are for Config::daemon_grace_ms; a
// restarted twinfsd that rejoins adopts what it has mounted.  When the
// grace expires (or the node leaves corosync's membership) the leader
// multicasts EXPIRED and the node is treated as lost from then on.
#pragma once

#include "twinfs_user/cluster_config.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace twinfs::cluster {

enum class FsState : std::uint8_t {
	Waiting = 1,	// the holder has not joined since the cluster started
	Serving = 2,	// the holder has it mounted (or is mounting it)
	HolderLost = 3,	// the holder left; it must be fenced first
	Fenced = 4,	// the holder is fenced; `target` takes over from its copy
	Released = 5,	// the holder unmounted it for a giveback; `target` mounts
};
std::string_view to_string(FsState s);

struct FsEntry {
	std::string name;
	FsState state = FsState::Waiting;
	NodeId holder = 0;	// who serves it, or served it last
	NodeId target = 0;	// Fenced, Released: who mounts it next
	std::uint64_t epoch = 0;// bumped by every change of this entry
	bool giveback = false;	// a giveback to the pair's owner was asked for
	bool operator==(const FsEntry &) const = default;
};

// A node that left (or was holding something when it left) and is not
// fenced yet.  `seq` tells two such episodes of one node apart.
struct Unfenced {
	NodeId node = 0;
	std::uint64_t seq = 0;
	bool operator==(const Unfenced &) const = default;
};

struct OwnershipMap {
	std::vector<FsEntry> fs;		// sorted by name, as the config
	std::vector<Unfenced> unfenced;		// sorted by node
	std::vector<Unfenced> absent;		// daemon gone, node up: grace (sorted)
	std::uint64_t seq = 0;			// changes of the whole map
	bool operator==(const OwnershipMap &) const = default;

	FsEntry *find(std::string_view name);
	const FsEntry *find(std::string_view name) const;
	bool is_unfenced(NodeId n) const;
	bool is_absent(NodeId n) const;
};

// ---- messages (CPG payloads) -------------------------------------------

enum class MsgType : std::uint16_t {
	State = 1,	// sent by every member after each configuration change
	Fenced = 2,	// the leader fenced a node (or failed to)
	Owned = 3,	// a node serves a file system (after a mount or takeover)
	Released = 4,	// the holder unmounted it for a giveback
	Giveback = 5,	// please give this file system back to its pair's owner
	Expired = 6,	// an absent node's grace is over: it is lost (node, seq)
};

struct Message {
	MsgType type = MsgType::State;
	NodeId sender = 0;		// filled in from the CPG delivery, not the wire
	std::uint64_t config_digest = 0;
	// State
	bool synced = false;
	bool quorate = false;		// the sender's partition, when it sent it
	bool established = false;	// the map has been held in a quorate partition
	OwnershipMap map;
	// Fenced: node, seq (Unfenced::seq), ok; Expired: node, seq (absent)
	NodeId node = 0;
	std::uint64_t seq = 0;
	bool ok = false;
	// Owned, Released, Giveback: fs and the entry's epoch it applies to
	std::string fs;
	std::uint64_t epoch = 0;
};

// Little-endian, length-checked; decode throws std::runtime_error on a
// malformed payload (which names what is wrong).
std::vector<std::uint8_t> encode(const Message &m);
Message decode(std::span<const std::uint8_t> payload);

// ---- the replicated state machine --------------------------------------

// What one member knows.  Feed it every CPG configuration change and every
// delivered message in delivery order.
class ClusterState {
public:
	ClusterState(const Config &cfg, NodeId me);

	// A CPG configuration change: the members after it (any order).
	// After every change each member multicasts its state_message(); the
	// round ends when the States of every member are delivered.  Then
	// every member (synced or not) takes the same map: that of the first
	// State whose map is established and whose sender is quorate, else
	// of the first established one (after a partition merge the maps may
	// differ), else of the first synced one (a cluster start: maps built
	// from the configuration), else the configuration's; and replays on
	// it the other messages delivered during the round.  No action is
	// planned during a round.  A map is established once a member held
	// it while quorate: a node that started alone and built its map from
	// the configuration never overrides the running cluster's.
	// Of `left`, `daemon_gone` are the nodes whose twinfsd died while the
	// node stays in corosync's membership (CPG reason procdown: absent
	// for the grace period) and `clean` the ones that left with a clean
	// stop (CPG reason leave: a partner that stopped is not fenced); the
	// others are lost (nodedown).
	void on_confchg(std::span<const NodeId> members, std::span<const NodeId> left,
			std::span<const NodeId> joined, std::span<const NodeId> daemon_gone = {},
			std::span<const NodeId> clean = {});
	// A delivered message.  Returns a line for the log when the message
	// changed something or was refused, empty otherwise.
	std::string on_message(const Message &m);

	// The State message this member multicasts after a change.
	Message state_message(bool quorate) const;
	// votequorum's view of this node's partition (the daemon calls it on
	// every change): a synced map held while quorate is established.
	void set_quorate(bool quorate);
	bool established() const { return established_; }

	bool synced() const { return synced_; }
	// Between a configuration change and the end of its State round.
	bool in_round() const { return round_; }
	const OwnershipMap &map() const { return map_; }
	const std::vector<NodeId> &members() const { return members_; }
	NodeId me() const { return me_; }
	bool is_member(NodeId n) const;
	// The lowest node id of the membership: it fences.  Only acts when
	// quorate (see plan()).
	std::optional<NodeId> leader() const;
	// Set when the configurations of two members differ.
	const std::string &config_mismatch() const { return mismatch_; }

private:
	enum class Leave { Lost, DaemonGone, Clean };
	void apply_leave(NodeId n, Leave how);
	void apply_join(NodeId n);
	void init_from_config();
	std::string apply(const Message &m);
	void bump(FsEntry &e);

	const Config &cfg_;
	NodeId me_;
	std::vector<NodeId> members_;	// sorted
	OwnershipMap map_;
	bool synced_ = false;
	bool round_ = false;
	bool quorate_ = false;
	bool established_ = false;
	// The State messages of this round, in delivery order, and the other
	// messages delivered since the round began (replayed onto its map).
	std::set<NodeId> state_senders_;
	std::vector<Message> states_;
	std::vector<Message> queued_;
	std::string mismatch_;
};

// ---- what this node does about it --------------------------------------

// What this node runs or has right now (the driver keeps it).
struct LocalState {
	std::set<std::string> mounted;		// file systems mounted here
	std::set<std::string> targets;		// mirror targets running here
	std::set<NodeId> fencing;		// fence commands running
	std::set<std::string> busy;		// a takeover or release running
	// Nodes whose disk heartbeat has not changed for
	// Config::heartbeat_stale_ms() on every shared disk they write to
	// (userspace/disk_heartbeat.cpp): dead, not cut off from the network.
	std::set<NodeId> heartbeat_stale;
};

enum class ActionKind {
	Fence,		// run the fence command for `node`
	Mount,		// mount as holder (Serving, not mounted yet)
	TakeOver,	// Fenced/Released with target == me: stop target, mount
	StartTarget,	// the holder is a member: be its mirror
	StopTarget,	// the target is not needed any more
	Release,	// giveback: umount and announce RELEASED
	Unmount,	// mounted without being the holder, or lost quorum (fail)
};
std::string_view to_string(ActionKind k);

struct Action {
	ActionKind kind;
	std::string fs;		// empty for Fence
	NodeId node = 0;	// Fence: the node; else the entry's holder
	std::uint64_t epoch = 0;// Fence: Unfenced::seq; else FsEntry::epoch
	unsigned delay_ms = 0;	// Fence: wait this long first (fence_delay_ms)
	// Fence of a holder: fence_delay_ms was skipped, its disk heartbeat
	// is stale.
	bool heartbeat_stale = false;
	bool operator==(const Action &) const = default;
};

// The actions this node should start now.  Nothing unless synced; when
// not quorate, nothing (freeze) or Unmount of everything mounted (fail).
// A Fence of a node that holds a file system (HolderLost) carries
// Config::fence_delay_ms: in a split of two nodes the holder's fence of
// its partner (not delayed) wins the race.  Unless the holder's disk
// heartbeat is stale (in local.heartbeat_stale, Config::disk_heartbeat_ms
// not 0): a dead node races nobody, its fence is not delayed
// (Action::heartbeat_stale says so).
std::vector<Action> plan(const ClusterState &cs, const Config &cfg, bool quorate,
			 const LocalState &local);

// The leader's EXPIRED messages due now: absent nodes whose grace is over
// (`since` says when each (node, seq) was first seen absent, in ms before
// now) or that left corosync's membership (`ring`: its members; empty:
// not known yet).
std::vector<Message> expired(const ClusterState &cs, const Config &cfg,
			     const std::vector<std::pair<Unfenced, std::int64_t>> &since,
			     std::span<const NodeId> ring);

// ---- takeover sequencing on the node that takes over -------------------

// fence -> confirm -> stop target -> mount/replay -> serve -> announce -> done
enum class TakeoverStep {
	Fence,		// waiting for the leader's fence of the holder
	Confirm,	// FENCED delivered: the holder is fenced
	StopTarget,	// stop our mirror target (it holds the NVRAM copy)
	Mount,		// mount from the copy: replay of what was acknowledged
	Serve,		// first operation on the mounted file system
	Announce,	// multicast OWNED
	Done,		// OWNED delivered: everybody knows
	Failed,
};
std::string_view to_string(TakeoverStep s);

class Takeover {
public:
	// A takeover starts at Fence when the holder left; a giveback (the
	// entry is Released: nobody to fence) starts at StopTarget.
	explicit Takeover(std::string fs, bool needs_fence = true);
	TakeoverStep step() const { return step_; }
	const std::string &fs() const { return fs_; }
	// The current step finished (ok) or failed; returns the next step.
	// Fence -> Confirm needs ok; a failed fence stays at Fence (the leader
	// retries); any other failure ends in Failed.
	TakeoverStep advance(bool ok);
	bool finished() const { return step_ == TakeoverStep::Done || step_ == TakeoverStep::Failed; }

private:
	std::string fs_;
	TakeoverStep step_;
};

} // namespace twinfs::cluster
