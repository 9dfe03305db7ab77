// SPDX-License-Identifier: GPL-2.0
// twinfsd's configuration file: see include/twinfs_user/cluster_config.hpp.
#include "twinfs_user/cluster_config.hpp"

#include "include/twinfs/twinfs_format.h"

#include <ini.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace twinfs::cluster {
namespace {

constexpr unsigned kHeartbeatSlots = TWINFS_HEARTBEAT_SLOTS;

// Sections as read, before the cross references are resolved.
struct RawSection {
	std::string kind;	// "cluster", "node", "pair", "filesystem"
	std::string name;	// the word after the kind
	int line = 0;
	std::map<std::string, std::string, std::less<>> keys;
};

struct Reader {
	std::string origin;
	std::vector<RawSection> sections;
	std::string error;
	int lineno = 0;
};

std::string trim(std::string_view s)
{
	const auto b = s.find_first_not_of(" \t");
	if (b == std::string_view::npos)
		return {};
	const auto e = s.find_last_not_of(" \t");
	return std::string(s.substr(b, e - b + 1));
}

// libinih calls this once per key (and once per section with name NULL
// when INI_CALL_HANDLER_ON_NEW_SECTION is set; not relied on here).
int on_key(void *user, const char *section, const char *name, const char *value)
{
	auto *r = static_cast<Reader *>(user);
	const std::string sec = trim(section);
	const auto sp = sec.find_first_of(" \t");
	std::string kind = sp == std::string::npos ? sec : sec.substr(0, sp);
	std::string sname = sp == std::string::npos ? "" : trim(sec.substr(sp));
	if (r->sections.empty() || r->sections.back().kind != kind ||
	    r->sections.back().name != sname) {
		// A section that appears twice is an error, not a merge.
		for (const auto &s : r->sections)
			if (s.kind == kind && s.name == sname) {
				r->error = "section [" + sec + "] appears twice";
				return 0;
			}
		r->sections.push_back(RawSection{kind, sname, 0, {}});
	}
	auto &s = r->sections.back();
	if (!s.keys.emplace(name, value).second) {
		r->error = "[" + sec + "]: key '" + name + "' appears twice";
		return 0;
	}
	return 1;
}

class Resolver {
public:
	Resolver(std::string origin, const RawSection &s) : origin_(std::move(origin)), s_(s) {}

	[[noreturn]] void fail(const std::string &what) const
	{
		std::string sec = s_.kind + (s_.name.empty() ? "" : " " + s_.name);
		throw ConfigError(origin_ + ": [" + sec + "]: " + what);
	}

	std::optional<std::string> opt(std::string_view key)
	{
		auto it = s_.keys.find(key);
		if (it == s_.keys.end())
			return std::nullopt;
		used_.push_back(std::string(key));
		return it->second;
	}

	std::string req(std::string_view key)
	{
		auto v = opt(key);
		if (!v || v->empty())
			fail("'" + std::string(key) + "' is required");
		return *v;
	}

	template <typename T>
	std::optional<T> num(std::string_view key, T lo, T hi)
	{
		auto v = opt(key);
		if (!v)
			return std::nullopt;
		T out{};
		const char *b = v->data(), *e = v->data() + v->size();
		auto [p, ec] = std::from_chars(b, e, out);
		if (ec != std::errc() || p != e || out < lo || out > hi)
			fail("'" + std::string(key) + "' must be a number from " +
			     std::to_string(lo) + " to " + std::to_string(hi) + ", not '" + *v + "'");
		return out;
	}

	// Every key must be known: a typo is an error, not a silent default.
	void finish() const
	{
		for (const auto &[k, v] : s_.keys)
			if (std::find(used_.begin(), used_.end(), k) == used_.end())
				fail("unknown key '" + k + "'");
	}

private:
	std::string origin_;
	const RawSection &s_;
	std::vector<std::string> used_;
};

bool valid_name(std::string_view n)
{
	return !n.empty() && n.size() <= 64 &&
	       std::all_of(n.begin(), n.end(), [](char c) {
		       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
	       });
}

void fnv(std::uint64_t &h, std::string_view s)
{
	for (unsigned char c : s) {
		h ^= c;
		h *= 0x100000001b3ULL;
	}
	h ^= 0xff;	// separator: ("ab","c") and ("a","bc") differ
	h *= 0x100000001b3ULL;
}

} // namespace

std::string_view to_string(LostQuorumPolicy p)
{
	return p == LostQuorumPolicy::Freeze ? "freeze" : "fail";
}

const Node *Config::node(NodeId id) const
{
	for (const auto &n : nodes)
		if (n.id == id)
			return &n;
	return nullptr;
}

const Node *Config::node_by_name(std::string_view name) const
{
	for (const auto &n : nodes)
		if (n.name == name)
			return &n;
	return nullptr;
}

const Pair *Config::pair(std::string_view name) const
{
	for (const auto &p : pairs)
		if (p.name == name)
			return &p;
	return nullptr;
}

const FileSystem *Config::filesystem(std::string_view name) const
{
	for (const auto &f : filesystems)
		if (f.name == name)
			return &f;
	return nullptr;
}

NodeId Config::other(const FileSystem &fs, NodeId n) const
{
	const Pair *p = pair(fs.pair);
	if (!p)
		return 0;
	if (p->owner == n)
		return p->partner;
	if (p->partner == n)
		return p->owner;
	return 0;
}

std::uint64_t Config::digest() const
{
	std::uint64_t h = 0xcbf29ce484222325ULL;
	for (const auto &n : nodes) {
		fnv(h, std::to_string(n.id));
		fnv(h, n.name);
		fnv(h, n.address);
		fnv(h, std::to_string(n.disk_area));
	}
	for (const auto &p : pairs) {
		fnv(h, p.name);
		fnv(h, std::to_string(p.owner));
		fnv(h, std::to_string(p.partner));
	}
	for (const auto &f : filesystems) {
		fnv(h, f.name);
		fnv(h, f.pair);
		fnv(h, std::to_string(f.initial_owner));
		fnv(h, std::to_string(f.mirror_port));
	}
	return h;
}

Config parse_config(std::string_view text, std::string_view origin)
{
	Reader r;
	r.origin = origin;
	const std::string buf(text);
	const int rc = ini_parse_string(buf.c_str(), on_key, &r);
	if (rc < 0)
		throw ConfigError(std::string(origin) + ": cannot parse (out of memory)");
	if (rc > 0)
		throw ConfigError(std::string(origin) + ":" + std::to_string(rc) + ": " +
				  (r.error.empty() ? "syntax error" : r.error));

	Config c;
	bool have_cluster = false;
	std::vector<std::pair<RawSection, std::string>> pair_secs, fs_secs;

	// Pass 1: the cluster section and the nodes.
	for (const auto &s : r.sections) {
		Resolver v(r.origin, s);
		if (s.kind == "cluster") {
			if (!s.name.empty())
				v.fail("the cluster section has no name");
			have_cluster = true;
			c.fence_command = v.req("fence_command");
			c.cluster_key = v.opt("cluster_key").value_or("");
			if (auto t = v.num<unsigned>("fence_timeout_ms", 100, 3600000))
				c.fence_timeout_ms = *t;
			if (auto t = v.num<unsigned>("fence_delay_ms", 0, 600000))
				c.fence_delay_ms = *t;
			if (auto t = v.num<unsigned>("daemon_grace_ms", 0, 3600000))
				c.daemon_grace_ms = *t;
			if (auto t = v.num<unsigned>("disk_heartbeat_ms", 0, 60000)) {
				if (*t > 0 && *t < 10)
					v.fail("disk_heartbeat_ms must be 0 (off) or at least 10");
				c.disk_heartbeat_ms = *t;
			}
			if (auto p = v.opt("lost_quorum")) {
				if (*p == "freeze")
					c.lost_quorum = LostQuorumPolicy::Freeze;
				else if (*p == "fail")
					c.lost_quorum = LostQuorumPolicy::Fail;
				else
					v.fail("lost_quorum must be 'freeze' or 'fail', not '" + *p + "'");
			}
			if (auto f = v.opt("status_file"))
				c.status_file = *f;
			if (auto f = v.opt("control_socket"))
				c.control_socket = *f;
			if (auto m = v.opt("mirror_after_takeover")) {
				if (*m != "yes" && *m != "no")
					v.fail("mirror_after_takeover must be 'yes' or 'no'");
				c.mirror_after_takeover = *m == "yes";
			}
			if (auto g = v.opt("group")) {
				if (g->empty() || g->size() > 127)
					v.fail("group must be 1 to 127 characters");
				c.group = *g;
			}
			v.finish();
		} else if (s.kind == "node") {
			if (!valid_name(s.name))
				v.fail("a node needs a name of letters, digits, '-', '_' or '.': [node NAME]");
			Node n;
			n.name = s.name;
			const auto id = v.num<NodeId>("id", 1, UINT32_MAX - 1);
			if (!id)
				v.fail("'id' is required");
			n.id = *id;
			n.address = v.req("address");
			n.disk_area = v.num<unsigned>("disk_area", 0, 255).value_or(n.id - 1);
			v.finish();
			if (c.node(n.id))
				v.fail("node id " + std::to_string(n.id) + " is used twice");
			c.nodes.push_back(std::move(n));
		} else if (s.kind == "pair" || s.kind == "filesystem") {
			if (!valid_name(s.name))
				v.fail("a " + s.kind + " needs a name: [" + s.kind + " NAME]");
		} else {
			v.fail("unknown section (cluster, node, pair or filesystem)");
		}
	}
	if (!have_cluster)
		throw ConfigError(std::string(origin) + ": no [cluster] section");
	if (c.nodes.empty())
		throw ConfigError(std::string(origin) + ": no [node NAME] section");
	std::sort(c.nodes.begin(), c.nodes.end(),
		  [](const Node &a, const Node &b) { return a.id < b.id; });

	auto node_ref = [&](Resolver &v, const std::string &key) {
		const std::string n = v.req(key);
		const Node *nd = c.node_by_name(n);
		if (!nd)
			v.fail(key + " '" + n + "' is not a [node]");
		return nd->id;
	};

	// Pass 2: pairs, then file systems (which refer to pairs).
	for (const auto &s : r.sections) {
		if (s.kind != "pair")
			continue;
		Resolver v(r.origin, s);
		Pair p;
		p.name = s.name;
		p.owner = node_ref(v, "owner");
		p.partner = node_ref(v, "partner");
		v.finish();
		if (p.owner == p.partner)
			v.fail("owner and partner are the same node");
		for (const auto &q : c.pairs)
			if (q.owner == p.owner || q.owner == p.partner || q.partner == p.owner ||
			    q.partner == p.partner)
				v.fail("a node is in pair '" + q.name + "' already");
		c.pairs.push_back(std::move(p));
	}
	for (const auto &s : r.sections) {
		if (s.kind != "filesystem")
			continue;
		Resolver v(r.origin, s);
		FileSystem f;
		f.name = s.name;
		f.pair = v.req("pair");
		const Pair *p = c.pair(f.pair);
		if (!p)
			v.fail("pair '" + f.pair + "' is not a [pair]");
		f.device = v.opt("device").value_or("");
		f.uuid = v.opt("uuid").value_or("");
		f.label = v.opt("label").value_or("");
		if (f.device.empty() == (f.uuid.empty() && f.label.empty()) ||
		    (!f.uuid.empty() && !f.label.empty()))
			v.fail("exactly one of device, uuid or label is needed");
		f.mountpoint = v.req("mountpoint");
		f.nvram = v.req("nvram");
		f.mirror_port = v.num<std::uint16_t>("mirror_port", 1, 65535).value_or(7790);
		f.mount_options = v.opt("mount_options").value_or("");
		f.initial_owner = v.opt("owner") ? node_ref(v, "owner") : p->owner;
		v.finish();
		if (f.initial_owner != p->owner && f.initial_owner != p->partner)
			v.fail("owner is not a node of pair '" + f.pair + "'");
		if (f.mountpoint.empty() || f.mountpoint[0] != '/')
			v.fail("mountpoint must be an absolute path");
		for (const auto &g : c.filesystems)
			if (g.pair == f.pair && g.mirror_port == f.mirror_port)
				v.fail("mirror_port " + std::to_string(f.mirror_port) +
				       " is used by '" + g.name + "' of the same pair");
		c.filesystems.push_back(std::move(f));
	}
	std::sort(c.filesystems.begin(), c.filesystems.end(),
		  [](const FileSystem &a, const FileSystem &b) { return a.name < b.name; });
	// The disk heartbeat: the nodes that write to one device (those of
	// the pairs of its file systems) each need their own sector, their
	// disk_area, below TWINFS_MAX_NODES.
	if (c.disk_heartbeat_ms > 0)
		for (const auto &f : c.filesystems) {
			std::vector<const Node *> writers;
			for (const auto &g : c.filesystems) {
				if (c.device_path(g) != c.device_path(f))
					continue;
				const Pair *p = c.pair(g.pair);
				for (NodeId id : {p->owner, p->partner})
					if (std::none_of(writers.begin(), writers.end(),
							 [id](const Node *n) { return n->id == id; }))
						writers.push_back(c.node(id));
			}
			for (const Node *n : writers) {
				if (n->disk_area >= kHeartbeatSlots)
					throw ConfigError(std::string(origin) + ": [node " + n->name +
							  "]: disk_area " + std::to_string(n->disk_area) +
							  " has no disk heartbeat sector (0 to " +
							  std::to_string(kHeartbeatSlots - 1) +
							  "); or set disk_heartbeat_ms = 0");
				for (const Node *m : writers)
					if (m != n && m->disk_area == n->disk_area)
						throw ConfigError(std::string(origin) + ": [node " + n->name +
								  "] and [node " + m->name + "] both have disk_area " +
								  std::to_string(n->disk_area) + " on " +
								  c.device_path(f) +
								  ": the disk heartbeat needs a sector each; "
								  "or set disk_heartbeat_ms = 0");
			}
		}
	return c;
}

unsigned Config::heartbeat_stale_ms() const
{
	return std::max(5 * disk_heartbeat_ms, 1000u);
}

std::string Config::device_path(const FileSystem &f) const
{
	if (!f.device.empty())
		return f.device;
	return !f.uuid.empty() ? "/dev/disk/by-uuid/" + f.uuid : "/dev/disk/by-label/" + f.label;
}

std::vector<std::string> fence_argv(const std::string &cmd, const Node &n)
{
	std::vector<std::string> argv;
	std::istringstream in(cmd);
	std::string w;
	while (in >> w) {
		std::string out;
		for (size_t i = 0; i < w.size(); i++) {
			if (w[i] != '%' || i + 1 == w.size()) {
				out += w[i];
				continue;
			}
			switch (w[++i]) {
			case 'n': out += n.name; break;
			case 'i': out += std::to_string(n.id); break;
			case 'a': out += n.address; break;
			case '%': out += '%'; break;
			default: out += '%'; out += w[i]; break;
			}
		}
		argv.push_back(out);
	}
	return argv;
}

Config load_config(const std::string &path)
{
	std::ifstream in(path);
	if (!in)
		throw ConfigError(path + ": " + std::strerror(errno));
	std::ostringstream ss;
	ss << in.rdbuf();
	return parse_config(ss.str(), path);
}

} // namespace twinfs::cluster
