// SPDX-License-Identifier: GPL-2.0
// Unit tests of twinfsd's configuration and replicated state
// (userspace/cluster_config.cpp, userspace/cluster.cpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "twinfs_user/cluster.hpp"
#include "twinfs_user/cluster_status.hpp"

#include <nlohmann/json.hpp>

using namespace twinfs::cluster;

namespace {

const char *kConf = R"(
; two HA pairs, three file systems
[cluster]
fence_command = /usr/sbin/twinfs-fence %n
cluster_key = /etc/twinfs/cluster.key
lost_quorum = freeze

[node a]
id = 1
address = 10.0.0.1
[node b]
id = 2
address = 10.0.0.2
[node c]
id = 3
address = 10.0.0.3
[node d]
id = 4
address = 10.0.0.4

[pair ab]
owner = a
partner = b
[pair cd]
owner = c
partner = d

[filesystem home]
pair = ab
device = /dev/vda
mountpoint = /srv/home
nvram = /dev/pmem0
[filesystem data]
pair = cd
label = data
mountpoint = /srv/data
nvram = /dev/pmem1
mirror_port = 7791
owner = d
)";

std::string with(const std::string &extra) { return std::string(kConf) + extra; }

// A member fed the same stream as the others.
struct Member {
	Member(const Config &c, NodeId id) : cs(c, id) {}
	ClusterState cs;
};

// A tiny CPG: a view of members; a multicast is delivered to every member
// of the view in one agreed order (queued until deliver()).
class Bus {
public:
	explicit Bus(const Config &c) : cfg_(c) {}
	// A new process for node id (replaces a dead one).
	Member &add(NodeId id)
	{
		std::erase_if(nodes_, [id](const auto &m) { return m->cs.me() == id; });
		nodes_.push_back(std::make_unique<Member>(cfg_, id));
		return *nodes_.back();
	}
	Member &get(NodeId id)
	{
		for (auto &m : nodes_)
			if (m->cs.me() == id)
				return *m;
		throw std::logic_error("no member");
	}
	// A new view: confchg to each member in it, then each multicasts its
	// State (as twinfsd does), delivered in sender order.
	void view(std::vector<NodeId> members, std::vector<NodeId> left,
		  std::vector<NodeId> joined, bool quorate = true)
	{
		deliver();
		view_ = members;
		for (NodeId n : members)
			get(n).cs.on_confchg(members, left, joined);
		for (NodeId n : members) {
			get(n).cs.set_quorate(quorate);
			send(n, get(n).cs.state_message(quorate));
		}
	}
	void send(NodeId from, Message m)
	{
		// Through the wire format, as on a real cluster.
		Message d = decode(encode(m));
		d.sender = from;
		queue_.push_back(d);
	}
	std::vector<std::string> deliver()
	{
		std::vector<std::string> log;
		for (const auto &m : queue_)
			for (NodeId n : view_) {
				auto s = get(n).cs.on_message(m);
				if (!s.empty())
					log.push_back(std::to_string(n) + ": " + s);
			}
		queue_.clear();
		return log;
	}
	// The multicasts not delivered yet, in agreed order (tests reorder
	// them to model other agreed orders).
	std::vector<Message> &pending() { return queue_; }
	void same_everywhere()
	{
		for (NodeId n : view_) {
			REQUIRE(get(n).cs.synced());
			REQUIRE(get(n).cs.map() == get(view_.front()).cs.map());
			REQUIRE(get(n).cs.leader() == get(view_.front()).cs.leader());
		}
	}

private:
	const Config &cfg_;
	std::vector<std::unique_ptr<Member>> nodes_;
	std::vector<NodeId> view_;
	std::vector<Message> queue_;
};

bool has(const std::vector<Action> &v, ActionKind k, const std::string &fs = {}, NodeId node = 0)
{
	return std::any_of(v.begin(), v.end(), [&](const Action &a) {
		return a.kind == k && (fs.empty() || a.fs == fs) && (node == 0 || a.node == node);
	});
}

} // namespace

TEST_CASE("config: nodes, pairs, file systems", "[cluster]")
{
	const Config c = parse_config(kConf);
	REQUIRE(c.nodes.size() == 4);
	CHECK(c.node(2)->name == "b");
	CHECK(c.node(2)->disk_area == 1);
	CHECK(c.fence_command == "/usr/sbin/twinfs-fence %n");
	CHECK(c.lost_quorum == LostQuorumPolicy::Freeze);
	REQUIRE(c.filesystems.size() == 2);
	const FileSystem *home = c.filesystem("home");
	REQUIRE(home);
	CHECK(home->initial_owner == 1);
	CHECK(home->mirror_port == 7790);
	CHECK(c.other(*home, 1) == 2);
	CHECK(c.other(*home, 2) == 1);
	CHECK(c.other(*home, 3) == 0);
	const FileSystem *data = c.filesystem("data");
	CHECK(data->initial_owner == 4);
	CHECK(data->label == "data");
	CHECK(data->mirror_port == 7791);
	CHECK(c.mirror_after_takeover);	// the default
	CHECK(c.control_socket == "/run/twinfsd/control");
	CHECK(c.digest() == parse_config(kConf).digest());
	CHECK(c.digest() != parse_config(with("[node e]\nid=5\naddress=10.0.0.5\n")).digest());
}

TEST_CASE("config: errors name the section and the problem", "[cluster]")
{
	auto err = [](const std::string &text) {
		try {
			parse_config(text, "t.conf");
		} catch (const ConfigError &e) {
			return std::string(e.what());
		}
		return std::string("no error");
	};
	CHECK(err(with("[node e]\nid=1\naddress=x\n")) ==
	      "t.conf: [node e]: node id 1 is used twice");
	CHECK(err(with("[node e]\nid=5\naddres=x\n")).find("'address' is required") !=
	      std::string::npos);
	CHECK(err(with("[node e]\nid=5\naddress=x\ncolour=red\n")) ==
	      "t.conf: [node e]: unknown key 'colour'");
	CHECK(err(with("[node e]\nid=zero\naddress=x\n")).find("'id' must be a number") !=
	      std::string::npos);
	CHECK(err(with("[pair xy]\nowner=a\npartner=e\n")) ==
	      "t.conf: [pair xy]: partner 'e' is not a [node]");
	CHECK(err(with("[filesystem f]\npair=ab\ndevice=/dev/x\nlabel=y\nmountpoint=/m\nnvram=/dev/p\n"))
		      .find("exactly one of device, uuid or label") != std::string::npos);
	CHECK(err(with("[filesystem f]\npair=ab\ndevice=/dev/x\nmountpoint=/m\nnvram=/dev/p\n"))
		      .find("mirror_port 7790 is used by 'home'") != std::string::npos);
	CHECK(err(with("[filesystem f]\npair=ab\ndevice=/dev/x\nmountpoint=/m\nnvram=/dev/p\nmirror_port=1\nowner=c\n"))
		      .find("owner is not a node of pair 'ab'") != std::string::npos);
	CHECK(err(with("[frobnicator x]\na=b\n")).find("unknown section") != std::string::npos);
	CHECK(err("[node a]\nid=1\naddress=x\n") == "t.conf: no [cluster] section");
	CHECK(err(std::string(kConf) + "[cluster]\nlost_quorum=panic\n").find("appears twice") !=
	      std::string::npos);
	CHECK(err(std::string("[cluster]\nfence_command=f\nlost_quorum=panic\n[node a]\nid=1\naddress=x\n")) ==
	      "t.conf: [cluster]: lost_quorum must be 'freeze' or 'fail', not 'panic'");
	CHECK(err("[cluster]\nfence_command=f\nthis is not ini\n").find("t.conf:3:") == 0);
}

TEST_CASE("messages survive the wire format; malformed ones are refused", "[cluster]")
{
	Message m;
	m.type = MsgType::State;
	m.config_digest = 0x1122334455667788ULL;
	m.synced = true;
	m.quorate = true;
	m.map.seq = 7;
	m.map.fs.push_back({"home", FsState::Fenced, 1, 2, 9, true});
	m.map.unfenced.push_back({3, 4});
	m.map.absent.push_back({1, 5});
	const auto bytes = encode(m);
	const Message d = decode(bytes);
	CHECK(d.type == MsgType::State);
	CHECK(d.config_digest == m.config_digest);
	CHECK(d.synced);
	CHECK(d.quorate);
	CHECK(d.map == m.map);

	Message f;
	f.type = MsgType::Owned;
	f.fs = "data";
	f.epoch = 12;
	const Message g = decode(encode(f));
	CHECK(g.type == MsgType::Owned);
	CHECK(g.fs == "data");
	CHECK(g.epoch == 12);

	Message x;
	x.type = MsgType::Expired;
	x.node = 4;
	x.seq = 17;
	const Message y = decode(encode(x));
	CHECK(y.type == MsgType::Expired);
	CHECK(y.node == 4u);
	CHECK(y.seq == 17u);

	for (std::size_t cut = 0; cut < bytes.size(); cut++)
		CHECK_THROWS(decode(std::span(bytes).first(cut)));
	auto longer = bytes;
	longer.push_back(0);
	CHECK_THROWS_WITH(decode(longer), "message: 1 bytes after the last field");
	auto bad = bytes;
	bad[0] ^= 1;
	CHECK_THROWS_WITH(decode(bad), "message: bad magic (not a twinfsd message)");
	auto badtype = encode(f);
	badtype[6] = 99;
	CHECK_THROWS_WITH(decode(badtype), "message: unknown type 99");
}

TEST_CASE("cluster start: every member builds the same map; the leader is the lowest id", "[cluster]")
{
	const Config c = parse_config(kConf);
	Bus bus(c);
	for (NodeId n : {3, 1, 2, 4})
		bus.add(n);
	bus.view({1, 2, 3}, {}, {1, 2, 3});
	// Before the State messages are delivered nobody acts.
	CHECK_FALSE(bus.get(1).cs.synced());
	CHECK(plan(bus.get(1).cs, c, true, {}).empty());
	bus.deliver();
	bus.same_everywhere();
	CHECK(bus.get(2).cs.leader() == 1u);
	const auto &m = bus.get(3).cs.map();
	CHECK(m.find("home")->state == FsState::Serving);
	CHECK(m.find("home")->holder == 1u);
	// d (4) owns "data" and has not joined: nobody mounts or fences it.
	CHECK(m.find("data")->state == FsState::Waiting);
	CHECK(m.unfenced.empty());
	const auto p1 = plan(bus.get(1).cs, c, true, {});
	CHECK(p1 == std::vector<Action>{{ActionKind::Mount, "home", 1, 0}});
	const auto p2 = plan(bus.get(2).cs, c, true, {});
	CHECK(p2 == std::vector<Action>{{ActionKind::StartTarget, "home", 1, 0}});
	CHECK(plan(bus.get(3).cs, c, true, {}).empty());

	// d joins late: it adopts the map; "data" becomes served by d.
	bus.view({1, 2, 3, 4}, {}, {4});
	auto log = bus.deliver();
	bus.same_everywhere();
	CHECK(std::find(log.begin(), log.end(),
			"4: synchronized: ownership map from node 1") != log.end());
	CHECK(bus.get(1).cs.map().find("data")->state == FsState::Serving);
	CHECK(has(plan(bus.get(4).cs, c, true, {}), ActionKind::Mount, "data"));
	CHECK(has(plan(bus.get(3).cs, c, true, {}), ActionKind::StartTarget, "data"));
}

TEST_CASE("owner leaves: leader fences, partner takes over, announces", "[cluster]")
{
	const Config c = parse_config(kConf);
	Bus bus(c);
	for (NodeId n : {1, 2, 3})
		bus.add(n);
	bus.view({1, 2, 3}, {}, {1, 2, 3});
	bus.deliver();

	SECTION("the leader is the one that leaves")
	{
		bus.view({2, 3}, {1}, {});
		bus.deliver();
		bus.same_everywhere();
		CHECK(bus.get(2).cs.leader() == 2u);
		const FsEntry &e = *bus.get(3).cs.map().find("home");
		CHECK(e.state == FsState::HolderLost);
		CHECK(e.holder == 1u);
		REQUIRE(bus.get(2).cs.map().unfenced.size() == 1);
		const Unfenced u = bus.get(2).cs.map().unfenced[0];
		CHECK(u.node == 1u);

		// Node 2 leads and partners: it fences, nobody mounts yet.
		LocalState l2;
		l2.targets.insert("home");
		auto p = plan(bus.get(2).cs, c, true, l2);
		// Node 1 held a file system: its fence waits fence_delay_ms.
		CHECK(p == std::vector<Action>{{ActionKind::Fence, {}, 1, u.seq, c.fence_delay_ms}});
		CHECK(plan(bus.get(3).cs, c, true, {}).empty());
		// Without quorum nothing happens (freeze).
		CHECK(plan(bus.get(2).cs, c, false, l2).empty());

		// A failed fence changes nothing; the leader tries again.
		Message f;
		f.type = MsgType::Fenced;
		f.config_digest = c.digest();
		f.node = 1;
		f.seq = u.seq;
		f.ok = false;
		bus.send(2, f);
		bus.deliver();
		CHECK(bus.get(3).cs.map().find("home")->state == FsState::HolderLost);
		l2.fencing.insert(1);
		CHECK(plan(bus.get(2).cs, c, true, l2).empty());
		l2.fencing.clear();

		f.ok = true;
		bus.send(2, f);
		bus.deliver();
		bus.same_everywhere();
		const FsEntry &g = *bus.get(3).cs.map().find("home");
		CHECK(g.state == FsState::Fenced);
		CHECK(g.target == 2u);
		CHECK(bus.get(3).cs.map().unfenced.empty());
		p = plan(bus.get(2).cs, c, true, l2);
		REQUIRE(p.size() == 1);
		CHECK(p[0].kind == ActionKind::TakeOver);
		CHECK(p[0].epoch == g.epoch);

		// A duplicate FENCED (same seq) is a no-op.
		bus.send(3, f);
		CHECK(bus.deliver().empty());

		Message o;
		o.type = MsgType::Owned;
		o.config_digest = c.digest();
		o.fs = "home";
		o.epoch = g.epoch;
		bus.send(2, o);
		// A stale announcement by somebody else is ignored.
		Message stale = o;
		bus.send(3, stale);
		bus.deliver();
		bus.same_everywhere();
		const FsEntry &h = *bus.get(3).cs.map().find("home");
		CHECK(h.state == FsState::Serving);
		CHECK(h.holder == 2u);
		l2.targets.clear();
		l2.mounted.insert("home");
		CHECK(plan(bus.get(2).cs, c, true, l2).empty());

		// Node 1 comes back (fenced: a fresh boot): it mirrors for 2.
		bus.add(1);
		bus.view({1, 2, 3}, {}, {1});
		bus.deliver();
		bus.same_everywhere();
		CHECK(plan(bus.get(1).cs, c, true, {}) ==
		      std::vector<Action>{{ActionKind::StartTarget, "home", 2, h.epoch}});

		// Giveback: asked anywhere, 2 releases, 1 mounts.
		Message gb;
		gb.type = MsgType::Giveback;
		gb.config_digest = c.digest();
		gb.fs = "home";
		gb.epoch = h.epoch;
		bus.send(3, gb);
		bus.deliver();
		const FsEntry &k = *bus.get(1).cs.map().find("home");
		CHECK(k.giveback);
		p = plan(bus.get(2).cs, c, true, l2);
		REQUIRE(p.size() == 1);
		CHECK(p[0].kind == ActionKind::Release);
		Message rel;
		rel.type = MsgType::Released;
		rel.config_digest = c.digest();
		rel.fs = "home";
		rel.epoch = p[0].epoch;
		bus.send(2, rel);
		bus.deliver();
		bus.same_everywhere();
		const FsEntry &r = *bus.get(1).cs.map().find("home");
		CHECK(r.state == FsState::Released);
		CHECK(r.target == 1u);
		LocalState l1;
		l1.targets.insert("home");
		p = plan(bus.get(1).cs, c, true, l1);
		REQUIRE(p.size() == 1);
		CHECK(p[0].kind == ActionKind::TakeOver);
		o.epoch = r.epoch;
		bus.send(1, o);
		bus.deliver();
		bus.same_everywhere();
		CHECK(bus.get(3).cs.map().find("home")->holder == 1u);
		CHECK(bus.get(3).cs.map().find("home")->state == FsState::Serving);
	}

	SECTION("the target dies during the takeover: it is fenced too")
	{
		bus.view({2, 3}, {1}, {});
		bus.deliver();
		Message f;
		f.type = MsgType::Fenced;
		f.config_digest = c.digest();
		f.node = 1;
		f.seq = bus.get(2).cs.map().unfenced[0].seq;
		f.ok = true;
		bus.send(2, f);
		bus.deliver();
		bus.view({3}, {2}, {});
		bus.deliver();
		const auto &m = bus.get(3).cs.map();
		CHECK(m.find("home")->state == FsState::HolderLost);
		CHECK(m.find("home")->holder == 2u);
		CHECK(bus.get(3).cs.leader() == 3u);
		CHECK(plan(bus.get(3).cs, c, true, {}) ==
		      std::vector<Action>{{ActionKind::Fence, {}, 2, m.unfenced[0].seq, c.fence_delay_ms}});
	}

	SECTION("lost quorum: fail releases what is mounted, freeze keeps it")
	{
		LocalState l1;
		l1.mounted.insert("home");
		CHECK(plan(bus.get(1).cs, c, false, l1).empty());
		Config failing = c;
		failing.lost_quorum = LostQuorumPolicy::Fail;
		CHECK(plan(bus.get(1).cs, failing, false, l1) ==
		      std::vector<Action>{{ActionKind::Unmount, "home", 1, 0}});
	}
}

TEST_CASE("a member joining while messages are in flight ends with the same map", "[cluster]")
{
	const Config c = parse_config(kConf);
	Bus bus(c);
	for (NodeId n : {1, 2, 3})
		bus.add(n);
	bus.view({1, 2}, {}, {1, 2});
	bus.deliver();
	bus.view({2}, {1}, {});
	bus.deliver();
	const auto seq = bus.get(2).cs.map().unfenced.at(0).seq;
	// 3 joins; 2 sends its State (the map before FENCED), then FENCED;
	// the agreed order is: State of 3, FENCED, State of 2.  3 queues
	// FENCED while unsynced and replays it on the map of 2's State.
	bus.view({2, 3}, {}, {3});
	Message f;
	f.type = MsgType::Fenced;
	f.config_digest = c.digest();
	f.node = 1;
	f.seq = seq;
	f.ok = true;
	bus.send(2, f);
	auto &q = bus.pending();
	REQUIRE(q.size() == 3);
	REQUIRE(q[0].sender == 2);
	q = {q[1], q[2], q[0]};	// S2, S3, F -> S3, F, S2
	REQUIRE(q[0].sender == 3);
	REQUIRE(q[1].type == MsgType::Fenced);
	bus.deliver();
	bus.same_everywhere();
	CHECK(bus.get(3).cs.map().find("home")->state == FsState::Fenced);
	CHECK(bus.get(3).cs.map().unfenced.empty());
}

TEST_CASE("random event streams: every member computes the same map", "[cluster]")
{
	const Config c = parse_config(kConf);
	std::mt19937 rng(Catch::rngSeed());
	for (int round = 0; round < 200; round++) {
		Bus bus(c);
		std::vector<NodeId> view;
		std::vector<NodeId> all{1, 2, 3, 4};
		for (NodeId n : all)
			bus.add(n);
		for (int step = 0; step < 30; step++) {
			const NodeId n = all[rng() % all.size()];
			const bool in = std::find(view.begin(), view.end(), n) != view.end();
			if (rng() % 3 == 0 || view.empty()) {
				auto next = view;
				if (in && view.size() > 1) {
					next.erase(std::find(next.begin(), next.end(), n));
					bus.view(next, {n}, {});
				} else if (!in) {
					// A node that joins is a fresh process.
					bus.add(n);
					next.push_back(n);
					bus.view(next, {}, {n});
				} else {
					continue;
				}
				view = next;
				continue;
			}
			if (!in)
				continue;
			// A member does what its plan says (acting as if it
			// succeeded at once), in random order with the others.
			const auto &cs = bus.get(n).cs;
			for (const auto &a : plan(cs, c, true, {})) {
				Message m;
				m.config_digest = c.digest();
				if (a.kind == ActionKind::Fence) {
					m.type = MsgType::Fenced;
					m.node = a.node;
					m.seq = a.epoch;
					m.ok = rng() % 4 != 0;
				} else if (a.kind == ActionKind::TakeOver) {
					m.type = MsgType::Owned;
					m.fs = a.fs;
					m.epoch = a.epoch;
				} else {
					continue;
				}
				bus.send(n, m);
			}
			if (rng() % 2)
				bus.deliver();
		}
		bus.deliver();
		bus.same_everywhere();
		// Never two nodes entitled to mount one file system.
		for (const auto &e : bus.get(view.front()).cs.map().fs) {
			int mounters = 0;
			for (NodeId n : view) {
				for (const auto &a : plan(bus.get(n).cs, c, true, {}))
					if (a.fs == e.name && (a.kind == ActionKind::Mount ||
							       a.kind == ActionKind::TakeOver))
						mounters++;
			}
			CHECK(mounters <= 1);
		}
	}
}

TEST_CASE("takeover steps: fence, confirm, stop target, mount, serve, announce", "[cluster]")
{
	Takeover t("home");
	CHECK(t.step() == TakeoverStep::Fence);
	CHECK(t.advance(false) == TakeoverStep::Fence);	// fence failed: retried
	CHECK(t.advance(true) == TakeoverStep::Confirm);
	CHECK(t.advance(true) == TakeoverStep::StopTarget);
	CHECK(t.advance(true) == TakeoverStep::Mount);
	CHECK(t.advance(true) == TakeoverStep::Serve);
	CHECK(t.advance(true) == TakeoverStep::Announce);
	CHECK_FALSE(t.finished());
	CHECK(t.advance(true) == TakeoverStep::Done);
	CHECK(t.finished());
	CHECK(t.advance(false) == TakeoverStep::Done);

	Takeover g("home", false);
	CHECK(g.step() == TakeoverStep::StopTarget);
	CHECK(g.advance(true) == TakeoverStep::Mount);
	CHECK(g.advance(false) == TakeoverStep::Failed);
	CHECK(g.finished());
}

TEST_CASE("a partition merge: every member takes the quorate side's map", "[cluster]")
{
	const Config c = parse_config(kConf);
	ClusterState n1(c, 1), n2(c, 2), n3(c, 3);
	auto to = [](std::vector<ClusterState *> members, Message m, NodeId from) {
		m = decode(encode(m));
		m.sender = from;
		for (auto *cs : members)
			cs->on_message(m);
	};
	auto round = [&](std::vector<ClusterState *> members, std::vector<NodeId> ids,
			 std::vector<bool> quorate) {
		std::vector<Message> states;
		for (auto *cs : members) {
			cs->set_quorate(quorate[states.size()]);
			states.push_back(cs->state_message(quorate[states.size()]));
		}
		for (size_t i = 0; i < states.size(); i++)
			to(members, states[i], ids[i]);
	};
	for (auto *cs : {&n1, &n2, &n3})
		cs->on_confchg(std::vector<NodeId>{1, 2, 3}, {}, std::vector<NodeId>{1, 2, 3});
	round({&n1, &n2, &n3}, {1, 2, 3}, {true, true, true});
	REQUIRE(n1.map() == n3.map());

	// The network splits {1} | {2 3}: 2 and 3 are quorate, fence 1 (as
	// far as they know) and 2 takes "home" over; 1 alone is not quorate.
	n1.on_confchg(std::vector<NodeId>{1}, std::vector<NodeId>{2, 3}, {});
	round({&n1}, {1}, {false});
	for (auto *cs : {&n2, &n3})
		cs->on_confchg(std::vector<NodeId>{2, 3}, std::vector<NodeId>{1}, {});
	round({&n2, &n3}, {2, 3}, {true, true});
	Message f;
	f.type = MsgType::Fenced;
	f.node = 1;
	f.seq = n2.map().unfenced.at(0).seq;
	f.ok = true;
	to({&n2, &n3}, f, 2);
	Message o;
	o.type = MsgType::Owned;
	o.fs = "home";
	o.epoch = n2.map().find("home")->epoch;
	to({&n2, &n3}, o, 2);
	REQUIRE(n3.map().find("home")->holder == 2u);
	REQUIRE(n1.map().find("home")->holder == 1u);
	// A plan of the minority does nothing (not quorate).
	CHECK(plan(n1, c, false, {}).empty());

	// The split heals (before the fence hit node 1): one view again.  The
	// State of node 1 comes first in the agreed order, but it was not
	// quorate: all take the map of node 2.
	for (auto *cs : {&n1, &n2, &n3})
		cs->on_confchg(std::vector<NodeId>{1, 2, 3}, {}, {});
	CHECK(n1.in_round());
	CHECK(plan(n2, c, true, {}).empty());	// nothing during a round
	round({&n1, &n2, &n3}, {1, 2, 3}, {false, true, true});
	CHECK_FALSE(n1.in_round());
	CHECK(n1.map() == n2.map());
	CHECK(n3.map() == n2.map());
	CHECK(n1.map().find("home")->holder == 2u);
	// Node 1 still has it mounted: it must let go.
	LocalState l1;
	l1.mounted.insert("home");
	CHECK(plan(n1, c, true, l1) ==
	      std::vector<Action>{{ActionKind::Unmount, "home", 2, n1.map().find("home")->epoch}});
}

TEST_CASE("fence command words: %n %i %a %%", "[cluster]")
{
	Node n;
	n.id = 7;
	n.name = "gamma";
	n.address = "10.1.2.3";
	CHECK(fence_argv("/usr/sbin/fence_xvm  -o off -H %n", n) ==
	      std::vector<std::string>{"/usr/sbin/fence_xvm", "-o", "off", "-H", "gamma"});
	CHECK(fence_argv("f --id=%i --ip %a 100%% %x %", n) ==
	      std::vector<std::string>{"f", "--id=7", "--ip", "10.1.2.3", "100%", "%x", "%"});
	CHECK(fence_argv("   ", n).empty());
}

TEST_CASE("status file: the documented JSON", "[cluster]")
{
	const Config c = parse_config(kConf);
	Bus bus(c);
	for (NodeId n : {1, 2})
		bus.add(n);
	bus.view({1, 2}, {}, {1, 2});
	bus.deliver();
	LocalState local;
	local.mounted.insert("home");
	StatusInput in;
	in.cfg = &c;
	in.cs = &bus.get(1).cs;
	in.local = &local;
	in.quorate = true;
	in.ring_seq = 14;
	in.token_ms = 3000;
	in.module.loaded = true;
	in.module.target = "stopped";
	in.module.mirror["vda"] = "tcp 10.0.0.2:7790 mirrored writes=5 resyncs=1";
	in.last_takeover = TakeoverTimes{"home", 2, 200, 900, 1100, 1150};
	in.time = 1700000000;
	const auto j = nlohmann::json::parse(status_json(in));
	CHECK(j["format"] == 1);
	CHECK(j["node"]["name"] == "a");
	CHECK(j["synced"] == true);
	CHECK(j["quorate"] == true);
	CHECK(j["leader"]["id"] == 1);
	CHECK(j["token_timeout_ms"] == 3000);
	CHECK(j["lost_quorum"] == "freeze");
	REQUIRE(j["members"].size() == 2);
	CHECK(j["members"][1]["name"] == "b");
	REQUIRE(j["filesystems"].size() == 2);
	const auto &f = j["filesystems"][1];	// sorted: data, home
	CHECK(f["name"] == "home");
	CHECK(f["state"] == "serving");
	CHECK(f["holder"]["name"] == "a");
	CHECK(f["target"].is_null());
	CHECK(f["mounted_here"] == true);
	CHECK(f["mirror"] == "tcp 10.0.0.2:7790 mirrored writes=5 resyncs=1");
	CHECK(j["filesystems"][0]["state"] == "waiting");
	CHECK(j["filesystems"][0]["mirror"].is_null());
	CHECK(j["unfenced"].empty());
	CHECK(j["absent"].empty());
	CHECK(j["mirror_target"] == "stopped");
	CHECK(j["last_takeover"]["first_op_ms"] == 1100);
	CHECK(j["last_takeover"]["from"]["name"] == "b");
}

TEST_CASE("a node restarting alone never overrides the running cluster's map", "[cluster]")
{
	const Config c = parse_config(kConf);
	Bus bus(c);
	for (NodeId n : {1, 2})
		bus.add(n);
	bus.view({1, 2}, {}, {1, 2});
	bus.deliver();
	CHECK(bus.get(1).cs.established());
	// 1 dies; 2 fences it and takes "home" over.
	bus.view({2}, {1}, {});
	bus.deliver();
	Message f;
	f.type = MsgType::Fenced;
	f.node = 1;
	f.seq = bus.get(2).cs.map().unfenced.at(0).seq;
	f.ok = true;
	bus.send(2, f);
	bus.deliver();
	Message o;
	o.type = MsgType::Owned;
	o.fs = "home";
	o.epoch = bus.get(2).cs.map().find("home")->epoch;
	bus.send(2, o);
	bus.deliver();
	REQUIRE(bus.get(2).cs.map().find("home")->holder == 2u);

	// 1 boots again, alone first: its map comes from the configuration
	// (home served by 1), not quorate, so not established.
	Member &n1 = bus.add(1);
	n1.cs.on_confchg(std::vector<NodeId>{1}, {}, std::vector<NodeId>{1});
	n1.cs.set_quorate(false);
	Message s1 = decode(encode(n1.cs.state_message(false)));
	s1.sender = 1;
	n1.cs.on_message(s1);
	REQUIRE(n1.cs.synced());
	CHECK_FALSE(n1.cs.established());
	CHECK(n1.cs.map().find("home")->holder == 1u);

	// The merge; quorum reached node 1 before its State went out and its
	// State is first in the agreed order: still the cluster's map wins.
	for (NodeId n : {1, 2})
		bus.get(n).cs.on_confchg(std::vector<NodeId>{1, 2}, {}, std::vector<NodeId>{n == 1 ? 2u : 1u});
	for (NodeId n : {1, 2})
		bus.send(n, bus.get(n).cs.state_message(true));
	// (view_ of the bus is {2}; deliver to both by hand)
	auto q = bus.pending();
	bus.pending().clear();
	for (auto &m : q)
		for (NodeId n : {1, 2})
			bus.get(n).cs.on_message(m);
	CHECK(n1.cs.map() == bus.get(2).cs.map());
	CHECK(n1.cs.map().find("home")->holder == 2u);
	CHECK(n1.cs.map().find("home")->state == FsState::Serving);
	CHECK(plan(n1.cs, c, true, {}) ==
	      std::vector<Action>{{ActionKind::StartTarget, "home", 2, n1.cs.map().find("home")->epoch}});
}

namespace {

// Two nodes of pair ab serving "home" from node 1, node 2 its partner.
struct Pair2 {
	explicit Pair2(const std::string &conf = kConf) : c(parse_config(conf)), bus(c)
	{
		bus.add(1);
		bus.add(2);
		bus.view({1, 2}, {}, {1, 2});
		bus.deliver();
	}
	// A view change with the CPG reasons of the nodes that left.
	void view(std::vector<NodeId> members, std::vector<NodeId> left, std::vector<NodeId> joined,
		  std::vector<NodeId> gone = {}, std::vector<NodeId> clean = {})
	{
		for (NodeId n : members) {
			bus.get(n).cs.on_confchg(members, left, joined, gone, clean);
			bus.get(n).cs.set_quorate(true);
		}
		for (NodeId n : members)
			bus.send(n, bus.get(n).cs.state_message(true));
		// Deliver to the members of the new view only.
		auto q = std::move(bus.pending());
		bus.pending().clear();
		for (const auto &m : q)
			for (NodeId n : members)
				bus.get(n).cs.on_message(m);
	}
	// Two partitions of one node each (two_node: both quorate), each
	// having delivered its own State message.
	void split()
	{
		for (NodeId n : {1u, 2u}) {
			const std::vector<NodeId> me{n}, other{3 - n}, no{};
			bus.get(n).cs.on_confchg(me, other, no);
			Message st = decode(encode(bus.get(n).cs.state_message(true)));
			st.sender = n;
			bus.get(n).cs.on_message(st);
		}
	}
	void deliver_to(std::vector<NodeId> members, Message m, NodeId from)
	{
		m.config_digest = c.digest();
		Message d = decode(encode(m));
		d.sender = from;
		for (NodeId n : members)
			bus.get(n).cs.on_message(d);
	}
	Config c;
	Bus bus;
};

} // namespace

TEST_CASE("twinfsd killed on the holder: absent for daemon_grace_ms, no fence; a restart adopts", "[cluster]")
{
	Pair2 t;
	// Node 1's twinfsd dies (procdown); its node stays in the ring.
	t.view({2}, {1}, {}, {1});
	const auto &m = t.bus.get(2).cs.map();
	CHECK(m.find("home")->state == FsState::Serving);
	CHECK(m.find("home")->holder == 1u);
	CHECK(m.unfenced.empty());
	REQUIRE(m.absent.size() == 1);
	CHECK(m.absent[0].node == 1u);
	// The partner keeps its mirror target, nobody fences.
	LocalState l2;
	l2.targets.insert("home");
	CHECK(plan(t.bus.get(2).cs, t.c, true, l2).empty());
	LocalState none;
	CHECK(plan(t.bus.get(2).cs, t.c, true, none) ==
	      std::vector<Action>{{ActionKind::StartTarget, "home", 1, m.find("home")->epoch}});
	// Within the grace and in the ring: no EXPIRED.
	const std::vector<NodeId> ring{1, 2};
	CHECK(expired(t.bus.get(2).cs, t.c, {{m.absent[0], 500}}, ring).empty());

	SECTION("twinfsd comes back: it adopts the mount, nothing else happens")
	{
		t.bus.add(1);	// a new process, not synchronized
		t.view({1, 2}, {}, {1});
		t.bus.same_everywhere();
		const auto &m1 = t.bus.get(1).cs.map();
		CHECK(m1.absent.empty());
		CHECK(m1.find("home")->state == FsState::Serving);
		CHECK(m1.find("home")->holder == 1u);
		LocalState l1;
		l1.mounted.insert("home");
		CHECK(plan(t.bus.get(1).cs, t.c, true, l1).empty());
		CHECK(plan(t.bus.get(2).cs, t.c, true, l2).empty());
		// Its announcement changes nothing.
		Message o;
		o.type = MsgType::Owned;
		o.fs = "home";
		o.epoch = m1.find("home")->epoch;
		const auto before = m1;
		t.deliver_to({1, 2}, o, 1);
		CHECK(t.bus.get(1).cs.map() == before);
		t.bus.same_everywhere();
	}

	SECTION("the grace expires: EXPIRED makes it lost, fenced (delayed), taken over")
	{
		const auto ex = expired(t.bus.get(2).cs, t.c, {{m.absent[0], t.c.daemon_grace_ms}}, ring);
		REQUIRE(ex.size() == 1);
		CHECK(ex[0].node == 1u);
		t.deliver_to({2}, ex[0], 2);
		const auto &m2 = t.bus.get(2).cs.map();
		CHECK(m2.absent.empty());
		CHECK(m2.find("home")->state == FsState::HolderLost);
		REQUIRE(m2.unfenced.size() == 1);
		CHECK(plan(t.bus.get(2).cs, t.c, true, l2) ==
		      std::vector<Action>{{ActionKind::Fence, {}, 1, m2.unfenced[0].seq, t.c.fence_delay_ms}});
		// A second EXPIRED (replayed) changes nothing.
		const auto snap = m2;
		t.deliver_to({2}, ex[0], 2);
		CHECK(t.bus.get(2).cs.map() == snap);
	}

	SECTION("its node leaves corosync's ring: EXPIRED at once")
	{
		const std::vector<NodeId> ring2{2};
		const auto ex = expired(t.bus.get(2).cs, t.c, {{m.absent[0], 10}}, ring2);
		REQUIRE(ex.size() == 1);
		// Only the leader sends it; a non-synced member nothing.
		CHECK(expired(t.bus.get(1).cs, t.c, {{m.absent[0], 10}}, ring2).empty());
	}

	SECTION("daemon_grace_ms = 0: a procdown is a loss")
	{
		Config c0 = t.c;
		c0.daemon_grace_ms = 0;
		ClusterState a(c0, 1), b(c0, 2);
		const std::vector<NodeId> both{1, 2}, two{2}, one{1}, no{};
		for (auto *s : {&a, &b}) {
			s->on_confchg(both, no, both);
			s->set_quorate(true);
		}
		for (NodeId n : both) {
			Message st = (n == 1 ? a : b).state_message(true);
			st.sender = n;
			a.on_message(st);
			b.on_message(st);
		}
		b.on_confchg(two, one, no, one);
		CHECK(b.map().find("home")->state == FsState::HolderLost);
		CHECK(b.map().absent.empty());
	}
}

TEST_CASE("a lost partner is fenced at once, a holder after fence_delay_ms; a clean stop is not fenced", "[cluster]")
{
	SECTION("the partner's node is lost: the holder fences it, keeps serving")
	{
		Pair2 t;
		t.view({1}, {2}, {});
		const auto &m = t.bus.get(1).cs.map();
		CHECK(m.find("home")->state == FsState::Serving);
		REQUIRE(m.unfenced.size() == 1);
		CHECK(m.unfenced[0].node == 2u);
		LocalState l1;
		l1.mounted.insert("home");
		CHECK(plan(t.bus.get(1).cs, t.c, true, l1) ==
		      std::vector<Action>{{ActionKind::Fence, {}, 2, m.unfenced[0].seq, 0}});
		Message f;
		f.type = MsgType::Fenced;
		f.node = 2;
		f.seq = m.unfenced[0].seq;
		f.ok = true;
		t.deliver_to({1}, f, 1);
		CHECK(t.bus.get(1).cs.map().unfenced.empty());
		CHECK(t.bus.get(1).cs.map().find("home")->state == FsState::Serving);
		CHECK(plan(t.bus.get(1).cs, t.c, true, l1).empty());
	}

	SECTION("the partner stops cleanly: no fence")
	{
		Pair2 t;
		t.view({1}, {2}, {}, {}, {2});
		CHECK(t.bus.get(1).cs.map().unfenced.empty());
	}

	SECTION("a split: each side fences the other, only the holder's fence is not delayed")
	{
		Pair2 t;
		t.split();
		LocalState l1;
		l1.mounted.insert("home");
		LocalState l2;
		l2.targets.insert("home");
		const auto p1 = plan(t.bus.get(1).cs, t.c, true, l1);
		const auto p2 = plan(t.bus.get(2).cs, t.c, true, l2);
		REQUIRE(p1.size() == 1);
		CHECK(p1[0].kind == ActionKind::Fence);
		CHECK(p1[0].node == 2u);
		CHECK(p1[0].delay_ms == 0u);
		REQUIRE(p2.size() >= 1);
		CHECK(p2[0].kind == ActionKind::Fence);
		CHECK(p2[0].node == 1u);
		CHECK(p2[0].delay_ms == t.c.fence_delay_ms);
		CHECK(t.c.fence_delay_ms > 0);
		// The holder never gives up its mount meanwhile.
		CHECK(!has(p1, ActionKind::Unmount));
	}
}

TEST_CASE("config: fence_delay_ms and daemon_grace_ms", "[cluster]")
{
	const Config d = parse_config(kConf);
	CHECK(d.fence_delay_ms == 2000u);
	CHECK(d.daemon_grace_ms == 10000u);
	const Config c = parse_config(std::string(kConf).replace(
		std::string(kConf).find("lost_quorum"), 0, "fence_delay_ms = 0\ndaemon_grace_ms = 2500\n"));
	CHECK(c.fence_delay_ms == 0u);
	CHECK(c.daemon_grace_ms == 2500u);
	CHECK_THROWS(parse_config(std::string(kConf).replace(
		std::string(kConf).find("lost_quorum"), 0, "daemon_grace_ms = x\n")));
}

TEST_CASE("the disk heartbeat: a dead holder's fence skips fence_delay_ms, a live one's waits", "[cluster][heartbeat]")
{
	// Node 1 holds home and is lost; node 2 (the leader now) fences it.
	auto lose_holder = [](Pair2 &t) {
		t.view({2}, {1}, {});
		const auto &m = t.bus.get(2).cs.map();
		REQUIRE(m.find("home")->state == FsState::HolderLost);
		REQUIRE(m.unfenced.size() == 1);
		return m.unfenced[0].seq;
	};
	LocalState l2;
	l2.targets.insert("home");

	SECTION("stale heartbeat: the holder is dead, fenced at once")
	{
		Pair2 t;
		REQUIRE(t.c.disk_heartbeat_ms == 200u);
		const auto seq = lose_holder(t);
		l2.heartbeat_stale.insert(1);
		Action want{ActionKind::Fence, {}, 1, seq, 0};
		want.heartbeat_stale = true;
		CHECK(plan(t.bus.get(2).cs, t.c, true, l2) == std::vector<Action>{want});
	}

	SECTION("fresh heartbeat: the holder may be alive and cut off, the delay stands")
	{
		Pair2 t;
		const auto seq = lose_holder(t);
		CHECK(plan(t.bus.get(2).cs, t.c, true, l2) ==
		      std::vector<Action>{{ActionKind::Fence, {}, 1, seq, t.c.fence_delay_ms}});
		// Another node's stale heartbeat changes nothing for node 1.
		l2.heartbeat_stale.insert(3);
		CHECK(plan(t.bus.get(2).cs, t.c, true, l2) ==
		      std::vector<Action>{{ActionKind::Fence, {}, 1, seq, t.c.fence_delay_ms}});
	}

	SECTION("heartbeat turned off: the delay stands even if a stale set says otherwise")
	{
		std::string off = kConf;
		off.replace(off.find("lost_quorum"), 0, "disk_heartbeat_ms = 0\n");
		Pair2 t(off);
		REQUIRE(t.c.disk_heartbeat_ms == 0u);
		const auto seq = lose_holder(t);
		l2.heartbeat_stale.insert(1);
		CHECK(plan(t.bus.get(2).cs, t.c, true, l2) ==
		      std::vector<Action>{{ActionKind::Fence, {}, 1, seq, t.c.fence_delay_ms}});
	}

	SECTION("a split: the partner's stale-looking heartbeat does not speed up the holder's fence of it")
	{
		// The holder's fence of its partner is never delayed anyway; the
		// partner's fence of a holder whose heartbeat runs keeps the delay.
		Pair2 t;
		t.split();
		LocalState l1;
		l1.mounted.insert("home");
		l1.heartbeat_stale.insert(2);
		const auto p1 = plan(t.bus.get(1).cs, t.c, true, l1);
		REQUIRE(p1.size() == 1);
		CHECK(p1[0].delay_ms == 0u);
		CHECK(!p1[0].heartbeat_stale);	// it held nothing: no delay to skip
		const auto p2 = plan(t.bus.get(2).cs, t.c, true, l2);
		REQUIRE(p2.size() >= 1);
		CHECK(p2[0].node == 1u);
		CHECK(p2[0].delay_ms == t.c.fence_delay_ms);
	}
}

TEST_CASE("config: disk_heartbeat_ms and the heartbeat sectors", "[cluster][heartbeat]")
{
	const auto at = [](const std::string &extra) {
		return std::string(kConf).replace(std::string(kConf).find("lost_quorum"), 0, extra);
	};
	const Config d = parse_config(kConf);
	CHECK(d.disk_heartbeat_ms == 200u);
	CHECK(d.heartbeat_stale_ms() == 1000u);
	CHECK(d.device_path(*d.filesystem("home")) == "/dev/vda");
	CHECK(d.device_path(*d.filesystem("data")) == "/dev/disk/by-label/data");
	const Config slow = parse_config(at("disk_heartbeat_ms = 500\n"));
	CHECK(slow.heartbeat_stale_ms() == 2500u);
	CHECK(parse_config(at("disk_heartbeat_ms = 0\n")).disk_heartbeat_ms == 0u);
	CHECK_THROWS_WITH(parse_config(at("disk_heartbeat_ms = 5\n")),
			  Catch::Contains("at least 10"));
	// Two nodes writing to one disk need a sector each.
	std::string same = kConf;
	same.replace(same.find("address = 10.0.0.2"), 0, "disk_area = 0\n");
	CHECK_THROWS_WITH(parse_config(same), Catch::Contains("both have disk_area 0"));
	CHECK(parse_config(same.replace(same.find("lost_quorum"), 0, "disk_heartbeat_ms = 0\n"))
		      .disk_heartbeat_ms == 0u);
	// Nodes of another pair (another disk) may share a disk_area.
	std::string other = kConf;
	other.replace(other.find("address = 10.0.0.3"), 0, "disk_area = 0\n");
	CHECK_NOTHROW(parse_config(other));
	std::string big = kConf;
	big.replace(big.find("address = 10.0.0.2"), 0, "disk_area = 8\n");
	CHECK_THROWS_WITH(parse_config(big), Catch::Contains("no disk heartbeat sector"));
}
