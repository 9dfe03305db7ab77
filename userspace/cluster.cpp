// SPDX-License-Identifier: GPL-2.0
// twinfsd's replicated state: see include/twinfs_user/cluster.hpp.
#include "twinfs_user/cluster.hpp"

#include <algorithm>
#include <stdexcept>

namespace twinfs::cluster {

std::string_view to_string(FsState s)
{
	switch (s) {
	case FsState::Waiting: return "waiting";
	case FsState::Serving: return "serving";
	case FsState::HolderLost: return "holder-lost";
	case FsState::Fenced: return "fenced";
	case FsState::Released: return "released";
	}
	return "?";
}

std::string_view to_string(ActionKind k)
{
	switch (k) {
	case ActionKind::Fence: return "fence";
	case ActionKind::Mount: return "mount";
	case ActionKind::TakeOver: return "take over";
	case ActionKind::StartTarget: return "start mirror target";
	case ActionKind::StopTarget: return "stop mirror target";
	case ActionKind::Release: return "release";
	case ActionKind::Unmount: return "unmount";
	}
	return "?";
}

std::string_view to_string(TakeoverStep s)
{
	switch (s) {
	case TakeoverStep::Fence: return "fence";
	case TakeoverStep::Confirm: return "confirm";
	case TakeoverStep::StopTarget: return "stop-target";
	case TakeoverStep::Mount: return "mount";
	case TakeoverStep::Serve: return "serve";
	case TakeoverStep::Announce: return "announce";
	case TakeoverStep::Done: return "done";
	case TakeoverStep::Failed: return "failed";
	}
	return "?";
}

FsEntry *OwnershipMap::find(std::string_view name)
{
	for (auto &e : fs)
		if (e.name == name)
			return &e;
	return nullptr;
}

const FsEntry *OwnershipMap::find(std::string_view name) const
{
	return const_cast<OwnershipMap *>(this)->find(name);
}

bool OwnershipMap::is_unfenced(NodeId n) const
{
	return std::any_of(unfenced.begin(), unfenced.end(),
			   [n](const Unfenced &u) { return u.node == n; });
}

bool OwnershipMap::is_absent(NodeId n) const
{
	return std::any_of(absent.begin(), absent.end(),
			   [n](const Unfenced &u) { return u.node == n; });
}

namespace {

void add_sorted(std::vector<Unfenced> &v, Unfenced u)
{
	v.push_back(u);
	std::sort(v.begin(), v.end(),
		  [](const Unfenced &a, const Unfenced &b) { return a.node < b.node; });
}

} // namespace

// ---- wire format -------------------------------------------------------
//
// header: u32 magic "TWFD", u16 version (1), u16 type, u64 config digest;
// then the type's fields.  Integers little-endian; strings u16 length +
// bytes.
namespace {

constexpr std::uint32_t kMagic = 0x44465754;	// "TWFD" little-endian
constexpr std::uint16_t kVersion = 2;	// 2: absent nodes, EXPIRED
constexpr std::size_t kMaxEntries = 4096;

class Writer {
public:
	template <typename T>
	void u(T v)
	{
		for (std::size_t i = 0; i < sizeof(T); i++)
			buf_.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i)));
	}
	void str(std::string_view s)
	{
		if (s.size() > 0xffff)
			throw std::length_error("message string longer than 65535 bytes");
		u<std::uint16_t>(static_cast<std::uint16_t>(s.size()));
		buf_.insert(buf_.end(), s.begin(), s.end());
	}
	std::vector<std::uint8_t> take() { return std::move(buf_); }

private:
	std::vector<std::uint8_t> buf_;
};

class Reader {
public:
	explicit Reader(std::span<const std::uint8_t> p) : p_(p) {}
	template <typename T>
	T u(const char *what)
	{
		need(sizeof(T), what);
		std::uint64_t v = 0;
		for (std::size_t i = 0; i < sizeof(T); i++)
			v |= static_cast<std::uint64_t>(p_[off_ + i]) << (8 * i);
		off_ += sizeof(T);
		return static_cast<T>(v);
	}
	std::string str(const char *what)
	{
		const auto n = u<std::uint16_t>(what);
		need(n, what);
		std::string s(reinterpret_cast<const char *>(p_.data() + off_), n);
		off_ += n;
		return s;
	}
	void end() const
	{
		if (off_ != p_.size())
			throw std::runtime_error("message: " + std::to_string(p_.size() - off_) +
						 " bytes after the last field");
	}

private:
	void need(std::size_t n, const char *what) const
	{
		if (p_.size() - off_ < n)
			throw std::runtime_error(std::string("message truncated at ") + what +
						 " (offset " + std::to_string(off_) + " of " +
						 std::to_string(p_.size()) + ")");
	}
	std::span<const std::uint8_t> p_;
	std::size_t off_ = 0;
};

} // namespace

std::vector<std::uint8_t> encode(const Message &m)
{
	Writer w;
	w.u<std::uint32_t>(kMagic);
	w.u<std::uint16_t>(kVersion);
	w.u<std::uint16_t>(static_cast<std::uint16_t>(m.type));
	w.u<std::uint64_t>(m.config_digest);
	switch (m.type) {
	case MsgType::State:
		w.u<std::uint8_t>(static_cast<std::uint8_t>((m.synced ? 1 : 0) | (m.quorate ? 2 : 0) |
							    (m.established ? 4 : 0)));
		w.u<std::uint64_t>(m.map.seq);
		w.u<std::uint32_t>(static_cast<std::uint32_t>(m.map.fs.size()));
		for (const auto &e : m.map.fs) {
			w.str(e.name);
			w.u<std::uint8_t>(static_cast<std::uint8_t>(e.state));
			w.u<std::uint32_t>(e.holder);
			w.u<std::uint32_t>(e.target);
			w.u<std::uint64_t>(e.epoch);
			w.u<std::uint8_t>(e.giveback ? 1 : 0);
		}
		for (const auto *list : {&m.map.unfenced, &m.map.absent}) {
			w.u<std::uint32_t>(static_cast<std::uint32_t>(list->size()));
			for (const auto &u : *list) {
				w.u<std::uint32_t>(u.node);
				w.u<std::uint64_t>(u.seq);
			}
		}
		break;
	case MsgType::Expired:
		w.u<std::uint32_t>(m.node);
		w.u<std::uint64_t>(m.seq);
		break;
	case MsgType::Fenced:
		w.u<std::uint32_t>(m.node);
		w.u<std::uint64_t>(m.seq);
		w.u<std::uint8_t>(m.ok ? 1 : 0);
		break;
	case MsgType::Owned:
	case MsgType::Released:
	case MsgType::Giveback:
		w.str(m.fs);
		w.u<std::uint64_t>(m.epoch);
		break;
	}
	return w.take();
}

Message decode(std::span<const std::uint8_t> payload)
{
	Reader r(payload);
	Message m;
	if (r.u<std::uint32_t>("magic") != kMagic)
		throw std::runtime_error("message: bad magic (not a twinfsd message)");
	if (const auto v = r.u<std::uint16_t>("version"); v != kVersion)
		throw std::runtime_error("message: version " + std::to_string(v) +
					 ", this twinfsd speaks " + std::to_string(kVersion));
	const auto type = r.u<std::uint16_t>("type");
	m.config_digest = r.u<std::uint64_t>("config digest");
	switch (type) {
	case static_cast<std::uint16_t>(MsgType::State): {
		m.type = MsgType::State;
		const auto flags = r.u<std::uint8_t>("flags");
		m.synced = flags & 1;
		m.quorate = flags & 2;
		m.established = flags & 4;
		m.map.seq = r.u<std::uint64_t>("map seq");
		const auto n = r.u<std::uint32_t>("entry count");
		if (n > kMaxEntries)
			throw std::runtime_error("message: " + std::to_string(n) + " entries");
		for (std::uint32_t i = 0; i < n; i++) {
			FsEntry e;
			e.name = r.str("entry name");
			const auto st = r.u<std::uint8_t>("entry state");
			if (st < static_cast<std::uint8_t>(FsState::Waiting) ||
			    st > static_cast<std::uint8_t>(FsState::Released))
				throw std::runtime_error("message: entry state " + std::to_string(st));
			e.state = static_cast<FsState>(st);
			e.holder = r.u<std::uint32_t>("entry holder");
			e.target = r.u<std::uint32_t>("entry target");
			e.epoch = r.u<std::uint64_t>("entry epoch");
			e.giveback = r.u<std::uint8_t>("entry giveback") != 0;
			m.map.fs.push_back(std::move(e));
		}
		for (auto *list : {&m.map.unfenced, &m.map.absent}) {
			const bool unf = list == &m.map.unfenced;
			const auto nu = r.u<std::uint32_t>(unf ? "unfenced count" : "absent count");
			if (nu > kMaxEntries)
				throw std::runtime_error("message: " + std::to_string(nu) +
							 (unf ? " unfenced nodes" : " absent nodes"));
			for (std::uint32_t i = 0; i < nu; i++) {
				Unfenced u;
				u.node = r.u<std::uint32_t>(unf ? "unfenced node" : "absent node");
				u.seq = r.u<std::uint64_t>(unf ? "unfenced seq" : "absent seq");
				list->push_back(u);
			}
		}
		break;
	}
	case static_cast<std::uint16_t>(MsgType::Expired):
		m.type = MsgType::Expired;
		m.node = r.u<std::uint32_t>("node");
		m.seq = r.u<std::uint64_t>("seq");
		break;
	case static_cast<std::uint16_t>(MsgType::Fenced):
		m.type = MsgType::Fenced;
		m.node = r.u<std::uint32_t>("node");
		m.seq = r.u<std::uint64_t>("seq");
		m.ok = r.u<std::uint8_t>("ok") != 0;
		break;
	case static_cast<std::uint16_t>(MsgType::Owned):
	case static_cast<std::uint16_t>(MsgType::Released):
	case static_cast<std::uint16_t>(MsgType::Giveback):
		m.type = static_cast<MsgType>(type);
		m.fs = r.str("file system");
		m.epoch = r.u<std::uint64_t>("epoch");
		break;
	default:
		throw std::runtime_error("message: unknown type " + std::to_string(type));
	}
	r.end();
	return m;
}

// ---- ClusterState ------------------------------------------------------

ClusterState::ClusterState(const Config &cfg, NodeId me) : cfg_(cfg), me_(me) {}

bool ClusterState::is_member(NodeId n) const
{
	return std::binary_search(members_.begin(), members_.end(), n);
}

std::optional<NodeId> ClusterState::leader() const
{
	if (members_.empty())
		return std::nullopt;
	return members_.front();
}

void ClusterState::bump(FsEntry &e)
{
	e.epoch++;
	map_.seq++;
}

void ClusterState::on_confchg(std::span<const NodeId> members, std::span<const NodeId> left,
			      std::span<const NodeId> joined, std::span<const NodeId> daemon_gone,
			      std::span<const NodeId> clean)
{
	members_.assign(members.begin(), members.end());
	std::sort(members_.begin(), members_.end());
	members_.erase(std::unique(members_.begin(), members_.end()), members_.end());
	// A new round; messages queued in an unfinished one stay queued (the
	// States of this round do not reflect them).
	state_senders_.clear();
	states_.clear();
	round_ = true;
	if (!synced_)
		return;
	auto in = [](std::span<const NodeId> v, NodeId n) {
		return std::find(v.begin(), v.end(), n) != v.end();
	};
	for (NodeId n : left)
		apply_leave(n, in(daemon_gone, n) ? Leave::DaemonGone
				: in(clean, n)    ? Leave::Clean
						  : Leave::Lost);
	for (NodeId n : joined)
		apply_join(n);
}

void ClusterState::apply_leave(NodeId n, Leave how)
{
	if (how == Leave::DaemonGone && cfg_.daemon_grace_ms == 0)
		how = Leave::Lost;
	if (how == Leave::DaemonGone) {
		// Its node is still up and may still serve or mirror: wait for
		// its twinfsd to come back (or for EXPIRED).
		const bool involved = std::any_of(map_.fs.begin(), map_.fs.end(), [&](const FsEntry &e) {
			const FileSystem *f = cfg_.filesystem(e.name);
			return e.holder == n || e.target == n || (f && cfg_.other(*f, e.holder) == n);
		});
		if (involved && !map_.is_absent(n)) {
			map_.seq++;
			add_sorted(map_.absent, Unfenced{n, map_.seq});
		}
		return;
	}
	bool needs_fence = false;
	for (auto &e : map_.fs) {
		const FileSystem *f = cfg_.filesystem(e.name);
		if (how == Leave::Lost && e.state == FsState::Serving && e.holder != n && f &&
		    cfg_.other(*f, e.holder) == n) {
			// The partner: in a split it would take over.
			needs_fence = true;
			continue;
		}
		if (e.state == FsState::Serving && e.holder == n) {
			e.state = FsState::HolderLost;
			e.giveback = false;
			bump(e);
			needs_fence = true;
		} else if ((e.state == FsState::Fenced || e.state == FsState::Released) &&
			   e.target == n) {
			// It may have mounted already: fence it before anybody
			// else mounts.
			e.state = FsState::HolderLost;
			e.holder = n;
			e.target = 0;
			e.giveback = false;
			bump(e);
			needs_fence = true;
		} else if (e.state == FsState::HolderLost && e.holder == n) {
			needs_fence = true;
		}
	}
	if (needs_fence && !map_.is_unfenced(n)) {
		map_.seq++;
		add_sorted(map_.unfenced, Unfenced{n, map_.seq});
	}
}

void ClusterState::apply_join(NodeId n)
{
	if (std::erase_if(map_.absent, [n](const Unfenced &u) { return u.node == n; }))
		map_.seq++;
	for (auto &e : map_.fs)
		if (e.state == FsState::Waiting && e.holder == n) {
			e.state = FsState::Serving;
			bump(e);
		}
}

void ClusterState::init_from_config()
{
	map_ = OwnershipMap{};
	for (const auto &f : cfg_.filesystems) {
		FsEntry e;
		e.name = f.name;
		e.holder = f.initial_owner;
		e.state = is_member(f.initial_owner) ? FsState::Serving : FsState::Waiting;
		map_.fs.push_back(std::move(e));
	}
	synced_ = true;
}

void ClusterState::set_quorate(bool quorate)
{
	quorate_ = quorate;
	if (quorate_ && synced_ && !round_)
		established_ = true;
}

Message ClusterState::state_message(bool quorate) const
{
	Message m;
	m.type = MsgType::State;
	m.config_digest = cfg_.digest();
	m.synced = synced_;
	m.quorate = quorate;
	m.established = established_;
	if (synced_)
		m.map = map_;
	return m;
}

std::string ClusterState::on_message(const Message &m)
{
	if (m.config_digest != cfg_.digest() && mismatch_.empty())
		mismatch_ = "node " + std::to_string(m.sender) +
			    " has a different configuration (nodes, pairs or file systems)";
	if (m.type != MsgType::State) {
		if (round_) {
			queued_.push_back(m);
			return {};
		}
		return synced_ ? apply(m) : std::string();
	}
	if (!round_ || !state_senders_.insert(m.sender).second)
		return {};
	states_.push_back(m);
	if (!std::includes(state_senders_.begin(), state_senders_.end(), members_.begin(),
			   members_.end()))
		return {};
	// The round is complete: every member chooses the same map.
	const Message *pick = nullptr;
	auto first = [&](auto &&pred) {
		for (const auto &st : states_)
			if (st.synced && pred(st))
				return &st;
		return static_cast<const Message *>(nullptr);
	};
	pick = first([](const Message &st) { return st.established && st.quorate; });
	if (!pick)
		pick = first([](const Message &st) { return st.established; });
	if (!pick)
		pick = first([](const Message &) { return true; });
	std::string what;
	if (pick) {
		if (!synced_)
			what = "synchronized: ownership map from node " + std::to_string(pick->sender);
		else if (!(pick->map == map_))
			what = "membership merge: ownership map of node " +
			       std::to_string(pick->sender) + " replaces this node's";
		map_ = pick->map;
		established_ = pick->established;
	} else {
		init_from_config();
		established_ = false;
		what = "synchronized: no member has a map (cluster start): ownership map from "
		       "the configuration";
	}
	synced_ = true;
	round_ = false;
	if (quorate_)
		established_ = true;
	states_.clear();
	// What was delivered during the round, on top of the map: the epochs
	// make each message apply to exactly the state it was sent about.
	for (const auto &q : queued_)
		apply(q);
	queued_.clear();
	return what;
}

std::string ClusterState::apply(const Message &m)
{
	const std::string from = "node " + std::to_string(m.sender);
	if (m.type == MsgType::Expired) {
		auto it = std::find(map_.absent.begin(), map_.absent.end(), Unfenced{m.node, m.seq});
		if (it == map_.absent.end() || is_member(m.node))
			return {};
		map_.absent.erase(it);
		map_.seq++;
		apply_leave(m.node, Leave::Lost);
		return "node " + std::to_string(m.node) + ": its twinfsd did not come back; lost (" +
		       from + ")";
	}
	if (m.type == MsgType::Fenced) {
		auto it = std::find(map_.unfenced.begin(), map_.unfenced.end(),
				    Unfenced{m.node, m.seq});
		if (it == map_.unfenced.end())
			return {};
		if (!m.ok)
			return "fencing node " + std::to_string(m.node) + " failed (" + from + ")";
		map_.unfenced.erase(it);
		map_.seq++;
		for (auto &e : map_.fs)
			if (e.state == FsState::HolderLost && e.holder == m.node) {
				const FileSystem *f = cfg_.filesystem(e.name);
				e.state = FsState::Fenced;
				e.target = f ? cfg_.other(*f, m.node) : 0;
				bump(e);
			}
		return "node " + std::to_string(m.node) + " is fenced (" + from + ")";
	}
	FsEntry *e = map_.find(m.fs);
	if (!e)
		return from + " sent a message about unknown file system '" + m.fs + "'";
	if (e->epoch != m.epoch)
		return {};	// about a state that has passed
	const FileSystem *f = cfg_.filesystem(e->name);
	switch (m.type) {
	case MsgType::Owned:
		if ((e->state == FsState::Fenced || e->state == FsState::Released) &&
		    e->target == m.sender) {
			e->state = FsState::Serving;
			e->holder = m.sender;
			e->target = 0;
			e->giveback = false;
			bump(*e);
			return e->name + ": " + from + " serves it";
		}
		if (e->state == FsState::Serving && e->holder == m.sender)
			return e->name + ": " + from + " still serves it (twinfsd restarted)";
		return from + " announced " + e->name + " while it is " +
		       std::string(to_string(e->state)) + "; ignored";
	case MsgType::Released:
		if (e->state == FsState::Serving && e->holder == m.sender && f) {
			e->state = FsState::Released;
			e->target = cfg_.other(*f, m.sender);
			e->giveback = false;
			bump(*e);
			return e->name + ": released by " + from + " for node " +
			       std::to_string(e->target);
		}
		return {};
	case MsgType::Giveback: {
		const Pair *p = f ? cfg_.pair(f->pair) : nullptr;
		if (e->state == FsState::Serving && p && e->holder != p->owner && !e->giveback) {
			e->giveback = true;
			bump(*e);
			return e->name + ": giveback to node " + std::to_string(p->owner) +
			       " asked by " + from;
		}
		return {};
	}
	default:
		return {};
	}
}

// ---- plan --------------------------------------------------------------

std::vector<Action> plan(const ClusterState &cs, const Config &cfg, bool quorate,
			 const LocalState &local)
{
	std::vector<Action> out;
	if (!cs.synced() || cs.in_round())
		return out;
	const NodeId me = cs.me();
	const auto &map = cs.map();
	if (!quorate) {
		if (cfg.lost_quorum == LostQuorumPolicy::Fail)
			for (const auto &e : map.fs)
				if (local.mounted.count(e.name) && !local.busy.count(e.name))
					out.push_back({ActionKind::Unmount, e.name, e.holder, e.epoch});
		return out;
	}
	if (cs.leader() == me)
		for (const auto &u : map.unfenced)
			if (!local.fencing.count(u.node)) {
				const bool holds = std::any_of(map.fs.begin(), map.fs.end(), [&](const FsEntry &e) {
					return e.state == FsState::HolderLost && e.holder == u.node;
				});
				// A holder's fence waits fence_delay_ms (the split
				// rule) unless its disk heartbeat says it is dead.
				const bool dead = holds && cfg.disk_heartbeat_ms > 0 &&
						  local.heartbeat_stale.count(u.node) > 0;
				Action a{ActionKind::Fence, {}, u.node, u.seq,
					 holds && !dead ? cfg.fence_delay_ms : 0};
				a.heartbeat_stale = dead;
				out.push_back(std::move(a));
			}
	for (const auto &e : map.fs) {
		const FileSystem *f = cfg.filesystem(e.name);
		if (!f || local.busy.count(e.name))
			continue;
		const bool mounted = local.mounted.count(e.name) > 0;
		const bool target = local.targets.count(e.name) > 0;
		const bool serving_me = e.state == FsState::Serving && e.holder == me;
		const bool next_me = (e.state == FsState::Fenced || e.state == FsState::Released) &&
				     e.target == me;
		const bool mirror_me = e.state == FsState::Serving && e.holder != me &&
				       (cs.is_member(e.holder) || map.is_absent(e.holder)) &&
				       cfg.other(*f, e.holder) == me;
		Action a{ActionKind::Mount, e.name, e.holder, e.epoch};
		if (next_me) {
			a.kind = ActionKind::TakeOver;
		} else if (mounted && !serving_me) {
			a.kind = ActionKind::Unmount;
		} else if (target && e.state == FsState::Serving && !mirror_me) {
			a.kind = ActionKind::StopTarget;
		} else if (serving_me && !mounted) {
			a.kind = ActionKind::Mount;
		} else if (serving_me && e.giveback && cs.is_member(cfg.other(*f, me))) {
			a.kind = ActionKind::Release;
		} else if (mirror_me && !target && !mounted) {
			a.kind = ActionKind::StartTarget;
		} else {
			continue;
		}
		out.push_back(std::move(a));
	}
	return out;
}

std::vector<Message> expired(const ClusterState &cs, const Config &cfg,
			     const std::vector<std::pair<Unfenced, std::int64_t>> &since,
			     std::span<const NodeId> ring)
{
	std::vector<Message> out;
	if (!cs.synced() || cs.in_round() || cs.leader() != cs.me())
		return out;
	for (const auto &u : cs.map().absent) {
		std::int64_t age = 0;
		for (const auto &[v, ms] : since)
			if (v == u)
				age = ms;
		const bool up = ring.empty() || std::find(ring.begin(), ring.end(), u.node) != ring.end();
		if (up && age < static_cast<std::int64_t>(cfg.daemon_grace_ms))
			continue;
		Message m;
		m.type = MsgType::Expired;
		m.config_digest = cfg.digest();
		m.node = u.node;
		m.seq = u.seq;
		out.push_back(m);
	}
	return out;
}

// ---- Takeover ----------------------------------------------------------

Takeover::Takeover(std::string fs, bool needs_fence)
	: fs_(std::move(fs)), step_(needs_fence ? TakeoverStep::Fence : TakeoverStep::StopTarget)
{
}

TakeoverStep Takeover::advance(bool ok)
{
	switch (step_) {
	case TakeoverStep::Fence:
		if (ok)
			step_ = TakeoverStep::Confirm;
		break;
	case TakeoverStep::Confirm:
		step_ = ok ? TakeoverStep::StopTarget : TakeoverStep::Fence;
		break;
	case TakeoverStep::StopTarget:
		step_ = ok ? TakeoverStep::Mount : TakeoverStep::Failed;
		break;
	case TakeoverStep::Mount:
		step_ = ok ? TakeoverStep::Serve : TakeoverStep::Failed;
		break;
	case TakeoverStep::Serve:
		step_ = ok ? TakeoverStep::Announce : TakeoverStep::Failed;
		break;
	case TakeoverStep::Announce:
		step_ = ok ? TakeoverStep::Done : TakeoverStep::Failed;
		break;
	case TakeoverStep::Done:
	case TakeoverStep::Failed:
		break;
	}
	return step_;
}

} // namespace twinfs::cluster
