// SPDX-License-Identifier: GPL-2.0
// The generic netlink family "twinfs" over libnl-genl-3 (genl.hpp).
#include "twinfs_user/genl.hpp"

#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <linux/capability.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>

#include "include/twinfs/twinfs_genl.h"
#include "twinfs_user/status.hpp"

namespace twinfs::genl {

namespace {

struct MsgFree {
	void operator()(nl_msg *m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgFree>;

struct SockFree {
	void operator()(nl_sock *s) const { nl_socket_free(s); }
};
using SockPtr = std::unique_ptr<nl_sock, SockFree>;

struct CFree {
	void operator()(unsigned char *p) const { std::free(p); }
};
using BufPtr = std::unique_ptr<unsigned char, CFree>;

using Table = std::array<nlattr *, TWINFS_A_MAX + 1>;

std::string error_text(const std::string &context, int err,
		       const std::string &kernel_msg)
{
	std::string s = context + ": " + std::strerror(err);
	if (!kernel_msg.empty())
		s += " (kernel: " + kernel_msg + ")";
	return s;
}

const nlmsghdr *header(const Bytes &msg, std::size_t min_payload)
{
	if (msg.size() < NLMSG_HDRLEN + min_payload)
		throw Error("netlink message of " + std::to_string(msg.size()) +
				    " bytes",
			    EBADMSG);
	const auto *nlh = reinterpret_cast<const nlmsghdr *>(msg.data());
	if (nlh->nlmsg_len < NLMSG_HDRLEN + min_payload ||
	    nlh->nlmsg_len > msg.size())
		throw Error("netlink message with length " +
				    std::to_string(nlh->nlmsg_len),
			    EBADMSG);
	return nlh;
}

// The attributes of a twinfs message: each at most once and of its type
// (sizes are checked when read).
Table parse_attrs(const Bytes &msg, const char *what)
{
	const nlmsghdr *nlh = header(msg, GENL_HDRLEN);
	Table tb{};
	// libnl's parser takes a non-const header; it does not write to it.
	const int err = genlmsg_parse(const_cast<nlmsghdr *>(nlh), 0, tb.data(),
				      TWINFS_A_MAX, nullptr);
	if (err < 0)
		throw Error(std::string(what) + ": malformed attributes (" +
				    nl_geterror(err) + ")",
			    EBADMSG);
	return tb;
}

std::uint64_t get_uint(const Table &tb, int type, int size, const char *what)
{
	const nlattr *a = tb[type];
	if (nla_len(a) != size)
		throw Error(std::string(what) + ": attribute " + attr_name(type) +
				    " has " + std::to_string(nla_len(a)) +
				    " bytes, not " + std::to_string(size),
			    EBADMSG);
	switch (size) {
	case 1: return nla_get_u8(const_cast<nlattr *>(a));
	case 2: return nla_get_u16(const_cast<nlattr *>(a));
	case 4: return nla_get_u32(const_cast<nlattr *>(a));
	default: return nla_get_u64(const_cast<nlattr *>(a));
	}
}

template <typename T>
std::optional<T> opt_uint(const Table &tb, int type, const char *what)
{
	if (!tb[type])
		return std::nullopt;
	return static_cast<T>(get_uint(tb, type, sizeof(T), what));
}

template <typename T>
T req_uint(const Table &tb, int type, const char *what)
{
	if (!tb[type])
		throw Error(std::string(what) + ": attribute " + attr_name(type) +
				    " missing",
			    EBADMSG);
	return static_cast<T>(get_uint(tb, type, sizeof(T), what));
}

std::optional<std::string> opt_string(const Table &tb, int type,
				      const char *what)
{
	const nlattr *a = tb[type];
	if (!a)
		return std::nullopt;
	const int len = nla_len(a);
	const auto *p = static_cast<const char *>(nla_data(a));
	if (len < 1 || p[len - 1] != '\0')
		throw Error(std::string(what) + ": attribute " + attr_name(type) +
				    " is not a NUL-terminated string",
			    EBADMSG);
	return std::string(p, std::strlen(p));
}

std::string req_string(const Table &tb, int type, const char *what)
{
	auto s = opt_string(tb, type, what);
	if (!s)
		throw Error(std::string(what) + ": attribute " + attr_name(type) +
				    " missing",
			    EBADMSG);
	return *s;
}

std::optional<std::string> opt_uuid(const Table &tb, const char *what)
{
	const nlattr *a = tb[TWINFS_A_UUID];
	if (!a)
		return std::nullopt;
	if (nla_len(a) != TWINFS_GENL_UUID_LEN)
		throw Error(std::string(what) + ": attribute UUID has " +
				    std::to_string(nla_len(a)) + " bytes, not 16",
			    EBADMSG);
	return uuid_string({static_cast<const std::uint8_t *>(nla_data(a)),
			    TWINFS_GENL_UUID_LEN});
}

bool flag(const Table &tb, int type, const char *what)
{
	if (!tb[type])
		return false;
	if (nla_len(tb[type]) != 0)
		throw Error(std::string(what) + ": flag " + attr_name(type) +
				    " has a payload",
			    EBADMSG);
	return true;
}

// Whether this process has CAP_NET_ADMIN in its effective set.
bool has_net_admin()
{
	__user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
	std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
	if (syscall(SYS_capget, &hdr, data.data()) < 0)
		return true;	// let the kernel decide
	return data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32));
}

using status::json_quote;

std::string json_opt(const std::optional<std::string> &s)
{
	return s ? json_quote(*s) : "null";
}

template <typename T>
std::string json_opt(const std::optional<T> &v)
{
	return v ? std::to_string(*v) : "null";
}

} // namespace

Error::Error(const std::string &context, int err, std::string kernel_msg)
	: std::runtime_error(error_text(context, err, kernel_msg)), err_(err),
	  kernel_msg_(std::move(kernel_msg))
{
}

// ---- attributes and messages ----

Attr Attr::flag(std::uint16_t type) { return {type, Kind::Flag, 0, {}, {}}; }
Attr Attr::u8(std::uint16_t type, std::uint8_t v) { return {type, Kind::U8, v, {}, {}}; }
Attr Attr::u16(std::uint16_t type, std::uint16_t v) { return {type, Kind::U16, v, {}, {}}; }
Attr Attr::u32(std::uint16_t type, std::uint32_t v) { return {type, Kind::U32, v, {}, {}}; }
Attr Attr::u64(std::uint16_t type, std::uint64_t v) { return {type, Kind::U64, v, {}, {}}; }
Attr Attr::s32(std::uint16_t type, std::int32_t v)
{
	return {type, Kind::S32, static_cast<std::uint32_t>(v), {}, {}};
}
Attr Attr::string(std::uint16_t type, std::string_view v)
{
	return {type, Kind::String, 0, std::string(v), {}};
}
Attr Attr::binary(std::uint16_t type, Bytes v)
{
	return {type, Kind::Binary, 0, {}, std::move(v)};
}

Bytes build_message(std::uint16_t family, std::uint8_t cmd,
		    std::uint16_t flags, std::span<const Attr> attrs,
		    std::uint32_t seq)
{
	MsgPtr msg(nlmsg_alloc_size(256 * 1024));
	if (!msg)
		throw Error("allocating a netlink message", ENOMEM);
	if (!genlmsg_put(msg.get(), NL_AUTO_PORT, seq, family, 0, flags, cmd,
			 TWINFS_GENL_VERSION))
		throw Error("building a netlink message header", EMSGSIZE);
	nl_msg *m = msg.get();
	for (const auto &a : attrs) {
		int err = 0;
		switch (a.kind) {
		case Attr::Kind::Flag: err = nla_put_flag(m, a.type); break;
		case Attr::Kind::U8: err = nla_put_u8(m, a.type, static_cast<std::uint8_t>(a.num)); break;
		case Attr::Kind::U16: err = nla_put_u16(m, a.type, static_cast<std::uint16_t>(a.num)); break;
		case Attr::Kind::U32: err = nla_put_u32(m, a.type, static_cast<std::uint32_t>(a.num)); break;
		case Attr::Kind::U64: err = nla_put_u64(m, a.type, a.num); break;
		case Attr::Kind::S32: err = nla_put_s32(m, a.type, static_cast<std::int32_t>(a.num)); break;
		case Attr::Kind::String: err = nla_put_string(m, a.type, a.str.c_str()); break;
		case Attr::Kind::Binary:
			err = nla_put(m, a.type, static_cast<int>(a.bin.size()), a.bin.data());
			break;
		}
		if (err < 0)
			throw Error("adding attribute " + attr_name(a.type) +
					    " to a netlink message (" +
					    nl_geterror(err) + ")",
				    EMSGSIZE);
	}
	const nlmsghdr *nlh = nlmsg_hdr(m);
	const auto *p = reinterpret_cast<const std::uint8_t *>(nlh);
	return Bytes(p, p + nlh->nlmsg_len);
}

std::uint8_t message_cmd(const Bytes &msg)
{
	const nlmsghdr *nlh = header(msg, GENL_HDRLEN);
	return static_cast<const genlmsghdr *>(NLMSG_DATA(nlh))->cmd;
}

KernelError parse_error(const Bytes &msg)
{
	const nlmsghdr *nlh = header(msg, 0);
	KernelError ke;
	const std::uint8_t *tlv = nullptr;
	std::size_t tlv_len = 0;
	if (nlh->nlmsg_type == NLMSG_ERROR) {
		header(msg, sizeof(nlmsgerr));
		const auto *e = static_cast<const nlmsgerr *>(NLMSG_DATA(nlh));
		ke.error = -e->error;
		std::size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
			off += e->msg.nlmsg_len >= NLMSG_HDRLEN ?
				       NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN) : 0;
		if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) && off < nlh->nlmsg_len) {
			tlv = msg.data() + off;
			tlv_len = nlh->nlmsg_len - off;
		}
	} else if (nlh->nlmsg_type == NLMSG_DONE) {
		header(msg, sizeof(int));
		int err;
		std::memcpy(&err, NLMSG_DATA(nlh), sizeof(err));
		ke.error = -err;
		const std::size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(int));
		if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) && off < nlh->nlmsg_len) {
			tlv = msg.data() + off;
			tlv_len = nlh->nlmsg_len - off;
		}
	} else {
		throw Error("netlink message of type " +
				    std::to_string(nlh->nlmsg_type) +
				    " is not an error",
			    EBADMSG);
	}
	if (!tlv)
		return ke;
	std::array<nlattr *, NLMSGERR_ATTR_MAX + 1> tb{};
	if (nla_parse(tb.data(), NLMSGERR_ATTR_MAX,
		      reinterpret_cast<nlattr *>(const_cast<std::uint8_t *>(tlv)),
		      static_cast<int>(tlv_len), nullptr) < 0)
		return ke;
	if (const nlattr *a = tb[NLMSGERR_ATTR_MSG]; a && nla_len(a) > 0) {
		const auto *p = static_cast<const char *>(nla_data(a));
		ke.message.assign(p, strnlen(p, static_cast<std::size_t>(nla_len(a))));
	}
	if (const nlattr *a = tb[NLMSGERR_ATTR_MISS_TYPE]; a && nla_len(a) == 4)
		ke.missing = nla_get_u32(const_cast<nlattr *>(a));
	if (const nlattr *a = tb[NLMSGERR_ATTR_OFFS]; a && nla_len(a) == 4)
		ke.offset = nla_get_u32(const_cast<nlattr *>(a));
	return ke;
}

std::string attr_name(std::uint32_t type)
{
	static constexpr std::array<const char *, TWINFS_A_MAX + 1> names{
		"UNSPEC", "PAD", "DEVICE", "UUID", "NODE_ID", "MOUNT_NODE",
		"PARTNER", "MIRROR_STATE", "TRANSPORT", "CM_DEVICE", "CM_USED",
		"CM_SIZE", "LAST_SEQ", "CP_SEQ", "CP_COUNT", "RECORDS_REPLAYED",
		"READ_ONLY", "PORT", "TARGET_DEVICE", "KEY_FILE", "TARGET_STATE",
		"TARGET_SIZE", "TARGET_SERVING", "TARGET_WRITES",
		"TARGET_CONNECTIONS", "TARGET_REFUSED", "ERRNO", "MESSAGE",
		"TAKEOVER_MS", "MIRROR_WRITES", "MIRROR_RESYNCS",
		"MIRROR_TAIL_RESYNCS",
	};
	if (type < names.size())
		return names[type];
	return "#" + std::to_string(type);
}

std::string cmd_name(std::uint8_t cmd)
{
	static constexpr std::array<const char *, TWINFS_CMD_MAX + 1> names{
		"UNSPEC", "STATUS", "TARGET_START", "TARGET_STOP",
		"TARGET_STATUS", "SET_NODE", "MOUNTED", "UNMOUNTED", "CP_DONE",
		"MIRROR_STATE", "ERROR", "TAKEOVER", "RELINQUISH", "CONNECT",
		"DISCONNECT", "TAKEOVER_DONE",
	};
	if (cmd < names.size())
		return names[cmd];
	return "#" + std::to_string(cmd);
}

FsStatus parse_status(const Bytes &msg)
{
	const char *what = "STATUS reply";
	const Table tb = parse_attrs(msg, what);
	FsStatus s;
	s.device = req_string(tb, TWINFS_A_DEVICE, what);
	auto uuid = opt_uuid(tb, what);
	if (!uuid)
		throw Error(std::string(what) + ": attribute UUID missing", EBADMSG);
	s.uuid = *uuid;
	s.node_id = opt_uint<std::uint32_t>(tb, TWINFS_A_NODE_ID, what);
	s.mount_node = req_uint<std::uint32_t>(tb, TWINFS_A_MOUNT_NODE, what);
	s.partner = opt_string(tb, TWINFS_A_PARTNER, what);
	s.mirror_state = opt_string(tb, TWINFS_A_MIRROR_STATE, what).value_or("none");
	s.transport = opt_string(tb, TWINFS_A_TRANSPORT, what);
	s.mirror_writes = opt_uint<std::uint64_t>(tb, TWINFS_A_MIRROR_WRITES, what);
	s.mirror_resyncs = opt_uint<std::uint64_t>(tb, TWINFS_A_MIRROR_RESYNCS, what);
	s.mirror_tail_resyncs = opt_uint<std::uint64_t>(tb, TWINFS_A_MIRROR_TAIL_RESYNCS, what);
	s.cm_device = opt_string(tb, TWINFS_A_CM_DEVICE, what).value_or("");
	s.cm_used = opt_uint<std::uint64_t>(tb, TWINFS_A_CM_USED, what).value_or(0);
	s.cm_size = opt_uint<std::uint64_t>(tb, TWINFS_A_CM_SIZE, what).value_or(0);
	s.last_seq = opt_uint<std::uint64_t>(tb, TWINFS_A_LAST_SEQ, what).value_or(0);
	s.cp_seq = opt_uint<std::uint64_t>(tb, TWINFS_A_CP_SEQ, what).value_or(0);
	s.cp_count = opt_uint<std::uint64_t>(tb, TWINFS_A_CP_COUNT, what).value_or(0);
	s.records_replayed =
		opt_uint<std::uint64_t>(tb, TWINFS_A_RECORDS_REPLAYED, what).value_or(0);
	s.read_only = flag(tb, TWINFS_A_READ_ONLY, what);
	return s;
}

TargetStatus parse_target_status(const Bytes &msg)
{
	const char *what = "TARGET_STATUS reply";
	const Table tb = parse_attrs(msg, what);
	TargetStatus t;
	t.state = req_string(tb, TWINFS_A_TARGET_STATE, what);
	t.port = opt_uint<std::uint16_t>(tb, TWINFS_A_PORT, what);
	t.device = opt_string(tb, TWINFS_A_TARGET_DEVICE, what);
	t.transport = opt_string(tb, TWINFS_A_TRANSPORT, what);
	t.size = opt_uint<std::uint64_t>(tb, TWINFS_A_TARGET_SIZE, what);
	t.serving = flag(tb, TWINFS_A_TARGET_SERVING, what);
	t.writes = opt_uint<std::uint64_t>(tb, TWINFS_A_TARGET_WRITES, what);
	t.connections = opt_uint<std::uint64_t>(tb, TWINFS_A_TARGET_CONNECTIONS, what);
	t.refused = opt_uint<std::uint64_t>(tb, TWINFS_A_TARGET_REFUSED, what);
	return t;
}

const Bytes &only_reply(const std::vector<Bytes> &replies, std::string_view what)
{
	if (replies.size() != 1)
		throw Error(std::string(what) + ": " + std::to_string(replies.size()) +
				    " replies, not 1",
			    EBADMSG);
	return replies.front();
}

TakeoverReply parse_takeover(const Bytes &msg)
{
	const char *what = "TAKEOVER reply";
	const Table tb = parse_attrs(msg, what);
	TakeoverReply t;
	t.node = req_uint<std::uint32_t>(tb, TWINFS_A_MOUNT_NODE, what);
	t.copy_device = opt_string(tb, TWINFS_A_TARGET_DEVICE, what);
	t.copy_writes = opt_uint<std::uint64_t>(tb, TWINFS_A_TARGET_WRITES, what);
	t.owner_was_connected = flag(tb, TWINFS_A_TARGET_SERVING, what);
	return t;
}

RelinquishReply parse_relinquish(const Bytes &msg)
{
	const char *what = "RELINQUISH reply";
	const Table tb = parse_attrs(msg, what);
	RelinquishReply r;
	r.device = req_string(tb, TWINFS_A_DEVICE, what);
	r.cp_seq = req_uint<std::uint64_t>(tb, TWINFS_A_CP_SEQ, what);
	r.last_seq = req_uint<std::uint64_t>(tb, TWINFS_A_LAST_SEQ, what);
	r.cm_used = req_uint<std::uint64_t>(tb, TWINFS_A_CM_USED, what);
	return r;
}

static bool is_event(std::uint8_t cmd)
{
	return (cmd >= TWINFS_CMD_EVENT_MOUNTED && cmd <= TWINFS_CMD_EVENT_ERROR) ||
	       cmd == TWINFS_CMD_EVENT_TAKEOVER_DONE;
}

Event parse_event(const Bytes &msg)
{
	const std::uint8_t cmd = message_cmd(msg);
	if (!is_event(cmd))
		throw Error("event with command " + cmd_name(cmd), EBADMSG);
	const char *what = "event";
	const Table tb = parse_attrs(msg, what);
	Event e;
	e.name = cmd_name(cmd);
	e.device = opt_string(tb, TWINFS_A_DEVICE, what);
	e.uuid = opt_uuid(tb, what);
	e.mount_node = opt_uint<std::uint32_t>(tb, TWINFS_A_MOUNT_NODE, what);
	e.cp_seq = opt_uint<std::uint64_t>(tb, TWINFS_A_CP_SEQ, what);
	e.records_replayed = opt_uint<std::uint64_t>(tb, TWINFS_A_RECORDS_REPLAYED, what);
	e.mirror_state = opt_string(tb, TWINFS_A_MIRROR_STATE, what);
	e.transport = opt_string(tb, TWINFS_A_TRANSPORT, what);
	e.message = opt_string(tb, TWINFS_A_MESSAGE, what);
	if (auto v = opt_uint<std::uint32_t>(tb, TWINFS_A_ERRNO, what))
		e.error = static_cast<std::int32_t>(*v);
	e.takeover_ms = opt_uint<std::uint32_t>(tb, TWINFS_A_TAKEOVER_MS, what);
	return e;
}

std::string uuid_string(std::span<const std::uint8_t> b)
{
	std::string s;
	for (std::size_t i = 0; i < b.size(); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			s += '-';
		std::array<char, 3> hex;
		std::snprintf(hex.data(), hex.size(), "%02x", b[i]);
		s += hex.data();
	}
	return s;
}

std::optional<Bytes> parse_uuid(std::string_view s)
{
	Bytes out;
	int hi = -1;
	for (const char c : s) {
		if (c == '-')
			continue;
		int v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return std::nullopt;
		if (hi < 0) {
			hi = v;
		} else {
			out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
			hi = -1;
		}
	}
	if (hi >= 0 || out.size() != TWINFS_GENL_UUID_LEN)
		return std::nullopt;
	return out;
}

// ---- rendering ----

std::string format_status_json(const std::vector<FsStatus> &fss)
{
	std::optional<std::uint32_t> node;
	for (const auto &f : fss)
		if (f.node_id)
			node = f.node_id;
	std::string out = "{\n  \"module_loaded\": true,\n  \"source\": \"genetlink\",\n";
	out += "  \"node_id\": " + json_opt(node) + ",\n";
	out += "  \"filesystems\": [";
	bool first = true;
	for (const auto &f : fss) {
		out += first ? "\n" : ",\n";
		first = false;
		out += "    {\n";
		out += "      \"device\": " + json_quote(f.device) + ",\n";
		out += "      \"uuid\": " + json_quote(f.uuid) + ",\n";
		out += "      \"mount_node\": " + std::to_string(f.mount_node) + ",\n";
		out += "      \"read_only\": " + std::string(f.read_only ? "true" : "false") + ",\n";
		out += "      \"partner\": " + json_opt(f.partner) + ",\n";
		out += "      \"mirror\": {\"state\": " + json_quote(f.mirror_state) +
		       ", \"transport\": " + json_opt(f.transport);
		if (f.mirror_writes)
			out += ", \"writes\": " + std::to_string(*f.mirror_writes) +
			       ", \"resyncs\": " + json_opt(f.mirror_resyncs) +
			       ", \"tail_resyncs\": " + json_opt(f.mirror_tail_resyncs);
		out += "},\n";
		out += "      \"change_memory\": {\n";
		out += "        \"cm_device\": " + json_quote(f.cm_device) + ",\n";
		out += "        \"cm_size\": " + std::to_string(f.cm_size) + ",\n";
		out += "        \"cm_used\": " + std::to_string(f.cm_used) + ",\n";
		out += "        \"last_seq\": " + std::to_string(f.last_seq) + ",\n";
		out += "        \"cp_seq\": " + std::to_string(f.cp_seq) + ",\n";
		out += "        \"cp_count\": " + std::to_string(f.cp_count) + ",\n";
		out += "        \"records_replayed\": " + std::to_string(f.records_replayed) + "\n";
		out += "      }\n    }";
	}
	out += first ? "]\n}\n" : "\n  ]\n}\n";
	return out;
}

std::string format_status_table(const std::vector<FsStatus> &fss)
{
	if (fss.empty())
		return "no twinfs file system mounted\n";
	const std::vector<std::string> head{
		"DEVICE", "UUID", "NODE", "MIRROR", "PARTNER", "CHANGE MEMORY",
		"USED", "LAST SEQ", "CP SEQ", "REPLAYED",
	};
	std::vector<std::vector<std::string>> rows{head};
	for (const auto &f : fss) {
		std::string mirror = f.mirror_state;
		if (f.transport)
			mirror += "/" + *f.transport;
		rows.push_back({
			f.device + (f.read_only ? " (ro)" : ""), f.uuid,
			std::to_string(f.mount_node), mirror,
			f.partner.value_or("-"), f.cm_device,
			status::human_bytes(f.cm_used) + "/" +
				status::human_bytes(f.cm_size),
			std::to_string(f.last_seq), std::to_string(f.cp_seq),
			std::to_string(f.records_replayed),
		});
	}
	std::string out = status::format_columns(rows);
	if (fss.front().node_id)
		out += "node id: " + std::to_string(*fss.front().node_id) + "\n";
	return out;
}

std::string format_target_json(const TargetStatus &t)
{
	return "{\"state\": " + json_quote(t.state) +
	       ", \"port\": " + json_opt(t.port) +
	       ", \"device\": " + json_opt(t.device) +
	       ", \"transport\": " + json_opt(t.transport) +
	       ", \"size\": " + json_opt(t.size) +
	       ", \"serving\": " + (t.serving ? "true" : "false") +
	       ", \"writes\": " + json_opt(t.writes) +
	       ", \"connections\": " + json_opt(t.connections) +
	       ", \"refused\": " + json_opt(t.refused) + "}\n";
}

std::string format_target_text(const TargetStatus &t)
{
	if (t.state != "listening")
		return t.state + "\n";
	std::string out = t.state;
	if (t.port)
		out += " port=" + std::to_string(*t.port);
	if (t.device)
		out += " device=" + *t.device;
	if (t.transport)
		out += " transport=" + *t.transport;
	if (t.size)
		out += " size=" + std::to_string(*t.size);
	out += std::string(" serving=") + (t.serving ? "yes" : "no");
	if (t.writes)
		out += " writes=" + std::to_string(*t.writes);
	if (t.connections)
		out += " connections=" + std::to_string(*t.connections);
	if (t.refused)
		out += " refused=" + std::to_string(*t.refused);
	return out + "\n";
}

std::string format_event_json(const Event &e)
{
	std::string out = "{\"event\": " + json_quote(e.name);
	auto add = [&out](const char *k, const std::string &v) {
		out += std::string(", \"") + k + "\": " + v;
	};
	if (e.device)
		add("device", json_quote(*e.device));
	if (e.uuid)
		add("uuid", json_quote(*e.uuid));
	if (e.mount_node)
		add("mount_node", std::to_string(*e.mount_node));
	if (e.cp_seq)
		add("cp_seq", std::to_string(*e.cp_seq));
	if (e.records_replayed)
		add("records_replayed", std::to_string(*e.records_replayed));
	if (e.takeover_ms)
		add("takeover_ms", std::to_string(*e.takeover_ms));
	if (e.mirror_state)
		add("mirror_state", json_quote(*e.mirror_state));
	if (e.transport)
		add("transport", json_quote(*e.transport));
	if (e.error)
		add("errno", std::to_string(*e.error));
	if (e.message)
		add("message", json_quote(*e.message));
	return out + "}\n";
}

std::string format_event_text(const Event &e)
{
	std::string out = e.name;
	auto add = [&out](const char *k, const std::string &v) {
		out += std::string(" ") + k + "=" + v;
	};
	if (e.device)
		add("device", *e.device);
	if (e.uuid)
		add("uuid", *e.uuid);
	if (e.mount_node)
		add("mount_node", std::to_string(*e.mount_node));
	if (e.cp_seq)
		add("cp_seq", std::to_string(*e.cp_seq));
	if (e.records_replayed)
		add("records_replayed", std::to_string(*e.records_replayed));
	if (e.takeover_ms)
		add("takeover_ms", std::to_string(*e.takeover_ms));
	if (e.mirror_state)
		add("mirror_state", *e.mirror_state);
	if (e.transport)
		add("transport", *e.transport);
	if (e.error)
		add("errno", std::to_string(*e.error));
	if (e.message)
		add("message", json_quote(*e.message));
	return out + "\n";
}

// ---- the socket ----

struct Socket::Impl {
	SockPtr sk;
	std::optional<std::uint16_t> family;
	bool resolved = false;
	std::deque<Event> pending;

	void receive_events();
	bool readable(int wait_ms);
};

Socket::Socket() : impl_(std::make_unique<Impl>())
{
	impl_->sk.reset(nl_socket_alloc());
	if (!impl_->sk)
		throw Error("allocating a netlink socket", ENOMEM);
	nl_sock *sk = impl_->sk.get();
	if (int err = genl_connect(sk); err < 0)
		throw Error(std::string("connecting to generic netlink (") +
				    nl_geterror(err) + ")",
			    EIO);
	nl_socket_enable_msg_peek(sk);
	const int one = 1;
	const int fd = nl_socket_get_fd(sk);
	// Best effort: without them errors come without the kernel's text.
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
}

Socket::~Socket() = default;

bool Socket::family_present()
{
	if (!impl_->resolved) {
		const int id = genl_ctrl_resolve(impl_->sk.get(), TWINFS_GENL_NAME);
		if (id >= 0)
			impl_->family = static_cast<std::uint16_t>(id);
		else if (id != -NLE_OBJ_NOTFOUND)
			throw Error(std::string("looking up the genetlink family twinfs (") +
					    nl_geterror(id) + ")",
				    EIO);
		impl_->resolved = true;
	}
	return impl_->family.has_value();
}

std::uint16_t Socket::family()
{
	if (!family_present())
		throw Error("the twinfs module is not loaded (no genetlink family twinfs)",
			    ENOENT);
	return *impl_->family;
}

std::vector<Bytes> Socket::request(std::uint8_t cmd, std::span<const Attr> attrs,
				   bool dump, std::string_view what)
{
	const std::uint16_t flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
	return request_raw(build_message(family(), cmd, flags, attrs), what);
}

std::vector<Bytes> Socket::request_raw(Bytes msg, std::string_view what)
{
	nl_sock *sk = impl_->sk.get();
	const std::string context(what);
	header(msg, 0);
	auto *out = reinterpret_cast<nlmsghdr *>(msg.data());
	const unsigned int seq = nl_socket_use_seq(sk);
	out->nlmsg_seq = seq;
	out->nlmsg_pid = 0;
	if (int err = nl_sendto(sk, msg.data(), msg.size()); err < 0)
		throw Error(context + ": sending (" + nl_geterror(err) + ")", EIO);

	std::vector<Bytes> replies;
	for (;;) {
		sockaddr_nl peer{};
		unsigned char *raw = nullptr;
		const int n = nl_recv(sk, &peer, &raw, nullptr);
		BufPtr buf(raw);
		if (n < 0)
			throw Error(context + ": receiving (" + nl_geterror(n) + ")", EIO);
		if (n == 0)
			throw Error(context + ": the kernel closed the socket", EPIPE);
		int left = n;
		for (auto *nlh = reinterpret_cast<nlmsghdr *>(buf.get());
		     nlmsg_ok(nlh, left); nlh = nlmsg_next(nlh, &left)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			const auto *p = reinterpret_cast<const std::uint8_t *>(nlh);
			Bytes one(p, p + nlh->nlmsg_len);
			if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) {
				const KernelError ke = parse_error(one);
				if (ke.error == 0)
					return replies;
				std::string kmsg = ke.message;
				if (ke.missing)
					kmsg += (kmsg.empty() ? "" : "; ") +
						std::string("missing attribute ") +
						attr_name(*ke.missing);
				std::string ctx = context;
				if (ke.error == EPERM)
					ctx += " (the twinfs genetlink commands need CAP_NET_ADMIN: run as root)";
				throw Error(ctx, ke.error, kmsg);
			}
			if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_OVERRUN)
				continue;
			replies.push_back(std::move(one));
		}
	}
}

void Socket::subscribe_events()
{
	nl_sock *sk = impl_->sk.get();
	const std::uint16_t fam = family();
	(void)fam;
	const int grp = genl_ctrl_resolve_grp(sk, TWINFS_GENL_NAME,
					      TWINFS_GENL_MCGRP_EVENTS);
	if (grp < 0)
		throw Error(std::string("looking up the multicast group twinfs/events (") +
				    nl_geterror(grp) + ")",
			    ENOENT);
	const int ctrl = genl_ctrl_resolve_grp(sk, "nlctrl", "notify");
	const int fd = nl_socket_get_fd(sk);
	// The group has GENL_UNS_ADMIN_PERM, but kernels before the genl_bind
	// check (Debian 12's 6.1 among them) let anybody join; refuse here
	// alike, so the rule is the same everywhere.
	if (!has_net_admin())
		throw Error("joining the multicast group twinfs/events (it needs CAP_NET_ADMIN: run as root)",
			    EPERM);
	if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof(grp)) < 0) {
		const int err = errno;
		throw Error(std::string("joining the multicast group twinfs/events") +
				    (err == EPERM ? " (it needs CAP_NET_ADMIN: run as root)" : ""),
			    err);
	}
	if (ctrl >= 0 &&
	    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &ctrl, sizeof(ctrl)) < 0)
		throw Error("joining the multicast group nlctrl/notify", errno);
	// Best effort: room for a burst of events (a mount's replay, many
	// consistency points) while the reader is busy.
	(void)nl_socket_set_buffer_size(sk, 1 << 20, 0);
}

// One nl_recv (the socket is readable): the events in it go to pending.
void Socket::Impl::receive_events()
{
	nl_sock *s = sk.get();
	sockaddr_nl peer{};
	unsigned char *raw = nullptr;
	const int n = nl_recv(s, &peer, &raw, nullptr);
	BufPtr buf(raw);
	if (n < 0) {
		if (n == -NLE_NOMEM)	// ENOBUFS: the kernel dropped some
			throw Error("watching events: events were lost (receive buffer overrun)",
				    ENOBUFS);
		throw Error(std::string("watching events: receiving (") + nl_geterror(n) + ")",
			    EIO);
	}
	int left = n;
	for (auto *nlh = reinterpret_cast<nlmsghdr *>(buf.get()); nlmsg_ok(nlh, left);
	     nlh = nlmsg_next(nlh, &left)) {
		const auto *p = reinterpret_cast<const std::uint8_t *>(nlh);
		const Bytes one(p, p + nlh->nlmsg_len);
		if (family && nlh->nlmsg_type == *family) {
			pending.push_back(parse_event(one));
			continue;
		}
		if (nlh->nlmsg_type != GENL_ID_CTRL || message_cmd(one) != CTRL_CMD_DELFAMILY)
			continue;
		std::array<nlattr *, CTRL_ATTR_MAX + 1> tb{};
		if (genlmsg_parse(nlh, 0, tb.data(), CTRL_ATTR_MAX, nullptr) < 0 ||
		    !tb[CTRL_ATTR_FAMILY_NAME])
			continue;
		const auto *name = static_cast<const char *>(nla_data(tb[CTRL_ATTR_FAMILY_NAME]));
		if (strnlen(name, static_cast<std::size_t>(nla_len(tb[CTRL_ATTR_FAMILY_NAME]))) ==
			    std::strlen(TWINFS_GENL_NAME) &&
		    !std::strncmp(name, TWINFS_GENL_NAME, std::strlen(TWINFS_GENL_NAME))) {
			Event e;
			e.name = "FAMILY_REMOVED";
			pending.push_back(e);
		}
	}
}

// Whether the socket is readable within wait_ms (-1: no limit).
bool Socket::Impl::readable(int wait_ms)
{
	pollfd pfd{nl_socket_get_fd(sk.get()), POLLIN, 0};
	for (;;) {
		const int pr = poll(&pfd, 1, wait_ms);
		if (pr >= 0)
			return pr > 0;
		if (errno != EINTR)
			throw Error("watching events: poll", errno);
	}
}

std::optional<Event> Socket::next_event(int timeout_ms)
{
	using clock = std::chrono::steady_clock;
	const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
	while (impl_->pending.empty()) {
		int wait = -1;
		if (timeout_ms >= 0) {
			const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
				deadline - clock::now()).count();
			if (left <= 0)
				return std::nullopt;
			wait = static_cast<int>(left);
		}
		if (impl_->readable(wait))
			impl_->receive_events();
	}
	Event e = std::move(impl_->pending.front());
	impl_->pending.pop_front();
	return e;
}

std::vector<Event> Socket::read_events()
{
	while (impl_->readable(0))
		impl_->receive_events();
	std::vector<Event> out(std::make_move_iterator(impl_->pending.begin()),
			       std::make_move_iterator(impl_->pending.end()));
	impl_->pending.clear();
	return out;
}

int Socket::fd() const
{
	return nl_socket_get_fd(impl_->sk.get());
}

} // namespace twinfs::genl
