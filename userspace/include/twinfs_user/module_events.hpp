// SPDX-License-Identifier: GPL-2.0
// twinfsd's listener of twinfs.ko's events (the genetlink multicast group
// "events", genl.hpp): mounts, umounts, mirror state changes and errors go
// to the journal, consistency points too at debug level and at most once a
// minute per file system; a mount, an umount or a mirror state change asks
// for a fresh status file.  The daemon polls fd() in its loop.
#pragma once

#include "twinfs_user/genl.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace twinfs {

// The journal lines of the events, without the socket (unit-tested).
class EventLog {
public:
	using Clock = std::chrono::steady_clock;
	// prio: syslog's LOG_ERR .. LOG_DEBUG.
	using LogFn = std::function<void(int prio, const std::string &msg)>;

	explicit EventLog(LogFn log, Clock::duration cp_every = std::chrono::seconds(60));
	// Logs e; true when twinfsd's status should be refreshed.
	bool handle(const genl::Event &e, Clock::time_point now);

private:
	struct Cps {
		std::uint64_t since_line = 0;	// consistency points not logged
		Clock::time_point last_line{};
		bool logged = false;
	};
	LogFn log_;
	Clock::duration cp_every_;
	std::map<std::string, Cps> cps_;		// by device
	std::map<std::string, std::string> mirror_;	// by device: last state
};

// The subscription.  Without the module (not loaded yet, unloaded,
// reloaded) it tries again on tick(), every 2 s.
class ModuleEvents {
public:
	explicit ModuleEvents(EventLog::LogFn log);
	~ModuleEvents();
	ModuleEvents(const ModuleEvents &) = delete;
	ModuleEvents &operator=(const ModuleEvents &) = delete;

	// The socket to poll for POLLIN; -1 while not subscribed.
	int fd() const;
	// Reads and logs what arrived; true when the status should be
	// refreshed (also when events were lost or the module went away).
	bool dispatch();
	// For the daemon's timer: subscribes if not subscribed; true when it
	// just did (the status should be refreshed).
	bool tick();

private:
	void drop(int prio, const std::string &why);

	EventLog::LogFn log_;
	EventLog events_;
	std::unique_ptr<genl::Socket> sock_;
	EventLog::Clock::time_point next_try_{};
	std::string last_failure_;	// logged once until it changes
};

} // namespace twinfs
