// SPDX-License-Identifier: GPL-2.0
// Unit tests of the genetlink client (userspace/genl.cpp) without the
// module: messages built as the module builds them, parsed back, rendered.
#include <catch2/catch.hpp>

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>

#include "include/twinfs/twinfs_genl.h"
#include "twinfs_user/genl.hpp"

using namespace twinfs::genl;

namespace {

constexpr std::uint16_t kFamily = 0x1234;

const Bytes kUuid{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		  0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
const std::string kUuidText = "01234567-89ab-cdef-1032-547698badcfe";

// The attributes of a message, by type, as raw payloads (walked by hand,
// independently of libnl).
std::map<int, Bytes> walk(const Bytes &msg)
{
	std::map<int, Bytes> out;
	const auto *nlh = reinterpret_cast<const nlmsghdr *>(msg.data());
	std::size_t off = NLMSG_HDRLEN + GENL_HDRLEN;
	while (off + NLA_HDRLEN <= nlh->nlmsg_len) {
		nlattr a;
		std::memcpy(&a, msg.data() + off, sizeof(a));
		REQUIRE(a.nla_len >= NLA_HDRLEN);
		const auto *p = msg.data() + off + NLA_HDRLEN;
		out[a.nla_type] = Bytes(p, p + a.nla_len - NLA_HDRLEN);
		off += NLA_ALIGN(a.nla_len);
	}
	return out;
}

std::vector<Attr> status_attrs()
{
	return {
		Attr::string(TWINFS_A_DEVICE, "vda"),
		Attr::binary(TWINFS_A_UUID, kUuid),
		Attr::u32(TWINFS_A_NODE_ID, 3),
		Attr::u32(TWINFS_A_MOUNT_NODE, 1),
		Attr::string(TWINFS_A_PARTNER, "10.0.0.2:7790"),
		Attr::string(TWINFS_A_MIRROR_STATE, "mirrored"),
		Attr::string(TWINFS_A_TRANSPORT, "tcp"),
		Attr::string(TWINFS_A_CM_DEVICE, "/dev/pmem0"),
		Attr::u64(TWINFS_A_CM_USED, 4096),
		Attr::u64(TWINFS_A_CM_SIZE, 64ull << 20),
		Attr::u64(TWINFS_A_LAST_SEQ, 1234),
		Attr::u64(TWINFS_A_CP_SEQ, 1200),
		Attr::u64(TWINFS_A_CP_COUNT, 7),
		Attr::u64(TWINFS_A_RECORDS_REPLAYED, 0),
	};
}

Bytes status_msg(std::vector<Attr> attrs)
{
	return build_message(kFamily, TWINFS_CMD_STATUS, NLM_F_MULTI, attrs);
}

} // namespace

TEST_CASE("genl: a request carries family, command, version and attributes")
{
	const std::vector<Attr> attrs{
		Attr::u16(TWINFS_A_PORT, 7790),
		Attr::string(TWINFS_A_TARGET_DEVICE, "/dev/pmem0"),
		Attr::string(TWINFS_A_KEY_FILE, "/etc/twinfs/key"),
	};
	const Bytes msg = build_message(kFamily, TWINFS_CMD_TARGET_START,
					NLM_F_REQUEST | NLM_F_ACK, attrs, 42);
	const auto *nlh = reinterpret_cast<const nlmsghdr *>(msg.data());
	REQUIRE(nlh->nlmsg_len == msg.size());
	CHECK(nlh->nlmsg_type == kFamily);
	CHECK(nlh->nlmsg_flags == (NLM_F_REQUEST | NLM_F_ACK));
	CHECK(nlh->nlmsg_seq == 42);
	const auto *g = reinterpret_cast<const genlmsghdr *>(msg.data() + NLMSG_HDRLEN);
	CHECK(g->cmd == TWINFS_CMD_TARGET_START);
	CHECK(g->version == TWINFS_GENL_VERSION);
	CHECK(g->reserved == 0);
	CHECK(message_cmd(msg) == TWINFS_CMD_TARGET_START);

	const auto a = walk(msg);
	REQUIRE(a.size() == 3);
	REQUIRE(a.at(TWINFS_A_PORT).size() == 2);
	std::uint16_t port;
	std::memcpy(&port, a.at(TWINFS_A_PORT).data(), 2);
	CHECK(port == 7790);
	// Strings go with their NUL, as the module's NLA_NUL_STRING wants.
	const Bytes dev = a.at(TWINFS_A_TARGET_DEVICE);
	CHECK(std::string(dev.begin(), dev.end()) == std::string("/dev/pmem0", 11));
}

TEST_CASE("genl: a STATUS reply is parsed into every field")
{
	const FsStatus s = parse_status(status_msg(status_attrs()));
	CHECK(s.device == "vda");
	CHECK(s.uuid == kUuidText);
	CHECK(s.node_id == 3u);
	CHECK(s.mount_node == 1);
	CHECK(s.partner == "10.0.0.2:7790");
	CHECK(s.mirror_state == "mirrored");
	CHECK(s.transport == "tcp");
	CHECK(s.cm_device == "/dev/pmem0");
	CHECK(s.cm_used == 4096);
	CHECK(s.cm_size == 64ull << 20);
	CHECK(s.last_seq == 1234);
	CHECK(s.cp_seq == 1200);
	CHECK(s.cp_count == 7);
	CHECK(s.records_replayed == 0);
	CHECK_FALSE(s.read_only);

	auto attrs = status_attrs();
	attrs.push_back(Attr::flag(TWINFS_A_READ_ONLY));
	CHECK(parse_status(status_msg(attrs)).read_only);
}

TEST_CASE("genl: optional STATUS attributes may be left out")
{
	const FsStatus s = parse_status(status_msg({
		Attr::string(TWINFS_A_DEVICE, "vdb"),
		Attr::binary(TWINFS_A_UUID, kUuid),
		Attr::u32(TWINFS_A_MOUNT_NODE, 0),
		Attr::string(TWINFS_A_MIRROR_STATE, "none"),
	}));
	CHECK(s.device == "vdb");
	CHECK_FALSE(s.node_id);
	CHECK_FALSE(s.partner);
	CHECK_FALSE(s.transport);
	CHECK(s.mirror_state == "none");
}

TEST_CASE("genl: malformed replies are refused with the attribute's name")
{
	auto expect_bad = [](std::vector<Attr> attrs, const std::string &needle) {
		try {
			parse_status(status_msg(std::move(attrs)));
			FAIL("parsed a malformed reply");
		} catch (const Error &e) {
			CHECK(e.error() == EBADMSG);
			CHECK_THAT(e.what(), Catch::Contains(needle));
		}
	};
	SECTION("a u64 of four bytes")
	{
		auto attrs = status_attrs();
		attrs.push_back(Attr::u32(TWINFS_A_CM_USED, 1));
		// The later one wins in the parse, and it is too short.
		expect_bad(attrs, "CM_USED has 4 bytes");
	}
	SECTION("no uuid")
	{
		expect_bad({Attr::string(TWINFS_A_DEVICE, "vda"),
			    Attr::u32(TWINFS_A_MOUNT_NODE, 0)},
			   "UUID missing");
	}
	SECTION("a uuid of 15 bytes")
	{
		expect_bad({Attr::string(TWINFS_A_DEVICE, "vda"),
			    Attr::binary(TWINFS_A_UUID, Bytes(15, 1))},
			   "UUID has 15 bytes");
	}
	SECTION("a string without its NUL")
	{
		expect_bad({Attr::binary(TWINFS_A_DEVICE, Bytes{'v', 'd', 'a'})},
			   "DEVICE is not a NUL-terminated string");
	}
	SECTION("a flag with a payload")
	{
		auto attrs = status_attrs();
		attrs.push_back(Attr::u8(TWINFS_A_READ_ONLY, 1));
		expect_bad(attrs, "READ_ONLY has a payload");
	}
	SECTION("a truncated message")
	{
		Bytes msg = status_msg(status_attrs());
		msg.resize(10);
		CHECK_THROWS_AS(parse_status(msg), Error);
	}
}

TEST_CASE("genl: STATUS as JSON")
{
	const std::vector<FsStatus> fss{parse_status(status_msg(status_attrs()))};
	CHECK(format_status_json(fss) ==
	      "{\n"
	      "  \"module_loaded\": true,\n"
	      "  \"source\": \"genetlink\",\n"
	      "  \"node_id\": 3,\n"
	      "  \"filesystems\": [\n"
	      "    {\n"
	      "      \"device\": \"vda\",\n"
	      "      \"uuid\": \"01234567-89ab-cdef-1032-547698badcfe\",\n"
	      "      \"mount_node\": 1,\n"
	      "      \"read_only\": false,\n"
	      "      \"partner\": \"10.0.0.2:7790\",\n"
	      "      \"mirror\": {\"state\": \"mirrored\", \"transport\": \"tcp\"},\n"
	      "      \"change_memory\": {\n"
	      "        \"cm_device\": \"/dev/pmem0\",\n"
	      "        \"cm_size\": 67108864,\n"
	      "        \"cm_used\": 4096,\n"
	      "        \"last_seq\": 1234,\n"
	      "        \"cp_seq\": 1200,\n"
	      "        \"cp_count\": 7,\n"
	      "        \"records_replayed\": 0\n"
	      "      }\n"
	      "    }\n"
	      "  ]\n"
	      "}\n");
	CHECK(format_status_json({}) ==
	      "{\n  \"module_loaded\": true,\n  \"source\": \"genetlink\",\n"
	      "  \"node_id\": null,\n  \"filesystems\": []\n}\n");
}

TEST_CASE("genl: STATUS as a table")
{
	const std::vector<FsStatus> fss{parse_status(status_msg(status_attrs()))};
	const std::string t = format_status_table(fss);
	CHECK_THAT(t, Catch::StartsWith("DEVICE  UUID"));
	CHECK_THAT(t, Catch::Contains("vda     " + kUuidText));
	CHECK_THAT(t, Catch::Contains("mirrored/tcp"));
	CHECK_THAT(t, Catch::Contains("node id: 3\n"));
	CHECK(format_status_table({}) == "no twinfs file system mounted\n");
}

TEST_CASE("genl: uuids as text and back")
{
	CHECK(uuid_string(kUuid) == kUuidText);
	CHECK(parse_uuid(kUuidText) == kUuid);
	CHECK(parse_uuid("0123456789ABCDEF1032547698BADCFE") == kUuid);
	CHECK_FALSE(parse_uuid("vda"));
	CHECK_FALSE(parse_uuid(kUuidText + "0"));
	CHECK_FALSE(parse_uuid(kUuidText.substr(1)));
}

TEST_CASE("genl: events are parsed and printed")
{
	const Bytes cp = build_message(kFamily, TWINFS_CMD_EVENT_CP_DONE, 0,
				       std::vector<Attr>{
					       Attr::string(TWINFS_A_DEVICE, "vda"),
					       Attr::binary(TWINFS_A_UUID, kUuid),
					       Attr::u64(TWINFS_A_CP_SEQ, 99),
				       });
	const Event e = parse_event(cp);
	CHECK(e.name == "CP_DONE");
	CHECK(format_event_text(e) == "CP_DONE device=vda uuid=" + kUuidText + " cp_seq=99\n");
	CHECK(format_event_json(e) == "{\"event\": \"CP_DONE\", \"device\": \"vda\", \"uuid\": \"" +
					      kUuidText + "\", \"cp_seq\": 99}\n");

	const Bytes err = build_message(kFamily, TWINFS_CMD_EVENT_ERROR, 0,
					std::vector<Attr>{
						Attr::s32(TWINFS_A_ERRNO, -EUCLEAN),
						Attr::string(TWINFS_A_MESSAGE, "corruption in \"x\""),
					});
	const Event ee = parse_event(err);
	CHECK(ee.error == -EUCLEAN);
	CHECK(format_event_text(ee) ==
	      "ERROR errno=" + std::to_string(-EUCLEAN) + " message=\"corruption in \\\"x\\\"\"\n");

	// A reply is not an event.
	CHECK_THROWS_AS(parse_event(status_msg(status_attrs())), Error);
}

TEST_CASE("genl: TAKEOVER_DONE events and the takeover's replies")
{
	const Event e = parse_event(build_message(kFamily, TWINFS_CMD_EVENT_TAKEOVER_DONE, 0,
						  std::vector<Attr>{
							  Attr::string(TWINFS_A_DEVICE, "vdb"),
							  Attr::u32(TWINFS_A_MOUNT_NODE, 1),
							  Attr::u64(TWINFS_A_CP_SEQ, 7),
							  Attr::u64(TWINFS_A_RECORDS_REPLAYED, 42),
							  Attr::u32(TWINFS_A_TAKEOVER_MS, 310),
						  }));
	CHECK(e.name == "TAKEOVER_DONE");
	CHECK(e.takeover_ms == 310u);
	CHECK(format_event_text(e) ==
	      "TAKEOVER_DONE device=vdb mount_node=1 cp_seq=7 records_replayed=42 takeover_ms=310\n");

	const TakeoverReply t = parse_takeover(build_message(
		kFamily, TWINFS_CMD_TAKEOVER, 0,
		std::vector<Attr>{
			Attr::u32(TWINFS_A_MOUNT_NODE, 1),
			Attr::string(TWINFS_A_TARGET_DEVICE, "/dev/pmem0"),
			Attr::u64(TWINFS_A_TARGET_WRITES, 99),
		}));
	CHECK(t.node == 1u);
	CHECK(t.copy_device == "/dev/pmem0");
	CHECK(t.copy_writes == 99u);
	CHECK_FALSE(t.owner_was_connected);
	// No target ran: only the node.
	const TakeoverReply bare = parse_takeover(build_message(
		kFamily, TWINFS_CMD_TAKEOVER, 0, std::vector<Attr>{Attr::u32(TWINFS_A_MOUNT_NODE, 2)}));
	CHECK_FALSE(bare.copy_device);
	// The node is mandatory.
	CHECK_THROWS_AS(parse_takeover(build_message(kFamily, TWINFS_CMD_TAKEOVER, 0,
						     std::vector<Attr>{})),
			Error);

	const RelinquishReply r = parse_relinquish(build_message(
		kFamily, TWINFS_CMD_RELINQUISH, 0,
		std::vector<Attr>{
			Attr::string(TWINFS_A_DEVICE, "vdb"),
			Attr::binary(TWINFS_A_UUID, kUuid),
			Attr::u64(TWINFS_A_CP_SEQ, 12),
			Attr::u64(TWINFS_A_LAST_SEQ, 340),
			Attr::u64(TWINFS_A_CM_USED, 0),
		}));
	CHECK(r.device == "vdb");
	CHECK(r.cp_seq == 12u);
	CHECK(r.last_seq == 340u);
	// A CP_SEQ of the wrong size is malformed.
	CHECK_THROWS_AS(parse_relinquish(build_message(kFamily, TWINFS_CMD_RELINQUISH, 0,
						       std::vector<Attr>{
							       Attr::string(TWINFS_A_DEVICE, "vdb"),
							       Attr::u32(TWINFS_A_CP_SEQ, 12),
							       Attr::u64(TWINFS_A_LAST_SEQ, 340),
							       Attr::u64(TWINFS_A_CM_USED, 0),
						       })),
			Error);
	// A doit has one reply; none or two is malformed.
	CHECK(&only_reply(std::vector<Bytes>{Bytes{1}}, "x") != nullptr);
	CHECK_THROWS_WITH(only_reply({}, "takeover"), Catch::Contains("takeover: 0 replies, not 1"));
	CHECK_THROWS_AS(only_reply(std::vector<Bytes>{Bytes{1}, Bytes{1}}, "x"), Error);
	CHECK(cmd_name(TWINFS_CMD_DISCONNECT) == "DISCONNECT");
	CHECK(attr_name(TWINFS_A_MIRROR_TAIL_RESYNCS) == "MIRROR_TAIL_RESYNCS");
}

TEST_CASE("genl: TARGET_STATUS replies")
{
	const TargetStatus stopped = parse_target_status(build_message(
		kFamily, TWINFS_CMD_TARGET_STATUS, 0,
		std::vector<Attr>{Attr::string(TWINFS_A_TARGET_STATE, "stopped")}));
	CHECK(format_target_text(stopped) == "stopped\n");
	CHECK(format_target_json(stopped) ==
	      "{\"state\": \"stopped\", \"port\": null, \"device\": null, \"transport\": null, "
	      "\"size\": null, \"serving\": false, \"writes\": null, \"connections\": null, "
	      "\"refused\": null}\n");

	const TargetStatus t = parse_target_status(build_message(
		kFamily, TWINFS_CMD_TARGET_STATUS, 0,
		std::vector<Attr>{
			Attr::string(TWINFS_A_TARGET_STATE, "listening"),
			Attr::u16(TWINFS_A_PORT, 7790),
			Attr::string(TWINFS_A_TARGET_DEVICE, "/dev/pmem0"),
			Attr::string(TWINFS_A_TRANSPORT, "tcp"),
			Attr::u64(TWINFS_A_TARGET_SIZE, 1 << 20),
			Attr::flag(TWINFS_A_TARGET_SERVING),
			Attr::u64(TWINFS_A_TARGET_WRITES, 5),
			Attr::u64(TWINFS_A_TARGET_CONNECTIONS, 1),
			Attr::u64(TWINFS_A_TARGET_REFUSED, 0),
		}));
	CHECK(format_target_text(t) ==
	      "listening port=7790 device=/dev/pmem0 transport=tcp size=1048576 serving=yes "
	      "writes=5 connections=1 refused=0\n");
	// No state: malformed.
	CHECK_THROWS_AS(parse_target_status(build_message(kFamily, TWINFS_CMD_TARGET_STATUS, 0,
							  std::vector<Attr>{})),
			Error);
}

TEST_CASE("genl: the kernel's extended ACK is read from an error message")
{
	// NLMSG_ERROR, capped (the request's header only), with a message and
	// the missing attribute, as the kernel sends it.
	const std::string text = "TARGET_START needs PORT";
	Bytes tlv;
	auto put = [&tlv](std::uint16_t type, const void *p, std::size_t n) {
		nlattr a{static_cast<std::uint16_t>(NLA_HDRLEN + n), type};
		const auto *ap = reinterpret_cast<const std::uint8_t *>(&a);
		tlv.insert(tlv.end(), ap, ap + sizeof(a));
		const auto *pp = static_cast<const std::uint8_t *>(p);
		tlv.insert(tlv.end(), pp, pp + n);
		tlv.resize(NLA_ALIGN(tlv.size()));
	};
	put(NLMSGERR_ATTR_MSG, text.c_str(), text.size() + 1);
	const std::uint32_t miss = TWINFS_A_PORT;
	put(NLMSGERR_ATTR_MISS_TYPE, &miss, sizeof(miss));

	const std::size_t head = NLMSG_HDRLEN + sizeof(nlmsgerr);
	Bytes msg(head + tlv.size());
	nlmsgerr e{};
	e.error = -EINVAL;
	e.msg.nlmsg_len = 64;	// the request's: not included (capped)
	std::memcpy(msg.data() + NLMSG_HDRLEN, &e, sizeof(e));
	std::memcpy(msg.data() + head, tlv.data(), tlv.size());
	nlmsghdr h{};
	h.nlmsg_len = static_cast<std::uint32_t>(msg.size());
	h.nlmsg_type = NLMSG_ERROR;
	h.nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
	std::memcpy(msg.data(), &h, sizeof(h));

	const KernelError ke = parse_error(msg);
	CHECK(ke.error == EINVAL);
	CHECK(ke.message == text);
	CHECK(ke.missing == TWINFS_A_PORT);
	CHECK(attr_name(*ke.missing) == "PORT");

	// A plain ACK.
	h.nlmsg_flags = NLM_F_CAPPED;
	h.nlmsg_len = NLMSG_HDRLEN + sizeof(nlmsgerr);
	e.error = 0;
	Bytes ack(h.nlmsg_len);
	std::memcpy(ack.data(), &h, sizeof(h));
	std::memcpy(ack.data() + NLMSG_HDRLEN, &e, sizeof(e));
	const KernelError k0 = parse_error(ack);
	CHECK(k0.error == 0);
	CHECK(k0.message.empty());
	CHECK_FALSE(k0.missing);
}

TEST_CASE("genl: errors say what failed, why, and what the kernel said")
{
	const Error e("target start", EBUSY, "the mirror target runs already");
	CHECK(std::string(e.what()) ==
	      "target start: Device or resource busy (kernel: the mirror target runs already)");
	CHECK(e.error() == EBUSY);
	CHECK(std::string(Error("status", EPERM).what()) == "status: Operation not permitted");
	CHECK(cmd_name(TWINFS_CMD_EVENT_MOUNTED) == "MOUNTED");
	CHECK(cmd_name(200) == "#200");
	CHECK(attr_name(TWINFS_A_MAX + 1) == "#" + std::to_string(TWINFS_A_MAX + 1));
}
