// SPDX-License-Identifier: GPL-2.0
// How twinfsd drives twinfs.ko.  An interface, so the transport can change
// (today: /sys/fs/twinfs/mirror_target and mount(2); later the generic
// netlink family) without touching the daemon's logic.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

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

struct ModuleStatus {
	bool loaded = false;
	std::string target;			// /sys/fs/twinfs/mirror_target, one line
	std::map<std::string, std::string> mirror;	// device name -> its "mirror" line
};

// Every call throws std::system_error (or std::runtime_error) naming the
// operation and its arguments when it fails.
class ModuleControl {
public:
	virtual ~ModuleControl() = default;
	// Serve the partner's mirror on `port`, into `nvram`.
	virtual void start_target(std::uint16_t port, const std::string &nvram,
				  const std::string &keyfile) = 0;
	// Stop the mirror target (it frees its NVRAM device); no-op if stopped.
	virtual void stop_target() = 0;
	// Mount as the holder (spec.partner set: mirrored).
	virtual void mount(const MountSpec &spec) = 0;
	// Take over a failed holder's file system: stop the target, then
	// mount from the NVRAM copy (spec.nvram, spec.node = the area the
	// failed holder used); the mount replays what it acknowledged.
	virtual void takeover(const MountSpec &spec) = 0;
	// Unmount (giveback, lost quorum).
	virtual void relinquish(const std::string &mountpoint) = 0;
	virtual ModuleStatus status() const = 0;
};

// Today's interfaces: /sys/fs/twinfs/mirror_target and mount(2).
std::unique_ptr<ModuleControl> make_sysfs_module_control(
	std::filesystem::path sysfs_root = "/sys/fs/twinfs");

// Touches no module: logs each call through `log`, keeps the state it would
// have (mountpoints are created, nothing is mounted).  For testing the
// daemon's membership logic on machines without twinfs.ko.
std::unique_ptr<ModuleControl> make_dry_run_module_control(
	std::function<void(const std::string &)> log);

} // namespace twinfs
