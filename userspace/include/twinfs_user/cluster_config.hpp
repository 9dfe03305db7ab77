// SPDX-License-Identifier: GPL-2.0
// twinfsd's configuration, /etc/twinfs/twinfsd.conf: the nodes, the HA
// pairs, the file systems they serve, the fence command, the cluster key
// and the policy on losing quorum.  An INI file read with libinih; the
// format and an example are in Documentation/twinfsd.md.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace twinfs::cluster {

inline constexpr std::string_view kDefaultConfigPath = "/etc/twinfs/twinfsd.conf";

using NodeId = std::uint32_t;	// corosync's node id (nodelist.node.X.nodeid)

struct Node {
	NodeId id = 0;
	std::string name;
	std::string address;		// IPv4 address the mirror connects to
	unsigned disk_area = 0;		// the node's area of the disk (mount option node=)
};

// Two nodes that back each other up: the file systems of the pair are
// served by one of them and mirrored into the other one's NVRAM.
struct Pair {
	std::string name;
	NodeId owner = 0;		// home node of the pair's file systems
	NodeId partner = 0;
};

struct FileSystem {
	std::string name;
	std::string pair;		// Pair::name
	std::string device;		// e.g. /dev/vda, or found by uuid/label
	std::string uuid;
	std::string label;
	std::string mountpoint;
	NodeId initial_owner = 0;	// the pair's owner unless given
	std::string nvram;		// the NVRAM device on every node of the pair
	std::uint16_t mirror_port = 7790;
	std::string mount_options;	// extra options for every mount
};

enum class LostQuorumPolicy {
	Freeze,	// keep serving what is mounted, start nothing new
	Fail,	// release every local file system
};

struct Config {
	std::vector<Node> nodes;		// sorted by id
	std::vector<Pair> pairs;
	std::vector<FileSystem> filesystems;	// sorted by name
	std::string fence_command;		// see Documentation/twinfsd.md
	unsigned fence_timeout_ms = 60000;
	// The leader waits this long before fencing a node that holds a file
	// system (the partner's fence of a holder): when a two-node cluster
	// splits, the holder fences its partner first and keeps serving
	// (Pacemaker's priority-fencing-delay).  Fences of nodes that hold
	// nothing are not delayed.
	unsigned fence_delay_ms = 2000;
	// A node still in corosync's membership whose twinfsd left the process
	// group without a clean stop (killed, crashed) is not lost: it has this
	// long to come back (a restarted twinfsd adopts its mounts) before it
	// is treated as lost and fenced.  0: at once.
	unsigned daemon_grace_ms = 10000;
	// The disk heartbeat (Documentation/twinfsd.md, "Disk heartbeat"):
	// every node's twinfsd writes its sector of block 1 of the shared
	// disks this often; a lost holder whose sector has not changed for
	// heartbeat_stale_ms() is dead, not cut off, and is fenced without
	// fence_delay_ms.  0: no heartbeat, every holder's fence is delayed.
	unsigned disk_heartbeat_ms = 200;
	std::string cluster_key;		// path of the mirror's key file
	LostQuorumPolicy lost_quorum = LostQuorumPolicy::Freeze;
	std::string status_file = "/run/twinfsd/status.json";
	std::string control_socket = "/run/twinfsd/control";	// empty: none
	std::string group = "twinfs";		// the CPG group name
	// A takeover mount mirrors to the failed node (partner=), degraded
	// until that node is back and runs its target, then resynced
	// (91-cluster-rounds does it 20 times).  no: served unmirrored.
	bool mirror_after_takeover = true;

	const Node *node(NodeId id) const;
	const Node *node_by_name(std::string_view name) const;
	const Pair *pair(std::string_view name) const;
	const FileSystem *filesystem(std::string_view name) const;
	// The other node of fs's pair from `node`'s point of view (the node
	// that takes over when `node` fails), 0 if node is not in the pair.
	NodeId other(const FileSystem &fs, NodeId node) const;
	// A digest of everything the members must agree on, exchanged in the
	// state messages: two members with different digests log it.
	std::uint64_t digest() const;
	// How long a node's disk heartbeat must stay unchanged for it to
	// count as dead: max(5 * disk_heartbeat_ms, 1000).
	unsigned heartbeat_stale_ms() const;
	// The device path of a file system: `device`, else by uuid or label.
	std::string device_path(const FileSystem &fs) const;
};

// A configuration that cannot be used; what() names the file, the line or
// section and the problem.
class ConfigError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

Config parse_config(std::string_view text, std::string_view origin = "<string>");
Config load_config(const std::string &path);

std::string_view to_string(LostQuorumPolicy p);

// The fence command's argv for node n: fence_command split on blanks, with
// %n (node name), %i (node id), %a (address) and %% substituted.
std::vector<std::string> fence_argv(const std::string &fence_command, const Node &n);

} // namespace twinfs::cluster
