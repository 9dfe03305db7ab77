// SPDX-License-Identifier: GPL-2.0
// twinfsd's listener of twinfs.ko's events: see
// include/twinfs_user/module_events.hpp.
#include "twinfs_user/module_events.hpp"

#include <syslog.h>

#include <cerrno>
#include <cstring>

namespace twinfs {
namespace {

constexpr auto kRetry = std::chrono::seconds(2);

std::string errno_name(std::int32_t err)
{
	const int e = err < 0 ? -err : err;
	const char *name = ::strerrorname_np(e);
	return name ? std::string(name) + " (" + std::strerror(e) + ")"
		    : "error " + std::to_string(err);
}

} // namespace

EventLog::EventLog(LogFn log, Clock::duration cp_every)
	: log_(std::move(log)), cp_every_(cp_every)
{
}

bool EventLog::handle(const genl::Event &e, Clock::time_point now)
{
	const std::string dev = e.device.value_or("?");
	const std::string who = "twinfs.ko: " + dev;
	if (e.name == "MOUNTED") {
		std::string s = who + " mounted";
		std::string more;
		if (e.mount_node)
			more += "node=" + std::to_string(*e.mount_node);
		if (e.cp_seq)
			more += (more.empty() ? "" : ", ") + std::string("consistency point ") +
				std::to_string(*e.cp_seq);
		if (e.records_replayed)
			more += (more.empty() ? "" : ", ") + std::to_string(*e.records_replayed) +
				" records replayed";
		if (e.uuid)
			more += (more.empty() ? "" : ", ") + std::string("uuid ") + *e.uuid;
		log_(LOG_NOTICE, more.empty() ? s : s + " (" + more + ")");
		mirror_.erase(dev);
		cps_.erase(dev);
		return true;
	}
	if (e.name == "UNMOUNTED") {
		const auto it = cps_.find(dev);
		const std::uint64_t unlogged = it == cps_.end() ? 0 : it->second.since_line;
		log_(LOG_NOTICE, who + " unmounted" +
					 (unlogged ? " (" + std::to_string(unlogged) +
							     " consistency points since the last line)"
						   : std::string()));
		mirror_.erase(dev);
		cps_.erase(dev);
		return true;
	}
	if (e.name == "MIRROR_STATE") {
		const std::string state = e.mirror_state.value_or("?");
		auto &last = mirror_[dev];
		if (last == state)
			return false;
		const std::string was = last.empty() ? "" : " (was " + last + ")";
		last = state;
		log_(state == "mirrored" || state == "resyncing" ? LOG_NOTICE : LOG_WARNING,
		     who + " mirror " + state + (e.transport ? " over " + *e.transport : "") + was);
		return true;
	}
	if (e.name == "CP_DONE") {
		// Every few seconds per file system: a debug line now and then.
		Cps &c = cps_[dev];
		c.since_line++;
		if (c.logged && now - c.last_line < cp_every_)
			return false;
		log_(LOG_DEBUG, who + " consistency point " +
					(e.cp_seq ? std::to_string(*e.cp_seq) : "?") +
					(c.logged ? " (" + std::to_string(c.since_line) + " since the last line)"
						  : std::string()));
		c.since_line = 0;
		c.last_line = now;
		c.logged = true;
		return false;
	}
	if (e.name == "TAKEOVER_DONE") {
		log_(LOG_NOTICE, who + " takeover of node area " +
					 (e.mount_node ? std::to_string(*e.mount_node) : "?") + " done in " +
					 (e.takeover_ms ? std::to_string(*e.takeover_ms) : "?") + " ms (" +
					 std::to_string(e.records_replayed.value_or(0)) +
					 " records replayed, consistency point " +
					 std::to_string(e.cp_seq.value_or(0)) + ")");
		return false;
	}
	if (e.name == "ERROR") {
		log_(LOG_ERR, who + ": " + (e.error ? errno_name(*e.error) : "error") +
				      (e.message ? ": " + *e.message : ""));
		return false;
	}
	if (e.name == "FAMILY_REMOVED") {
		log_(LOG_WARNING, "twinfs.ko was unloaded: no module events until it is loaded again");
		mirror_.clear();
		cps_.clear();
		return true;
	}
	std::string line = genl::format_event_text(e);
	if (!line.empty() && line.back() == '\n')
		line.pop_back();
	log_(LOG_INFO, "twinfs.ko: " + line);
	return false;
}

ModuleEvents::ModuleEvents(EventLog::LogFn log) : log_(log), events_(std::move(log))
{
	tick();
}

ModuleEvents::~ModuleEvents() = default;

int ModuleEvents::fd() const
{
	return sock_ ? sock_->fd() : -1;
}

void ModuleEvents::drop(int prio, const std::string &why)
{
	sock_.reset();
	next_try_ = EventLog::Clock::now() + kRetry;
	if (why != last_failure_)
		log_(prio, why);
	last_failure_ = why;
}

bool ModuleEvents::tick()
{
	const auto now = EventLog::Clock::now();
	if (sock_ || now < next_try_)
		return false;
	try {
		auto s = std::make_unique<genl::Socket>();
		if (!s->family_present()) {
			drop(LOG_INFO, "twinfs.ko is not loaded: its events are watched once it is");
			return false;
		}
		s->subscribe_events();
		sock_ = std::move(s);
	} catch (const genl::Error &e) {
		drop(LOG_WARNING, std::string("cannot watch twinfs.ko's events (retrying every 2 s): ") +
					  e.what());
		return false;
	}
	log_(LOG_INFO, "watching twinfs.ko's events (genetlink twinfs/events)");
	last_failure_.clear();
	return true;
}

bool ModuleEvents::dispatch()
{
	if (!sock_)
		return false;
	std::vector<genl::Event> evs;
	bool refresh = false;
	// After an overrun the socket goes on: read again (what came before
	// the overrun, and after).
	for (int attempt = 0; attempt < 2; attempt++) {
		try {
			evs = sock_->read_events();
			break;
		} catch (const genl::Error &e) {
			if (e.error() != ENOBUFS || attempt) {
				drop(LOG_ERR, std::string("twinfs.ko's events: ") + e.what() +
						      "; subscribing again in 2 s");
				return true;
			}
			log_(LOG_WARNING, "twinfs.ko's events were lost (receive buffer overrun); "
					  "the status is read again");
			refresh = true;
		}
	}
	const auto now = EventLog::Clock::now();
	for (const auto &e : evs) {
		refresh |= events_.handle(e, now);
		if (e.name == "FAMILY_REMOVED") {
			sock_.reset();	// the family is gone: subscribe anew
			next_try_ = now + kRetry;
			last_failure_.clear();
			break;
		}
	}
	return refresh;
}

} // namespace twinfs
