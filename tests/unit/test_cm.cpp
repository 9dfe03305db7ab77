// SPDX-License-Identifier: GPL-2.0
// Unit tests of kmod/core/cm.c, the portable core of the change memory:
// record encoding and decoding (every rejection rule), lane scanning,
// replay planning, ring and header arithmetic, and a randomized crash model
// of threads appending records to lanes with group commit.
#include "test_util.hpp"
#include "twinfs_cm_core.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using twinfs_test::uniform;

namespace {

using Bytes = std::vector<u8>;

// ---- little-endian values ---------------------------------------------

Bytes le64(u64 x)
{
	Bytes b(8);
	for (int i = 0; i < 8; i++)
		b[i] = static_cast<u8>(x >> (8 * i));
	return b;
}

Bytes le32(u32 x)
{
	Bytes b(4);
	for (int i = 0; i < 4; i++)
		b[i] = static_cast<u8>(x >> (8 * i));
	return b;
}

Bytes le16(u16 x)
{
	return {static_cast<u8>(x), static_cast<u8>(x >> 8)};
}

Bytes tspec(__s64 sec, u32 nsec)
{
	Bytes b = le64(static_cast<u64>(sec));
	Bytes n = le32(nsec);
	b.insert(b.end(), n.begin(), n.end());
	return b;
}

Bytes str(std::string_view s)
{
	return Bytes(s.begin(), s.end());
}

u64 rd64(const u8 *p)
{
	u64 x = 0;
	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

u32 rd32(const u8 *p)
{
	return static_cast<u32>(p[0]) | static_cast<u32>(p[1]) << 8 |
	       static_cast<u32>(p[2]) << 16 | static_cast<u32>(p[3]) << 24;
}

void wr32(u8 *p, u32 x)
{
	for (int i = 0; i < 4; i++)
		p[i] = static_cast<u8>(x >> (8 * i));
}

void wr64(u8 *p, u64 x)
{
	for (int i = 0; i < 8; i++)
		p[i] = static_cast<u8>(x >> (8 * i));
}

// ---- record specifications --------------------------------------------

struct Attr {
	u16 type;
	Bytes v;
};

// One record as the test means it: op, attributes in order, header values.
struct Spec {
	u16 op = 0;
	std::vector<Attr> attrs;
	u64 seq = 10;
	u64 acked = 9;
	u32 gen = 3;

	Spec &set(u16 type, Bytes v)
	{
		for (auto &a : attrs)
			if (a.type == type) {
				a.v = std::move(v);
				return *this;
			}
		attrs.push_back({type, std::move(v)});
		return *this;
	}
	Spec &drop(u16 type)
	{
		std::erase_if(attrs, [type](const Attr &a) { return a.type == type; });
		return *this;
	}
	Spec &add(u16 type, Bytes v)
	{
		attrs.push_back({type, std::move(v)});
		return *this;
	}
};

constexpr u16 ALL_OPS[] = {
	TWINFS_CM_OP_CREATE, TWINFS_CM_OP_MKNOD,   TWINFS_CM_OP_MKDIR,
	TWINFS_CM_OP_SYMLINK, TWINFS_CM_OP_LINK,   TWINFS_CM_OP_UNLINK,
	TWINFS_CM_OP_RMDIR,  TWINFS_CM_OP_RENAME,  TWINFS_CM_OP_SETATTR,
	TWINFS_CM_OP_TRUNCATE, TWINFS_CM_OP_WRITE,
};

bool creates(u16 op)
{
	return op == TWINFS_CM_OP_CREATE || op == TWINFS_CM_OP_MKNOD ||
	       op == TWINFS_CM_OP_MKDIR || op == TWINFS_CM_OP_SYMLINK;
}

bool named(u16 op)
{
	return creates(op) || op == TWINFS_CM_OP_LINK ||
	       op == TWINFS_CM_OP_UNLINK || op == TWINFS_CM_OP_RMDIR ||
	       op == TWINFS_CM_OP_RENAME;
}

u32 create_mode(u16 op)
{
	switch (op) {
	case TWINFS_CM_OP_MKNOD:
		return 0020600;
	case TWINFS_CM_OP_MKDIR:
		return 0040755;
	case TWINFS_CM_OP_SYMLINK:
		return 0120777;
	default:
		return 0100644;
	}
}

// The required attributes of op, with plain valid values.
Spec minimal(u16 op)
{
	Spec s;
	s.op = op;
	if (named(op)) {
		s.set(TWINFS_CM_A_PARENT_INO, le64(2));
		s.set(TWINFS_CM_A_NAME, str("file"));
	}
	s.set(TWINFS_CM_A_INO, le64(100));
	if (creates(op)) {
		s.set(TWINFS_CM_A_MODE, le32(create_mode(op)));
		s.set(TWINFS_CM_A_UID, le32(1000));
		s.set(TWINFS_CM_A_GID, le32(1001));
		s.set(TWINFS_CM_A_GENERATION, le32(7));
	}
	if (op == TWINFS_CM_OP_MKNOD)
		s.set(TWINFS_CM_A_RDEV, le32(0x0801));
	if (op == TWINFS_CM_OP_SYMLINK)
		s.set(TWINFS_CM_A_SYMLINK_TARGET, str("../target/path"));
	if (op == TWINFS_CM_OP_RENAME) {
		s.set(TWINFS_CM_A_NEW_PARENT_INO, le64(3));
		s.set(TWINFS_CM_A_NEW_NAME, str("new"));
	}
	if (op == TWINFS_CM_OP_SETATTR)
		s.set(TWINFS_CM_A_MODE, le32(0640));
	if (op == TWINFS_CM_OP_TRUNCATE)
		s.set(TWINFS_CM_A_SIZE, le64(4096));
	if (op == TWINFS_CM_OP_WRITE) {
		s.set(TWINFS_CM_A_OFFSET, le64(8192));
		s.set(TWINFS_CM_A_DATA, str("hello, nvram"));
	}
	s.set(TWINFS_CM_A_CTIME, tspec(1700000000, 5));
	return s;
}

// Every attribute op allows, with plain valid values.
Spec full(u16 op)
{
	Spec s = minimal(op);
	if (op == TWINFS_CM_OP_RENAME) {
		s.set(TWINFS_CM_A_TARGET_INO, le64(101));
		s.set(TWINFS_CM_A_FLAGS, le32(0));
	}
	if (op == TWINFS_CM_OP_SETATTR) {
		s.set(TWINFS_CM_A_UID, le32(0));
		s.set(TWINFS_CM_A_GID, le32(0));
		s.set(TWINFS_CM_A_ATIME, tspec(-5, 999999999));
		s.set(TWINFS_CM_A_MTIME, tspec(1, 0));
		s.set(TWINFS_CM_A_FLAGS, le32(0x10));
	}
	return s;
}

template <typename Rng>
std::string random_name(Rng &rng, u32 max_len = TWINFS_NAME_MAX)
{
	static constexpr std::string_view chars =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-\x7f\xc3\xa9";
	for (;;) {
		std::string n(uniform<u32>(rng, 1, max_len), 'x');
		for (auto &c : n)
			c = chars[uniform<size_t>(rng, 0, chars.size() - 1)];
		if (n != "." && n != "..")
			return n;
	}
}

template <typename Rng>
Bytes random_bytes(Rng &rng, u32 len)
{
	Bytes b(len);
	for (auto &x : b)
		x = static_cast<u8>(uniform<unsigned>(rng, 0, 255));
	return b;
}

template <typename Rng>
Bytes random_time(Rng &rng)
{
	return tspec(static_cast<__s64>(uniform<u64>(rng, 0, ~0ull)),
		  uniform<u32>(rng, 0, 999999999));
}

// Every attribute op allows, with random valid values.
template <typename Rng>
Spec random_full(Rng &rng, u16 op, u32 max_data = TWINFS_CM_DATA_MAX)
{
	Spec s = full(op);
	auto ino = [&] { return le64(uniform<u64>(rng, 1, ~0ull)); };
	auto id = [&] { return le32(uniform<u32>(rng, 0, 0xfffffffe)); };
	for (auto &a : s.attrs) {
		switch (a.type) {
		case TWINFS_CM_A_PARENT_INO:
		case TWINFS_CM_A_INO:
		case TWINFS_CM_A_NEW_PARENT_INO:
			a.v = ino();
			break;
		case TWINFS_CM_A_NAME:
		case TWINFS_CM_A_NEW_NAME:
			a.v = str(random_name(rng));
			break;
		case TWINFS_CM_A_UID:
		case TWINFS_CM_A_GID:
			a.v = id();
			break;
		case TWINFS_CM_A_MODE:
			a.v = le32((op == TWINFS_CM_OP_SETATTR ? 0 : create_mode(op) & 0170000) |
				   uniform<u32>(rng, 0, 07777));
			break;
		case TWINFS_CM_A_ATIME:
		case TWINFS_CM_A_MTIME:
		case TWINFS_CM_A_CTIME:
			a.v = random_time(rng);
			break;
		case TWINFS_CM_A_RDEV:
		case TWINFS_CM_A_GENERATION:
			a.v = le32(uniform<u32>(rng, 0, ~0u));
			break;
		case TWINFS_CM_A_FLAGS:
			a.v = le32(op == TWINFS_CM_OP_RENAME ? 0 : uniform<u32>(rng, 0, ~0u));
			break;
		case TWINFS_CM_A_SIZE:
			a.v = le64(uniform<u64>(rng, 0, TWINFS_CM_MAX_FILE_SIZE));
			break;
		case TWINFS_CM_A_OFFSET:
			a.v = le64(uniform<u64>(rng, 0, 1ull << 40));
			break;
		case TWINFS_CM_A_DATA:
			a.v = random_bytes(rng, uniform<u32>(rng, 1, max_data));
			break;
		case TWINFS_CM_A_SYMLINK_TARGET: {
			std::string t;
			const u32 len = uniform<u32>(rng, 1, TWINFS_CM_SYMLINK_MAX);
			while (t.size() < len)
				t += random_name(rng, 20) + "/";
			t.resize(len);
			a.v = str(t);
			break;
		}
		}
	}
	if (op == TWINFS_CM_OP_RENAME) {
		// No target, a target, or an exchange.
		const u64 ino_v = rd64(s.attrs[2].v.data());
		switch (uniform<unsigned>(rng, 0, 3)) {
		case 0:
			s.drop(TWINFS_CM_A_TARGET_INO).drop(TWINFS_CM_A_FLAGS);
			break;
		case 1:
			s.drop(TWINFS_CM_A_TARGET_INO);
			s.set(TWINFS_CM_A_FLAGS, le32(TWINFS_CM_RENAME_NOREPLACE));
			break;
		default:
			s.set(TWINFS_CM_A_TARGET_INO, le64(ino_v ^ 1 ? ino_v ^ 1 : 2));
			s.set(TWINFS_CM_A_FLAGS,
			      le32(uniform<unsigned>(rng, 0, 1) ? TWINFS_CM_RENAME_EXCHANGE : 0));
			break;
		}
	}
	// Attribute order is free.
	std::shuffle(s.attrs.begin(), s.attrs.end(), rng);
	return s;
}

// Required attributes only (plus random optional ones), random values.
template <typename Rng>
Spec random_spec(Rng &rng, u32 max_data)
{
	const u16 op = ALL_OPS[uniform<size_t>(rng, 0, std::size(ALL_OPS) - 1)];
	Spec s = random_full(rng, op, max_data);
	if (op == TWINFS_CM_OP_SETATTR) {
		// Keep a random non-empty subset of the changes.
		const u16 changes[] = {TWINFS_CM_A_MODE, TWINFS_CM_A_UID, TWINFS_CM_A_GID,
				       TWINFS_CM_A_ATIME, TWINFS_CM_A_MTIME, TWINFS_CM_A_FLAGS};
		const u16 keep = changes[uniform<size_t>(rng, 0, 5)];
		for (u16 t : changes)
			if (t != keep && uniform<unsigned>(rng, 0, 1))
				s.drop(t);
	}
	return s;
}

// ---- encoding ------------------------------------------------------------

// Bytes the record of s takes (the builder may be given exactly that).
u32 spec_size(const Spec &s)
{
	u32 len = 0;
	for (const auto &a : s.attrs)
		len += TWINFS_CM_ATTR_HDR_SIZE + static_cast<u32>(a.v.size());
	return twinfs_cm_rec_size(std::min(len, TWINFS_CM_PAYLOAD_MAX));
}

// Encodes with the builder, every value as raw bytes.
Bytes encode(const Spec &s)
{
	Bytes buf(spec_size(s));
	twinfs_cm_builder b;
	REQUIRE(twinfs_cm_rec_begin(&b, buf.data(), static_cast<u32>(buf.size()), s.op) == 0);
	for (const auto &a : s.attrs)
		twinfs_cm_put_bytes(&b, a.type, a.v.data(), static_cast<u32>(a.v.size()));
	const int size = twinfs_cm_rec_end(&b, s.seq, s.acked, s.gen);
	REQUIRE(size > 0);
	buf.resize(static_cast<size_t>(size));
	return buf;
}

// Encodes with the typed put functions where the value has a fixed size.
Bytes encode_typed(const Spec &s)
{
	Bytes buf(TWINFS_CM_REC_MAX);
	twinfs_cm_builder b;
	REQUIRE(twinfs_cm_rec_begin(&b, buf.data(), static_cast<u32>(buf.size()), s.op) == 0);
	for (const auto &a : s.attrs) {
		if (a.v.size() == 8)
			twinfs_cm_put_u64(&b, a.type, rd64(a.v.data()));
		else if (a.v.size() == 4 && a.type != TWINFS_CM_A_NAME &&
			 a.type != TWINFS_CM_A_NEW_NAME && a.type != TWINFS_CM_A_DATA &&
			 a.type != TWINFS_CM_A_SYMLINK_TARGET)
			twinfs_cm_put_u32(&b, a.type, rd32(a.v.data()));
		else if (a.v.size() == TWINFS_CM_TIME_SIZE &&
			 (a.type == TWINFS_CM_A_ATIME || a.type == TWINFS_CM_A_MTIME ||
			  a.type == TWINFS_CM_A_CTIME))
			twinfs_cm_put_time(&b, a.type, static_cast<__s64>(rd64(a.v.data())),
					   rd32(a.v.data() + 8));
		else
			twinfs_cm_put_bytes(&b, a.type, a.v.data(),
					    static_cast<u32>(a.v.size()));
	}
	const int size = twinfs_cm_rec_end(&b, s.seq, s.acked, s.gen);
	REQUIRE(size > 0);
	buf.resize(static_cast<size_t>(size));
	return buf;
}

// A record written field by field from the documented layout, not with the
// builder: any payload, any op and flags.
Bytes raw_record(u16 op, const Bytes &payload, u64 seq = 10, u64 acked = 9,
		 u32 gen = 3, u16 flags = 0)
{
	Bytes r(twinfs_cm_rec_size(static_cast<u32>(payload.size())), 0);
	wr32(&r[0], TWINFS_CM_REC_MAGIC);
	r[24] = static_cast<u8>(op);
	r[25] = static_cast<u8>(op >> 8);
	r[26] = static_cast<u8>(flags);
	r[27] = static_cast<u8>(flags >> 8);
	wr32(&r[28], static_cast<u32>(payload.size()));
	std::copy(payload.begin(), payload.end(), r.begin() + 40);
	wr32(&r[32], ~twinfs_crc32c(~0u, payload.data(), payload.size()));
	twinfs_cm_rec_seal(r.data(), seq, acked, gen);
	return r;
}

// The payload of a spec: its attributes, packed.
Bytes payload_of(const Spec &s)
{
	Bytes p;
	for (const auto &a : s.attrs) {
		Bytes t = le16(a.type), l = le16(static_cast<u16>(a.v.size()));
		p.insert(p.end(), t.begin(), t.end());
		p.insert(p.end(), l.begin(), l.end());
		p.insert(p.end(), a.v.begin(), a.v.end());
	}
	return p;
}

void reseal_header(Bytes &r)
{
	wr32(&r[4], twinfs_csum_block(r.data(), TWINFS_CM_REC_HDR_SIZE, 4));
}

// ---- decoding -----------------------------------------------------------

struct Decoded {
	int ret = 0;
	std::string why;
	twinfs_cm_rec_info ri{};
	twinfs_cm_attrs a{};
};

Decoded decode(const Bytes &r, u32 gen = 3, std::optional<u32> avail = {})
{
	Decoded d;
	const char *why = nullptr;
	d.ret = twinfs_cm_rec_decode(r.data(), avail.value_or(static_cast<u32>(r.size())),
				     gen, &d.ri, &d.a, &why);
	if (why)
		d.why = why;
	if (d.ret == 0)
		CHECK(why == nullptr);
	return d;
}

void expect_reject(const Bytes &r, std::string_view msg, u32 gen = 3,
		   std::optional<u32> avail = {})
{
	const Decoded d = decode(r, gen, avail);
	CHECK(d.ret == -EUCLEAN);
	CHECK(d.why == msg);
}

void expect_reject(const Spec &s, std::string_view msg)
{
	expect_reject(encode(s), msg);
}

// Every attribute of s is in a with its value, and nothing else.
void check_matches(const Spec &s, const twinfs_cm_attrs &a)
{
	u32 present = 0;
	auto text = [](const char *p, u32 n) { return std::string(p, n); };
	for (const auto &at : s.attrs) {
		const u8 *v = at.v.data();
		const std::string sv(at.v.begin(), at.v.end());
		present |= 1u << at.type;
		switch (at.type) {
		case TWINFS_CM_A_PARENT_INO: CHECK(a.parent_ino == rd64(v)); break;
		case TWINFS_CM_A_INO: CHECK(a.ino == rd64(v)); break;
		case TWINFS_CM_A_NEW_PARENT_INO: CHECK(a.new_parent_ino == rd64(v)); break;
		case TWINFS_CM_A_TARGET_INO: CHECK(a.target_ino == rd64(v)); break;
		case TWINFS_CM_A_NAME: CHECK(text(a.name, a.name_len) == sv); break;
		case TWINFS_CM_A_NEW_NAME: CHECK(text(a.new_name, a.new_name_len) == sv); break;
		case TWINFS_CM_A_MODE: CHECK(a.mode == rd32(v)); break;
		case TWINFS_CM_A_UID: CHECK(a.uid == rd32(v)); break;
		case TWINFS_CM_A_GID: CHECK(a.gid == rd32(v)); break;
		case TWINFS_CM_A_SIZE: CHECK(a.size == rd64(v)); break;
		case TWINFS_CM_A_OFFSET: CHECK(a.offset == rd64(v)); break;
		case TWINFS_CM_A_RDEV: CHECK(a.rdev == rd32(v)); break;
		case TWINFS_CM_A_GENERATION: CHECK(a.generation == rd32(v)); break;
		case TWINFS_CM_A_FLAGS: CHECK(a.flags == rd32(v)); break;
		case TWINFS_CM_A_ATIME:
			CHECK(a.atime.sec == static_cast<__s64>(rd64(v)));
			CHECK(a.atime.nsec == rd32(v + 8));
			break;
		case TWINFS_CM_A_MTIME:
			CHECK(a.mtime.sec == static_cast<__s64>(rd64(v)));
			CHECK(a.mtime.nsec == rd32(v + 8));
			break;
		case TWINFS_CM_A_CTIME:
			CHECK(a.ctime.sec == static_cast<__s64>(rd64(v)));
			CHECK(a.ctime.nsec == rd32(v + 8));
			break;
		case TWINFS_CM_A_DATA:
			REQUIRE(a.data_len == at.v.size());
			CHECK(std::equal(at.v.begin(), at.v.end(), a.data));
			break;
		case TWINFS_CM_A_SYMLINK_TARGET:
			CHECK(text(a.symlink, a.symlink_len) == sv);
			break;
		default:
			FAIL("unexpected attribute type " << at.type);
		}
	}
	CHECK(a.present == present);
}

// ---- lanes ----------------------------------------------------------------

struct Scanned {
	int ret = 0;
	std::string why;
	twinfs_cm_scan res{};
	std::vector<twinfs_cm_scan_ent> ents;
};

Scanned scan(const Bytes &lane, u32 head, u32 gen, u32 lane_idx = 0,
	     std::optional<u32> max_ents = {})
{
	Scanned s;
	const char *why = nullptr;
	const u32 size = static_cast<u32>(lane.size());
	s.ents.resize(max_ents.value_or(size / TWINFS_CM_REC_ALIGN));
	s.ret = twinfs_cm_lane_scan(lane.data(), size, lane_idx, head, gen, s.ents.data(),
				    static_cast<u32>(s.ents.size()), &s.res, &why);
	if (why)
		s.why = why;
	s.ents.resize(s.ret == 0 ? s.res.count : 0);
	return s;
}

// A WRITE record taking exactly `size` bytes in a lane (at least 128: the
// smallest record of any op takes two lines).
Bytes write_rec(u64 seq, u64 acked, u32 gen, u32 size = 128)
{
	// Header 40, INO 12, OFFSET 12, CTIME 16, DATA 4 + data.
	REQUIRE(size >= 128);
	Spec s = minimal(TWINFS_CM_OP_WRITE);
	s.set(TWINFS_CM_A_DATA, Bytes(size - 84, 0x5a));
	s.seq = seq;
	s.acked = acked;
	s.gen = gen;
	Bytes r = encode(s);
	REQUIRE(r.size() == size);
	return r;
}

void put(Bytes &lane, u32 off, const Bytes &rec)
{
	REQUIRE(off + rec.size() <= lane.size());
	std::copy(rec.begin(), rec.end(), lane.begin() + off);
}

twinfs_cm_scan_ent ent(u64 seq, u64 acked, u32 lane = 0, u32 off = 0)
{
	twinfs_cm_scan_ent e{};
	e.seq = seq;
	e.acked_upto = acked;
	e.lane = lane;
	e.off = off;
	e.size = 64;
	return e;
}

struct Planned {
	int ret = 0;
	std::string why;
	twinfs_cm_plan plan{};
	std::vector<twinfs_cm_scan_ent> ents;
	std::vector<u64> replay;	// seqs in replay order
};

Planned plan(std::vector<twinfs_cm_scan_ent> ents, u64 cp_seq)
{
	Planned p;
	const char *why = nullptr;
	p.ents = std::move(ents);
	p.ret = twinfs_cm_plan_replay(p.ents.data(), static_cast<u32>(p.ents.size()), cp_seq,
				      &p.plan, &why);
	if (why)
		p.why = why;
	if (p.ret == 0)
		for (u32 i = 0; i < p.plan.count; i++)
			p.replay.push_back(p.ents[p.plan.first + i].seq);
	return p;
}

std::vector<u64> seqs(u64 from, u64 to)
{
	std::vector<u64> v;
	for (u64 s = from; s <= to; s++)
		v.push_back(s);
	return v;
}

} // namespace

// ===========================================================================
// Format
// ===========================================================================

TEST_CASE("record header layout is the documented one", "[cm][format]")
{
	const Bytes r = encode(minimal(TWINFS_CM_OP_UNLINK));
	const Bytes p = payload_of(minimal(TWINFS_CM_OP_UNLINK));

	CHECK(rd32(&r[0]) == TWINFS_CM_REC_MAGIC);
	CHECK(std::string(r.begin(), r.begin() + 4) == "RCWT");	// LE of "TWCR"
	CHECK(rd32(&r[4]) == twinfs_csum_block(r.data(), 40, 4));
	CHECK(rd64(&r[8]) == 10);
	CHECK(rd64(&r[16]) == 9);
	CHECK((r[24] | r[25] << 8) == TWINFS_CM_OP_UNLINK);
	CHECK((r[26] | r[27] << 8) == 0);
	CHECK(rd32(&r[28]) == p.size());
	CHECK(rd32(&r[32]) == ~twinfs_crc32c(~0u, p.data(), p.size()));
	CHECK(rd32(&r[36]) == 3);
	CHECK(Bytes(r.begin() + 40, r.begin() + 40 + static_cast<long>(p.size())) == p);
	CHECK(r.size() % 64 == 0);
	CHECK(r.size() == twinfs_cm_rec_size(static_cast<u32>(p.size())));
	// Padding is zero.
	CHECK(std::all_of(r.begin() + 40 + static_cast<long>(p.size()), r.end(),
			  [](u8 b) { return b == 0; }));
	CHECK(raw_record(TWINFS_CM_OP_UNLINK, p) == r);

	CHECK(twinfs_cm_rec_size(0) == 64);
	CHECK(twinfs_cm_rec_size(24) == 64);
	CHECK(twinfs_cm_rec_size(25) == 128);
	CHECK(twinfs_cm_rec_size(TWINFS_CM_PAYLOAD_MAX) == TWINFS_CM_REC_MAX);
	CHECK(offsetof(twinfs_cm_header, h_lanes) == 64);
	CHECK(offsetof(twinfs_cm_header, h_checksum) == 2044);
}

// ===========================================================================
// Encode / decode round trips
// ===========================================================================

TEST_CASE("every op round-trips with its required attributes", "[cm][decode]")
{
	for (u16 op : ALL_OPS) {
		INFO("op " << op);
		const Spec s = minimal(op);
		const Bytes r = encode(s);
		const Decoded d = decode(r);
		REQUIRE(d.ret == 0);
		CHECK(d.ri.op == op);
		CHECK(d.ri.seq == 10);
		CHECK(d.ri.acked_upto == 9);
		CHECK(d.ri.gen == 3);
		CHECK(d.ri.flags == 0);
		CHECK(d.ri.size == r.size());
		check_matches(s, d.a);
	}
}

TEST_CASE("every op round-trips with every attribute it allows", "[cm][decode]")
{
	auto rng = twinfs_test::make_rng(0xc3e1);
	u32 seen = 0;

	for (u16 op : ALL_OPS) {
		for (int iter = 0; iter < 60; iter++) {
			INFO("op " << op << " iteration " << iter);
			Spec s = iter == 0 ? full(op) : random_full(rng, op);
			s.seq = uniform<u64>(rng, 1, ~0ull);
			s.acked = uniform<u64>(rng, 0, s.seq - 1);
			s.gen = uniform<u32>(rng, 0, ~0u);
			const Bytes r = encode(s);
			CHECK(encode_typed(s) == r);
			const Decoded d = decode(r, s.gen);
			REQUIRE(d.why == "");
			REQUIRE(d.ret == 0);
			CHECK(d.ri.seq == s.seq);
			CHECK(d.ri.acked_upto == s.acked);
			CHECK(d.ri.op == op);
			check_matches(s, d.a);
			seen |= d.a.present;
		}
	}
	// Every attribute type was exercised by some op.
	for (u32 t = 1; t <= TWINFS_CM_A_MAX; t++)
		CHECK((seen & (1u << t)));
}

TEST_CASE("limits: longest name, symlink target, data, extreme values", "[cm][decode]")
{
	Spec s = full(TWINFS_CM_OP_RENAME);
	s.set(TWINFS_CM_A_NAME, str(std::string(255, 'n')));
	s.set(TWINFS_CM_A_NEW_NAME, str(std::string(255, 'm')));
	REQUIRE(decode(encode(s)).ret == 0);

	Spec l = minimal(TWINFS_CM_OP_SYMLINK);
	l.set(TWINFS_CM_A_SYMLINK_TARGET, str(std::string(TWINFS_CM_SYMLINK_MAX, 'x')));
	REQUIRE(decode(encode(l)).ret == 0);

	Spec w = minimal(TWINFS_CM_OP_WRITE);
	w.set(TWINFS_CM_A_DATA, Bytes(TWINFS_CM_DATA_MAX, 0xee));
	w.set(TWINFS_CM_A_OFFSET, le64(TWINFS_CM_MAX_FILE_SIZE - TWINFS_CM_DATA_MAX));
	const Bytes wr = encode(w);
	const Decoded d = decode(wr);
	REQUIRE(d.ret == 0);
	CHECK(d.a.data_len == TWINFS_CM_DATA_MAX);

	Spec t = minimal(TWINFS_CM_OP_TRUNCATE);
	t.set(TWINFS_CM_A_SIZE, le64(TWINFS_CM_MAX_FILE_SIZE));
	t.set(TWINFS_CM_A_CTIME, tspec(INT64_MIN, 999999999));
	REQUIRE(decode(encode(t)).ret == 0);

	// The largest record fits a lane's maximum exactly.
	Bytes payload;
	Spec big = minimal(TWINFS_CM_OP_WRITE);
	big.set(TWINFS_CM_A_DATA, Bytes(TWINFS_CM_DATA_MAX, 1));
	CHECK(encode(big).size() <= TWINFS_CM_REC_MAX);
}

TEST_CASE("builder: -ENOSPC when the buffer is too small, sticky errors", "[cm][encode]")
{
	const Spec s = full(TWINFS_CM_OP_SETATTR);
	const Bytes whole = encode(s);

	// Every smaller buffer fails with -ENOSPC and writes nothing beyond it.
	for (u32 cap = 0; cap < whole.size(); cap++) {
		Bytes buf(whole.size() + 64, 0xcc);
		twinfs_cm_builder b;
		int ret = twinfs_cm_rec_begin(&b, buf.data(), cap, s.op);
		for (const auto &a : s.attrs) {
			const int r = twinfs_cm_put_bytes(&b, a.type, a.v.data(),
							  static_cast<u32>(a.v.size()));
			if (!ret)
				ret = r;
		}
		const int end = twinfs_cm_rec_end(&b, s.seq, s.acked, s.gen);
		INFO("cap " << cap);
		CHECK(end == -ENOSPC);
		// The attributes fail once they do not fit; the padding only
		// at the end.
		if (cap < 40 + payload_of(s).size())
			CHECK(ret == -ENOSPC);
		else
			CHECK(ret == 0);
		CHECK(std::all_of(buf.begin() + cap, buf.end(), [](u8 x) { return x == 0xcc; }));
	}
	// Exactly enough works.
	Bytes buf(whole.size());
	twinfs_cm_builder b;
	REQUIRE(twinfs_cm_rec_begin(&b, buf.data(), static_cast<u32>(buf.size()), s.op) == 0);
	for (const auto &a : s.attrs)
		REQUIRE(twinfs_cm_put_bytes(&b, a.type, a.v.data(), static_cast<u32>(a.v.size())) == 0);
	REQUIRE(twinfs_cm_rec_end(&b, s.seq, s.acked, s.gen) == static_cast<int>(whole.size()));
	CHECK(buf == whole);
}

TEST_CASE("builder: -EINVAL for a value over 65535 bytes, -E2BIG past the payload maximum",
	  "[cm][encode]")
{
	Bytes buf(2 * TWINFS_CM_REC_MAX);
	const Bytes big(70000, 1), half(40000, 2);
	twinfs_cm_builder b;

	REQUIRE(twinfs_cm_rec_begin(&b, buf.data(), static_cast<u32>(buf.size()),
				    TWINFS_CM_OP_WRITE) == 0);
	CHECK(twinfs_cm_put_bytes(&b, TWINFS_CM_A_DATA, big.data(), 70000) == -EINVAL);
	CHECK(twinfs_cm_put_u64(&b, TWINFS_CM_A_INO, 5) == -EINVAL);	// sticky
	CHECK(twinfs_cm_rec_end(&b, 1, 0, 0) == -EINVAL);

	REQUIRE(twinfs_cm_rec_begin(&b, buf.data(), static_cast<u32>(buf.size()),
				    TWINFS_CM_OP_WRITE) == 0);
	CHECK(twinfs_cm_put_bytes(&b, TWINFS_CM_A_DATA, half.data(), 40000) == 0);
	CHECK(twinfs_cm_put_bytes(&b, TWINFS_CM_A_DATA, half.data(), 40000) == -E2BIG);
	CHECK(twinfs_cm_rec_end(&b, 1, 0, 0) == -E2BIG);
}

TEST_CASE("seal restamps seq, watermark and generation of a built record", "[cm][encode]")
{
	Bytes r = encode(minimal(TWINFS_CM_OP_LINK));
	twinfs_cm_rec_seal(r.data(), 77, 70, 12345);
	const Decoded d = decode(r, 12345);
	REQUIRE(d.ret == 0);
	CHECK(d.ri.seq == 77);
	CHECK(d.ri.acked_upto == 70);
	CHECK(decode(r, 3).why == "record of another lane generation");
}

// ===========================================================================
// Decoder rejections: one test per rule, each with its message
// ===========================================================================

// -- framing (a scan takes these as "no record here") --

TEST_CASE("decoder rejects: record shorter than one line", "[cm][reject]")
{
	const Bytes r = encode(minimal(TWINFS_CM_OP_UNLINK));
	expect_reject(r, "record header beyond the end of its space", 3, 63);
	expect_reject(r, "record header beyond the end of its space", 3, 0);
}

TEST_CASE("decoder rejects: bad magic", "[cm][reject]")
{
	Bytes r = encode(minimal(TWINFS_CM_OP_UNLINK));
	r[0] ^= 1;
	reseal_header(r);
	expect_reject(r, "bad record magic");
	expect_reject(Bytes(64, 0), "bad record magic");
}

TEST_CASE("decoder rejects: header checksum", "[cm][reject]")
{
	const Bytes good = encode(minimal(TWINFS_CM_OP_UNLINK));
	// Any single bit of the header other than the magic.
	for (u32 bit = 32; bit < 40 * 8; bit++) {
		Bytes r = good;
		r[bit / 8] ^= static_cast<u8>(1u << (bit % 8));
		INFO("bit " << bit);
		expect_reject(r, "record header checksum mismatch");
	}
}

TEST_CASE("decoder rejects: another lane generation", "[cm][reject]")
{
	const Bytes r = encode(minimal(TWINFS_CM_OP_UNLINK));
	expect_reject(r, "record of another lane generation", 4);
	expect_reject(r, "record of another lane generation", 2);
}

TEST_CASE("decoder rejects: payload length over the maximum", "[cm][reject]")
{
	Bytes r(TWINFS_CM_REC_MAX + 128, 0);
	const Bytes e = encode(minimal(TWINFS_CM_OP_UNLINK));
	std::copy(e.begin(), e.end(), r.begin());
	wr32(&r[28], TWINFS_CM_PAYLOAD_MAX + 1);
	reseal_header(r);
	expect_reject(r, "record payload longer than the maximum");
	wr32(&r[28], 0xffffffffu);
	reseal_header(r);
	expect_reject(r, "record payload longer than the maximum");
}

TEST_CASE("decoder rejects: record beyond its space (len bounds against the lane)",
	  "[cm][reject]")
{
	Spec s = minimal(TWINFS_CM_OP_WRITE);
	s.set(TWINFS_CM_A_DATA, Bytes(100, 1));
	const Bytes r = encode(s);
	REQUIRE(r.size() == 192);
	expect_reject(r, "record extends beyond the end of its space", 3, 191);
	expect_reject(r, "record extends beyond the end of its space", 3, 128);
	CHECK(decode(r, 3, 192).ret == 0);
}

TEST_CASE("decoder rejects: payload checksum (a torn record)", "[cm][reject]")
{
	Spec s = minimal(TWINFS_CM_OP_WRITE);
	s.set(TWINFS_CM_A_DATA, Bytes(300, 1));
	const Bytes good = encode(s);
	for (size_t i = 40; i < 40 + payload_of(s).size(); i += 7) {
		Bytes r = good;
		r[i] ^= 0x80;
		INFO("byte " << i);
		expect_reject(r, "record payload checksum mismatch");
	}
	// A second cache line still holding older bytes.
	Bytes torn = good;
	std::fill(torn.begin() + 128, torn.begin() + 192, 0);
	expect_reject(torn, "record payload checksum mismatch");
}

// -- header contents --

TEST_CASE("decoder rejects: seq 0", "[cm][reject]")
{
	Spec s = minimal(TWINFS_CM_OP_UNLINK);
	s.seq = 0;
	s.acked = 0;
	expect_reject(s, "record seq is 0");
}

TEST_CASE("decoder rejects: acked_upto not below seq", "[cm][reject]")
{
	Spec s = minimal(TWINFS_CM_OP_UNLINK);
	s.acked = s.seq;
	expect_reject(s, "record acked_upto not below its seq");
	s.acked = s.seq + 1;
	expect_reject(s, "record acked_upto not below its seq");
}

TEST_CASE("decoder rejects: unknown operation", "[cm][reject]")
{
	const Bytes p = payload_of(minimal(TWINFS_CM_OP_UNLINK));
	expect_reject(raw_record(0, p), "unknown operation");
	expect_reject(raw_record(TWINFS_CM_OP_MAX + 1, p), "unknown operation");
	expect_reject(raw_record(0xffff, p), "unknown operation");
}

TEST_CASE("decoder rejects: unknown record flags", "[cm][reject]")
{
	const Bytes p = payload_of(minimal(TWINFS_CM_OP_UNLINK));
	CHECK(decode(raw_record(TWINFS_CM_OP_UNLINK, p)).ret == 0);
	for (u16 f = 1; f; f = static_cast<u16>(f << 1))
		expect_reject(raw_record(TWINFS_CM_OP_UNLINK, p, 10, 9, 3, f),
			      "unknown record flags");
}

// -- attribute framing --

TEST_CASE("decoder rejects: attribute header truncated", "[cm][reject]")
{
	Bytes p = payload_of(minimal(TWINFS_CM_OP_UNLINK));
	for (int extra = 1; extra < 4; extra++) {
		Bytes q = p;
		q.insert(q.end(), static_cast<size_t>(extra), 1);
		expect_reject(raw_record(TWINFS_CM_OP_UNLINK, q), "attribute header truncated");
	}
}

TEST_CASE("decoder rejects: attribute value beyond the payload", "[cm][reject]")
{
	Bytes p = payload_of(minimal(TWINFS_CM_OP_UNLINK));
	Bytes q = p;
	const Bytes h = le16(TWINFS_CM_A_FLAGS), l = le16(4);
	q.insert(q.end(), h.begin(), h.end());
	q.insert(q.end(), l.begin(), l.end());
	q.insert(q.end(), 3, 0);
	expect_reject(raw_record(TWINFS_CM_OP_UNLINK, q),
		      "attribute value beyond the end of the payload");
	// The first attribute claiming more than everything.
	Bytes r = p;
	r[2] = 0xff;
	r[3] = 0xff;
	expect_reject(raw_record(TWINFS_CM_OP_UNLINK, r),
		      "attribute value beyond the end of the payload");
}

TEST_CASE("decoder rejects: unknown attribute type", "[cm][reject]")
{
	for (u16 t : {u16{0}, static_cast<u16>(TWINFS_CM_A_MAX + 1), u16{0xffff}}) {
		Spec s = minimal(TWINFS_CM_OP_UNLINK);
		s.add(t, le32(0));
		expect_reject(s, "unknown attribute type");
	}
}

TEST_CASE("decoder rejects: duplicate attribute", "[cm][reject]")
{
	Spec s = minimal(TWINFS_CM_OP_UNLINK);
	s.add(TWINFS_CM_A_INO, le64(100));
	expect_reject(s, "duplicate attribute");
	Spec n = minimal(TWINFS_CM_OP_CREATE);
	n.add(TWINFS_CM_A_NAME, str("other"));
	expect_reject(n, "duplicate attribute");
}

TEST_CASE("decoder rejects: attribute not allowed for the operation", "[cm][reject]")
{
	// For every op, every attribute type outside its full set.
	for (u16 op : ALL_OPS) {
		u32 allowed = 0;
		for (const auto &a : full(op).attrs)
			allowed |= 1u << a.type;
		if (op == TWINFS_CM_OP_SETATTR)
			allowed |= 1u << TWINFS_CM_A_MODE;
		for (u16 t = 1; t <= TWINFS_CM_A_MAX; t++) {
			if (allowed & (1u << t))
				continue;
			INFO("op " << op << " attribute " << t);
			Spec s = minimal(op);
			s.add(t, full(TWINFS_CM_OP_CREATE).attrs[0].v);	// any 8 bytes
			expect_reject(s, "attribute not allowed for this operation");
		}
	}
}

TEST_CASE("decoder rejects: fixed-size attribute with the wrong length", "[cm][reject]")
{
	const std::pair<u16, u16> fixed[] = {
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_PARENT_INO},
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_INO},
		{TWINFS_CM_OP_RENAME, TWINFS_CM_A_NEW_PARENT_INO},
		{TWINFS_CM_OP_RENAME, TWINFS_CM_A_TARGET_INO},
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_MODE},
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_UID},
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_GID},
		{TWINFS_CM_OP_TRUNCATE, TWINFS_CM_A_SIZE},
		{TWINFS_CM_OP_SETATTR, TWINFS_CM_A_ATIME},
		{TWINFS_CM_OP_SETATTR, TWINFS_CM_A_MTIME},
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_CTIME},
		{TWINFS_CM_OP_MKNOD, TWINFS_CM_A_RDEV},
		{TWINFS_CM_OP_WRITE, TWINFS_CM_A_OFFSET},
		{TWINFS_CM_OP_CREATE, TWINFS_CM_A_GENERATION},
		{TWINFS_CM_OP_SETATTR, TWINFS_CM_A_FLAGS},
	};
	for (auto [op, t] : fixed) {
		for (size_t len : {size_t{0}, size_t{1}, size_t{3}, size_t{5}, size_t{7},
				   size_t{9}, size_t{11}, size_t{13}, size_t{16}}) {
			Spec s = full(op);
			Bytes v;
			for (const auto &a : s.attrs)
				if (a.type == t)
					v = a.v;
			REQUIRE(!v.empty());
			if (len == v.size())
				continue;
			v.resize(len, 0);
			s.set(t, v);
			INFO("attribute " << t << " length " << len);
			expect_reject(s, "attribute has the wrong length");
		}
	}
}

// -- values --

TEST_CASE("decoder rejects: empty name", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_CREATE)).set(TWINFS_CM_A_NAME, {}),
		      "name is empty");
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_NEW_NAME, {}),
		      "name is empty");
}

TEST_CASE("decoder rejects: name longer than 255 bytes", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_LINK))
			      .set(TWINFS_CM_A_NAME, str(std::string(256, 'a'))),
		      "name longer than 255 bytes");
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME))
			      .set(TWINFS_CM_A_NEW_NAME, str(std::string(1000, 'a'))),
		      "name longer than 255 bytes");
}

TEST_CASE("decoder rejects: name containing '/'", "[cm][reject]")
{
	for (const char *n : {"/", "a/b", "abc/", "/abc"})
		expect_reject(Spec(minimal(TWINFS_CM_OP_UNLINK)).set(TWINFS_CM_A_NAME, str(n)),
			      "name contains '/'");
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_NEW_NAME, str("x/y")),
		      "name contains '/'");
}

TEST_CASE("decoder rejects: name containing NUL", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_MKDIR))
			      .set(TWINFS_CM_A_NAME, Bytes{'a', 0, 'b'}),
		      "name contains NUL");
	expect_reject(Spec(minimal(TWINFS_CM_OP_MKDIR)).set(TWINFS_CM_A_NAME, Bytes{0}),
		      "name contains NUL");
}

TEST_CASE("decoder rejects: name . or ..", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_RMDIR)).set(TWINFS_CM_A_NAME, str(".")),
		      "name is . or ..");
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_NEW_NAME, str("..")),
		      "name is . or ..");
	// Other dotted names are fine.
	for (const char *n : {"...", ".a", "..a", "a."})
		CHECK(decode(encode(Spec(minimal(TWINFS_CM_OP_RMDIR))
					    .set(TWINFS_CM_A_NAME, str(n))))
			      .ret == 0);
}

TEST_CASE("decoder rejects: inode number 0", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_CREATE)).set(TWINFS_CM_A_PARENT_INO, le64(0)),
		      "inode number 0");
	expect_reject(Spec(minimal(TWINFS_CM_OP_WRITE)).set(TWINFS_CM_A_INO, le64(0)),
		      "inode number 0");
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_NEW_PARENT_INO, le64(0)),
		      "inode number 0");
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_TARGET_INO, le64(0)),
		      "inode number 0");
}

TEST_CASE("decoder rejects: nanoseconds of a second or more", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_UNLINK)).set(TWINFS_CM_A_CTIME, tspec(1, 1000000000)),
		      "nanoseconds not below one second");
	expect_reject(Spec(full(TWINFS_CM_OP_SETATTR)).set(TWINFS_CM_A_ATIME, tspec(1, ~0u)),
		      "nanoseconds not below one second");
	expect_reject(Spec(full(TWINFS_CM_OP_SETATTR)).set(TWINFS_CM_A_MTIME, tspec(0, 1000000001)),
		      "nanoseconds not below one second");
}

TEST_CASE("decoder rejects: uid or gid -1", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_CREATE)).set(TWINFS_CM_A_UID, le32(~0u)),
		      "uid or gid is -1");
	expect_reject(Spec(full(TWINFS_CM_OP_SETATTR)).set(TWINFS_CM_A_GID, le32(~0u)),
		      "uid or gid is -1");
}

TEST_CASE("decoder rejects: size or offset beyond the maximum file size", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_TRUNCATE))
			      .set(TWINFS_CM_A_SIZE, le64(TWINFS_CM_MAX_FILE_SIZE + 1)),
		      "size or offset beyond the maximum file size");
	expect_reject(Spec(minimal(TWINFS_CM_OP_WRITE)).set(TWINFS_CM_A_OFFSET, le64(~0ull)),
		      "size or offset beyond the maximum file size");
}

TEST_CASE("decoder rejects: mode with unknown bits", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_CREATE)).set(TWINFS_CM_A_MODE, le32(0200644)),
		      "mode has unknown bits");
	expect_reject(Spec(minimal(TWINFS_CM_OP_SETATTR)).set(TWINFS_CM_A_MODE, le32(1u << 31)),
		      "mode has unknown bits");
}

TEST_CASE("decoder rejects: data length out of bounds", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_WRITE)).set(TWINFS_CM_A_DATA, {}),
		      "data length not 1 .. 32768");
	expect_reject(Spec(minimal(TWINFS_CM_OP_WRITE))
			      .set(TWINFS_CM_A_DATA, Bytes(TWINFS_CM_DATA_MAX + 1, 0)),
		      "data length not 1 .. 32768");
}

TEST_CASE("decoder rejects: symlink target length out of bounds", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_SYMLINK)).set(TWINFS_CM_A_SYMLINK_TARGET, {}),
		      "symlink target length not 1 .. 4095");
	expect_reject(Spec(minimal(TWINFS_CM_OP_SYMLINK))
			      .set(TWINFS_CM_A_SYMLINK_TARGET, Bytes(4096, 'a')),
		      "symlink target length not 1 .. 4095");
}

TEST_CASE("decoder rejects: symlink target containing NUL", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_SYMLINK))
			      .set(TWINFS_CM_A_SYMLINK_TARGET, Bytes{'a', 0}),
		      "symlink target contains NUL");
}

// -- per-op rules --

TEST_CASE("decoder rejects: a required attribute missing", "[cm][reject]")
{
	for (u16 op : ALL_OPS) {
		const Spec m = minimal(op);
		for (const auto &a : m.attrs) {
			if (op == TWINFS_CM_OP_SETATTR && a.type == TWINFS_CM_A_MODE)
				continue;	// optional: one change of several
			INFO("op " << op << " without attribute " << a.type);
			expect_reject(Spec(m).drop(a.type), "required attribute missing");
		}
	}
	expect_reject(raw_record(TWINFS_CM_OP_WRITE, {}), "required attribute missing");
}

TEST_CASE("decoder rejects: file type in mode not the op's", "[cm][reject]")
{
	const u32 types[] = {0, 0010000, 0020000, 0040000, 0060000, 0100000, 0120000, 0140000,
			     0170000};
	for (u16 op : {TWINFS_CM_OP_CREATE, TWINFS_CM_OP_MKNOD, TWINFS_CM_OP_MKDIR,
		       TWINFS_CM_OP_SYMLINK}) {
		for (u32 t : types) {
			Spec s = minimal(op).set(TWINFS_CM_A_MODE, le32(t | 0644));
			const bool ok = op == TWINFS_CM_OP_MKNOD
						? t == 0010000 || t == 0020000 ||
							  t == 0060000 || t == 0140000
						: t == (create_mode(op) & 0170000);
			INFO("op " << op << " type " << t);
			if (ok)
				CHECK(decode(encode(s)).ret == 0);
			else
				expect_reject(s, "file type in mode does not match the operation");
		}
	}
}

TEST_CASE("decoder rejects: setattr that changes nothing", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_SETATTR)).drop(TWINFS_CM_A_MODE),
		      "setattr changes nothing");
}

TEST_CASE("decoder rejects: setattr mode with a file type", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_SETATTR)).set(TWINFS_CM_A_MODE, le32(0100644)),
		      "setattr mode has a file type");
}

TEST_CASE("decoder rejects: unknown rename flags", "[cm][reject]")
{
	for (u32 f : {4u, 8u, 0x80000000u})
		expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_FLAGS, le32(f)),
			      "unknown rename flags");
}

TEST_CASE("decoder rejects: rename both noreplace and exchange", "[cm][reject]")
{
	expect_reject(Spec(full(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_FLAGS, le32(3)),
		      "rename both noreplace and exchange");
}

TEST_CASE("decoder rejects: rename exchange without a target", "[cm][reject]")
{
	expect_reject(Spec(minimal(TWINFS_CM_OP_RENAME))
			      .set(TWINFS_CM_A_FLAGS, le32(TWINFS_CM_RENAME_EXCHANGE)),
		      "rename exchange without a target inode");
	CHECK(decode(encode(Spec(full(TWINFS_CM_OP_RENAME))
				    .set(TWINFS_CM_A_FLAGS, le32(TWINFS_CM_RENAME_EXCHANGE))))
		      .ret == 0);
}

TEST_CASE("decoder rejects: rename noreplace with a target", "[cm][reject]")
{
	expect_reject(Spec(full(TWINFS_CM_OP_RENAME))
			      .set(TWINFS_CM_A_FLAGS, le32(TWINFS_CM_RENAME_NOREPLACE)),
		      "rename noreplace with a target inode");
	CHECK(decode(encode(Spec(minimal(TWINFS_CM_OP_RENAME))
				    .set(TWINFS_CM_A_FLAGS, le32(TWINFS_CM_RENAME_NOREPLACE))))
		      .ret == 0);
}

TEST_CASE("decoder rejects: rename target is the inode moved", "[cm][reject]")
{
	expect_reject(Spec(full(TWINFS_CM_OP_RENAME)).set(TWINFS_CM_A_TARGET_INO, le64(100)),
		      "rename target is the inode moved");
}

TEST_CASE("decoder rejects: write beyond the maximum file size", "[cm][reject]")
{
	Spec s = minimal(TWINFS_CM_OP_WRITE);
	const u64 n = rd32(&le32(12)[0]);
	s.set(TWINFS_CM_A_OFFSET, le64(TWINFS_CM_MAX_FILE_SIZE - n + 1));
	expect_reject(s, "write beyond the maximum file size");
	s.set(TWINFS_CM_A_OFFSET, le64(TWINFS_CM_MAX_FILE_SIZE - n));
	CHECK(decode(encode(s)).ret == 0);
}

TEST_CASE("payload parser alone checks the op and the payload bound", "[cm][reject]")
{
	twinfs_cm_attrs a;
	const char *why = nullptr;
	const Bytes p = payload_of(minimal(TWINFS_CM_OP_UNLINK));
	CHECK(twinfs_cm_payload_parse(TWINFS_CM_OP_UNLINK, p.data(),
				      static_cast<u32>(p.size()), &a, &why) == 0);
	CHECK(twinfs_cm_payload_parse(0, p.data(), static_cast<u32>(p.size()), &a, &why) ==
	      -EUCLEAN);
	CHECK(std::string(why) == "unknown operation");
	CHECK(twinfs_cm_payload_parse(TWINFS_CM_OP_UNLINK, p.data(), TWINFS_CM_PAYLOAD_MAX + 1,
				      &a, &why) == -EUCLEAN);
	CHECK(std::string(why) == "record payload longer than the maximum");
	// why may be NULL.
	CHECK(twinfs_cm_payload_parse(0, p.data(), 0, &a, nullptr) == -EUCLEAN);
}

// ===========================================================================
// Lane scanning
// ===========================================================================

TEST_CASE("scan: an empty or zeroed lane has no record; tail at the head", "[cm][scan]")
{
	const Bytes lane(4096, 0);
	for (u32 head : {0u, 64u, 4032u}) {
		const Scanned s = scan(lane, head, 9);
		REQUIRE(s.ret == 0);
		CHECK(s.res.count == 0);
		CHECK(s.res.tail == head);
		CHECK(s.res.tail_gen == 9);
		CHECK(s.res.used == 0);
	}
}

TEST_CASE("scan: records of the current generation in order, tail after the last",
	  "[cm][scan]")
{
	Bytes lane(8192, 0);
	u32 off = 0;
	std::vector<u32> offs;
	for (u64 seq = 1; seq <= 10; seq++) {
		const Bytes r = write_rec(seq * 3, seq * 3 - 1, 5, static_cast<u32>(128 + 64 * (seq % 3)));
		offs.push_back(off);
		put(lane, off, r);
		off += static_cast<u32>(r.size());
	}
	const Scanned s = scan(lane, 0, 5, 7);
	REQUIRE(s.ret == 0);
	REQUIRE(s.res.count == 10);
	for (u32 i = 0; i < 10; i++) {
		CHECK(s.ents[i].seq == (i + 1) * 3);
		CHECK(s.ents[i].acked_upto == (i + 1) * 3 - 1);
		CHECK(s.ents[i].off == offs[i]);
		CHECK(s.ents[i].lane == 7);
		CHECK(s.ents[i].gen == 5);
		CHECK(s.ents[i].op == TWINFS_CM_OP_WRITE);
	}
	CHECK(s.res.tail == off);
	CHECK(s.res.tail_gen == 5);
	CHECK(s.res.used == off);

	// Starting from a later head sees only the records from there.
	const Scanned t = scan(lane, offs[4], 5);
	REQUIRE(t.ret == 0);
	CHECK(t.res.count == 6);
	CHECK(t.ents[0].seq == 15);
	CHECK(t.res.used == off - offs[4]);
}

TEST_CASE("scan: stale records of an earlier lap end the walk", "[cm][scan]")
{
	Bytes lane(4096, 0);
	// Lap 4 filled the lane; lap 5 rewrote its first part.
	u32 off = 0;
	for (u64 seq = 1; off + 128 <= lane.size(); seq++) {
		put(lane, off, write_rec(seq, seq - 1, 4, 128));
		off += 128;
	}
	off = 0;
	for (u64 seq = 100; seq < 105; seq++) {
		put(lane, off, write_rec(seq, 99, 5, 128));
		off += 128;
	}
	const Scanned s = scan(lane, 0, 5);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 5);
	CHECK(s.res.tail == off);
	CHECK(s.res.tail_gen == 5);

	// A stale record of a later generation is no record either.
	put(lane, off, write_rec(105, 99, 6, 128));
	CHECK(scan(lane, 0, 5).res.count == 5);
}

TEST_CASE("scan: a torn tail (header valid, payload checksum wrong) is the tail",
	  "[cm][scan]")
{
	Bytes lane(4096, 0);
	u32 off = 0;
	for (u64 seq = 1; seq <= 4; seq++) {
		put(lane, off, write_rec(seq, seq - 1, 2, 256));
		off += 256;
	}
	// Record 5: only its first cache line reached the media.
	Bytes torn = write_rec(5, 4, 2, 256);
	std::fill(torn.begin() + 64, torn.end(), 0);
	put(lane, off, torn);
	// After it, what an earlier lap left.
	put(lane, off + 256, write_rec(6, 4, 1, 256));

	const Scanned s = scan(lane, 0, 2);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 4);
	CHECK(s.res.tail == off);
	CHECK(s.res.tail_gen == 2);

	// A lane is written in order, each record whole before the next: a
	// later record of the lap means record 5 was whole once.
	put(lane, off + 256, write_rec(6, 4, 2, 256));
	const Scanned c = scan(lane, 0, 2);
	CHECK(c.ret == -EUCLEAN);
	CHECK(c.why == "corrupt record before the end of the lane");
	CHECK(c.res.bad_off == off);
	put(lane, off + 256, write_rec(6, 4, 1, 256));

	// A torn header line is no record too.
	Bytes torn_hdr = write_rec(5, 4, 2, 256);
	std::fill(torn_hdr.begin() + 16, torn_hdr.begin() + 24, 0xff);
	put(lane, off, torn_hdr);
	CHECK(scan(lane, 0, 2).res.count == 4);
	CHECK(scan(lane, 0, 2).res.tail == off);
}

TEST_CASE("scan: the walk wraps to the next generation at offset 0 and stops at the head",
	  "[cm][scan]")
{
	Bytes lane(4096, 0);
	// Lap 7 from 2048 to 3840; the next 512-byte record did not fit in the
	// last 256 bytes, so lap 8 began at 0.
	u64 seq = 20;
	u32 off = 2048;
	for (; off + 256 <= 3840 + 1; off += 256)
		put(lane, off, write_rec(seq++, 0, 7, 256));
	const u32 end7 = off;
	REQUIRE(end7 == 3840);
	put(lane, end7, write_rec(999, 0, 6, 128));	// stale: lap 6
	off = 0;
	for (int i = 0; i < 3; i++, off += 512)
		put(lane, off, write_rec(seq++, 0, 8, 512));

	const Scanned s = scan(lane, 2048, 7);
	REQUIRE(s.ret == 0);
	REQUIRE(s.res.count == 10);
	CHECK(s.ents[6].off == 3584);
	CHECK(s.ents[6].gen == 7);
	CHECK(s.ents[7].off == 0);
	CHECK(s.ents[7].gen == 8);
	CHECK(s.ents[9].off == 1024);
	CHECK(s.res.tail == 1536);
	CHECK(s.res.tail_gen == 8);
	CHECK(s.res.used == 4096 - 2048 + 1536);

	// Lap 8 may fill up to the head: then the lane is full.
	put(lane, 1536, write_rec(seq, 0, 8, 512));	// 1536 .. 2048
	const Scanned f = scan(lane, 2048, 7);
	CHECK(f.res.count == 11);
	CHECK(f.res.tail == 2048);
	CHECK(f.res.tail_gen == 8);
	CHECK(f.res.used == 4096);

	// The head bounds the second lap: a lap 8 record crossing it is not
	// read.  (Head 1792 with nothing of lap 7 left: the lane had emptied
	// into the skipped end of lap 7.)
	Bytes lane2(4096, 0);
	put(lane2, 1792, write_rec(998, 0, 6, 256));	// stale
	for (u32 o = 0; o < 1536; o += 512)
		put(lane2, o, write_rec(100 + o, 0, 8, 512));
	put(lane2, 1536, write_rec(5000, 0, 8, 512));	// 1536 .. 2048
	const Scanned t = scan(lane2, 1792, 7);
	REQUIRE(t.ret == 0);
	CHECK(t.res.count == 3);
	CHECK(t.res.tail == 1536);
	CHECK(t.res.tail_gen == 8);
}

TEST_CASE("scan: a lap ending exactly at the lane end", "[cm][scan]")
{
	Bytes lane(2048, 0);
	for (u32 off = 0, seq = 1; off < 2048; off += 256, seq++)
		put(lane, off, write_rec(seq, 0, 1, 256));
	// Full: head 0, lap 1 to the end, nothing of lap 2.
	Scanned s = scan(lane, 0, 1);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 8);
	CHECK(s.res.tail == 0);
	CHECK(s.res.tail_gen == 2);
	CHECK(s.res.used == 2048);

	// Head at 512: the walk crosses the end into lap 2 records at 0.
	put(lane, 0, write_rec(9, 0, 2, 256));
	s = scan(lane, 512, 1);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 7);
	CHECK(s.ents.back().seq == 9);
	CHECK(s.res.tail == 256);
	CHECK(s.res.tail_gen == 2);
	// Without the lap 2 record: tail (0, gen 2), the lap ended at the end.
	put(lane, 0, write_rec(1, 0, 1, 256));
	s = scan(lane, 512, 1);
	CHECK(s.res.count == 6);
	CHECK(s.res.tail == 0);
	CHECK(s.res.tail_gen == 2);
}

// A lane is written in order, each record whole before the next one begins
// (under the lane's lock), so only its last record can be torn.  A record
// that is not whole with a later record of its lane after it was whole once:
// corruption of a record that may have been acknowledged, not a tail.

// Lap 4 of a 4096-byte lane from 0: six 256-byte records, seq 2, 4, .. 12.
Bytes six_records()
{
	Bytes lane(4096, 0);
	for (u64 i = 0; i < 6; i++)
		put(lane, static_cast<u32>(i * 256), write_rec(2 * i + 2, 2 * i + 1, 4, 256));
	return lane;
}

void check_corrupt_at(const Scanned &s, u32 off)
{
	CHECK(s.ret == -EUCLEAN);
	CHECK(s.why == "corrupt record before the end of the lane");
	CHECK(s.res.bad_off == off);
}

TEST_CASE("scan: a corrupt payload byte of a middle record is corruption, not a tail",
	  "[cm][scan]")
{
	Bytes lane = six_records();
	REQUIRE(scan(lane, 0, 4).res.count == 6);
	// The third record (seq 6, at 512) rots in its payload.
	lane[512 + 100] ^= 0x10;
	REQUIRE(twinfs_cm_rec_check(&lane[512], 4096 - 512, 4, nullptr, nullptr) ==
		-EUCLEAN);
	check_corrupt_at(scan(lane, 0, 4), 512);
	// From a head at the record itself, or with the lane's entries all
	// but used up: the same.
	check_corrupt_at(scan(lane, 512, 4), 512);
	check_corrupt_at(scan(lane, 0, 4, 0, 2), 512);
	// Only the last record of the lane is left after it.
	std::fill(lane.begin() + 768, lane.begin() + 1280, 0);
	check_corrupt_at(scan(lane, 0, 4), 512);
	// Without it, the broken record is the last one: a torn tail.
	std::fill(lane.begin() + 1280, lane.begin() + 1536, 0);
	const Scanned s = scan(lane, 0, 4);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 2);
	CHECK(s.res.tail == 512);
	CHECK(s.res.tail_gen == 4);
}

TEST_CASE("scan: a corrupt header of a middle record is corruption, not a tail",
	  "[cm][scan]")
{
	const Bytes good = six_records();
	Bytes lane = good;
	lane[512 + 8] ^= 0x01;				// seq: header checksum
	check_corrupt_at(scan(lane, 0, 4), 512);
	lane = good;
	std::fill(lane.begin() + 512, lane.begin() + 516, 0);	// magic
	check_corrupt_at(scan(lane, 0, 4), 512);
	lane = good;
	lane[512 + 36] ^= 0x01;				// generation
	check_corrupt_at(scan(lane, 0, 4), 512);
	lane = good;
	std::fill(lane.begin() + 512, lane.begin() + 768, 0);	// all of it
	check_corrupt_at(scan(lane, 0, 4), 512);
	// What an earlier lap left there, whole, is no record of this lap.
	put(lane, 512, write_rec(6, 5, 3, 256));
	check_corrupt_at(scan(lane, 0, 4), 512);
	// A length beyond the lane (header checksum fixed up to match).
	lane = good;
	wr32(&lane[512 + 28], 4096);
	twinfs_cm_rec_seal(&lane[512], 6, 5, 4);
	check_corrupt_at(scan(lane, 0, 4), 512);
	// The first record of the walk.
	lane = good;
	lane[0] ^= 0xff;
	check_corrupt_at(scan(lane, 0, 4), 0);
}

TEST_CASE("scan: a torn last record with garbage after it ends the lane", "[cm][scan]")
{
	auto rng = twinfs_test::make_rng(0x7042);
	Bytes lane(4096, 0);
	for (size_t i = 0; i < lane.size(); i += 8)
		wr64(&lane[i], rng());
	// Garbage that starts like records: magic on every line.
	for (u32 o = 0; o < 4096; o += 64)
		wr32(&lane[o], TWINFS_CM_REC_MAGIC);
	for (u64 i = 0; i < 4; i++)
		put(lane, static_cast<u32>(i * 256), write_rec(i + 1, i, 9, 256));
	const Bytes before = lane;
	for (int tear = 0; tear < 4; tear++) {
		lane = before;
		Bytes torn = write_rec(5, 4, 9, 256);
		switch (tear) {
		case 0:		// the header line only
			std::copy_n(torn.begin(), 64, lane.begin() + 1024);
			break;
		case 1:		// all but the header line
			std::copy(torn.begin() + 64, torn.end(), lane.begin() + 1024);
			break;
		case 2:		// all but one line of the payload
			std::copy(torn.begin(), torn.end() - 64, lane.begin() + 1024);
			break;
		default:	// nothing at all
			break;
		}
		INFO("tear " << tear);
		const Scanned s = scan(lane, 0, 9);
		REQUIRE(s.ret == 0);
		CHECK(s.res.count == 4);
		CHECK(s.res.tail == 1024);
		CHECK(s.res.tail_gen == 9);
		CHECK(s.res.used == 1024);
	}

	// A torn record that ends the lap at the end of the lane.
	Bytes full(2048, 0);
	for (u64 i = 0; i < 7; i++)
		put(full, static_cast<u32>(i * 256), write_rec(i + 1, i, 9, 256));
	Bytes torn = write_rec(8, 7, 9, 256);
	std::copy_n(torn.begin(), 64, full.begin() + 1792);
	const Scanned f = scan(full, 0, 9);
	REQUIRE(f.ret == 0);
	CHECK(f.res.count == 7);
	CHECK(f.res.tail == 1792);
	CHECK(f.res.tail_gen == 9);
}

TEST_CASE("scan: stale records of older generations after the tail do not count",
	  "[cm][scan]")
{
	Bytes lane(4096, 0);
	// Laps 2 and 3 filled the lane with 128-byte and 256-byte records;
	// lap 4 wrote three 512-byte records from 0.  The seqs of the stale
	// records are no help: a lane reset starts again from lower seqs.
	for (u32 o = 0; o < 4096; o += 128)
		put(lane, o, write_rec(5000 + o, 4999 + o, 2, 128));
	for (u32 o = 1024; o < 4096; o += 256)
		put(lane, o, write_rec(9000 + o, 8999 + o, 3, 256));
	for (u32 i = 0; i < 3; i++)
		put(lane, i * 512, write_rec(10 + i, 9 + i, 4, 512));
	Scanned s = scan(lane, 0, 4);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 3);
	CHECK(s.res.tail == 1536);
	CHECK(s.res.tail_gen == 4);

	// The same with a torn record at the tail.
	Bytes torn = write_rec(13, 12, 4, 512);
	std::copy_n(torn.begin(), 64, lane.begin() + 1536);
	s = scan(lane, 0, 4);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 3);
	CHECK(s.res.tail == 1536);

	// A record of the lap with a seq not above the last one's is no
	// witness either (it cannot have been written after it).
	put(lane, 2560, write_rec(12, 11, 4, 256));
	s = scan(lane, 0, 4);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 3);
	// With a higher seq it is.
	put(lane, 2560, write_rec(14, 13, 4, 256));
	check_corrupt_at(scan(lane, 0, 4), 1536);
}

TEST_CASE("scan: corruption before the end of a wrapped lane", "[cm][scan]")
{
	// As in the wrap test: lap 7 from the head at 2048 up to 3840 (seq
	// 20 .. 26, 256 bytes each), a stale lap 6 record in the skipped end,
	// lap 8 at 0, 512, 1024 (seq 27 .. 29).
	Bytes good(4096, 0);
	u64 seq = 20;
	for (u32 off = 2048; off < 3840; off += 256, seq++)
		put(good, off, write_rec(seq, seq - 1, 7, 256));
	put(good, 3840, write_rec(999, 0, 6, 128));
	for (u32 off = 0; off < 1536; off += 512, seq++)
		put(good, off, write_rec(seq, seq - 1, 8, 512));
	const Scanned ok = scan(good, 2048, 7);
	REQUIRE(ok.ret == 0);
	REQUIRE(ok.res.count == 10);
	REQUIRE(ok.res.tail == 1536);

	// In the middle of the second lap.
	Bytes lane = good;
	lane[512 + 200] ^= 0x04;
	check_corrupt_at(scan(lane, 2048, 7), 512);
	// The first record of the second lap: the walk cannot even see the
	// wrap, the records after it say there was one.
	lane = good;
	lane[0 + 300] ^= 0x04;
	check_corrupt_at(scan(lane, 2048, 7), 0);
	lane[0 + 9] ^= 0x04;				// its header too
	check_corrupt_at(scan(lane, 2048, 7), 0);
	// In the middle of the first lap.
	lane = good;
	lane[2560 + 100] ^= 0x04;
	check_corrupt_at(scan(lane, 2048, 7), 2560);
	// The last record of the first lap, its header whole: the second lap
	// was written after it.
	lane = good;
	lane[3584 + 100] ^= 0x04;
	check_corrupt_at(scan(lane, 2048, 7), 3584);
	// ... its header lost too: that looks like the end of the lap the
	// writer skipped, so the walk goes on (the plan still sees the loss
	// through acked_upto, from the records after it).
	lane[3584 + 9] ^= 0x04;
	Scanned s = scan(lane, 2048, 7);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 9);
	CHECK(s.res.tail == 1536);
	{
		twinfs_cm_plan plan;
		const char *why = nullptr;
		CHECK(twinfs_cm_plan_replay(s.ents.data(), s.res.count, 19, &plan, &why) ==
		      -EUCLEAN);
		CHECK(plan.bad_seq == 26);
	}

	// A torn last record of the second lap is its tail.
	lane = good;
	const Bytes torn = write_rec(30, 29, 8, 512);
	std::copy_n(torn.begin(), 64, lane.begin() + 1536);
	s = scan(lane, 2048, 7);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 10);
	CHECK(s.res.tail == 1536);
	CHECK(s.res.tail_gen == 8);
	// The head bounds the second lap: a record of it crossing the head is
	// no witness.  (Head 1792 with nothing of lap 7 left.)
	Bytes lane2(4096, 0);
	put(lane2, 1792, write_rec(998, 0, 6, 256));	// stale
	for (u32 o = 0; o < 1024; o += 512)
		put(lane2, o, write_rec(100 + o, 99 + o, 8, 512));
	std::copy_n(torn.begin(), 64, lane2.begin() + 1024);
	put(lane2, 1536, write_rec(5000, 4999, 8, 512));	// 1536 .. 2048
	s = scan(lane2, 1792, 7);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 2);
	CHECK(s.res.tail == 1024);
	CHECK(s.res.tail_gen == 8);
	// Within the head it is one.
	put(lane2, 1536, write_rec(5000, 4999, 8, 256));	// 1536 .. 1792
	check_corrupt_at(scan(lane2, 1792, 7), 1024);

	// A lap ending exactly at the lane end, the next one beginning with a
	// corrupt record.
	Bytes ex(2048, 0);
	for (u32 off = 0, q = 1; off < 2048; off += 256, q++)
		put(ex, off, write_rec(q, q - 1, 1, 256));
	put(ex, 0, write_rec(9, 8, 2, 256));
	put(ex, 256, write_rec(10, 9, 2, 256));
	REQUIRE(scan(ex, 512, 1).ret == 0);
	ex[100] ^= 0x01;
	check_corrupt_at(scan(ex, 512, 1), 0);
	// Without the record after it, the torn one is the tail.
	put(ex, 256, write_rec(2, 1, 1, 256));
	s = scan(ex, 512, 1);
	REQUIRE(s.ret == 0);
	CHECK(s.res.count == 6);
	CHECK(s.res.tail == 0);
	CHECK(s.res.tail_gen == 2);
}

TEST_CASE("scan: a valid record with bad contents is corruption, not a tail",
	  "[cm][scan]")
{
	Bytes lane(4096, 0);
	put(lane, 0, write_rec(1, 0, 3));
	put(lane, 128, raw_record(TWINFS_CM_OP_UNLINK, {}, 2, 1, 3));
	const Scanned s = scan(lane, 0, 3);
	CHECK(s.ret == -EUCLEAN);
	CHECK(s.why == "required attribute missing");
	CHECK(s.res.bad_off == 128);
}

TEST_CASE("scan: seq not increasing along the lane is corruption", "[cm][scan]")
{
	Bytes lane(4096, 0);
	put(lane, 0, write_rec(5, 0, 3));
	put(lane, 128, write_rec(5, 0, 3));
	Scanned s = scan(lane, 0, 3);
	CHECK(s.ret == -EUCLEAN);
	CHECK(s.why == "record seq not above its predecessor's in the lane");
	CHECK(s.res.bad_off == 128);
	put(lane, 128, write_rec(4, 0, 3));
	s = scan(lane, 0, 3);
	CHECK(s.ret == -EUCLEAN);
}

TEST_CASE("scan: -ENOSPC with too few entries, -EINVAL for a bad head or size", "[cm][scan]")
{
	Bytes lane(4096, 0);
	for (u32 i = 0; i < 5; i++)
		put(lane, i * 128, write_rec(i + 1, 0, 3));
	CHECK(scan(lane, 0, 3, 0, 4).ret == -ENOSPC);
	CHECK(scan(lane, 0, 3, 0, 5).ret == 0);
	CHECK(scan(lane, 4096, 3).ret == -EINVAL);
	CHECK(scan(lane, 32, 3).ret == -EINVAL);
	CHECK(scan(Bytes(100, 0), 0, 3).ret == -EINVAL);
	CHECK(scan(Bytes(0), 0, 3).ret == -EINVAL);
}

// ===========================================================================
// Replay planning
// ===========================================================================

TEST_CASE("plan: in order, one lane", "[cm][plan]")
{
	std::vector<twinfs_cm_scan_ent> e;
	for (u64 s = 1; s <= 5; s++)
		e.push_back(ent(s, s - 1, 0, static_cast<u32>(s * 64)));
	const Planned p = plan(e, 0);
	REQUIRE(p.ret == 0);
	CHECK(p.replay == seqs(1, 5));
	CHECK(p.plan.first == 0);
	CHECK(p.plan.discarded == 0);
	CHECK(p.plan.skipped == 0);
	CHECK(p.plan.last_seq == 5);
	CHECK(p.plan.gap_seq == 6);
	CHECK(p.ents[2].off == 3 * 64);
}

TEST_CASE("plan: lanes interleaved and out of order are merged by seq", "[cm][plan]")
{
	auto rng = twinfs_test::make_rng(0x91a4);
	std::vector<twinfs_cm_scan_ent> e;
	for (u64 s = 1; s <= 200; s++)
		e.push_back(ent(s, s > 3 ? s - 3 : 0, static_cast<u32>(s % 5),
				static_cast<u32>(s * 64)));
	std::shuffle(e.begin(), e.end(), rng);
	const Planned p = plan(e, 0);
	REQUIRE(p.ret == 0);
	CHECK(p.replay == seqs(1, 200));
	for (u32 i = 0; i < p.plan.count; i++) {
		CHECK(p.ents[i].lane == p.ents[i].seq % 5);
		CHECK(p.ents[i].off == p.ents[i].seq * 64);
	}
}

TEST_CASE("plan: a gap ends the replay; the unacknowledged rest is discarded", "[cm][plan]")
{
	// 4 never became durable; 5 and 6 did, but nobody was told.
	const Planned p = plan({ent(1, 0), ent(2, 1), ent(6, 3, 1), ent(3, 2, 2), ent(5, 3, 2)},
			       0);
	REQUIRE(p.ret == 0);
	CHECK(p.replay == seqs(1, 3));
	CHECK(p.plan.discarded == 2);
	CHECK(p.plan.gap_seq == 4);
	CHECK(p.plan.last_seq == 3);
	CHECK(p.plan.max_seq == 6);
}

TEST_CASE("plan: a record lost before the tail is detected through acked_upto",
	  "[cm][plan]")
{
	// Record 6 was written when everything up to 4 was durable: 4 is gone.
	const Planned p = plan({ent(1, 0), ent(2, 1), ent(3, 2), ent(5, 3), ent(6, 4)}, 0);
	CHECK(p.ret == -EUCLEAN);
	CHECK(p.why == "record missing or corrupt before the tail");
	CHECK(p.plan.bad_seq == 4);
	CHECK(p.plan.gap_seq == 4);

	// Even when the witness is beyond the gap and the lost one the first.
	const Planned q = plan({ent(2, 1), ent(3, 1)}, 0);
	CHECK(q.ret == -EUCLEAN);
	CHECK(q.plan.bad_seq == 1);

	// acked_upto exactly below the gap is fine.
	CHECK(plan({ent(1, 0), ent(2, 1), ent(4, 2)}, 0).ret == 0);
}

TEST_CASE("plan: two records with one seq are corruption", "[cm][plan]")
{
	const Planned p = plan({ent(1, 0, 0), ent(2, 1, 0), ent(2, 1, 1, 128), ent(3, 2)}, 0);
	CHECK(p.ret == -EUCLEAN);
	CHECK(p.why == "two records with the same seq");
	CHECK(p.plan.bad_seq == 2);
	// Below cp_seq too.
	CHECK(plan({ent(1, 0, 0), ent(1, 0, 1)}, 5).ret == -EUCLEAN);
}

TEST_CASE("plan: records at or below cp_seq are skipped", "[cm][plan]")
{
	std::vector<twinfs_cm_scan_ent> e;
	for (u64 s = 3; s <= 8; s++)
		e.push_back(ent(s, s - 1));
	Planned p = plan(e, 5);
	REQUIRE(p.ret == 0);
	CHECK(p.replay == seqs(6, 8));
	CHECK(p.plan.skipped == 3);
	CHECK(p.plan.first == 3);
	CHECK(p.plan.last_seq == 8);

	// Everything on disk already.
	p = plan(e, 8);
	REQUIRE(p.ret == 0);
	CHECK(p.plan.count == 0);
	CHECK(p.plan.last_seq == 8);
	CHECK(p.plan.skipped == 6);

	// The first record after the CP missing: nothing to replay.
	p = plan({ent(7, 5), ent(8, 5)}, 5);
	REQUIRE(p.ret == 0);
	CHECK(p.plan.count == 0);
	CHECK(p.plan.discarded == 2);
	CHECK(p.plan.last_seq == 5);
	// ... unless a record says it was durable.
	p = plan({ent(7, 5), ent(8, 6)}, 5);
	CHECK(p.ret == -EUCLEAN);
	CHECK(p.plan.bad_seq == 6);
}

TEST_CASE("plan: no records; cp_seq U64_MAX is refused", "[cm][plan]")
{
	Planned p = plan({}, 42);
	REQUIRE(p.ret == 0);
	CHECK(p.plan.count == 0);
	CHECK(p.plan.last_seq == 42);
	CHECK(p.plan.gap_seq == 43);
	CHECK(plan({}, ~0ull).ret == -EINVAL);
}

TEST_CASE("sort: heapsort agrees with std::sort", "[cm][plan]")
{
	auto rng = twinfs_test::make_rng(0x50f7);
	for (int iter = 0; iter < 200; iter++) {
		std::vector<twinfs_cm_scan_ent> e(uniform<size_t>(rng, 0, 300));
		for (auto &x : e)
			x = ent(uniform<u64>(rng, 0, 50), 0, uniform<u32>(rng, 0, 3),
				uniform<u32>(rng, 0, 9) * 64);
		auto want = e;
		std::sort(want.begin(), want.end(), [](const auto &a, const auto &b) {
			return std::tie(a.seq, a.lane, a.off) < std::tie(b.seq, b.lane, b.off);
		});
		twinfs_cm_sort(e.data(), static_cast<u32>(e.size()));
		for (size_t i = 0; i < e.size(); i++) {
			CHECK(e[i].seq == want[i].seq);
			CHECK(e[i].lane == want[i].lane);
			CHECK(e[i].off == want[i].off);
		}
	}
}

// ===========================================================================
// Ring arithmetic: reserve, trim, reset, space
// ===========================================================================

namespace {

twinfs_cm_lane_state lane_state(u32 size, u32 head, u32 hgen, u32 tail, u32 tgen)
{
	return {size, head, hgen, tail, tgen};
}

} // namespace

TEST_CASE("ring: reserve fills a lap, then the writer stops at the head", "[cm][ring]")
{
	auto s = lane_state(1024, 0, 5, 0, 5);
	u32 off, gen;
	for (u32 i = 0; i < 4; i++) {
		REQUIRE(twinfs_cm_lane_reserve(&s, 256, &off, &gen) == 0);
		CHECK(off == i * 256);
		CHECK(gen == 5);
	}
	// The lap ended exactly at the end: tail (0, 6) on the head: full.
	CHECK(s.tail == 0);
	CHECK(s.tail_gen == 6);
	CHECK(twinfs_cm_lane_used(&s) == 1024);
	CHECK(twinfs_cm_lane_free(&s) == 0);
	CHECK(twinfs_cm_lane_state_check(&s) == 0);
	CHECK(twinfs_cm_lane_reserve(&s, 64, &off, &gen) == -ENOSPC);
}

TEST_CASE("ring: a record that does not fit before the end starts the next lap",
	  "[cm][ring]")
{
	auto s = lane_state(4096, 1024, 3, 3840, 3);
	u32 off, gen;
	CHECK(twinfs_cm_lane_used(&s) == 2816);
	REQUIRE(twinfs_cm_lane_reserve(&s, 512, &off, &gen) == 0);
	CHECK(off == 0);
	CHECK(gen == 4);
	CHECK(s.tail == 512);
	CHECK(s.tail_gen == 4);
	// The skipped 256 bytes at the end count as used until the head wraps.
	CHECK(twinfs_cm_lane_used(&s) == 4096 - 1024 + 512);
	CHECK(twinfs_cm_lane_state_check(&s) == 0);
	// In the second lap the head bounds the writer.
	REQUIRE(twinfs_cm_lane_reserve(&s, 512, &off, &gen) == 0);
	CHECK(off == 512);
	CHECK(twinfs_cm_lane_reserve(&s, 128, &off, &gen) == -ENOSPC);
	CHECK(twinfs_cm_lane_free(&s) == 0);

	// A record larger than the head does not wrap.
	auto t = lane_state(4096, 256, 3, 3840, 3);
	CHECK(twinfs_cm_lane_reserve(&t, 512, &off, &gen) == -ENOSPC);
	CHECK(t.tail == 3840);
	CHECK(t.tail_gen == 3);
	// Bad sizes.
	CHECK(twinfs_cm_lane_reserve(&t, 0, &off, &gen) == -EINVAL);
	CHECK(twinfs_cm_lane_reserve(&t, 100, &off, &gen) == -EINVAL);
	CHECK(twinfs_cm_lane_reserve(&t, 8192, &off, &gen) == -EINVAL);
}

TEST_CASE("ring: trim_to moves the head only between head and tail", "[cm][ring]")
{
	auto s = lane_state(4096, 1024, 3, 512, 4);
	CHECK(twinfs_cm_lane_trim_to(&s, 512, 3) == -EINVAL);	// behind the head
	CHECK(twinfs_cm_lane_trim_to(&s, 1024, 4) == -EINVAL);	// beyond the tail
	CHECK(twinfs_cm_lane_trim_to(&s, 0, 5) == -EINVAL);	// two laps on
	CHECK(twinfs_cm_lane_trim_to(&s, 96, 3) == -EINVAL);	// behind, misaligned
	CHECK(twinfs_cm_lane_trim_to(&s, 1088, 3) == 0);
	CHECK(s.head == 1088);
	CHECK(s.head_gen == 3);
	// Past the end of the lap: the generation goes up.
	CHECK(twinfs_cm_lane_trim_to(&s, 4096, 3) == 0);
	CHECK(s.head == 0);
	CHECK(s.head_gen == 4);
	CHECK(twinfs_cm_lane_state_check(&s) == 0);
	CHECK(twinfs_cm_lane_used(&s) == 512);
	// Up to the tail: empty.
	CHECK(twinfs_cm_lane_trim_to(&s, 512, 4) == 0);
	CHECK(twinfs_cm_lane_used(&s) == 0);
	CHECK(twinfs_cm_lane_state_check(&s) == 0);
}

TEST_CASE("ring: trim after a CP keeps the records above cp_seq, across the wrap",
	  "[cm][ring]")
{
	// Records 10..13 in lap 3 from 2048, 14..15 in lap 4 from 0.
	std::vector<twinfs_cm_scan_ent> e;
	const u32 offs[] = {2048, 2560, 3072, 3584, 0, 512};
	for (u32 i = 0; i < 6; i++) {
		auto x = ent(10 + i, 0, 0, offs[i]);
		x.gen = i < 4 ? 3 : 4;
		x.size = 512;
		e.push_back(x);
	}
	auto s = lane_state(4096, 2048, 3, 1024, 4);
	REQUIRE(twinfs_cm_lane_state_check(&s) == 0);

	CHECK(twinfs_cm_lane_trim(&s, e.data(), 6, 9) == 0);	// nothing reclaimed
	CHECK(s.head == 2048);
	CHECK(twinfs_cm_lane_trim(&s, e.data(), 6, 11) == 2);
	CHECK(s.head == 3072);
	CHECK(s.head_gen == 3);
	CHECK(twinfs_cm_lane_trim(&s, e.data() + 2, 4, 14) == 3);
	CHECK(s.head == 512);
	CHECK(s.head_gen == 4);
	CHECK(twinfs_cm_lane_used(&s) == 512);
	CHECK(twinfs_cm_lane_trim(&s, e.data() + 5, 1, 100) == 1);
	CHECK(s.head == 1024);
	CHECK(s.head_gen == 4);
	CHECK(twinfs_cm_lane_used(&s) == 0);
	// An entry behind the head is refused.
	CHECK(twinfs_cm_lane_trim(&s, e.data(), 6, 0) == -EINVAL);
}

TEST_CASE("ring: reset empties the lane with a generation no record has", "[cm][ring]")
{
	auto s = lane_state(4096, 2048, 0xfffffffe, 1024, 0xffffffff);
	twinfs_cm_lane_reset(&s);
	CHECK(s.head == 0);
	CHECK(s.tail == 0);
	CHECK(s.head_gen == 1);	// wraps around u32
	CHECK(s.tail_gen == 1);
	CHECK(twinfs_cm_lane_state_check(&s) == 0);
	CHECK(twinfs_cm_lane_used(&s) == 0);
}

TEST_CASE("ring: state invariants", "[cm][ring]")
{
	const std::pair<twinfs_cm_lane_state, bool> cases[] = {
		{lane_state(4096, 0, 1, 0, 1), true},		// empty
		{lane_state(4096, 64, 1, 64, 2), true},		// full
		{lane_state(4096, 64, 1, 128, 1), true},
		{lane_state(4096, 128, 1, 64, 1), false},	// tail behind head
		{lane_state(4096, 64, 1, 128, 2), false},	// passed the head
		{lane_state(4096, 64, 1, 64, 3), false},	// two laps on
		{lane_state(4096, 64, 2, 64, 1), false},
		{lane_state(4096, 4096, 1, 0, 2), false},	// not normalised
		{lane_state(4096, 32, 1, 64, 1), false},	// misaligned
		{lane_state(100, 0, 1, 0, 1), false},
		{lane_state(0, 0, 1, 0, 1), false},
		{lane_state(4096, 0, 0xffffffff, 0, 0), true},	// u32 wrap
	};
	for (const auto &[s, ok] : cases) {
		INFO("head " << s.head << "/" << s.head_gen << " tail " << s.tail << "/"
			     << s.tail_gen << " size " << s.size);
		CHECK((twinfs_cm_lane_state_check(&s) == 0) == ok);
	}
}

TEST_CASE("ring: first record after a CP, found from the headers, across the wrap",
	  "[cm][ring]")
{
	// Lap 4 holds seqs 10..14 from offset 3072 (the last 256 bytes of
	// the lap are skipped: no record there of lap 4), lap 5 seqs 15..17
	// from 0.
	Bytes lane(4096, 0);
	put(lane, 3840, write_rec(3, 2, 3, 128));	// stale, lap 3
	for (u64 i = 0; i < 5; i++)
		put(lane, static_cast<u32>(3072 + 128 * i),
		    write_rec(10 + i, 9 + i, 4, 128));
	for (u64 i = 0; i < 3; i++)
		put(lane, static_cast<u32>(256 * i), write_rec(15 + i, 14 + i, 5, 256));
	twinfs_cm_lane_state s{4096, 3072, 4, 768, 5};
	REQUIRE(twinfs_cm_lane_state_check(&s) == 0);

	struct Want {
		u64 cp;
		u32 off, gen;
	};
	for (const Want w : {Want{9, 3072, 4}, Want{10, 3200, 4}, Want{13, 3584, 4},
			     Want{14, 0, 5}, Want{16, 512, 5}, Want{17, 768, 5},
			     Want{1000, 768, 5}}) {
		u32 off = 1, gen = 1;
		twinfs_cm_lane_first_after(lane.data(), &s, w.cp, &off, &gen);
		INFO("cp_seq " << w.cp);
		CHECK(off == w.off);
		CHECK(gen == w.gen);
		twinfs_cm_lane_state t = s;
		CHECK(twinfs_cm_lane_trim_to(&t, off, gen) == 0);
	}

	// An empty lane: the tail, whatever the bytes say.
	twinfs_cm_lane_state e{4096, 768, 5, 768, 5};
	u32 off = 1, gen = 1;
	twinfs_cm_lane_first_after(lane.data(), &e, 0, &off, &gen);
	CHECK(off == 768);
	CHECK(gen == 5);
}

TEST_CASE("ring: randomized reserve and trim never overlap live records", "[cm][ring]")
{
	auto rng = twinfs_test::make_rng(0x7219);
	struct Live {
		u32 off, gen, size;
	};
	for (int iter = 0; iter < 50; iter++) {
		const u32 size = 64 * uniform<u32>(rng, 4, 128);
		const u32 gen0 = uniform<u32>(rng, 0, ~0u);
		auto s = lane_state(size, 0, gen0, 0, gen0);
		std::deque<Live> live;
		u64 wraps = 0;
		for (int step = 0; step < 2000; step++) {
			if (uniform<unsigned>(rng, 0, 2)) {
				const u32 rec = 64 * uniform<u32>(rng, 1, std::min(16u, size / 64));
				const u32 free_before = twinfs_cm_lane_free(&s);
				const u32 tail_gen = s.tail_gen;
				u32 off, gen;
				const int r = twinfs_cm_lane_reserve(&s, rec, &off, &gen);
				if (r == -ENOSPC) {
					// Neither the end of the lap nor the start had room.
					CHECK(free_before < 2 * rec);
					continue;
				}
				REQUIRE(r == 0);
				if (gen != tail_gen || (off == 0 && s.tail == rec))
					wraps++;
				live.push_back({off, gen, rec});
			} else if (!live.empty()) {
				const size_t k = uniform<size_t>(rng, 1, live.size());
				live.erase(live.begin(), live.begin() + static_cast<long>(k));
				const int r = live.empty()
						      ? twinfs_cm_lane_trim_to(&s, s.tail, s.tail_gen)
						      : twinfs_cm_lane_trim_to(&s, live.front().off,
									       live.front().gen);
				REQUIRE(r == 0);
			}
			REQUIRE(twinfs_cm_lane_state_check(&s) == 0);
			// Paint the live records: inside the lane, no overlap,
			// in ring order from the head, no more than used.
			std::vector<u8> owner(size / 64, 0);
			u64 bytes = 0;
			for (const auto &l : live) {
				REQUIRE(l.off + l.size <= size);
				REQUIRE((l.gen == s.head_gen || l.gen == s.head_gen + 1));
				for (u32 o = l.off; o < l.off + l.size; o += 64) {
					REQUIRE(owner[o / 64] == 0);
					owner[o / 64] = 1;
				}
				bytes += l.size;
			}
			// The oldest record is at the head, or the lane emptied
			// with its head in the skipped end of a lap.
			if (!live.empty())
				CHECK(((live.front().off == s.head &&
					live.front().gen == s.head_gen) ||
				       (live.front().off == 0 &&
					live.front().gen == s.head_gen + 1)));
			REQUIRE(bytes <= twinfs_cm_lane_used(&s));
			CHECK(twinfs_cm_lane_used(&s) + twinfs_cm_lane_free(&s) == size);
		}
		CHECK(wraps > 0);
	}
}

TEST_CASE("space: fill ratio and the CP threshold", "[cm][ring]")
{
	CHECK(twinfs_cm_fill_permille(0, 4096) == 0);
	CHECK(twinfs_cm_fill_permille(2048, 4096) == 500);
	CHECK(twinfs_cm_fill_permille(4095, 4096) == 999);
	CHECK(twinfs_cm_fill_permille(4096, 4096) == 1000);
	CHECK(twinfs_cm_fill_permille(9999, 4096) == 1000);
	CHECK(twinfs_cm_fill_permille(0, 0) == 1000);
	CHECK(twinfs_cm_fill_permille(64ull << 30, 64ull << 30) == 1000);
	CHECK(twinfs_cm_fill_permille(48ull << 30, 64ull << 30) == 750);

	twinfs_cm_lane_state lanes[3] = {
		lane_state(4096, 0, 1, 1024, 1),	// 25 %
		lane_state(4096, 3072, 1, 1024, 2),	// 50 %
		lane_state(4096, 512, 1, 512, 1),	// empty
	};
	CHECK_FALSE(twinfs_cm_needs_cp(lanes, 3, 750));
	CHECK(twinfs_cm_needs_cp(lanes, 3, 500));
	lanes[2] = lane_state(4096, 512, 1, 0, 2);	// 87.5 %
	CHECK(twinfs_cm_needs_cp(lanes, 3, 750));
	CHECK_FALSE(twinfs_cm_needs_cp(lanes, 3, 900));
	CHECK_FALSE(twinfs_cm_needs_cp(lanes, 0, 0));
}

// ===========================================================================
// Region header
// ===========================================================================

namespace {

constexpr u8 UUID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

twinfs_cm_header make_header(u32 lanes = 4, u32 lane_size = TWINFS_CM_LANE_MIN)
{
	std::vector<u32> gens(lanes);
	for (u32 i = 0; i < lanes; i++)
		gens[i] = 1000 + i;
	twinfs_cm_header h;
	twinfs_cm_header_init(&h, UUID, 1, twinfs_cm_lane_offset(lane_size, lanes), lanes,
			      lane_size, gens.data());
	return h;
}

std::string header_why(const twinfs_cm_header &h, u64 dev = 0)
{
	const char *why = nullptr;
	const int r = twinfs_cm_header_check(&h, dev, &why);
	if (r == 0)
		return "";
	CHECK(r == -EUCLEAN);
	return why ? why : "(null)";
}

// A header changed by fn, its checksum then recomputed.
template <typename Fn>
std::string mutated_why(Fn fn, u64 dev = 0)
{
	twinfs_cm_header h = make_header();
	fn(h);
	twinfs_cm_header_seal(&h);
	return header_why(h, dev);
}

Bytes area_of(const twinfs_cm_header *c0, const twinfs_cm_header *c1)
{
	Bytes a(TWINFS_CM_HDR_AREA, 0);
	if (c0)
		std::memcpy(a.data(), c0, sizeof(*c0));
	if (c1)
		std::memcpy(a.data() + TWINFS_CM_HDR_COPY, c1, sizeof(*c1));
	return a;
}

int pick(const Bytes &area, std::string *why = nullptr)
{
	const char *w = nullptr;
	const int r = twinfs_cm_header_pick(area.data(), 0, &w);
	if (why)
		*why = w ? w : "";
	return r;
}

twinfs_cm_header updated(twinfs_cm_header h, u64 update, u64 cp)
{
	h.h_update = cpu_to_le64(update);
	h.h_cp_seq = cpu_to_le64(cp);
	twinfs_cm_header_seal(&h);
	return h;
}

} // namespace

TEST_CASE("geometry: lanes from the region size", "[cm][header]")
{
	u32 lane = 0;
	REQUIRE(twinfs_cm_geometry(64ull << 20, TWINFS_CM_LANES_DEFAULT, &lane) == 0);
	CHECK(lane == ((64u << 20) - 4096) / 16 / 4096 * 4096);
	CHECK(twinfs_cm_lane_offset(lane, 16) <= 64ull << 20);
	REQUIRE(twinfs_cm_geometry(4096 + 16 * (128u << 10), 16, &lane) == 0);
	CHECK(lane == 128u << 10);
	CHECK(twinfs_cm_geometry(4096 + 16 * (128u << 10) - 1, 16, &lane) == -ENOSPC);
	CHECK(twinfs_cm_geometry(100, 1, &lane) == -ENOSPC);
	CHECK(twinfs_cm_geometry(64ull << 20, 0, &lane) == -EINVAL);
	CHECK(twinfs_cm_geometry(64ull << 20, TWINFS_CM_LANES_MAX + 1, &lane) == -EINVAL);
	REQUIRE(twinfs_cm_geometry(1ull << 40, 4, &lane) == 0);
	CHECK(lane == TWINFS_CM_LANE_MAX);
}

TEST_CASE("header: init makes a valid copy 0 the picker takes", "[cm][header]")
{
	const twinfs_cm_header h = make_header();
	CHECK(header_why(h) == "");
	CHECK(header_why(h, twinfs_cm_lane_offset(TWINFS_CM_LANE_MIN, 4)) == "");
	CHECK(le32_to_cpu(h.h_magic) == TWINFS_CM_MAGIC);
	CHECK(std::string(reinterpret_cast<const char *>(&h), 4) == "MCWT");
	CHECK(le32_to_cpu(h.h_lanes[3].l_gen) == 1003);
	CHECK(le32_to_cpu(h.h_lanes[3].l_head) == 0);
	CHECK(le64_to_cpu(h.h_update) == 0);
	CHECK(pick(area_of(&h, nullptr)) == 0);
}

TEST_CASE("header: every check, with its message", "[cm][header]")
{
	twinfs_cm_header h = make_header();
	h.h_magic = 0;
	CHECK(header_why(h) == "bad change memory magic");
	h = make_header();
	h.h_cp_seq = cpu_to_le64(5);	// not resealed
	CHECK(header_why(h) == "change memory header checksum mismatch");
	CHECK(mutated_why([](auto &x) { x.h_version = cpu_to_le32(2); }) ==
	      "unsupported change memory version");
	CHECK(mutated_why([](auto &x) { x.h_flags = cpu_to_le32(1); }) ==
	      "unknown change memory header flags");
	CHECK(mutated_why([](auto &x) { x.h_node_id = cpu_to_le32(TWINFS_MAX_NODES); }) ==
	      "change memory node id out of range");
	CHECK(mutated_why([](auto &x) { x.h_lane_count = 0; }) ==
	      "change memory lane count out of range");
	CHECK(mutated_why([](auto &x) { x.h_lane_count = cpu_to_le32(65); }) ==
	      "change memory lane count out of range");
	for (u32 ls : {0u, 4096u, (128u << 10) + 64, (1u << 30) + 4096})
		CHECK(mutated_why([ls](auto &x) { x.h_lane_size = cpu_to_le32(ls); }) ==
		      "change memory lane size out of range");
	CHECK(mutated_why([](auto &x) {
		      x.h_region_size = cpu_to_le64(le64_to_cpu(x.h_region_size) - 1);
	      }) == "change memory region too small for its lanes");
	CHECK(mutated_why([](auto &) {}, twinfs_cm_lane_offset(TWINFS_CM_LANE_MIN, 4) - 1) ==
	      "change memory region larger than the device");
	CHECK(mutated_why([](auto &x) { x.h_lanes[4].l_gen = cpu_to_le32(1); }) ==
	      "unused change memory lane descriptor not zero");
	CHECK(mutated_why([](auto &x) { x.h_lanes[63].l_head = cpu_to_le32(64); }) ==
	      "unused change memory lane descriptor not zero");
	CHECK(mutated_why([](auto &x) {
		      x.h_lanes[1].l_head = cpu_to_le32(TWINFS_CM_LANE_MIN);
	      }) == "change memory lane head out of range");
	CHECK(mutated_why([](auto &x) { x.h_lanes[0].l_head = cpu_to_le32(96); }) ==
	      "change memory lane head out of range");
	CHECK(mutated_why([](auto &x) {
		      x.h_lanes[0].l_head = cpu_to_le32(TWINFS_CM_LANE_MIN - 64);
	      }) == "");
}

TEST_CASE("header: the picker takes the newest valid copy", "[cm][header]")
{
	const twinfs_cm_header h = make_header();
	const twinfs_cm_header u1 = updated(h, 1, 10), u2 = updated(h, 2, 20),
			       u3 = updated(h, 3, 30);
	CHECK(pick(area_of(&h, &u1)) == 1);
	CHECK(pick(area_of(&u2, &u1)) == 0);
	CHECK(pick(area_of(&u2, &u3)) == 1);

	// A torn newer copy: the older one.
	twinfs_cm_header torn = u3;
	reinterpret_cast<u8 *>(&torn)[1000] ^= 0x40;
	CHECK(pick(area_of(&u2, &torn)) == 0);
	// Both gone.
	std::string why;
	twinfs_cm_header torn2 = u2;
	torn2.h_cp_seq = 0;
	CHECK(pick(area_of(&torn2, &torn), &why) == -EUCLEAN);
	CHECK(why == "change memory header checksum mismatch");
	CHECK(pick(Bytes(TWINFS_CM_HDR_AREA, 0), &why) == -EUCLEAN);
	CHECK(why == "bad change memory magic");
}

TEST_CASE("header: copies in the wrong slot, disagreeing, or going backwards", "[cm][header]")
{
	const twinfs_cm_header h = make_header();
	const twinfs_cm_header u1 = updated(h, 1, 10), u2 = updated(h, 2, 20);
	std::string why;

	// An odd update in slot 0 is not a valid copy.
	CHECK(pick(area_of(&u1, nullptr), &why) == -EUCLEAN);
	CHECK(why == "change memory header copy in the wrong slot");
	CHECK(pick(area_of(&u1, &u2)) == -EUCLEAN);
	// Even in slot 1: ignored, copy 0 stands.
	CHECK(pick(area_of(&h, &u2)) == 0);

	twinfs_cm_header other = updated(h, 1, 10);
	other.h_uuid[0] ^= 1;
	twinfs_cm_header_seal(&other);
	CHECK(pick(area_of(&u2, &other), &why) == -EUCLEAN);
	CHECK(why == "change memory header copies disagree");

	const twinfs_cm_header back = updated(h, 3, 15);
	CHECK(pick(area_of(&u2, &back), &why) == -EUCLEAN);
	CHECK(why == "change memory header cp_seq went backwards");
}

// ===========================================================================
// Crash model: threads, lanes, group commit, CPs, trims, crashes, replay
// ===========================================================================

namespace {

struct ModelStats {
	u64 records = 0, crashes = 0, wraps = 0, torn = 0, replayed = 0, discarded = 0;
	u64 fallbacks = 0, enospc = 0, trims = 0, acked = 0;
	u64 bitrot = 0, bitrot_detected = 0, bitrot_scan = 0;
};

// The change memory of one node as the writers of the kernel would drive
// it.  Every record is first written to `cache` (the CPU's view); a flush
// copies it to `media` (the NVRAM).  The records of one lane reach the
// media in lane order (the kernel makes each durable under the lane's
// lock), those of different lanes in any order.  A crash keeps the media
// plus, in each lane, all of its first few records not flushed yet, then
// of the next one nothing or a random subset of its cache lines, and
// nothing of the rest.  The group-commit watermark W is the highest seq up
// to which every record is flushed; a thread's operation is acknowledged
// once W reaches its seq.
class CrashModel {
public:
	CrashModel(std::mt19937_64 &rng, u32 lanes, u32 threads, ModelStats &stats)
		: rng_(rng), lanes_(lanes), lane_size_(TWINFS_CM_LANE_MIN), stats_(stats),
		  pending_(threads, 0)
	{
		const u64 region = twinfs_cm_lane_offset(lane_size_, lanes_);
		media_.resize(region);
		// NVRAM starts with anything in it.
		for (size_t i = 0; i + 8 <= media_.size(); i += 8)
			wr64(&media_[i], rng_());
		std::vector<u32> gens(lanes_);
		for (auto &g : gens)
			g = static_cast<u32>(rng_());
		twinfs_cm_header_init(&hdr_, UUID, 1, region, lanes_, lane_size_, gens.data());
		cache_ = media_;
		for (u32 l = 0; l < lanes_; l++)
			st_.push_back(lane_state(lane_size_, 0, gens[l], 0, gens[l]));
		live_.resize(lanes_);
		write_header();
	}

	// Runs `steps` random steps, crashes, recovers and checks.  False when
	// the recovery (rightly) refused the change memory: the model ends.
	bool epoch(u32 steps)
	{
		for (u32 i = 0; i < steps; i++) {
			// CPs are rare enough for lanes to fill and wrap.
			const unsigned what = uniform<unsigned>(rng_, 0, 99);
			if (what < 45)
				start(uniform<size_t>(rng_, 0, pending_.size() - 1));
			else if (what < 93)
				flush();
			else if (what < 97)
				disk_cp_ = w_;
			else
				trim();
		}
		return crash_and_recover();
	}

private:
	u8 *lane_at(Bytes &img, u32 lane, u32 off)
	{
		return img.data() + twinfs_cm_lane_offset(lane_size_, lane) + off;
	}

	void write_header()
	{
		twinfs_cm_header_seal(&hdr_);
		const u64 slot = le64_to_cpu(hdr_.h_update) & 1;
		std::memcpy(media_.data() + slot * TWINFS_CM_HDR_COPY, &hdr_, sizeof(hdr_));
		std::memcpy(cache_.data() + slot * TWINFS_CM_HDR_COPY, &hdr_, sizeof(hdr_));
		reserved_since_hdr_ = 0;
	}

	void start(size_t t)
	{
		if (pending_[t])
			return;	// still waiting for its acknowledgment
		Spec s = uniform<unsigned>(rng_, 0, 1)
				 ? random_full(rng_, TWINFS_CM_OP_WRITE,
					       uniform<unsigned>(rng_, 0, 2) ? 256
									: TWINFS_CM_DATA_MAX)
				 : random_spec(rng_, 64);
		s.seq = next_seq_;
		s.acked = w_;
		Bytes rec = encode(s);
		// Under the lane's lock: the place, the seq, the watermark.
		const u32 lane = uniform<u32>(rng_, 0, lanes_ - 1);
		const u32 gen_before = st_[lane].tail_gen;
		u32 off, gen;
		const int r = twinfs_cm_lane_reserve(&st_[lane], static_cast<u32>(rec.size()),
						     &off, &gen);
		if (r == -ENOSPC) {
			stats_.enospc++;
			return;	// the thread waits for a CP
		}
		REQUIRE(r == 0);
		if (gen != gen_before)
			stats_.wraps++;
		twinfs_cm_rec_seal(rec.data(), next_seq_, w_, gen);
		std::copy(rec.begin(), rec.end(), lane_at(cache_, lane, off));
		twinfs_cm_scan_ent e{};
		e.seq = next_seq_;
		e.acked_upto = w_;
		e.lane = lane;
		e.off = off;
		e.gen = gen;
		e.size = static_cast<u32>(rec.size());
		e.op = s.op;
		live_[lane].push_back(e);
		recs_[next_seq_] = {lane, off, gen, std::move(rec), false};
		unflushed_.push_back(next_seq_);
		pending_[t] = next_seq_++;
		reserved_since_hdr_++;
		stats_.records++;
	}

	void flush()
	{
		if (unflushed_.empty())
			return;
		// A random lane with records in flight: its oldest one.
		size_t i = uniform<size_t>(rng_, 0, unflushed_.size() - 1);
		const u32 lane = recs_.at(unflushed_[i]).lane;
		for (size_t k = 0; k < unflushed_.size(); k++)
			if (recs_.at(unflushed_[k]).lane == lane && unflushed_[k] < unflushed_[i])
				i = k;
		const u64 seq = unflushed_[i];
		unflushed_[i] = unflushed_.back();
		unflushed_.pop_back();
		auto &r = recs_.at(seq);
		std::copy(r.bytes.begin(), r.bytes.end(), lane_at(media_, r.lane, r.off));
		r.flushed = true;
		while (recs_.count(w_ + 1) && recs_.at(w_ + 1).flushed)
			w_++;
		for (auto &p : pending_)
			if (p && p <= w_) {
				acked_.insert(p);
				stats_.acked++;
				p = 0;
			}
	}

	// After the CP up to disk_cp_ is durable: trim every lane, write the
	// header.
	void trim()
	{
		if (disk_cp_ <= le64_to_cpu(hdr_.h_cp_seq))
			return;
		for (u32 l = 0; l < lanes_; l++) {
			std::vector<twinfs_cm_scan_ent> v(live_[l].begin(), live_[l].end());
			const int n = twinfs_cm_lane_trim(&st_[l], v.data(),
							  static_cast<u32>(v.size()), disk_cp_);
			REQUIRE(n >= 0);
			live_[l].erase(live_[l].begin(), live_[l].begin() + n);
			hdr_.h_lanes[l].l_head = cpu_to_le32(st_[l].head);
			hdr_.h_lanes[l].l_gen = cpu_to_le32(st_[l].head_gen);
		}
		hdr_.h_update = cpu_to_le64(le64_to_cpu(hdr_.h_update) + 1);
		hdr_.h_cp_seq = cpu_to_le64(disk_cp_);
		write_header();
		stats_.trims++;
	}

	bool on_media(const Bytes &img, u64 seq)
	{
		auto it = recs_.find(seq);
		if (it == recs_.end())
			return false;
		const auto &r = it->second;
		const u8 *p = img.data() + twinfs_cm_lane_offset(lane_size_, r.lane) + r.off;
		return std::equal(r.bytes.begin(), r.bytes.end(), p);
	}

	bool crash_and_recover()
	{
		stats_.crashes++;
		Bytes img = media_;
		// Records in flight, in lane order: everything, until one gets
		// nothing or some cache lines; then nothing more of its lane.
		std::vector<u64> flying = unflushed_;
		std::sort(flying.begin(), flying.end());
		std::vector<bool> cut(lanes_, false);
		for (u64 seq : flying) {
			const auto &r = recs_.at(seq);
			u8 *dst = lane_at(img, r.lane, r.off);
			if (cut[r.lane])
				continue;
			switch (uniform<unsigned>(rng_, 0, 2)) {
			case 0:
				cut[r.lane] = true;
				break;
			case 1:
				std::copy(r.bytes.begin(), r.bytes.end(), dst);
				break;
			default:
				for (size_t o = 0; o < r.bytes.size(); o += 64)
					if (uniform<unsigned>(rng_, 0, 1))
						std::copy_n(r.bytes.begin() + static_cast<long>(o),
							    64, dst + o);
				cut[r.lane] = true;
				stats_.torn++;
				break;
			}
		}
		// The last header write torn, if nothing has used its space yet.
		u64 slot = le64_to_cpu(hdr_.h_update) & 1;
		if (reserved_since_hdr_ == 0 && le64_to_cpu(hdr_.h_update) > 0 &&
		    uniform<unsigned>(rng_, 0, 2) == 0) {
			img[slot * TWINFS_CM_HDR_COPY + uniform<size_t>(rng_, 0, 2047)] ^=
				static_cast<u8>(uniform<unsigned>(rng_, 1, 255));
			slot ^= 1;
			stats_.fallbacks++;
		}
		// Now and then: bit rot in a durable record.
		u64 rot = 0;
		if (uniform<unsigned>(rng_, 0, 9) == 0 && w_ > disk_cp_) {
			rot = uniform<u64>(rng_, disk_cp_ + 1, w_);
			const auto &r = recs_.at(rot);
			const u32 len = rd32(&r.bytes[28]);
			lane_at(img, r.lane, r.off)[uniform<u32>(rng_, 0, 40 + len - 1)] ^= 0x10;
			stats_.bitrot++;
		}

		// ---- recovery, as mount would do it ----
		const char *why = nullptr;
		const int idx = twinfs_cm_header_pick(img.data(), img.size(), &why);
		REQUIRE(idx >= 0);
		CHECK(static_cast<u64>(idx) == slot);
		twinfs_cm_header h;
		std::memcpy(&h, img.data() + idx * TWINFS_CM_HDR_COPY, sizeof(h));
		REQUIRE(le64_to_cpu(h.h_cp_seq) <= disk_cp_);
		const u64 cp = disk_cp_;	// the CP on disk is newer or equal

		std::vector<twinfs_cm_scan_ent> all;
		std::vector<twinfs_cm_lane_state> ns;
		for (u32 l = 0; l < lanes_; l++) {
			std::vector<twinfs_cm_scan_ent> ents(lane_size_ / 64);
			twinfs_cm_scan res;
			const u32 head = le32_to_cpu(h.h_lanes[l].l_head);
			const u32 gen = le32_to_cpu(h.h_lanes[l].l_gen);
			const int r = twinfs_cm_lane_scan(lane_at(img, l, 0), lane_size_, l, head, gen,
							  ents.data(),
							  static_cast<u32>(ents.size()), &res, &why);
			INFO("lane " << l << ": " << (why ? why : ""));
			if (r == -EUCLEAN && rot) {
				// A durable record with a later one in its lane:
				// found by the scan, at the record.
				const auto &rr = recs_.at(rot);
				CHECK(std::string(why) ==
				      "corrupt record before the end of the lane");
				CHECK(rr.lane == l);
				CHECK(res.bad_off == rr.off);
				stats_.bitrot_detected++;
				stats_.bitrot_scan++;
				return false;
			}
			REQUIRE(r == 0);
			all.insert(all.end(), ents.begin(), ents.begin() + res.count);
			ns.push_back(lane_state(lane_size_, head, gen, res.tail, res.tail_gen));
			REQUIRE(twinfs_cm_lane_state_check(&ns.back()) == 0);
		}
		twinfs_cm_plan plan;
		const int ret = twinfs_cm_plan_replay(all.data(), static_cast<u32>(all.size()), cp,
						      &plan, &why);
		if (rot) {
			// Detected, or (with no later record to witness it) the
			// log ends just before the lost record.
			if (ret == -EUCLEAN) {
				CHECK(plan.bad_seq <= rot);
				stats_.bitrot_detected++;
			} else {
				REQUIRE(ret == 0);
				CHECK(plan.last_seq < rot);
				CHECK(plan.max_acked < plan.gap_seq);
			}
			return false;
		}
		INFO("plan: " << (why ? why : "") << " bad seq " << plan.bad_seq);
		REQUIRE(ret == 0);

		// Exactly the records up to the first one not on the media.
		u64 g = cp + 1;
		while (g < next_seq_ && on_media(img, g))
			g++;
		CHECK(plan.last_seq == g - 1);
		CHECK(plan.gap_seq == g);
		// Every acknowledged operation is replayed or on disk.
		CHECK(w_ <= plan.last_seq);
		for (u64 a : acked_)
			CHECK(a <= plan.last_seq);
		// In seq order, no duplicate, each the record written.
		REQUIRE(plan.count == plan.last_seq - cp);
		for (u32 k = 0; k < plan.count; k++) {
			const auto &e = all[plan.first + k];
			REQUIRE(e.seq == cp + 1 + k);
			const auto &r = recs_.at(e.seq);
			CHECK(e.lane == r.lane);
			CHECK(e.off == r.off);
			CHECK(e.gen == r.gen);
			twinfs_cm_rec_info ri;
			twinfs_cm_attrs a;
			REQUIRE(twinfs_cm_rec_decode(lane_at(img, e.lane, e.off),
						     lane_size_ - e.off, e.gen, &ri, &a,
						     nullptr) == 0);
			CHECK(std::equal(r.bytes.begin(), r.bytes.end(),
					 lane_at(img, e.lane, e.off)));
		}
		stats_.replayed += plan.count;
		stats_.discarded += plan.discarded;

		// ---- after the replay: a CP, every lane reset, go on ----
		st_ = ns;
		for (u32 l = 0; l < lanes_; l++) {
			twinfs_cm_lane_reset(&st_[l]);
			live_[l].clear();
			h.h_lanes[l].l_head = cpu_to_le32(st_[l].head);
			h.h_lanes[l].l_gen = cpu_to_le32(st_[l].head_gen);
		}
		h.h_update = cpu_to_le64(le64_to_cpu(h.h_update) + 1);
		h.h_cp_seq = cpu_to_le64(plan.last_seq);
		hdr_ = h;
		media_ = img;
		cache_ = img;
		write_header();
		disk_cp_ = w_ = plan.last_seq;
		next_seq_ = plan.last_seq + 1;
		recs_.clear();
		unflushed_.clear();
		acked_.clear();
		std::fill(pending_.begin(), pending_.end(), 0);
		// The reset lanes hold no record, whatever is left in them.
		for (u32 l = 0; l < lanes_; l++) {
			std::vector<twinfs_cm_scan_ent> ents(lane_size_ / 64);
			twinfs_cm_scan res;
			REQUIRE(twinfs_cm_lane_scan(lane_at(media_, l, 0), lane_size_, l, 0,
						    st_[l].head_gen, ents.data(),
						    static_cast<u32>(ents.size()), &res,
						    nullptr) == 0);
			CHECK(res.count == 0);
		}
		return true;
	}

	struct ModelRec {
		u32 lane, off, gen;
		Bytes bytes;
		bool flushed;
	};

	std::mt19937_64 &rng_;
	u32 lanes_, lane_size_;
	ModelStats &stats_;
	std::vector<u64> pending_;	// per thread: seq awaiting its ack
	Bytes media_, cache_;
	twinfs_cm_header hdr_{};
	std::vector<twinfs_cm_lane_state> st_;
	std::vector<std::deque<twinfs_cm_scan_ent>> live_;
	std::map<u64, ModelRec> recs_;
	std::vector<u64> unflushed_;
	std::set<u64> acked_;
	u64 next_seq_ = 1, w_ = 0, disk_cp_ = 0;
	u64 reserved_since_hdr_ = 0;
};

} // namespace

TEST_CASE("model: after any crash the plan replays exactly the acknowledged prefix",
	  "[cm][model]")
{
	auto rng = twinfs_test::make_rng(0xc4a5);
	ModelStats stats;
	for (int iter = 0; iter < 60; iter++) {
		const u32 lanes = uniform<u32>(rng, 1, 6);
		const u32 threads = uniform<u32>(rng, 1, 8);
		INFO("iteration " << iter << ": " << lanes << " lanes, " << threads
				  << " threads");
		CrashModel m(rng, lanes, threads, stats);
		for (int e = 0; e < 5; e++)
			if (!m.epoch(uniform<u32>(rng, 50, 600)))
				break;
	}
	INFO("records " << stats.records << " crashes " << stats.crashes << " wraps "
			<< stats.wraps << " torn " << stats.torn << " replayed " << stats.replayed
			<< " discarded " << stats.discarded << " header fallbacks "
			<< stats.fallbacks << " full lanes " << stats.enospc << " trims "
			<< stats.trims << " acked " << stats.acked << " bit rot " << stats.bitrot
			<< " detected " << stats.bitrot_detected << " by the scan "
			<< stats.bitrot_scan);
	// The model reached every case it is there for.
	CHECK(stats.wraps > 0);
	CHECK(stats.torn > 0);
	CHECK(stats.replayed > 0);
	CHECK(stats.discarded > 0);
	CHECK(stats.fallbacks > 0);
	CHECK(stats.enospc > 0);
	CHECK(stats.bitrot_detected > 0);
	CHECK(stats.bitrot_scan > 0);
	WARN("model: " << stats.records << " records, " << stats.crashes << " crashes, "
		       << stats.wraps << " wraps, " << stats.torn << " torn, " << stats.replayed
		       << " replayed, " << stats.discarded << " discarded, " << stats.fallbacks
		       << " header fallbacks, " << stats.bitrot_detected << "/" << stats.bitrot
		       << " bit rot detected (" << stats.bitrot_scan << " by the scan)");
}
