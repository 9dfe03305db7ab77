// SPDX-License-Identifier: GPL-2.0
// Unit tests of twinfsctl's cluster part and twinfsd's module events:
// the control-socket client (userspace/control_client.cpp) against a
// server thread on a temporary socket, the status table and JSON from
// twinfsd's status (userspace/cluster_view.cpp), the journal lines of the
// module's events (userspace/module_events.cpp), the mirror line
// (userspace/module_control.cpp).
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "twinfs_user/cluster.hpp"
#include "twinfs_user/cluster_config.hpp"
#include "twinfs_user/cluster_status.hpp"
#include "twinfs_user/cluster_view.hpp"
#include "twinfs_user/control_client.hpp"
#include "twinfs_user/fd.hpp"
#include "twinfs_user/module_control.hpp"
#include "twinfs_user/module_events.hpp"

using twinfs::Fd;
using twinfs_test::TempDir;
namespace control = twinfs::control;
namespace view = twinfs::cluster_view;

namespace {

// The example of Documentation/twinfsd.md ("Status file"), with a second
// file system whose holder was lost and the fields twinfsd adds.
const char *kDaemonJson = R"({
  "format": 1,
  "time": 1795591568,
  "node": {"id": 2, "name": "b"},
  "synced": true,
  "quorate": true,
  "leader": {"id": 2, "name": "b"},
  "ring_seq": 20,
  "token_timeout_ms": 3000,
  "lost_quorum": "freeze",
  "members": [{"id": 2, "name": "b"}],
  "filesystems": [
    {"name": "fs0", "state": "serving", "holder": {"id": 2, "name": "b"}, "target": null,
     "partner": {"id": 1, "name": "a"}, "epoch": 4, "giveback": false,
     "device": "/dev/vda", "mountpoint": "/mnt", "mounted_here": true, "target_here": false,
     "mirror": "tcp 10.0.0.1:7790 degraded writes=0 resyncs=0",
     "mirror_state": "degraded", "transport": "tcp"},
    {"name": "home", "state": "holder-lost", "holder": {"id": 1, "name": "a"}, "target": null,
     "partner": {"id": 2, "name": "b"}, "epoch": 7, "giveback": false,
     "device": "/dev/vdb", "mountpoint": "/srv/home", "mounted_here": false, "target_here": true,
     "mirror": null, "mirror_state": null, "transport": null}
  ],
  "unfenced": [{"id": 1, "name": "a"}],
  "mirror_target": "listening port=7790 device=/dev/pmem0 transport=tcp serving=no",
  "last_takeover": {"filesystem": "fs0", "from": {"id": 1, "name": "a"},
                    "fence_ms": 212, "mount_ms": 1590, "first_op_ms": 1840, "total_ms": 1861}
})";

// A control socket served by a thread: each connection gets answer(request).
class FakeDaemon {
public:
	FakeDaemon(const std::string &path, std::function<std::string(const std::string &)> answer,
		   int connections = 1)
		: listen_(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0))
	{
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
		REQUIRE(::bind(listen_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0);
		REQUIRE(::listen(listen_.get(), 4) == 0);
		thread_ = std::thread([this, answer, connections] {
			for (int i = 0; i < connections; i++) {
				Fd c(::accept(listen_.get(), nullptr, nullptr));
				if (c.get() < 0)
					return;
				char buf[512];
				const ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
				if (n <= 0)
					continue;
				const std::string req(buf, static_cast<std::size_t>(n));
				requests.push_back(req);
				const std::string reply = answer(req);
				if (reply == "<hang>") {
					::recv(c.get(), buf, sizeof(buf), 0);	// until the client gives up
					continue;
				}
				if (!reply.empty())
					::send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
			}
		});
	}
	~FakeDaemon() { thread_.join(); }
	FakeDaemon(const FakeDaemon &) = delete;
	FakeDaemon &operator=(const FakeDaemon &) = delete;

	std::vector<std::string> requests;	// read after the thread ended

private:
	Fd listen_;
	std::thread thread_;
};

std::string sock_path(const TempDir &d) { return (d.path() / "control").string(); }

} // namespace

TEST_CASE("control: replies are ok or error", "[control]")
{
	CHECK(control::parse_reply("ok\n{\"format\": 1}\n", "status") == "{\"format\": 1}\n");
	CHECK(control::parse_reply("ok: giveback of fs0 to node 1 asked\n", "giveback fs0") ==
	      "giveback of fs0 to node 1 asked");
	CHECK(control::parse_reply("ok", "x").empty());
	CHECK_THROWS_AS(control::parse_reply("error: no file system 'x'\n", "giveback x"),
			control::DaemonError);
	CHECK_THROWS_WITH(control::parse_reply("error: no file system 'x'\n", "giveback x"),
			  "no file system 'x'");
	CHECK_THROWS_WITH(control::parse_reply("", "status"), "twinfsd's reply to 'status' is empty");
	CHECK_THROWS_WITH(control::parse_reply("hello", "status"),
			  Catch::Contains("malformed (neither ok nor error): 'hello'"));
	CHECK_THROWS_WITH(control::parse_reply("okay", "status"), Catch::Contains("malformed"));
}

TEST_CASE("control: status and giveback over a socket", "[control]")
{
	TempDir d;
	const std::string path = sock_path(d);
	std::string big(100000, 'x');	// more than one page: read in one piece
	{
		FakeDaemon srv(
			path,
			[&](const std::string &req) {
				if (req == "status")
					return "ok\n" + big + "\n";
				if (req == "giveback fs0")
					return std::string("ok: giveback of fs0 to node 1 asked\n");
				return std::string("error: fs9: nothing to give back\n");
			},
			3);
		CHECK(control::request(path, "status") == big + "\n");
		CHECK(control::request(path, "giveback fs0") == "giveback of fs0 to node 1 asked");
		CHECK_THROWS_WITH(control::request(path, "giveback fs9"), "fs9: nothing to give back");
	}
}

TEST_CASE("control: no daemon, a stale socket, not a socket", "[control]")
{
	TempDir d;
	const std::string path = sock_path(d);
	CHECK_THROWS_AS(control::request(path, "status"), control::NotRunning);
	CHECK_THROWS_WITH(control::request(path, "status"),
			  "twinfsd is not running (" + path + ": No such file or directory)");
	{
		// Bound but not listening: what a dead twinfsd leaves.
		Fd s(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
		REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0);
		CHECK_THROWS_AS(control::request(path, "status"), control::NotRunning);
		CHECK_THROWS_WITH(control::request(path, "status"), Catch::Contains("Connection refused"));
	}
	::unlink(path.c_str());
	std::ofstream(path) << "not a socket\n";
	CHECK_THROWS_WITH(control::request(path, "status"), Catch::Contains("is not a socket"));
	CHECK_THROWS_WITH(control::request(std::string(200, 'x'), "status"), Catch::Contains("bad path"));
}

TEST_CASE("control: malformed replies, no reply, a daemon that does not answer", "[control]")
{
	TempDir d;
	const std::string path = sock_path(d);
	{
		FakeDaemon srv(path, [](const std::string &) { return std::string("garbage"); });
		CHECK_THROWS_WITH(control::request(path, "status"),
				  Catch::Contains("twinfsd's reply to 'status' is malformed"));
	}
	::unlink(path.c_str());
	{
		FakeDaemon srv(path, [](const std::string &) { return std::string(); });
		CHECK_THROWS_WITH(control::request(path, "status"),
				  Catch::Contains("closed the connection without answering 'status'"));
	}
	::unlink(path.c_str());
	{
		FakeDaemon srv(path, [](const std::string &) { return std::string("<hang>"); });
		CHECK_THROWS_WITH(control::request(path, "status", 200),
				  Catch::Contains("did not answer 'status' within 200 ms"));
	}
}

TEST_CASE("cluster view: the table names node, quorum, leader, holders and partners", "[control]")
{
	const std::string t = view::format_table(kDaemonJson);
	INFO(t);
	CHECK(t.starts_with("cluster: node b (2), quorate, leader b (2); members b (2); "
			    "corosync token 3000 ms\n"));
	CHECK(t.find("FILE SYSTEM  STATE        HOLDER  PARTNER  TARGET  MIRROR        HERE     "
		     "DEVICE    MOUNTPOINT\n") != std::string::npos);
	CHECK(t.find("\nfs0          serving      b       a        -       degraded/tcp  mounted  "
		     "/dev/vda  /mnt\n") != std::string::npos);
	CHECK(t.find("\nhome         holder-lost  a       b        -       -             target   "
		     "/dev/vdb  /srv/home\n") != std::string::npos);
	CHECK(t.find("mirror target here: listening port=7790 device=/dev/pmem0") != std::string::npos);
	CHECK(t.find("not fenced yet: a (1)\n") != std::string::npos);
	CHECK(t.find("last takeover here: fs0 from a (1): first operation 1840 ms after the membership "
		     "change (fence 212 ms, mount 1590 ms), announced at 1861 ms\n") != std::string::npos);
}

TEST_CASE("cluster view: a node alone, not quorate, nothing known", "[control]")
{
	const std::string t = view::format_table(R"({"format": 1, "node": {"id": 1, "name": "a"},
		"synced": false, "quorate": false, "leader": null, "token_timeout_ms": null,
		"members": [], "filesystems": [{"name": "fs0", "state": "waiting", "holder": null,
		"target": null, "giveback": true, "mirror": null}], "unfenced": [],
		"mirror_target": null, "last_takeover": null})");
	INFO(t);
	CHECK(t.starts_with("cluster: node a (1), NOT quorate, not synchronized yet, leader -; "
			    "members none\n"));
	CHECK(t.find("\nfs0          waiting (giveback)  -       -        -       -       -     -       -")
	      != std::string::npos);
	CHECK(t.find("mirror target here: (module not loaded)\n") != std::string::npos);
	CHECK(t.find("not fenced") == std::string::npos);
	CHECK(t.find("last takeover") == std::string::npos);
	CHECK(view::format_table(R"({"format": 1, "filesystems": []})").find(
		      "no file system configured\n") != std::string::npos);
}

TEST_CASE("cluster view: what is not a twinfsd status is refused", "[control]")
{
	CHECK_THROWS_WITH(view::format_table("{\"format\": 1, "), Catch::Contains("twinfsd's status is not JSON"));
	CHECK_THROWS_WITH(view::format_table(R"({"format": 2, "filesystems": []})"),
			  Catch::Contains("not of format 1"));
	CHECK_THROWS_WITH(view::format_table("[]"), Catch::Contains("not of format 1"));
	CHECK_THROWS_WITH(view::format_table(R"({"format": 1, "filesystems": [3]})"),
			  Catch::Contains("a file system is not an object"));
	CHECK(view::format_unavailable("twinfsd is not running (x: No such file or directory)") ==
	      "cluster: twinfsd is not running (x: No such file or directory)\n");
}

TEST_CASE("cluster view: the JSON document has the module's part and the cluster", "[control]")
{
	const std::string module = "{\"module_loaded\": true, \"source\": \"genetlink\", "
				   "\"node_id\": null, \"filesystems\": []}\n";
	const auto j = nlohmann::json::parse(view::combine_json(module, std::string(kDaemonJson), ""));
	CHECK(j["source"] == "genetlink");
	CHECK(j["filesystems"].empty());
	CHECK(j["cluster"]["leader"]["name"] == "b");
	CHECK(j["cluster"]["filesystems"][0]["holder"]["name"] == "b");
	CHECK(j["cluster"]["filesystems"][0]["partner"]["name"] == "a");
	CHECK_FALSE(j.contains("cluster_error"));
	const std::string text = view::combine_json(module, std::nullopt, "twinfsd is not running (x)");
	// The module's part keeps its shape (scripts grep it).
	CHECK(text.find("\"filesystems\": []") != std::string::npos);
	const auto k = nlohmann::json::parse(text);
	CHECK(k["cluster"].is_null());
	CHECK(k["cluster_error"] == "twinfsd is not running (x)");
	CHECK_THROWS_WITH(view::combine_json(module, std::string("{"), ""),
			  Catch::Contains("twinfsd's status is not JSON"));
	CHECK_THROWS_WITH(view::combine_json("[]", std::nullopt, ""), Catch::Contains("not a JSON object"));
}

TEST_CASE("cluster view: twinfsd's own status file, as twinfsctl shows it", "[control]")
{
	using namespace twinfs::cluster;
	const Config c = parse_config(R"(
[cluster]
fence_command = /bin/true
cluster_key = /etc/twinfs/cluster.key
[node a]
id = 1
address = 10.0.0.1
[node b]
id = 2
address = 10.0.0.2
[pair ab]
owner = a
partner = b
[filesystem fs0]
pair = ab
device = /dev/vda
mountpoint = /mnt
nvram = /dev/pmem0
)");
	ClusterState cs(c, 1);
	const std::vector<NodeId> both{1, 2};
	cs.on_confchg(both, {}, both);
	for (NodeId n : both) {
		Message m = cs.state_message(true);
		m.sender = n;
		cs.on_message(m);
	}
	REQUIRE(cs.synced());
	twinfs::cluster::LocalState local;
	local.mounted.insert("fs0");
	StatusInput in;
	in.cfg = &c;
	in.cs = &cs;
	in.local = &local;
	in.quorate = true;
	in.module.loaded = true;
	in.module.target = "stopped";
	in.module.mirror["vda"] = twinfs::to_string(twinfs::MirrorStatus{"mirrored", "rdma", "10.0.0.2:7790"});
	const std::string js = status_json(in);
	const auto j = nlohmann::json::parse(js);
	CHECK(j["filesystems"][0]["partner"]["name"] == "b");
	CHECK(j["filesystems"][0]["mirror"] == "rdma 10.0.0.2:7790 mirrored");
	CHECK(j["filesystems"][0]["mirror_state"] == "mirrored");
	CHECK(j["filesystems"][0]["transport"] == "rdma");
	const std::string t = view::format_table(js);
	INFO(t);
	CHECK(t.starts_with("cluster: node a (1), quorate, leader a (1); members a (1), b (2)\n"));
	CHECK(t.find("\nfs0          serving  a       b        -       mirrored/rdma  mounted  /dev/vda  /mnt\n")
	      != std::string::npos);
}

TEST_CASE("module: the mirror as one line and back", "[control]")
{
	using twinfs::MirrorStatus;
	CHECK(twinfs::to_string(MirrorStatus{}) == "none");
	CHECK(twinfs::to_string(MirrorStatus{"degraded", "tcp", "10.0.0.1:7790"}) ==
	      "tcp 10.0.0.1:7790 degraded");
	CHECK(twinfs::to_string(MirrorStatus{"degraded", "", "10.0.0.1:7790"}) ==
	      "- 10.0.0.1:7790 degraded");
	// sysfs's line goes on with counters.
	const auto m = twinfs::parse_mirror_line("rdma 10.0.0.2:7790 resyncing writes=5 resyncs=1");
	CHECK(m.transport == "rdma");
	CHECK(m.partner == "10.0.0.2:7790");
	CHECK(m.state == "resyncing");
	CHECK(twinfs::parse_mirror_line("none").state == "none");
	CHECK(twinfs::parse_mirror_line("none").transport.empty());
	CHECK(twinfs::parse_mirror_line("- 10.0.0.1:7790 degraded").transport.empty());
}

TEST_CASE("module events: journal lines and when the status is refreshed", "[control]")
{
	using twinfs::EventLog;
	using twinfs::genl::Event;
	std::vector<std::pair<int, std::string>> lines;
	EventLog log([&](int prio, const std::string &m) { lines.emplace_back(prio, m); },
		     std::chrono::seconds(60));
	const auto t0 = EventLog::Clock::now();
	auto ev = [](const char *name) {
		Event e;
		e.name = name;
		e.device = "vda";
		return e;
	};

	Event m = ev("MOUNTED");
	m.mount_node = 1;
	m.cp_seq = 12;
	m.records_replayed = 37;
	CHECK(log.handle(m, t0));
	REQUIRE(lines.size() == 1);
	CHECK(lines[0] == std::pair<int, std::string>(
				  LOG_NOTICE, "twinfs.ko: vda mounted (node=1, consistency point 12, "
					      "37 records replayed)"));

	Event ms = ev("MIRROR_STATE");
	ms.mirror_state = "degraded";
	ms.transport = "tcp";
	CHECK(log.handle(ms, t0));
	CHECK(lines.back() == std::pair<int, std::string>(LOG_WARNING,
							 "twinfs.ko: vda mirror degraded over tcp"));
	CHECK_FALSE(log.handle(ms, t0));	// the same state again: nothing
	CHECK(lines.size() == 2);
	ms.mirror_state = "mirrored";
	CHECK(log.handle(ms, t0));
	CHECK(lines.back() == std::pair<int, std::string>(
				      LOG_NOTICE, "twinfs.ko: vda mirror mirrored over tcp (was degraded)"));

	// Consistency points: debug, the first at once, then one line a minute.
	Event cp = ev("CP_DONE");
	for (int i = 0; i < 10; i++) {
		cp.cp_seq = 13 + i;
		CHECK_FALSE(log.handle(cp, t0 + std::chrono::seconds(i)));
	}
	CHECK(lines.size() == 4);
	CHECK(lines.back() == std::pair<int, std::string>(LOG_DEBUG, "twinfs.ko: vda consistency point 13"));
	cp.cp_seq = 30;
	log.handle(cp, t0 + std::chrono::seconds(61));
	CHECK(lines.back() == std::pair<int, std::string>(
				      LOG_DEBUG, "twinfs.ko: vda consistency point 30 (10 since the last line)"));
	cp.cp_seq = 31;
	log.handle(cp, t0 + std::chrono::seconds(62));
	CHECK(lines.size() == 5);

	Event er = ev("ERROR");
	er.error = -5;
	er.message = "bad block map in inode 12";
	CHECK_FALSE(log.handle(er, t0));
	CHECK(lines.back() == std::pair<int, std::string>(
				      LOG_ERR, "twinfs.ko: vda: EIO (Input/output error): bad block map in inode 12"));

	CHECK(log.handle(ev("UNMOUNTED"), t0));
	CHECK(lines.back() == std::pair<int, std::string>(
				      LOG_NOTICE, "twinfs.ko: vda unmounted (1 consistency points since the last line)"));
	Event gone;
	gone.name = "FAMILY_REMOVED";
	CHECK(log.handle(gone, t0));
	CHECK(lines.back().first == LOG_WARNING);
	CHECK(lines.back().second.find("unloaded") != std::string::npos);
}
