// SPDX-License-Identifier: GPL-2.0
// twinfsd: the twinfs membership daemon.
//
// Joins the corosync process group "twinfs" and follows its membership and
// votequorum's quorum.  The ownership map of the file systems is a pure
// function of the group's agreed event stream (include/twinfs_user/
// cluster.hpp): every member computes the same map and the same leader (the
// lowest node id).  When the holder of a file system leaves, the leader
// fences it; once FENCED is delivered the other node of the pair takes the
// file system over from its NVRAM copy (stop target, mount with replay,
// first operation) and announces OWNED.  Only a quorate partition acts.
// The view goes to a JSON status file (Documentation/twinfsd.md).
//
// One thread, one poll loop: CPG, votequorum, signalfd (SIGTERM, SIGINT,
// SIGHUP, SIGCHLD of the fence command), a timerfd for retries and the
// status file, the control socket and twinfs.ko's events (module_events).
// Mounts run in the loop: corosync queues our events meanwhile.
#include "corosync.hpp"
#include "twinfs_user/cluster.hpp"
#include "twinfs_user/cluster_config.hpp"
#include "twinfs_user/cluster_status.hpp"
#include "twinfs_user/disk_heartbeat.hpp"
#include "twinfs_user/fd.hpp"
#include "twinfs_user/module_control.hpp"
#include "twinfs_user/module_events.hpp"
#include "twinfs_user/version.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#ifdef TWINFS_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

extern char **environ;

namespace {

using namespace twinfs::cluster;
using twinfs::Fd;
using twinfs::MountSpec;
using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

bool g_use_syslog = false;
bool g_timestamps = false;
bool g_journal = false;	// stderr is the journal: sd-daemon priority prefixes

void log(int prio, std::string_view msg)
{
	// The disk heartbeat's threads log too: one line at a time.
	static std::mutex mu;
	const std::lock_guard lock(mu);
	if (g_use_syslog) {
		::syslog(prio, "%.*s", static_cast<int>(msg.size()), msg.data());
		return;
	}
	std::string prefix = "twinfsd: ";
	if (g_journal)
		prefix = "<" + std::to_string(prio) + ">" + prefix;
	if (g_timestamps) {
		// Outside the journal (which has its own): wall clock, ms.
		timespec ts;
		::clock_gettime(CLOCK_REALTIME, &ts);
		tm t;
		::localtime_r(&ts.tv_sec, &t);
		char buf[32];
		std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld ", t.tm_hour, t.tm_min,
			      t.tm_sec, ts.tv_nsec / 1000000);
		prefix = buf + prefix;
	}
	std::cerr << prefix << msg << std::endl;
}

std::system_error sys_error(const std::string &what)
{
	return std::system_error(errno, std::generic_category(), what);
}

std::int64_t ms_between(Clock::time_point a, Clock::time_point b)
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

#ifndef TWINFS_HAVE_LIBSYSTEMD
// The sd_notify protocol without libsystemd: one datagram to the socket
// named by $NOTIFY_SOCKET ('@' starts an abstract socket name).
int notify_socket(std::string_view state)
{
	const char *path = std::getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	const size_t len = std::strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path))
		return -EINVAL;
	std::memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	if (fd.get() < 0)
		return -errno;
	const auto alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
	if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
		     reinterpret_cast<const sockaddr *>(&addr), alen) < 0)
		return -errno;
	return 1;
}
#endif

// Tells systemd about a state change; a no-op outside systemd.
void notify(const std::string &state)
{
#ifdef TWINFS_HAVE_LIBSYSTEMD
	const int rc = sd_notify(0, state.c_str());
#else
	const int rc = notify_socket(state);
#endif
	if (rc < 0)
		log(LOG_WARNING, "cannot notify systemd (" + state + "): " +
				 std::strerror(-rc));
}

void usage(std::ostream &os)
{
	os << "usage: twinfsd [-f] [-c FILE] [--help] [--version]\n"
	      "\n"
	      "The twinfs membership daemon: follows corosync membership, keeps\n"
	      "the cluster-wide ownership map and orchestrates takeover.\n"
	      "\n"
	      "  -c, --config FILE  configuration (default "
	   << kDefaultConfigPath
	   << ")\n"
	      "  -t, --check        check the configuration and exit\n"
	      "  -n, --dry-run      log what would be done to twinfs.ko, do nothing\n"
	      "                     (tests of the membership logic)\n"
	      "  -f, --foreground   stay in the foreground, log to standard error\n"
	      "                     (as under systemd, see twinfsd.service)\n"
	      "  -h, --help         show this help\n"
	      "  -V, --version      show the version\n";
}

struct Options {
	bool foreground = false;
	bool check = false;
	bool dry_run = false;	// --dry-run: no twinfs.ko (testing)
	std::string config{kDefaultConfigPath};
};

// Detaches from the terminal: the parent returns to the shell at once, the
// child runs in a new session with standard streams on /dev/null.
void daemonize()
{
	const pid_t pid = ::fork();
	if (pid < 0)
		throw sys_error("fork");
	if (pid > 0)
		std::_Exit(kExitOk);
	if (::setsid() < 0)
		throw sys_error("setsid");
	if (::chdir("/") < 0)
		throw sys_error("chdir /");
	::umask(022);
	Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (null.get() < 0)
		throw sys_error("open /dev/null");
	for (int fd = 0; fd <= 2; fd++)
		if (::dup2(null.get(), fd) < 0)
			throw sys_error("dup2 /dev/null");
	::openlog("twinfsd", LOG_PID, LOG_DAEMON);
	g_use_syslog = true;
}

std::string join_ids(std::span<const NodeId> ids)
{
	std::string s;
	for (NodeId n : ids)
		s += (s.empty() ? "" : " ") + std::to_string(n);
	return "[" + s + "]";
}

// The mountpoints with a twinfs mount (from /proc/self/mounts).
std::vector<std::string> twinfs_mounts()
{
	std::vector<std::string> out;
	std::ifstream in("/proc/self/mounts");
	std::string dev, mp, type, rest;
	while (in >> dev >> mp >> type && std::getline(in, rest))
		if (type == "twinfs")
			out.push_back(mp);
	return out;
}

// The first operation on a mounted file system: statfs and a directory
// read of its root.
void probe(const std::string &mountpoint)
{
	struct statvfs sv;
	if (::statvfs(mountpoint.c_str(), &sv) < 0)
		throw sys_error("statvfs " + mountpoint);
	const std::unique_ptr<DIR, int (*)(DIR *)> d(::opendir(mountpoint.c_str()), ::closedir);
	if (!d)
		throw sys_error("opendir " + mountpoint);
	errno = 0;
	while (::readdir(d.get()))
		;
	const int err = errno;
	if (err)
		throw std::system_error(err, std::generic_category(), "readdir " + mountpoint);
}

class Daemon final : public twinfs::corosync::CpgHandler {
public:
	Daemon(const Config &cfg, twinfs::ModuleControl &ctl, twinfs::ModuleEvents *events,
	       bool disk_heartbeat)
		: cfg_(cfg), ctl_(ctl), events_(events), cpg_(cfg.group, *this),
		  disk_heartbeat_(disk_heartbeat)
	{
	}

	int run();

	// CpgHandler
	void on_confchg(std::span<const twinfs::corosync::CpgMember> members,
			std::span<const twinfs::corosync::CpgMember> left,
			std::span<const twinfs::corosync::CpgMember> joined) override;
	void on_deliver(std::uint32_t nodeid, std::uint32_t pid,
			std::span<const std::uint8_t> msg) override;
	void on_totem(std::uint32_t ring_nodeid, std::uint64_t ring_seq,
		      std::span<const std::uint32_t> members) override;

private:
	struct TakeoverRun {
		Takeover machine;
		NodeId from = 0;
		Clock::time_point t0;		// the membership change
		Clock::time_point fenced;
		std::int64_t mount_ms = -1;
		std::int64_t first_op_ms = -1;
	};
	struct FenceJob {
		NodeId node = 0;
		std::uint64_t seq = 0;
		pid_t pid = -1;
		Clock::time_point start;
		bool killed = false;
	};

	void send(const Message &m);
	void note_changes(const OwnershipMap &before, Clock::time_point t0);
	void check_grace();
	void adopt();
	void act();
	void set_node_id();
	void partner_links();
	std::string unmount(const FileSystem &f, std::string_view why = {});
	void execute(const Action &a);
	void start_fence(const Action &a);
	void reap_children();
	void takeover(const Action &a);
	void after_message();
	std::string status_text();
	void write_status();
	void shutdown();
	void open_control_socket(std::optional<Fd> &fd) const;
	void serve_control(int listen_fd);
	std::string control_command(std::string_view req);
	MountSpec spec_for(const FileSystem &f, bool takeover_copy) const;
	bool backing_off(const std::string &key) const;
	void back_off(const std::string &key, std::chrono::milliseconds d);

	const Config &cfg_;
	twinfs::ModuleControl &ctl_;
	twinfs::ModuleEvents *events_;	// nullptr: --dry-run
	twinfs::corosync::Cmap cmap_;
	twinfs::corosync::Quorum quorum_;
	twinfs::corosync::Cpg cpg_;
	std::optional<ClusterState> cs_;
	LocalState local_;
	std::optional<std::uint32_t> token_ms_;
	std::uint64_t ring_seq_ = 0;
	bool ready_ = false;
	bool stopping_ = false;
	bool dirty_ = true;
	std::map<std::string, TakeoverRun> takeovers_;
	std::map<std::string, Clock::time_point> not_before_;
	std::vector<FenceJob> fences_;
	std::set<std::string> releasing_;
	std::optional<TakeoverTimes> last_takeover_;
	std::string last_summary_;
	std::vector<NodeId> ring_;		// corosync's membership (totem)
	// Absent nodes (twinfsd gone, node up): since when; EXPIRED sent.
	std::map<std::pair<NodeId, std::uint64_t>, Clock::time_point> absent_since_;
	std::set<std::pair<NodeId, std::uint64_t>> expired_sent_;
	// Delayed fences (fence_delay_ms): since when each (node, seq) waits.
	std::map<std::pair<NodeId, std::uint64_t>, Clock::time_point> fence_wait_;
	std::set<std::string> adopted_;		// mounted at start, to announce
	std::set<std::string> partner_off_;	// mounts whose partner link we disconnected
	bool node_id_set_ = false;
	std::optional<Clock::time_point> wake_;	// the next delayed fence is due
	bool disk_heartbeat_;			// false: --dry-run, or disk_heartbeat_ms 0
	// The disk heartbeat threads (one per shared disk), after the members
	// they use.
	std::optional<twinfs::HeartbeatMonitor> heartbeat_;
};

// ---- events ------------------------------------------------------------

void Daemon::on_confchg(std::span<const twinfs::corosync::CpgMember> members,
			std::span<const twinfs::corosync::CpgMember> left,
			std::span<const twinfs::corosync::CpgMember> joined)
{
	const auto now = Clock::now();
	auto ids = [](std::span<const twinfs::corosync::CpgMember> v) {
		std::vector<NodeId> out;
		for (const auto &m : v)
			out.push_back(m.nodeid);
		return out;
	};
	const auto m = ids(members), l = ids(left), j = ids(joined);
	// procdown: twinfsd died but its node is up (absent, grace);
	// leave: a clean stop.
	std::vector<NodeId> gone, clean;
	for (const auto &x : left) {
		const std::string r = twinfs::corosync::reason_name(x.reason);
		if (r == "procdown")
			gone.push_back(x.nodeid);
		else if (r == "leave")
			clean.push_back(x.nodeid);
	}
	const OwnershipMap before = cs_->map();
	cs_->on_confchg(m, l, j, gone, clean);
	// Why they left: "leave" (a clean stop), "procdown" (twinfsd died),
	// "nodedown" (corosync lost the node).
	std::string why;
	for (const auto &x : left)
		why += (why.empty() ? "" : " ") + std::to_string(x.nodeid) + ":" +
		       twinfs::corosync::reason_name(x.reason);
	log(LOG_INFO, "membership " + join_ids(m) + (l.empty() ? "" : ", left [" + why + "]") +
			      (j.empty() ? "" : ", joined " + join_ids(j)) + "; leader " +
			      (cs_->leader() ? std::to_string(*cs_->leader()) : "none") +
			      (quorum_.quorate() ? "" : " (not quorate)"));
	note_changes(before, now);
	// Each member multicasts its State after every change (cluster.hpp).
	cs_->set_quorate(quorum_.quorate());
	send(cs_->state_message(quorum_.quorate()));
	dirty_ = true;
}

// After a configuration change or a message: where we are the one to take
// over, the clock of the takeover starts now (the membership change, or
// the EXPIRED of a node whose twinfsd did not come back); absent nodes are
// timed for their grace.
void Daemon::note_changes(const OwnershipMap &before, Clock::time_point now)
{
	for (const auto &e : cs_->map().fs) {
		const FsEntry *b = before.find(e.name);
		const FileSystem *f = cfg_.filesystem(e.name);
		if (!f || !b || e.state != FsState::HolderLost || b->state == FsState::HolderLost)
			continue;
		log(LOG_WARNING, e.name + ": holder " + std::to_string(e.holder) +
					 " left the membership; it must be fenced");
		if (cfg_.other(*f, e.holder) == cs_->me())
			takeovers_.insert_or_assign(e.name, TakeoverRun{Takeover(e.name), e.holder,
								       now, {}, -1, -1});
	}
	const auto &absent = cs_->map().absent;
	std::erase_if(absent_since_, [&](const auto &kv) {
		return std::find(absent.begin(), absent.end(),
				 Unfenced{kv.first.first, kv.first.second}) == absent.end();
	});
	for (const auto &u : absent)
		if (absent_since_.emplace(std::pair{u.node, u.seq}, now).second)
			log(LOG_WARNING, "node " + std::to_string(u.node) +
						 ": its twinfsd left while the node is up; waiting " +
						 std::to_string(cfg_.daemon_grace_ms) +
						 " ms (daemon_grace_ms) for it to come back before fencing");
}

// The leader: EXPIRED for absent nodes whose grace is over or whose node
// left corosync's membership.
void Daemon::check_grace()
{
	if (!quorum_.quorate() || absent_since_.empty())
		return;
	std::vector<std::pair<Unfenced, std::int64_t>> since;
	for (const auto &[k, t] : absent_since_)
		since.push_back({Unfenced{k.first, k.second}, ms_between(t, Clock::now())});
	for (const auto &m : expired(*cs_, cfg_, since, ring_)) {
		if (!expired_sent_.insert({m.node, m.seq}).second)
			continue;
		log(LOG_WARNING, "node " + std::to_string(m.node) + ": its twinfsd did not come back (" +
					 std::to_string(cfg_.daemon_grace_ms) + " ms, or the node is down)");
		send(m);
	}
}

// After the first State round: what this node had mounted when twinfsd
// started (a restart) is announced if the map says it serves it; anything
// else is for plan() (unmount, take over).
void Daemon::adopt()
{
	for (const auto &name : adopted_) {
		const FsEntry *e = cs_->map().find(name);
		if (!e || e->state != FsState::Serving || e->holder != cs_->me())
			continue;
		Message m;
		m.type = MsgType::Owned;
		m.fs = name;
		m.epoch = e->epoch;
		send(m);
		log(LOG_NOTICE, name + ": adopted the mount at " + cfg_.filesystem(name)->mountpoint +
					" (twinfsd restarted while the module served it); announced");
	}
	adopted_.clear();
}

void Daemon::on_deliver(std::uint32_t nodeid, std::uint32_t, std::span<const std::uint8_t> bytes)
{
	Message m;
	try {
		m = decode(bytes);
	} catch (const std::exception &e) {
		log(LOG_ERR, "dropping a message from node " + std::to_string(nodeid) + ": " +
				     e.what());
		return;
	}
	m.sender = nodeid;
	cs_->set_quorate(quorum_.quorate());
	const bool was_synced = cs_->synced();
	const OwnershipMap before = cs_->map();
	const std::string line = cs_->on_message(m);
	note_changes(before, Clock::now());
	if (!was_synced && cs_->synced())
		adopt();
	if (!line.empty())
		log(LOG_INFO, line);
	if (!cs_->config_mismatch().empty())
		log(LOG_ERR, cs_->config_mismatch());
	if (!was_synced && cs_->synced() && !ready_) {
		ready_ = true;
		notify("READY=1\nSTATUS=Member of '" + cfg_.group + "', leader " +
		       std::to_string(cs_->leader().value_or(0)));
	}
	after_message();
	dirty_ = true;
}

void Daemon::on_totem(std::uint32_t ring_nodeid, std::uint64_t ring_seq,
		      std::span<const std::uint32_t> members)
{
	ring_seq_ = ring_seq;
	ring_.assign(members.begin(), members.end());
	log(LOG_INFO, "totem ring " + std::to_string(ring_nodeid) + "." + std::to_string(ring_seq) +
			      ": " + join_ids(std::vector<NodeId>(members.begin(), members.end())));
	dirty_ = true;
}

// Moves the takeovers and releases along after a delivered message.
void Daemon::after_message()
{
	const auto now = Clock::now();
	for (auto it = takeovers_.begin(); it != takeovers_.end();) {
		auto &[name, run] = *it;
		const FsEntry *e = cs_->map().find(name);
		if (!e) {
			it = takeovers_.erase(it);
			continue;
		}
		if (run.machine.step() == TakeoverStep::Fence && e->state == FsState::Fenced &&
		    e->target == cs_->me()) {
			run.machine.advance(true);
			run.fenced = now;
			log(LOG_NOTICE, name + ": fence of node " + std::to_string(run.from) +
						" confirmed " + std::to_string(ms_between(run.t0, now)) +
						" ms after the membership change");
		} else if (run.machine.step() == TakeoverStep::Announce &&
			   e->state == FsState::Serving && e->holder == cs_->me()) {
			run.machine.advance(true);
			TakeoverTimes t;
			t.fs = name;
			t.from = run.from;
			t.fence_ms = run.fenced == Clock::time_point{} ? -1 : ms_between(run.t0, run.fenced);
			t.mount_ms = run.mount_ms;
			t.first_op_ms = run.first_op_ms;
			t.total_ms = ms_between(run.t0, now);
			last_takeover_ = t;
			if (t.fence_ms < 0)
				log(LOG_NOTICE, name + ": taken back from node " +
							std::to_string(run.from) + " (released, no fence): mount " +
							std::to_string(t.mount_ms) + " ms, announced at " +
							std::to_string(t.total_ms) + " ms");
			else
				log(LOG_NOTICE, name + ": taken over from node " + std::to_string(run.from) +
							": first operation " + std::to_string(t.first_op_ms) +
							" ms after the membership change (fence confirmed at " +
							std::to_string(t.fence_ms) + " ms, mount " +
							std::to_string(t.mount_ms) + " ms), announced at " +
							std::to_string(t.total_ms) + " ms; corosync token timeout " +
							(token_ms_ ? std::to_string(*token_ms_) + " ms" : "unknown"));
			local_.busy.erase(name);
			it = takeovers_.erase(it);
			continue;
		} else if (e->state == FsState::Serving && e->holder != cs_->me() &&
			   run.machine.step() == TakeoverStep::Fence) {
			// Somebody else serves it now (e.g. a giveback raced).
			it = takeovers_.erase(it);
			continue;
		}
		++it;
	}
	for (auto it = local_.fencing.begin(); it != local_.fencing.end();) {
		const NodeId n = *it;
		const bool running = std::any_of(fences_.begin(), fences_.end(),
						 [n](const FenceJob &j) { return j.node == n; });
		if (!running && !cs_->map().is_unfenced(n))
			it = local_.fencing.erase(it);
		else
			++it;
	}
	for (auto it = releasing_.begin(); it != releasing_.end();) {
		const FsEntry *e = cs_->map().find(*it);
		if (!e || e->state != FsState::Serving || e->holder != cs_->me()) {
			local_.busy.erase(*it);
			it = releasing_.erase(it);
		} else {
			++it;
		}
	}
}

void Daemon::send(const Message &in)
{
	Message m = in;
	m.config_digest = cfg_.digest();
	cpg_.send(encode(m));
}

// ---- actions -----------------------------------------------------------

bool Daemon::backing_off(const std::string &key) const
{
	auto it = not_before_.find(key);
	return it != not_before_.end() && Clock::now() < it->second;
}

void Daemon::back_off(const std::string &key, std::chrono::milliseconds d)
{
	not_before_[key] = Clock::now() + d;
}

MountSpec Daemon::spec_for(const FileSystem &f, bool takeover_copy) const
{
	MountSpec s;
	s.device = f.device;
	if (s.device.empty())
		s.device = !f.uuid.empty() ? "/dev/disk/by-uuid/" + f.uuid
					   : "/dev/disk/by-label/" + f.label;
	s.mountpoint = f.mountpoint;
	s.nvram = f.nvram;
	const Node *home = cfg_.node(f.initial_owner);
	s.node = home ? home->disk_area : 0;
	s.extra = f.mount_options;
	if (!takeover_copy || cfg_.mirror_after_takeover) {
		const Node *other = cfg_.node(cfg_.other(f, cs_->me()));
		if (other && !cfg_.cluster_key.empty()) {
			s.partner = other->address + ":" + std::to_string(f.mirror_port);
			s.cluster_key = cfg_.cluster_key;
		}
	}
	return s;
}

void Daemon::act()
{
	if (!cs_->synced() || stopping_)
		return;
	// Lost nodes whose disk heartbeat is stale: dead, their fence is
	// not delayed (plan()).
	local_.heartbeat_stale.clear();
	if (heartbeat_)
		for (const auto &u : cs_->map().unfenced)
			if (heartbeat_->stale_for(u.node))
				local_.heartbeat_stale.insert(u.node);
	for (const auto &a : plan(*cs_, cfg_, quorum_.quorate(), local_)) {
		const std::string key = std::string(to_string(a.kind)) + ":" + a.fs + ":" +
					std::to_string(a.node);
		if (backing_off(key))
			continue;
		if (a.kind == ActionKind::Fence && a.delay_ms > 0) {
			const auto [it, first] = fence_wait_.emplace(std::pair{a.node, a.epoch}, Clock::now());
			if (first && heartbeat_) {
				const auto u = heartbeat_->unchanged_for(a.node);
				log(LOG_NOTICE, "node " + std::to_string(a.node) + "'s disk heartbeat is " +
							(u ? "fresh (changed " + std::to_string(u->count()) + " ms ago)"
							   : std::string("not known")) +
							": it may be alive and cut off; its fence waits the " +
							std::to_string(a.delay_ms) + " ms delay (fence_delay_ms)");
			} else if (first) {
				log(LOG_WARNING, "fence of node " + std::to_string(a.node) + " delayed by " +
							 std::to_string(a.delay_ms) +
							 " ms (it holds a file system: fence_delay_ms)");
			}
			auto due = it->second + std::chrono::milliseconds(a.delay_ms);
			if (Clock::now() < due) {
				// Its heartbeat may go stale meanwhile: look again soon.
				if (heartbeat_)
					due = std::min(due, Clock::now() + std::chrono::milliseconds(cfg_.disk_heartbeat_ms));
				if (!wake_ || due < *wake_)
					wake_ = due;
				continue;
			}
		}
		if (a.kind == ActionKind::Fence && a.heartbeat_stale && cfg_.fence_delay_ms > 0 && heartbeat_) {
			const auto s = heartbeat_->stale_for(a.node);
			log(LOG_NOTICE, "node " + std::to_string(a.node) + "'s disk heartbeat is stale for " +
						(s ? std::to_string(s->count()) : std::string("?")) +
						" ms: fencing it without the " + std::to_string(cfg_.fence_delay_ms) +
						" ms delay");
		}
		try {
			execute(a);
		} catch (const std::exception &e) {
			log(LOG_ERR, (a.fs.empty() ? "" : a.fs + ": ") + std::string(to_string(a.kind)) +
					     " failed: " + e.what() + "; retrying in 5 s");
			back_off(key, std::chrono::seconds(5));
		}
		dirty_ = true;
	}
	if (quorum_.quorate())
		partner_links();
}

// SET_NODE before the first mount (the module may be loaded after we
// start): STATUS then says which node this is.
void Daemon::set_node_id()
{
	if (node_id_set_)
		return;
	try {
		ctl_.set_node(cs_->me());
		node_id_set_ = true;
	} catch (const std::exception &e) {
		log(LOG_WARNING, std::string("cannot tell the module our node id: ") + e.what());
	}
}

// The partner link of what we hold: DISCONNECT once its partner is fenced
// (no reconnect attempts to a dead node; the module marks what the partner
// will lack), CONNECT once the partner is a member again (its twinfsd starts
// the target; the link connects as soon as it listens).
void Daemon::partner_links()
{
	const auto &map = cs_->map();
	for (const auto &name : local_.mounted) {
		const FileSystem *f = cfg_.filesystem(name);
		const FsEntry *e = map.find(name);
		if (!f || !e || e->holder != cs_->me() || local_.busy.count(name))
			continue;
		const MountSpec spec = spec_for(*f, false);
		if (spec.partner.empty())
			continue;
		const NodeId other = cfg_.other(*f, cs_->me());
		const bool off = partner_off_.count(name) > 0;
		const bool fenced = !cs_->is_member(other) && !map.is_absent(other) &&
				    !map.is_unfenced(other) && !local_.fencing.count(other);
		const std::string key = "link:" + name;
		if (backing_off(key) || (off ? !cs_->is_member(other) : !fenced))
			continue;
		try {
			if (off) {
				ctl_.connect_partner(spec.device);
				partner_off_.erase(name);
				log(LOG_NOTICE, name + ": node " + std::to_string(other) +
							" is back: partner link connecting");
			} else {
				ctl_.disconnect_partner(spec.device);
				partner_off_.insert(name);
				log(LOG_NOTICE, name + ": node " + std::to_string(other) +
							" is fenced: partner link disconnected, local NVRAM only");
			}
		} catch (const std::exception &ex) {
			log(LOG_ERR, name + ": partner link: " + ex.what() + "; retrying in 5 s");
			back_off(key, std::chrono::seconds(5));
		}
	}
}

// RELINQUISH and umount of a file system we have mounted; the line for the
// log ("unmounted MOUNTPOINT[WHY] (consistency point ...)").
std::string Daemon::unmount(const FileSystem &f, std::string_view why)
{
	const std::string line = ctl_.relinquish(spec_for(f, false));
	local_.mounted.erase(f.name);
	partner_off_.erase(f.name);
	return "unmounted " + f.mountpoint + std::string(why) + " (" + line + ")";
}

void Daemon::execute(const Action &a)
{
	const FileSystem *f = a.fs.empty() ? nullptr : cfg_.filesystem(a.fs);
	switch (a.kind) {
	case ActionKind::Fence:
		start_fence(a);
		return;
	case ActionKind::TakeOver:
		takeover(a);
		return;
	case ActionKind::Mount: {
		const auto spec = spec_for(*f, false);
		set_node_id();
		log(LOG_INFO, f->name + ": mounting " + spec.device + " on " + spec.mountpoint +
				      " (" + twinfs::mount_options(spec) + ")");
		ctl_.mount(spec);
		local_.mounted.insert(f->name);
		return;
	}
	case ActionKind::StartTarget:
		log(LOG_INFO, f->name + ": mirror target for node " + std::to_string(a.node) +
				      " on port " + std::to_string(f->mirror_port) + " into " + f->nvram);
		ctl_.start_target(f->mirror_port, f->nvram, cfg_.cluster_key);
		local_.targets.insert(f->name);
		return;
	case ActionKind::StopTarget:
		log(LOG_INFO, f->name + ": stopping the mirror target");
		ctl_.stop_target();
		local_.targets.erase(f->name);
		return;
	case ActionKind::Release: {
		log(LOG_NOTICE, f->name + ": giveback: unmounting " + f->mountpoint);
		log(LOG_NOTICE, f->name + ": " + unmount(*f));
		local_.busy.insert(f->name);
		releasing_.insert(f->name);
		Message m;
		m.type = MsgType::Released;
		m.fs = f->name;
		m.epoch = a.epoch;
		send(m);
		return;
	}
	case ActionKind::Unmount:
		log(LOG_WARNING, f->name + ": unmounting " + f->mountpoint +
					 (quorum_.quorate() ? " (not its holder)" : " (lost quorum: policy fail)"));
		log(LOG_NOTICE, f->name + ": " + unmount(*f));
		return;
	}
}

void Daemon::start_fence(const Action &a)
{
	const Node *n = cfg_.node(a.node);
	if (!n)
		throw std::runtime_error("node " + std::to_string(a.node) + " is not configured");
	const auto args = fence_argv(cfg_.fence_command, *n);
	if (args.empty())
		throw std::runtime_error("empty fence_command");
	std::vector<char *> argv;
	for (const auto &s : args)
		argv.push_back(const_cast<char *>(s.c_str()));
	argv.push_back(nullptr);
	// The child gets a clean signal mask and the node in its environment.
	std::vector<std::string> env_s{"TWINFS_FENCE_NODE=" + n->name,
				       "TWINFS_FENCE_NODEID=" + std::to_string(n->id),
				       "TWINFS_FENCE_ADDRESS=" + n->address};
	for (char **e = environ; *e; e++)
		env_s.emplace_back(*e);
	std::vector<char *> envp;
	for (auto &s : env_s)
		envp.push_back(s.data());
	envp.push_back(nullptr);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	pid_t pid = -1;
	const int err = ::posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), envp.data());
	posix_spawnattr_destroy(&attr);
	if (err)
		throw std::system_error(err, std::generic_category(), "fence command " + args[0]);
	log(LOG_WARNING, "fencing node " + std::to_string(n->id) + " (" + n->name + "): " +
				 cfg_.fence_command + " [pid " + std::to_string(pid) + "]");
	fences_.push_back(FenceJob{n->id, a.epoch, pid, Clock::now(), false});
	local_.fencing.insert(n->id);
}

void Daemon::reap_children()
{
	for (;;) {
		int status = 0;
		const pid_t pid = ::waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		for (auto it = fences_.begin(); it != fences_.end(); ++it) {
			if (it->pid != pid)
				continue;
			const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
			const auto ms = ms_between(it->start, Clock::now());
			const std::string how = WIFEXITED(status)
				? "exit " + std::to_string(WEXITSTATUS(status))
				: std::string("signal ") + ::sigabbrev_np(WTERMSIG(status));
			log(ok ? LOG_NOTICE : LOG_ERR,
			    "fence of node " + std::to_string(it->node) + (ok ? " succeeded" : " FAILED") +
				    " (" + how + (it->killed ? ", timed out" : "") + ") in " +
				    std::to_string(ms) + " ms");
			Message m;
			m.type = MsgType::Fenced;
			m.node = it->node;
			m.seq = it->seq;
			m.ok = ok;
			send(m);
			// After a success the node stays in `fencing` until our
			// FENCED is delivered (after_message), or it would be
			// fenced again meanwhile.
			if (!ok) {
				local_.fencing.erase(it->node);
				back_off("fence::" + std::to_string(it->node), std::chrono::seconds(2));
			}
			fences_.erase(it);
			dirty_ = true;
			break;
		}
	}
}

// The takeover steps after the fence is confirmed: stop target, mount
// (replay), first operation, announce; Done comes with OWNED's delivery.
void Daemon::takeover(const Action &a)
{
	const FileSystem &f = *cfg_.filesystem(a.fs);
	const FsEntry &e = *cs_->map().find(a.fs);
	const bool giveback = e.state == FsState::Released;
	auto it = takeovers_.find(a.fs);
	if (it == takeovers_.end() || it->second.machine.finished())
		it = takeovers_.insert_or_assign(
			a.fs, TakeoverRun{Takeover(a.fs, false), e.holder, Clock::now(), {}, -1, -1}).first;
	auto &run = it->second;
	Takeover &t = run.machine;
	if (t.step() == TakeoverStep::Fence)
		t.advance(true);	// FENCED was delivered before we tracked it
	if (t.step() == TakeoverStep::Confirm)
		t.advance(true);
	local_.busy.insert(a.fs);
	const auto spec = spec_for(f, !giveback);
	try {
		if (local_.mounted.count(a.fs) && t.step() == TakeoverStep::StopTarget) {
			// Mounted already: twinfsd restarted in the middle of this.
			log(LOG_NOTICE, a.fs + ": mounted already (adopted); announcing");
			t.advance(true);
			t.advance(true);
			run.mount_ms = 0;
		}
		if (t.step() == TakeoverStep::StopTarget) {
			set_node_id();
			log(LOG_NOTICE, a.fs + ": " + ctl_.prepare_takeover(spec.node));
			local_.targets.erase(a.fs);
			t.advance(true);
		}
		if (t.step() == TakeoverStep::Mount) {
			log(LOG_NOTICE, a.fs + ": " + (giveback ? "taking back" : "taking over") +
						" from node " + std::to_string(e.holder) + ": mount " +
						spec.device + " (" + twinfs::mount_options(spec) + ")");
			const auto t1 = Clock::now();
			ctl_.mount(spec);
			local_.mounted.insert(a.fs);
			partner_off_.erase(a.fs);
			run.mount_ms = ms_between(t1, Clock::now());
			t.advance(true);
		}
		if (t.step() == TakeoverStep::Serve) {
			probe(f.mountpoint);
			run.first_op_ms = ms_between(run.t0, Clock::now());
			t.advance(true);
		}
		if (t.step() == TakeoverStep::Announce) {
			Message m;
			m.type = MsgType::Owned;
			m.fs = a.fs;
			m.epoch = a.epoch;
			send(m);
		}
	} catch (const std::exception &ex) {
		const auto step = to_string(t.step());
		t.advance(false);
		local_.busy.erase(a.fs);
		throw std::runtime_error("step " + std::string(step) + ": " + ex.what());
	}
}

// ---- status ------------------------------------------------------------

std::string Daemon::status_text()
{
	StatusInput in;
	in.cfg = &cfg_;
	in.cs = &*cs_;
	in.local = &local_;
	in.quorate = quorum_.quorate();
	in.ring_seq = ring_seq_;
	in.token_ms = token_ms_;
	in.module = ctl_.status();
	in.last_takeover = last_takeover_;
	in.time = std::time(nullptr);
	return status_json(in);
}

void Daemon::write_status()
{
	const std::string text = status_text();
	// systemctl status shows a one-line summary.
	std::string summary = std::string(quorum_.quorate() ? "quorate" : "NOT quorate") +
			      ", members " + join_ids(cs_->members()) + ", leader " +
			      std::to_string(cs_->leader().value_or(0)) + ", serving";
	for (const auto &n : local_.mounted)
		summary += " " + n;
	if (ready_ && summary != last_summary_) {
		notify("STATUS=" + summary);
		last_summary_ = summary;
	}
	namespace fs = std::filesystem;
	const fs::path p = cfg_.status_file;
	std::error_code ec;
	fs::create_directories(p.parent_path(), ec);
	const fs::path tmp = p.string() + ".tmp";
	{
		std::ofstream out(tmp, std::ios::trunc);
		out << text;
		if (!out.flush()) {
			log(LOG_WARNING, "cannot write " + tmp.string());
			return;
		}
	}
	fs::rename(tmp, p, ec);
	if (ec)
		log(LOG_WARNING, "cannot rename " + tmp.string() + ": " + ec.message());
}

// A clean stop: what we serve is unmounted and RELEASED to the partner
// (no fencing needed), then the group is left.
void Daemon::shutdown()
{
	stopping_ = true;
	for (const auto &name : std::set<std::string>(local_.mounted)) {
		const FileSystem *f = cfg_.filesystem(name);
		const FsEntry *e = cs_->map().find(name);
		try {
			log(LOG_NOTICE, name + ": " + unmount(*f, " for the shutdown"));
			if (e && e->state == FsState::Serving && e->holder == cs_->me()) {
				Message m;
				m.type = MsgType::Released;
				m.fs = name;
				m.epoch = e->epoch;
				send(m);
			}
		} catch (const std::exception &ex) {
			log(LOG_ERR, name + ": " + ex.what() + "; leaving anyway (expect a fence)");
		}
	}
	if (!local_.targets.empty()) {
		try {
			ctl_.stop_target();
		} catch (const std::exception &ex) {
			log(LOG_WARNING, std::string("stopping the mirror target: ") + ex.what());
		}
		local_.targets.clear();
	}
	// Let our RELEASED messages be delivered (they are ordered before
	// our leave anyway), then leave.
	try {
		cpg_.dispatch();
	} catch (const std::exception &) {
	}
	cpg_.leave();
}

// ---- control socket ----------------------------------------------------
//
// A SOCK_SEQPACKET unix socket (mode 0600): one request per message, one
// reply.  "status": the status JSON.  "giveback FS": multicast GIVEBACK;
// its holder releases it and the pair's owner mounts it.  Replies start
// with "ok" or "error".

void Daemon::open_control_socket(std::optional<Fd> &fd) const
{
	const std::string &path = cfg_.control_socket;
	if (path.empty())
		return;
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof(addr.sun_path))
		throw std::runtime_error("control_socket " + path + ": path too long");
	std::memcpy(addr.sun_path, path.c_str(), path.size());
	std::error_code ec;
	std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
	fd.emplace(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (fd->get() < 0)
		throw sys_error("socket AF_UNIX");
	::unlink(path.c_str());
	const mode_t old = ::umask(077);
	const int rc = ::bind(fd->get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr));
	::umask(old);
	if (rc < 0)
		throw sys_error("bind " + path);
	if (::listen(fd->get(), 8) < 0)
		throw sys_error("listen " + path);
}

std::string Daemon::control_command(std::string_view req)
{
	while (!req.empty() && (req.back() == '\n' || req.back() == ' '))
		req.remove_suffix(1);
	if (req == "status")
		return "ok\n" + status_text();
	if (req.starts_with("giveback ")) {
		const std::string name(req.substr(9));
		const FsEntry *e = cs_->map().find(name);
		const FileSystem *f = cfg_.filesystem(name);
		if (!e || !f)
			return "error: no file system '" + name + "'\n";
		const Pair *p = cfg_.pair(f->pair);
		if (!cs_->synced() || !quorum_.quorate())
			return "error: not synchronized or not quorate\n";
		if (e->state != FsState::Serving || !p || e->holder == p->owner)
			return "error: " + name + " is " + std::string(to_string(e->state)) +
			       " on node " + std::to_string(e->holder) + ": nothing to give back\n";
		if (!cs_->is_member(p->owner))
			return "error: node " + std::to_string(p->owner) + " is not a member\n";
		Message m;
		m.type = MsgType::Giveback;
		m.fs = name;
		m.epoch = e->epoch;
		send(m);
		log(LOG_NOTICE, name + ": giveback to node " + std::to_string(p->owner) +
					" asked on the control socket");
		return "ok: giveback of " + name + " to node " + std::to_string(p->owner) + " asked\n";
	}
	return "error: unknown request (status, giveback FS)\n";
}

void Daemon::serve_control(int listen_fd)
{
	for (;;) {
		Fd c(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
		if (c.get() < 0)
			return;	// EAGAIN: no more
		// A short timeout: a client that connects and says nothing
		// must not stall the loop.
		const timeval tv{1, 0};
		::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		char buf[512];
		const ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
		if (n <= 0)
			continue;
		std::string reply;
		try {
			reply = control_command(std::string_view(buf, static_cast<size_t>(n)));
		} catch (const std::exception &e) {
			reply = std::string("error: ") + e.what() + "\n";
		}
		::send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
	}
}

int Daemon::run()
{
	const NodeId me = cpg_.local_nodeid();
	const Node *self = cfg_.node(me);
	if (!self)
		throw std::runtime_error("corosync's node id " + std::to_string(me) +
					 " is not a [node] of the configuration");
	cs_.emplace(cfg_, me);
	token_ms_ = twinfs::corosync::token_timeout_ms(cmap_);
	log(LOG_INFO, "node " + std::to_string(me) + " (" + self->name + "), corosync token timeout " +
			      (token_ms_ ? std::to_string(*token_ms_) + " ms" : "unknown") +
			      ", votequorum flags 0x" + [&] {
				      std::ostringstream o;
				      o << std::hex << quorum_.flags(me);
				      return o.str();
			      }());
	// Our nodes should be corosync's nodes.
	for (unsigned i = 0;; i++) {
		const auto id = cmap_.get_u32("nodelist.node." + std::to_string(i) + ".nodeid");
		if (!id)
			break;
		if (!cfg_.node(*id))
			log(LOG_WARNING, "corosync's node " + std::to_string(*id) +
						 " is not in the configuration: it serves nothing");
	}
	// What is mounted already and the mirror target (a restart): adopted.
	for (const auto &mp : twinfs_mounts())
		for (const auto &f : cfg_.filesystems)
			if (f.mountpoint == mp) {
				local_.mounted.insert(f.name);
				adopted_.insert(f.name);
				log(LOG_NOTICE, f.name + ": " + mp + " is mounted (twinfsd restarted): adopting it");
			}
	if (disk_heartbeat_ && cfg_.disk_heartbeat_ms > 0)
		heartbeat_.emplace(cfg_, me, [](int prio, const std::string &m) { log(prio, m); });
	else
		log(LOG_INFO, cfg_.disk_heartbeat_ms == 0
				      ? "no disk heartbeat (disk_heartbeat_ms = 0): every holder's fence waits fence_delay_ms"
				      : "--dry-run: no disk heartbeat; every holder's fence waits fence_delay_ms");
	if (const std::string t = ctl_.status().target + " "; t.starts_with("listening "))
		for (const auto &f : cfg_.filesystems)
			if (t.find(" port=" + std::to_string(f.mirror_port) + " ") != std::string::npos &&
			    t.find(" device=" + f.nvram + " ") != std::string::npos) {
				local_.targets.insert(f.name);
				log(LOG_NOTICE, f.name + ": the mirror target runs (twinfsd restarted): adopting it");
			}

	sigset_t set;
	sigemptyset(&set);
	for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
		sigaddset(&set, s);
	Fd sfd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
	if (sfd.get() < 0)
		throw sys_error("signalfd");
	Fd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
	if (tfd.get() < 0)
		throw sys_error("timerfd_create");
	const itimerspec its{{0, 500000000}, {0, 500000000}};
	if (::timerfd_settime(tfd.get(), 0, &its, nullptr) < 0)
		throw sys_error("timerfd_settime");

	std::optional<Fd> ctl;
	open_control_socket(ctl);
	const int ctl_fd = ctl ? ctl->get() : -1;

	cpg_.join();
	log(LOG_INFO, "joined the process group '" + cfg_.group + "'");

	auto last_status = Clock::now();
	for (;;) {
		pollfd p[6] = {{cpg_.fd(), POLLIN, 0}, {quorum_.fd(), POLLIN, 0},
			       {sfd.get(), POLLIN, 0}, {tfd.get(), POLLIN, 0},
			       {ctl_fd, POLLIN, 0},	// fd -1: ignored
			       {events_ ? events_->fd() : -1, POLLIN, 0}};
		// A delayed fence is due before the next tick: wake up for it.
		int timeout = -1;
		if (wake_) {
			timeout = static_cast<int>(std::max<std::int64_t>(0, ms_between(Clock::now(), *wake_) + 1));
			wake_.reset();
		}
		if (::poll(p, 6, timeout) < 0) {
			if (errno == EINTR)
				continue;
			throw sys_error("poll");
		}
		if (p[0].revents)
			cpg_.dispatch();
		if (p[1].revents) {
			quorum_.dispatch();
			if (quorum_.changed) {
				quorum_.changed = false;
				cs_->set_quorate(quorum_.quorate());
				log(quorum_.quorate() ? LOG_NOTICE : LOG_WARNING,
				    quorum_.quorate() ? "quorate" : "quorum lost: lost_quorum=" +
									 std::string(to_string(cfg_.lost_quorum)));
				dirty_ = true;
			}
		}
		if (p[3].revents) {
			std::uint64_t n;
			while (::read(tfd.get(), &n, sizeof(n)) > 0)
				;
			check_grace();
			for (auto &j : fences_)
				if (!j.killed && ms_between(j.start, Clock::now()) > cfg_.fence_timeout_ms) {
					log(LOG_ERR, "fence of node " + std::to_string(j.node) +
							     " timed out; killing it");
					::kill(j.pid, SIGKILL);
					j.killed = true;
				}
		}
		if (p[4].revents)
			serve_control(ctl_fd);
		// The module's events: a mirror state change refreshes the status.
		if (p[5].revents && events_->dispatch())
			dirty_ = true;
		if (p[3].revents && events_ && events_->tick())
			dirty_ = true;
		if (p[2].revents) {
			signalfd_siginfo si;
			while (::read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					reap_children();
				} else if (si.ssi_signo == SIGHUP) {
					log(LOG_INFO, "SIGHUP: the configuration is read at start only; "
						      "restart twinfsd to change it");
				} else {
					log(LOG_INFO, std::string("stopping on SIG") +
							      ::sigabbrev_np(static_cast<int>(si.ssi_signo)));
					notify("STOPPING=1");
					shutdown();
					write_status();
					if (ctl_fd >= 0)
						::unlink(cfg_.control_socket.c_str());
					return kExitOk;
				}
			}
		}
		act();
		if (dirty_ || Clock::now() - last_status > std::chrono::seconds(1)) {
			write_status();
			dirty_ = false;
			last_status = Clock::now();
		}
	}
}

int serve(const Options &opts)
{
	const Config cfg = load_config(opts.config);
	if (opts.check) {
		std::cout << opts.config << ": " << cfg.nodes.size() << " nodes, " << cfg.pairs.size()
			  << " pairs, " << cfg.filesystems.size() << " file systems\n";
		return kExitOk;
	}
	// Signals are taken synchronously through a signalfd: block them
	// first, before any other thread could exist.
	sigset_t set;
	sigemptyset(&set);
	for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
		sigaddset(&set, s);
	if (int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr))
		throw std::system_error(err, std::generic_category(), "pthread_sigmask");
	::signal(SIGPIPE, SIG_IGN);

	if (!opts.foreground) {
		daemonize();
	} else {
		g_journal = std::getenv("JOURNAL_STREAM") != nullptr;
		g_timestamps = !g_journal;
	}

	log(LOG_INFO, "version " + std::string(twinfs::kVersion) + " starting with " + opts.config);
	auto ctl = opts.dry_run ? twinfs::make_dry_run_module_control(
					  [](const std::string &m) { log(LOG_INFO, m); })
				: twinfs::make_genl_module_control();
	std::optional<twinfs::ModuleEvents> events;
	if (!opts.dry_run)
		events.emplace([](int prio, const std::string &m) { log(prio, m); });
	Daemon d(cfg, *ctl, events ? &*events : nullptr, !opts.dry_run);
	return d.run();
}

int run(std::span<const std::string_view> args)
{
	Options opts;
	for (size_t i = 0; i < args.size(); i++) {
		const auto arg = args[i];
		if (arg == "-h" || arg == "--help") {
			usage(std::cout);
			return kExitOk;
		}
		if (arg == "-V" || arg == "--version") {
			std::cout << "twinfsd " << twinfs::kVersion << "\n";
			return kExitOk;
		}
		if (arg == "-f" || arg == "--foreground") {
			opts.foreground = true;
			continue;
		}
		if (arg == "-n" || arg == "--dry-run") {
			opts.dry_run = true;
			continue;
		}
		if (arg == "-t" || arg == "--check") {
			opts.check = true;
			continue;
		}
		if ((arg == "-c" || arg == "--config") && i + 1 < args.size()) {
			opts.config = args[++i];
			continue;
		}
		std::cerr << "twinfsd: unknown argument '" << arg << "'\n"
			  << "Try 'twinfsd --help'.\n";
		return kExitUsage;
	}
	return serve(opts);
}

} // namespace

int main(int argc, char **argv)
{
	try {
		const std::vector<std::string_view> args(argv + 1, argv + argc);
		return run(args);
	} catch (const std::exception &e) {
		log(LOG_ERR, e.what());
		return kExitError;
	}
}
