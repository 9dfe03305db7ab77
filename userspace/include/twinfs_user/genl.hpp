// SPDX-License-Identifier: GPL-2.0
// The generic netlink family "twinfs" of twinfs.ko from user space, over
// libnl-genl-3: a socket (RAII), requests, replies, events.  The wire
// format is include/twinfs/twinfs_genl.h (Documentation/design.md,
// "Genetlink").
//
// Messages are handled as bytes (a whole netlink message: nlmsghdr,
// genlmsghdr, attributes) so that building and parsing them, and
// rendering the results, can be tested without the module; only Socket
// talks to the kernel.  libnl's headers stay in genl.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace twinfs::genl {

using Bytes = std::vector<std::uint8_t>;

// A failed request or a malformed message: what was being done, the errno
// (positive) and the kernel's extended-ACK message, if any.  what() has all
// three: "<context>: <strerror>[ (kernel: <message>)]".
class Error : public std::runtime_error {
public:
	Error(const std::string &context, int err, std::string kernel_msg = {});
	int error() const { return err_; }
	const std::string &kernel_message() const { return kernel_msg_; }

private:
	int err_;
	std::string kernel_msg_;
};

// One attribute of a request (or of a message a test builds).
struct Attr {
	enum class Kind { Flag, U8, U16, U32, U64, S32, String, Binary };
	std::uint16_t type = 0;
	Kind kind = Kind::Flag;
	std::uint64_t num = 0;	// U8 .. U64, S32 (two's complement)
	std::string str;	// String: sent with its NUL
	Bytes bin;		// Binary: sent as is (no NUL added)

	static Attr flag(std::uint16_t type);
	static Attr u8(std::uint16_t type, std::uint8_t v);
	static Attr u16(std::uint16_t type, std::uint16_t v);
	static Attr u32(std::uint16_t type, std::uint32_t v);
	static Attr u64(std::uint16_t type, std::uint64_t v);
	static Attr s32(std::uint16_t type, std::int32_t v);
	static Attr string(std::uint16_t type, std::string_view v);
	static Attr binary(std::uint16_t type, Bytes v);
};

// A whole generic netlink message of the given family id and command.
Bytes build_message(std::uint16_t family, std::uint8_t cmd,
		    std::uint16_t flags, std::span<const Attr> attrs,
		    std::uint32_t seq = 0);
// The command of a generic netlink message; Error(EBADMSG) if too short.
std::uint8_t message_cmd(const Bytes &msg);

// The extended ACK of an NLMSG_ERROR message (NETLINK_EXT_ACK and
// NETLINK_CAP_ACK on the socket).
struct KernelError {
	int error = 0;				// positive errno, 0 for an ACK
	std::string message;			// NLMSGERR_ATTR_MSG
	std::optional<std::uint32_t> missing;	// NLMSGERR_ATTR_MISS_TYPE
	std::optional<std::uint32_t> offset;	// NLMSGERR_ATTR_OFFS
};
KernelError parse_error(const Bytes &msg);

// The name of an attribute type ("PORT") or command ("TARGET_START"),
// "#<n>" for an unknown one.
std::string attr_name(std::uint32_t type);
std::string cmd_name(std::uint8_t cmd);

// STATUS: one mounted file system.
struct FsStatus {
	std::string device;
	std::string uuid;			// 8-4-4-4-12 hex
	std::optional<std::uint32_t> node_id;	// SET_NODE, if set
	std::uint32_t mount_node = 0;		// node= of the mount
	std::optional<std::string> partner;
	std::string mirror_state;		// none, degraded, ...
	std::optional<std::string> transport;
	std::optional<std::uint64_t> mirror_writes, mirror_resyncs,
		mirror_tail_resyncs;		// with a partner
	std::string cm_device;
	std::uint64_t cm_used = 0, cm_size = 0;
	std::uint64_t last_seq = 0, cp_seq = 0, cp_count = 0;
	std::uint64_t records_replayed = 0;
	bool read_only = false;
};

// TARGET_STATUS: the mirror target of this node.
struct TargetStatus {
	std::string state;			// stopped, listening
	std::optional<std::uint16_t> port;
	std::optional<std::string> device;
	std::optional<std::string> transport;
	std::optional<std::uint64_t> size;
	bool serving = false;
	std::optional<std::uint64_t> writes, connections, refused;
};

// TAKEOVER: the node taken over, and this node's copy of it if a mirror
// target held one (the target is stopped now).
struct TakeoverReply {
	std::uint32_t node = 0;
	std::optional<std::string> copy_device;
	std::optional<std::uint64_t> copy_writes;
	bool owner_was_connected = false;
};

// RELINQUISH: the consistency point written for the umount to come.
struct RelinquishReply {
	std::string device;
	std::uint64_t cp_seq = 0, last_seq = 0, cm_used = 0;
};

// A multicast event (MOUNTED, UNMOUNTED, CP_DONE, MIRROR_STATE, ERROR,
// TAKEOVER_DONE), or FAMILY_REMOVED when the module went away while
// watching.
struct Event {
	std::string name;
	std::optional<std::string> device, uuid;
	std::optional<std::uint32_t> mount_node;
	std::optional<std::uint64_t> cp_seq, records_replayed;
	std::optional<std::string> mirror_state, transport, message;
	std::optional<std::int32_t> error;	// negative errno
	std::optional<std::uint32_t> takeover_ms;	// TAKEOVER_DONE
};

// Parse a reply or event; Error(EBADMSG) when an attribute has the wrong
// size or a string lacks its NUL, or a mandatory one is missing.
FsStatus parse_status(const Bytes &msg);
TargetStatus parse_target_status(const Bytes &msg);
Event parse_event(const Bytes &msg);
TakeoverReply parse_takeover(const Bytes &msg);
// The one reply of a doit request; Error(EBADMSG, "<what>: N replies, not
// 1") otherwise.
const Bytes &only_reply(const std::vector<Bytes> &replies, std::string_view what);
RelinquishReply parse_relinquish(const Bytes &msg);

std::string uuid_string(std::span<const std::uint8_t> b);
// The 16 bytes of a uuid string (with or without dashes); nullopt if not
// one.
std::optional<Bytes> parse_uuid(std::string_view s);

// Rendering.  JSON: documents described in Documentation/design.md.
std::string format_status_json(const std::vector<FsStatus> &fss);
std::string format_status_table(const std::vector<FsStatus> &fss);
std::string format_target_json(const TargetStatus &t);
std::string format_target_text(const TargetStatus &t);
std::string format_event_json(const Event &e);	// one line
std::string format_event_text(const Event &e);	// one line

// A generic netlink socket talking to the family "twinfs".
class Socket {
public:
	Socket();	// Error when no netlink socket can be had
	~Socket();
	Socket(const Socket &) = delete;
	Socket &operator=(const Socket &) = delete;

	// Whether the module is loaded (the family is registered).
	bool family_present();
	// The family id; Error(ENOENT, "the twinfs module is not loaded").
	std::uint16_t family();

	// Sends cmd with attrs (a dump with NLM_F_DUMP when dump) and returns
	// the replies; an error reply throws Error with context what.
	std::vector<Bytes> request(std::uint8_t cmd, std::span<const Attr> attrs,
				   bool dump, std::string_view what);
	// Sends a message as is (its sequence number is replaced) and returns
	// the replies; for testing the module's checks.
	std::vector<Bytes> request_raw(Bytes msg, std::string_view what);

	// Joins "events" (and nlctrl's "notify", to see the family go).
	void subscribe_events();
	// The next event, or nullopt after timeout_ms (-1: no limit).
	std::optional<Event> next_event(int timeout_ms);
	// The events that arrived, without waiting (for a poll loop on fd());
	// Error(ENOBUFS) when the kernel dropped some (the socket stays
	// usable).
	std::vector<Event> read_events();
	// The netlink socket, to poll for POLLIN.
	int fd() const;

private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

} // namespace twinfs::genl
