// SPDX-License-Identifier: GPL-2.0
// How twinfsd drives twinfs.ko.  An interface, so the transport can change
// without touching the daemon's logic: the mirror target and the status
// over the generic netlink family "twinfs" (genl.hpp), mounts with
// mount(2)/umount2(2).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace twinfs {

// One mount of a twinfs file system.
struct MountSpec {
	std::string device;		// block device
	std::string mountpoint;
	std::string nvram;		// nvram=: the change memory (or the partner's copy)
	unsigned node = 0;		// node=: the area of the disk the mount uses
	std::string partner;		// partner=IP:PORT, empty: not mirrored
	std::string cluster_key;	// cluster_key=FILE (with partner)
	std::string extra;		// more options, comma separated
};

// The options string of a MountSpec, as mount(8) -o takes it.
std::string mount_options(const MountSpec &spec);

// The mirror of one mounted file system (genetlink STATUS).
struct MirrorStatus {
	std::string state = "none";	// none, degraded, resyncing, mirrored
	std::string transport;		// tcp, rdma; empty when not mirrored
	std::string partner;		// partner= of the mount (IP:PORT)
};

// One line: "none" when not mirrored, else "TRANSPORT PARTNER STATE", the
// way /sys/fs/twinfs/<dev>/mirror starts (it goes on with counters).
std::string to_string(const MirrorStatus &m);
// The other way, from such a line (sysfs's or to_string's).
MirrorStatus parse_mirror_line(std::string_view line);

struct ModuleStatus {
	bool loaded = false;
	std::string target;	// the mirror target, one line ("stopped", "listening port=...")
	std::map<std::string, std::string> mirror;	// device name ("vda") -> to_string(its mirror)
};

// Every call throws std::system_error (or std::runtime_error, genl::Error)
// naming the operation and its arguments, and what the kernel said, when
// it fails.
class ModuleControl {
public:
	virtual ~ModuleControl() = default;
	// Serve the partner's mirror on `port`, into `nvram`.
	virtual void start_target(std::uint16_t port, const std::string &nvram,
				  const std::string &keyfile) = 0;
	// Stop the mirror target (it frees its NVRAM device); no-op if stopped.
	virtual void stop_target() = 0;
	// This node's id for the module (SET_NODE; STATUS reports it).
	virtual void set_node(unsigned node) = 0;
	// Mount as the holder (spec.partner set: mirrored).
	virtual void mount(const MountSpec &spec) = 0;
	// The first half of taking over a file system whose mount uses node
	// area `node`: TAKEOVER stops the mirror target and checks the copy
	// (a partial one is refused); the module then reports the mount that
	// replays it with a TAKEOVER_DONE event.  Returns a line for the log.
	virtual std::string prepare_takeover(unsigned node) = 0;
	// Unmount (giveback, lost quorum): RELINQUISH writes a consistency
	// point first (if it fails, the umount's own one still runs).
	// Returns what the consistency point did, for the log.
	virtual std::string relinquish(const MountSpec &spec) = 0;
	// The partner link of a mounted file system (CONNECT, DISCONNECT).
	virtual void connect_partner(const std::string &device) = 0;
	virtual void disconnect_partner(const std::string &device) = 0;
	// Does not throw: what cannot be read is said in ModuleStatus::target.
	virtual ModuleStatus status() const = 0;
};

// The generic netlink family "twinfs" (TARGET_START, TARGET_STOP,
// TARGET_STATUS, STATUS) and mount(2).  A socket per call: the module may
// be loaded, unloaded or reloaded (a new family id) while twinfsd runs.
std::unique_ptr<ModuleControl> make_genl_module_control();

// Touches no module: logs each call through `log`, keeps the state it would
// have (mountpoints are created, nothing is mounted).  For testing the
// daemon's membership logic on machines without twinfs.ko.
std::unique_ptr<ModuleControl> make_dry_run_module_control(
	std::function<void(const std::string &)> log);

} // namespace twinfs
