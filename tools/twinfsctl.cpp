// SPDX-License-Identifier: GPL-2.0
// twinfsctl: administration of twinfs.  `status` shows the cluster as
// twinfsd sees it (its control socket, userspace/control_client.cpp) and
// this node's module: over its generic netlink family (userspace/genl.cpp)
// when it is loaded, else /sys/fs/twinfs (or $TWINFS_SYSFS); `giveback`
// asks twinfsd to give a file system back to its owner; `target` drives
// the partner's mirror target, `watch` prints the module's events,
// `set-node` tells the module its node id.
#include <linux/netlink.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "include/twinfs/twinfs_format.h"
#include "include/twinfs/twinfs_genl.h"
#include "twinfs_user/cluster_view.hpp"
#include "twinfs_user/control_client.hpp"
#include "twinfs_user/genl.hpp"
#include "twinfs_user/status.hpp"
#include "twinfs_user/version.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

// A mount named by its device ("vda") or its uuid.
twinfs::genl::Attr mount_attr(std::string_view which)
{
	using namespace twinfs::genl;
	if (const auto uuid = parse_uuid(which))
		return Attr::binary(TWINFS_A_UUID, *uuid);
	return Attr::string(TWINFS_A_DEVICE, which);
}

void usage(std::ostream &os)
{
	os << "usage: twinfsctl [--help] [--version] <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  status [--json] [--genl|--sysfs] [--socket PATH] [--no-cluster]\n"
	      "         [DEVICE|UUID]\n"
	      "                    the cluster as twinfsd sees it (its control socket,\n"
	      "                    default /run/twinfsd/control): node, quorum, leader,\n"
	      "                    members, each file system's state, holder, partner,\n"
	      "                    mirror state and transport; or one line saying why\n"
	      "                    twinfsd cannot be asked.  Then the mounted twinfs\n"
	      "                    file systems of this node, one row each: uuid, node,\n"
	      "                    mirror state and partner, change memory (device,\n"
	      "                    use, last seq, consistency point, records replayed\n"
	      "                    at mount); --json: one JSON document (the module's,\n"
	      "                    with \"cluster\": twinfsd's status or null and\n"
	      "                    \"cluster_error\").  Asks the module over genetlink\n"
	      "                    (root only) when it is loaded, else (or for non-root\n"
	      "                    callers, with a warning) reads /sys/fs/twinfs/<dev>/;\n"
	      "                    --genl / --sysfs: only that way; --no-cluster: the\n"
	      "                    module only\n"
	      "  giveback FS [--socket PATH]\n"
	      "                    ask twinfsd to give FS back to its pair's owner (its\n"
	      "                    holder unmounts it, the owner mounts it)\n"
	      "  target start PORT DEVICE KEYFILE [--transport tcp|rdma]\n"
	      "                    start the mirror target: keep a copy of an owner's\n"
	      "                    change memory on DEVICE, listening on PORT\n"
	      "  target stop       stop it (DEVICE is free for a takeover mount)\n"
	      "  target status [--json]\n"
	      "  set-node N        tell the module this machine's node id\n"
	      "  takeover NODE     stop the mirror target and arm the takeover of node\n"
	      "                    area NODE (refused if the copy is partial); the\n"
	      "                    mount with node=NODE that follows replays the copy\n"
	      "                    and sends TAKEOVER_DONE\n"
	      "  relinquish DEVICE|UUID\n"
	      "                    write a consistency point before an umount (prints\n"
	      "                    its sequence number and the change memory left)\n"
	      "  connect DEVICE|UUID\n"
	      "  disconnect DEVICE|UUID\n"
	      "                    open (now) or close (until connect) the partner\n"
	      "                    link of a mirrored mount\n"
	      "  watch [--json] [--count N] [--timeout SECS]\n"
	      "                    print the module's events (MOUNTED, UNMOUNTED,\n"
	      "                    CP_DONE, MIRROR_STATE, ERROR, TAKEOVER_DONE), one\n"
	      "                    a line, until\n"
	      "                    N events, SECS seconds, or the module is unloaded\n"
	      "  debug send CMD [--dump] [ATTR:KIND=VALUE ...]\n"
	      "                    send a raw request (tests of the module's checks);\n"
	      "                    ATTR a name (PORT) or number, KIND one of u8 u16\n"
	      "                    u32 u64 s32 str bin (hex) strn (VALUE bytes of 'a')\n"
	      "                    or flag (ATTR:flag)\n"
	      "\n"
	      "Every genetlink command needs CAP_NET_ADMIN.  Set TWINFS_SYSFS to read\n"
	      "the status from another directory (implies --sysfs).\n"
	      "\n"
	      "exit status: 0 success, 1 error (including: module not loaded; for\n"
	      "giveback: twinfsd not running or refusing),\n"
	      "2 usage error\n";
}

int usage_error(const std::string &msg)
{
	std::cerr << "twinfsctl: " << msg << "\n"
		  << "Try 'twinfsctl --help'.\n";
	return kExitUsage;
}

void write_out(const std::string &text)
{
	std::cout << text;
	std::cout.flush();
	if (!std::cout)
		throw std::runtime_error("writing to standard output failed");
}

// The module's part of `status`: the text to print and the exit status.
struct ModuleReport {
	std::string out;	// standard output
	std::string err;	// standard error (sysfs warnings, "not loaded")
	int rc = kExitOk;
};

// The status over genetlink; nullopt when the module is not loaded (or,
// unless forced, when the caller may not use genetlink).
std::optional<ModuleReport> status_genl(bool json, bool forced, std::string_view which)
{
	using namespace twinfs::genl;
	try {
		Socket sock;
		if (!sock.family_present()) {
			if (forced)
				sock.family();	// throws: not loaded
			return std::nullopt;
		}
		std::vector<Bytes> replies;
		if (which.empty()) {
			replies = sock.request(TWINFS_CMD_STATUS, {}, true, "status");
		} else {
			const std::vector<Attr> attrs{mount_attr(which)};
			replies = sock.request(TWINFS_CMD_STATUS, attrs, false,
					       "status " + std::string(which));
		}
		std::vector<FsStatus> fss;
		for (const auto &r : replies)
			fss.push_back(parse_status(r));
		return ModuleReport{json ? format_status_json(fss) : format_status_table(fss), {},
				    kExitOk};
	} catch (const Error &e) {
		if (forced || e.error() != EPERM)
			throw;
		std::cerr << "twinfsctl: warning: " << e.what()
			  << "; reading sysfs instead\n";
		return std::nullopt;
	}
}

ModuleReport status_sysfs(bool json, std::string_view which)
{
	ModuleReport r;
	auto snap = twinfs::status::read_snapshot(twinfs::status::sysfs_root());
	for (const auto &w : snap.warnings)
		r.err += "twinfsctl: warning: " + w + "\n";
	if (!which.empty()) {
		std::erase_if(snap.filesystems,
			      [which](const auto &f) { return f.device != which; });
		if (snap.module_loaded && snap.filesystems.empty()) {
			r.err += "twinfsctl: status: no twinfs file system on " + std::string(which) +
				 "\n";
			r.rc = kExitError;
			return r;
		}
	}
	if (json)
		r.out = twinfs::status::format_json(snap);
	else if (snap.module_loaded)
		r.out = twinfs::status::format_table(snap);
	else
		r.err += "twinfsctl: " + twinfs::status::format_table(snap);
	r.rc = snap.module_loaded ? kExitOk : kExitError;
	return r;
}

// twinfsd's status JSON from its control socket, or why there is none.
struct ClusterReport {
	std::optional<std::string> json;
	std::string why;
};

ClusterReport status_cluster(const std::string &socket)
{
	try {
		return {twinfs::control::request(socket, "status"), {}};
	} catch (const std::exception &e) {
		return {std::nullopt, e.what()};
	}
}

int cmd_status(std::span<const std::string_view> args)
{
	bool json = false, genl_only = false, sysfs_only = false, cluster = true;
	std::string socket(twinfs::control::kDefaultSocket);
	std::string_view which;
	for (std::size_t i = 0; i < args.size(); i++) {
		const auto arg = args[i];
		if (arg == "--json")
			json = true;
		else if (arg == "--genl")
			genl_only = true;
		else if (arg == "--sysfs")
			sysfs_only = true;
		else if (arg == "--no-cluster")
			cluster = false;
		else if (arg == "--socket" && i + 1 < args.size())
			socket = args[++i];
		else if (arg.starts_with("--socket="))
			socket = arg.substr(9);
		else if (arg == "-h" || arg == "--help") {
			usage(std::cout);
			return kExitOk;
		} else if (!arg.starts_with("-") && which.empty())
			which = arg;
		else
			return usage_error("status: unknown argument '" + std::string(arg) + "'");
	}
	if (genl_only && sysfs_only)
		return usage_error("status: --genl and --sysfs exclude each other");
	const char *env = std::getenv(std::string(twinfs::status::kSysfsRootEnv).c_str());
	if (env && *env && !genl_only)
		sysfs_only = true;
	std::optional<ModuleReport> mod;
	if (!sysfs_only)
		mod = status_genl(json, genl_only, which);
	if (!mod)
		mod = status_sysfs(json, which);
	std::cerr << mod->err;
	if (!cluster) {
		write_out(mod->out);
		return mod->rc;
	}
	const ClusterReport c = status_cluster(socket);
	if (json) {
		// Without the module (nothing on standard output) the document
		// is still the cluster's.
		const std::string module_json =
			mod->out.empty() ? "{\"module_loaded\": false}" : mod->out;
		write_out(twinfs::cluster_view::combine_json(module_json, c.json, c.why));
		return mod->rc;
	}
	std::string text;
	try {
		text = c.json ? twinfs::cluster_view::format_table(*c.json)
			      : twinfs::cluster_view::format_unavailable(c.why);
	} catch (const std::exception &e) {
		text = twinfs::cluster_view::format_unavailable(e.what());
	}
	write_out(text + (mod->out.empty() ? "" : "\n" + mod->out));
	return mod->rc;
}

int cmd_giveback(std::span<const std::string_view> args)
{
	std::string socket(twinfs::control::kDefaultSocket);
	std::string_view fs;
	for (std::size_t i = 0; i < args.size(); i++) {
		if (args[i] == "--socket" && i + 1 < args.size())
			socket = args[++i];
		else if (args[i].starts_with("--socket="))
			socket = args[i].substr(9);
		else if (!args[i].starts_with("-") && fs.empty())
			fs = args[i];
		else
			return usage_error("giveback: unknown argument '" + std::string(args[i]) + "'");
	}
	if (fs.empty())
		return usage_error("giveback FS [--socket PATH]");
	try {
		const std::string reply =
			twinfs::control::request(socket, "giveback " + std::string(fs));
		write_out((reply.empty() ? "giveback of " + std::string(fs) + " asked" : reply) + "\n");
	} catch (const twinfs::control::DaemonError &e) {
		std::cerr << "twinfsctl: giveback " << fs << ": twinfsd says: " << e.what() << "\n";
		return kExitError;
	} catch (const std::runtime_error &e) {
		std::cerr << "twinfsctl: giveback " << fs << ": " << e.what() << "\n";
		return kExitError;
	}
	return kExitOk;
}

std::optional<unsigned long long> parse_number(std::string_view s,
					       unsigned long long max)
{
	unsigned long long v = 0;
	int base = 10;
	if (s.starts_with("0x")) {
		s.remove_prefix(2);
		base = 16;
	}
	const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
	if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max)
		return std::nullopt;
	return v;
}

int cmd_target(std::span<const std::string_view> args)
{
	using namespace twinfs::genl;
	if (args.empty())
		return usage_error("target: start, stop or status?");
	const auto sub = args.front();
	args = args.subspan(1);
	if (sub == "start") {
		std::vector<std::string_view> pos;
		std::optional<std::string_view> transport;
		for (std::size_t i = 0; i < args.size(); i++) {
			if (args[i] == "--transport" && i + 1 < args.size())
				transport = args[++i];
			else if (args[i].starts_with("--transport="))
				transport = args[i].substr(12);
			else if (args[i].starts_with("-"))
				return usage_error("target start: unknown option '" +
						   std::string(args[i]) + "'");
			else
				pos.push_back(args[i]);
		}
		if (pos.size() != 3)
			return usage_error("target start PORT DEVICE KEYFILE [--transport tcp|rdma]");
		const auto port = parse_number(pos[0], 65535);
		if (!port || !*port)
			return usage_error("target start: bad port '" + std::string(pos[0]) + "'");
		std::vector<Attr> attrs{
			Attr::u16(TWINFS_A_PORT, static_cast<std::uint16_t>(*port)),
			Attr::string(TWINFS_A_TARGET_DEVICE, pos[1]),
			Attr::string(TWINFS_A_KEY_FILE, pos[2]),
		};
		if (transport)
			attrs.push_back(Attr::string(TWINFS_A_TRANSPORT, *transport));
		Socket sock;
		sock.request(TWINFS_CMD_TARGET_START, attrs, false, "target start");
		return kExitOk;
	}
	if (sub == "stop") {
		if (!args.empty())
			return usage_error("target stop takes no argument");
		Socket sock;
		sock.request(TWINFS_CMD_TARGET_STOP, {}, false, "target stop");
		return kExitOk;
	}
	if (sub == "status") {
		bool json = false;
		for (const auto arg : args) {
			if (arg == "--json")
				json = true;
			else
				return usage_error("target status: unknown argument '" +
						   std::string(arg) + "'");
		}
		Socket sock;
		const auto t = parse_target_status(only_reply(
			sock.request(TWINFS_CMD_TARGET_STATUS, {}, false, "target status"),
			"target status"));
		write_out(json ? format_target_json(t) : format_target_text(t));
		return kExitOk;
	}
	return usage_error("target: unknown subcommand '" + std::string(sub) + "'");
}

int cmd_set_node(std::span<const std::string_view> args)
{
	using namespace twinfs::genl;
	if (args.size() != 1)
		return usage_error("set-node N");
	const auto node = parse_number(args.front(), 0xffffffffull);
	if (!node)
		return usage_error("set-node: bad node id '" + std::string(args.front()) + "'");
	Socket sock;
	const Attr a[] = {Attr::u32(TWINFS_A_NODE_ID, static_cast<std::uint32_t>(*node))};
	sock.request(TWINFS_CMD_SET_NODE, a, false, "set-node");
	return kExitOk;
}

int cmd_takeover(std::span<const std::string_view> args)
{
	using namespace twinfs::genl;
	if (args.size() != 1)
		return usage_error("takeover NODE");
	const auto node = parse_number(args.front(), TWINFS_MAX_NODES - 1);
	if (!node)
		return usage_error("takeover: bad node area '" + std::string(args.front()) +
				   "' (0.." + std::to_string(TWINFS_MAX_NODES - 1) + ")");
	Socket sock;
	const Attr a[] = {Attr::u32(TWINFS_A_MOUNT_NODE, static_cast<std::uint32_t>(*node))};
	const TakeoverReply t = parse_takeover(only_reply(
		sock.request(TWINFS_CMD_TAKEOVER, a, false,
			     "takeover of node area " + std::string(args.front())),
		"takeover"));
	std::cout << "takeover of node area " << t.node << " armed";
	if (t.copy_device)
		std::cout << "; mirror target stopped, copy on " << *t.copy_device << " ("
			  << t.copy_writes.value_or(0) << " writes)"
			  << (t.owner_was_connected ? ", its owner was still connected" : "");
	std::cout << "\n";
	return kExitOk;
}

int cmd_relinquish(std::span<const std::string_view> args)
{
	using namespace twinfs::genl;
	if (args.size() != 1)
		return usage_error("relinquish DEVICE|UUID");
	Socket sock;
	const Attr a[] = {mount_attr(args.front())};
	const RelinquishReply rr = parse_relinquish(only_reply(
		sock.request(TWINFS_CMD_RELINQUISH, a, false,
			     "relinquish " + std::string(args.front())),
		"relinquish"));
	std::cout << rr.device << ": consistency point " << rr.cp_seq << " written (last seq "
		  << rr.last_seq << ", change memory used " << rr.cm_used << " bytes)\n";
	return kExitOk;
}

int cmd_link(std::span<const std::string_view> args, bool up)
{
	using namespace twinfs::genl;
	const std::string name = up ? "connect" : "disconnect";
	if (args.size() != 1)
		return usage_error(name + " DEVICE|UUID");
	Socket sock;
	const Attr a[] = {mount_attr(args.front())};
	sock.request(up ? TWINFS_CMD_CONNECT : TWINFS_CMD_DISCONNECT, a, false,
		     name + " " + std::string(args.front()));
	return kExitOk;
}

int cmd_watch(std::span<const std::string_view> args)
{
	using namespace twinfs::genl;
	bool json = false;
	std::optional<unsigned long long> count, timeout;
	for (std::size_t i = 0; i < args.size(); i++) {
		if (args[i] == "--json") {
			json = true;
		} else if (args[i] == "--count" && i + 1 < args.size()) {
			count = parse_number(args[++i], 1ull << 32);
			if (!count)
				return usage_error("watch: bad --count");
		} else if (args[i] == "--timeout" && i + 1 < args.size()) {
			timeout = parse_number(args[++i], 1ull << 20);
			if (!timeout)
				return usage_error("watch: bad --timeout");
		} else {
			return usage_error("watch: unknown argument '" + std::string(args[i]) + "'");
		}
	}
	Socket sock;
	sock.subscribe_events();
	std::cerr << "twinfsctl: watching twinfs events\n";
	const int timeout_ms = timeout ? static_cast<int>(*timeout * 1000) : -1;
	unsigned long long seen = 0;
	while (!count || seen < *count) {
		const auto e = sock.next_event(timeout_ms);
		if (!e)
			break;	// --timeout
		if (e->name == "FAMILY_REMOVED") {
			std::cerr << "twinfsctl: watch: the twinfs module was unloaded\n";
			break;
		}
		write_out(json ? format_event_json(*e) : format_event_text(*e));
		seen++;
	}
	return kExitOk;
}

std::optional<std::uint16_t> attr_type(std::string_view s)
{
	for (std::uint32_t t = 0; t <= TWINFS_A_MAX; t++)
		if (twinfs::genl::attr_name(t) == s)
			return static_cast<std::uint16_t>(t);
	if (const auto v = parse_number(s, 0x3fff))
		return static_cast<std::uint16_t>(*v);
	return std::nullopt;
}

// ATTR:KIND=VALUE, or ATTR:flag.
std::optional<twinfs::genl::Attr> parse_raw_attr(std::string_view spec)
{
	using twinfs::genl::Attr;
	const auto colon = spec.find(':');
	if (colon == std::string_view::npos)
		return std::nullopt;
	const auto type = attr_type(spec.substr(0, colon));
	if (!type)
		return std::nullopt;
	const auto rest = spec.substr(colon + 1);
	if (rest == "flag")
		return Attr::flag(*type);
	const auto eq = rest.find('=');
	if (eq == std::string_view::npos)
		return std::nullopt;
	const auto kind = rest.substr(0, eq);
	const auto value = rest.substr(eq + 1);
	if (kind == "str")
		return Attr::string(*type, value);
	if (kind == "strn") {
		const auto n = parse_number(value, 60000);
		if (!n)
			return std::nullopt;
		return Attr::string(*type, std::string(*n, 'a'));
	}
	if (kind == "bin") {
		twinfs::genl::Bytes b;
		if (value.size() % 2)
			return std::nullopt;
		for (std::size_t i = 0; i < value.size(); i += 2) {
			const auto v = parse_number("0x" + std::string(value.substr(i, 2)), 255);
			if (!v)
				return std::nullopt;
			b.push_back(static_cast<std::uint8_t>(*v));
		}
		return Attr::binary(*type, std::move(b));
	}
	if (kind == "s32") {
		int v = 0;
		const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
		if (ec != std::errc() || p != value.data() + value.size())
			return std::nullopt;
		return Attr::s32(*type, v);
	}
	const auto v = parse_number(value, ~0ull);
	if (!v)
		return std::nullopt;
	if (kind == "u8")
		return Attr::u8(*type, static_cast<std::uint8_t>(*v));
	if (kind == "u16")
		return Attr::u16(*type, static_cast<std::uint16_t>(*v));
	if (kind == "u32")
		return Attr::u32(*type, static_cast<std::uint32_t>(*v));
	if (kind == "u64")
		return Attr::u64(*type, *v);
	return std::nullopt;
}

int cmd_debug(std::span<const std::string_view> args)
{
	using namespace twinfs::genl;
	if (args.size() < 2 || args.front() != "send")
		return usage_error("debug send CMD [--dump] [ATTR:KIND=VALUE ...]");
	std::optional<std::uint8_t> cmd;
	for (std::uint32_t c = 0; c <= 255; c++)
		if (cmd_name(static_cast<std::uint8_t>(c)) == args[1])
			cmd = static_cast<std::uint8_t>(c);
	if (!cmd) {
		const auto v = parse_number(args[1], 255);
		if (!v)
			return usage_error("debug send: unknown command '" + std::string(args[1]) + "'");
		cmd = static_cast<std::uint8_t>(*v);
	}
	bool dump = false;
	std::vector<Attr> attrs;
	for (const auto arg : args.subspan(2)) {
		if (arg == "--dump") {
			dump = true;
			continue;
		}
		const auto a = parse_raw_attr(arg);
		if (!a)
			return usage_error("debug send: bad attribute '" + std::string(arg) + "'");
		attrs.push_back(*a);
	}
	Socket sock;
	const std::uint16_t flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
	const auto replies = sock.request_raw(build_message(sock.family(), *cmd, flags, attrs),
					      "debug send " + cmd_name(*cmd));
	write_out("OK: " + std::to_string(replies.size()) + " replies\n");
	return kExitOk;
}

int run(std::span<const std::string_view> args)
{
	if (args.empty())
		return usage_error("no command given");
	const auto cmd = args.front();
	if (cmd == "-h" || cmd == "--help" || cmd == "help") {
		usage(std::cout);
		return kExitOk;
	}
	if (cmd == "-V" || cmd == "--version") {
		std::cout << "twinfsctl " << twinfs::kVersion << "\n";
		return kExitOk;
	}
	if (cmd == "status")
		return cmd_status(args.subspan(1));
	if (cmd == "giveback")
		return cmd_giveback(args.subspan(1));
	if (cmd == "target")
		return cmd_target(args.subspan(1));
	if (cmd == "set-node")
		return cmd_set_node(args.subspan(1));
	if (cmd == "takeover")
		return cmd_takeover(args.subspan(1));
	if (cmd == "relinquish")
		return cmd_relinquish(args.subspan(1));
	if (cmd == "connect" || cmd == "disconnect")
		return cmd_link(args.subspan(1), cmd == "connect");
	if (cmd == "watch")
		return cmd_watch(args.subspan(1));
	if (cmd == "debug")
		return cmd_debug(args.subspan(1));
	return usage_error("unknown command '" + std::string(cmd) + "'");
}

} // namespace

int main(int argc, char **argv)
{
	try {
		const std::vector<std::string_view> args(argv + 1, argv + argc);
		return run(args);
	} catch (const std::exception &e) {
		std::cerr << "twinfsctl: " << e.what() << "\n";
		return kExitError;
	}
}
