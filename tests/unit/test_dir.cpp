// SPDX-License-Identifier: GPL-2.0
// Unit tests of kmod/core/dir.c: the name hash, the readdir key, leaf
// blocks, and a randomized extendible-hash directory built from the leaf
// functions, checked against a std::set.
#include "test_util.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using twinfs_test::Block;
using twinfs_test::uniform;

namespace {

constexpr u32 kDirIno = 42;
constexpr size_t kLeafCsumOff = offsetof(twinfs_dir_leaf_hdr, d_checksum);
constexpr u32 kLeafHdr = sizeof(twinfs_dir_leaf_hdr);

struct Entry {
	std::string name;
	u32 hash;
	u32 ino;
	u8 type;
	bool operator==(const Entry &) const = default;
};

const twinfs_dir_leaf_hdr &hdr(const Block &b)
{
	return *reinterpret_cast<const twinfs_dir_leaf_hdr *>(b.data());
}

twinfs_dir_leaf_hdr &hdr(Block &b)
{
	return *reinterpret_cast<twinfs_dir_leaf_hdr *>(b.data());
}

void reseal(Block &b)
{
	twinfs_csum_set(b.data(), TWINFS_BLOCK_SIZE, kLeafCsumOff);
}

void set_depth(Block &b, u32 depth)
{
	hdr(b).d_depth = cpu_to_le16(static_cast<u16>(depth));
	reseal(b);
}

u32 depth_of(const Block &b)
{
	return le16_to_cpu(hdr(b).d_depth);
}

u32 count_of(const Block &b)
{
	return le16_to_cpu(hdr(b).d_count);
}

Entry entry_at(const Block &b, int off)
{
	const twinfs_dirent *de = twinfs_dirleaf_entry(b.data(), static_cast<u32>(off));
	return {std::string(de->de_name, de->de_name_len), le32_to_cpu(de->de_hash),
		le32_to_cpu(de->de_ino), de->de_type};
}

// The entries of a leaf in stored order, walked with seek and next.
std::vector<Entry> entries(const Block &b)
{
	std::vector<Entry> v;
	for (int off = twinfs_dirleaf_seek(b.data(), 0); off >= 0;
	     off = twinfs_dirleaf_next(b.data(), static_cast<u32>(off)))
		v.push_back(entry_at(b, off));
	return v;
}

bool key_sorted(const std::vector<Entry> &v)
{
	return std::is_sorted(v.begin(), v.end(), [](const Entry &a, const Entry &b) {
		return twinfs_dir_key(a.hash) < twinfs_dir_key(b.hash);
	});
}

u32 hash_of(std::string_view name, u32 seed)
{
	return twinfs_dirhash(name.data(), static_cast<u32>(name.size()), seed);
}

int insert(Block &b, std::string_view name, u32 hash, u32 ino, u8 type = 8)
{
	return twinfs_dirleaf_insert(b.data(), name.data(), static_cast<u32>(name.size()),
				     hash, ino, type);
}

int find(const Block &b, std::string_view name, u32 hash)
{
	return twinfs_dirleaf_find(b.data(), name.data(), static_cast<u32>(name.size()), hash);
}

template <typename Rng>
std::string random_name(Rng &rng, u32 min_len, u32 max_len)
{
	static constexpr std::string_view chars =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+ ";
	std::string s(uniform<u32>(rng, min_len, max_len), 'x');
	for (auto &c : s)
		c = chars[uniform<size_t>(rng, 0, chars.size() - 1)];
	return s;
}

u32 naive_reverse(u32 x)
{
	u32 r = 0;
	for (int i = 0; i < 32; i++)
		if (x & (1u << i))
			r |= 1u << (31 - i);
	return r;
}

} // namespace

TEST_CASE("dirhash is stable: pinned values of the on-disk hash", "[dir][hash]")
{
	// Changing these values changes the on-disk format: every existing
	// directory would be unreadable.
	struct Golden {
		const char *name;
		u32 seed0;
		u32 seed1234abcd;
	};
	const Golden golden[] = {
		{"", 0xAB3E7C0Bu, 0x5E6F0665u},
		{"a", 0x1A80B1B3u, 0x94D98685u},
		{"hello", 0x888D766Eu, 0xD78712BBu},
		{"lost+found", 0xCC88E800u, 0x6C07D621u},
		{"twinfs", 0x9147D961u, 0x8B4F3885u},
	};
	for (const auto &g : golden) {
		INFO("name \"" << g.name << "\"");
		CHECK(hash_of(g.name, 0) == g.seed0);
		CHECK(hash_of(g.name, 0x1234abcdu) == g.seed1234abcd);
		// Same input, same output.
		CHECK(hash_of(g.name, 77) == hash_of(std::string(g.name), 77));
	}
	// Only len bytes count.
	CHECK(twinfs_dirhash("hello world", 5, 0) == hash_of("hello", 0));
}

TEST_CASE("dirhash depends on the seed and spreads names", "[dir][hash]")
{
	auto rng = twinfs_test::make_rng(0xd1a5);
	int same = 0;
	std::set<u32> hashes;
	for (int i = 0; i < 1000; i++) {
		const std::string name = "file" + std::to_string(i);
		const u32 s1 = uniform<u32>(rng, 0, 0xffffffffu);
		const u32 s2 = s1 ^ (1u << uniform<u32>(rng, 0, 31));
		same += hash_of(name, s1) == hash_of(name, s2);
		hashes.insert(hash_of(name, 0));
	}
	CHECK(same == 0);
	CHECK(hashes.size() == 1000);	// no collision among sequential names

	// The table is indexed by the low bits, readdir walks the high bits of
	// the key: both must be close to uniform for sequential names.
	constexpr u32 kNames = 1u << 16, kBuckets = 256;
	std::vector<u32> low(kBuckets), high(kBuckets);
	for (u32 i = 0; i < kNames; i++) {
		const u32 h = hash_of("f" + std::to_string(i), 0x5eed);
		low[h % kBuckets]++;
		high[h >> 24]++;
	}
	const u32 mean = kNames / kBuckets;
	for (u32 b = 0; b < kBuckets; b++) {
		INFO("bucket " << b);
		CHECK(low[b] > mean * 7 / 10);
		CHECK(low[b] < mean * 13 / 10);
		CHECK(high[b] > mean * 7 / 10);
		CHECK(high[b] < mean * 13 / 10);
	}
}

TEST_CASE("dir_key is a bit reversal and an involution", "[dir][key]")
{
	CHECK(twinfs_dir_key(0) == 0);
	CHECK(twinfs_dir_key(1) == 0x80000000u);
	CHECK(twinfs_dir_key(0x80000000u) == 1);
	CHECK(twinfs_dir_key(0xfu) == 0xf0000000u);
	CHECK(twinfs_dir_key(0x12345678u) == 0x1e6a2c48u);
	CHECK(twinfs_dir_key(0xffffffffu) == 0xffffffffu);
	auto rng = twinfs_test::make_rng(0x4e7);
	for (int i = 0; i < 100000; i++) {
		const u32 h = uniform<u32>(rng, 0, 0xffffffffu);
		REQUIRE(twinfs_dir_key(h) == naive_reverse(h));
		REQUIRE(twinfs_dir_key(twinfs_dir_key(h)) == h);
	}
}

TEST_CASE("dir_slot takes the low depth bits", "[dir][key]")
{
	CHECK(twinfs_dir_slot(0xdeadbeefu, 0) == 0);
	CHECK(twinfs_dir_slot(0xdeadbeefu, 1) == 1);
	CHECK(twinfs_dir_slot(0xdeadbeefu, 4) == 0xf);
	CHECK(twinfs_dir_slot(0xdeadbeefu, 8) == 0xef);
	CHECK(twinfs_dir_slot(0xdeadbeefu, TWINFS_DIR_MAX_DEPTH) == 0xdbeefu);
	CHECK(twinfs_dir_slot(0xdeadbeefu, 32) == 0xdeadbeefu);
}

TEST_CASE("leaf key ranges agree with slots", "[dir][key]")
{
	u32 first, last;
	twinfs_dir_leaf_range(0, 0, &first, &last);
	CHECK(first == 0);
	CHECK(last == 0xffffffffu);
	twinfs_dir_leaf_range(0, 1, &first, &last);
	CHECK(first == 0);
	CHECK(last == 0x7fffffffu);
	twinfs_dir_leaf_range(1, 1, &first, &last);
	CHECK(first == 0x80000000u);
	CHECK(last == 0xffffffffu);
	twinfs_dir_leaf_range(1, 2, &first, &last);	// hash bits ..01
	CHECK(first == 0x80000000u);
	CHECK(last == 0xbfffffffu);

	auto rng = twinfs_test::make_rng(0x4a9);
	for (int i = 0; i < 20000; i++) {
		const u32 h = uniform<u32>(rng, 0, 0xffffffffu);
		for (u32 l = 0; l <= TWINFS_DIR_MAX_DEPTH; l++) {
			INFO("hash " << h << " depth " << l);
			const u32 suffix = twinfs_dir_slot(h, l);
			twinfs_dir_leaf_range(suffix, l, &first, &last);
			// The key of the hash lies in its leaf's range ...
			REQUIRE(first <= twinfs_dir_key(h));
			REQUIRE(twinfs_dir_key(h) <= last);
			REQUIRE(u64{last} - first + 1 == 1ull << (32 - l));
			// ... and every key in the range belongs to the leaf.
			const u32 k = uniform<u32>(rng, first, last);
			REQUIRE(twinfs_dir_slot(twinfs_dir_key(k), l) == suffix);
			if (l == TWINFS_DIR_MAX_DEPTH)
				break;
			// Splitting the leaf halves the range: the child
			// without bit l keeps the lower half.
			u32 f0, l0, f1, l1;
			twinfs_dir_leaf_range(suffix, l + 1, &f0, &l0);
			twinfs_dir_leaf_range(suffix | (1u << l), l + 1, &f1, &l1);
			REQUIRE(f0 == first);
			REQUIRE(l0 + 1 == f1);
			REQUIRE(l1 == last);
		}
	}
}

TEST_CASE("leaf init and header checks", "[dir][leaf]")
{
	Block b;
	twinfs_dirleaf_init(b.data(), kDirIno, 3);
	CHECK(twinfs_dirleaf_check(b.data(), kDirIno) == 0);
	CHECK(le32_to_cpu(hdr(b).d_magic) == TWINFS_DIR_LEAF_MAGIC);
	CHECK(depth_of(b) == 3);
	CHECK(count_of(b) == 0);
	CHECK(le16_to_cpu(hdr(b).d_used) == 0);
	CHECK(twinfs_dirleaf_seek(b.data(), 0) == -ENOENT);
	CHECK(find(b, "x", 1) == -ENOENT);
	CHECK(twinfs_dirleaf_check(b.data(), kDirIno + 1) == -EUCLEAN);

	struct twinfs_dir_header h;
	twinfs_dirhdr_init(&h, kDirIno, 7);
	CHECK(twinfs_dirhdr_check(&h, kDirIno) == 0);
	CHECK(le32_to_cpu(h.h_next_leaf) == 2);
	CHECK(le32_to_cpu(h.h_depth) == 0);
	CHECK(twinfs_dirhdr_check(&h, kDirIno + 1) == -EUCLEAN);
	auto broken = [&](auto &&damage) {
		struct twinfs_dir_header c = h;
		damage(c);
		twinfs_csum_set(&c, sizeof(c), offsetof(twinfs_dir_header, h_checksum));
		return twinfs_dirhdr_check(&c, kDirIno);
	};
	CHECK(broken([](auto &c) { c.h_magic = cpu_to_le32(TWINFS_DIR_LEAF_MAGIC); }) == -EUCLEAN);
	CHECK(broken([](auto &c) { c.h_depth = cpu_to_le32(TWINFS_DIR_MAX_DEPTH); }) == 0);
	CHECK(broken([](auto &c) { c.h_depth = cpu_to_le32(TWINFS_DIR_MAX_DEPTH + 1); }) == -EUCLEAN);
	CHECK(broken([](auto &c) { c.h_next_leaf = cpu_to_le32(1); }) == -EUCLEAN);
	CHECK(broken([](auto &c) { c.h_next_leaf = cpu_to_le32(TWINFS_DIR_TABLE_LBLK + 1); }) == -EUCLEAN);
	CHECK(broken([](auto &c) { c.h_parent = 0; }) == -EUCLEAN);
	struct twinfs_dir_header c = h;
	c.h_pad[100] ^= 1;
	CHECK(twinfs_dirhdr_check(&c, kDirIno) == -EUCLEAN);
}

TEST_CASE("leaf insert, find, remove, seek and next keep key order", "[dir][leaf]")
{
	auto rng = twinfs_test::make_rng(0x1eaf);
	const u32 seed = 0xabad1dea;
	Block b;
	twinfs_dirleaf_init(b.data(), kDirIno, 0);

	std::vector<Entry> want;
	for (u32 i = 0; i < 60; i++) {
		const std::string name = random_name(rng, 1, 30);
		if (std::any_of(want.begin(), want.end(),
				[&](const Entry &e) { return e.name == name; }))
			continue;
		const Entry e{name, hash_of(name, seed), 1000 + i, static_cast<u8>(i % 16)};
		REQUIRE(insert(b, e.name, e.hash, e.ino, e.type) == 0);
		want.push_back(e);
		REQUIRE(twinfs_dirleaf_check(b.data(), kDirIno) == 0);
	}
	REQUIRE(count_of(b) == want.size());
	u32 used = 0;
	for (const auto &e : want)
		used += TWINFS_DIRENT_SIZE(e.name.size());
	CHECK(le16_to_cpu(hdr(b).d_used) == used);

	// Stored in key order, fields intact.
	auto got = entries(b);
	CHECK(key_sorted(got));
	auto by_key = [](const Entry &x, const Entry &y) {
		return twinfs_dir_key(x.hash) < twinfs_dir_key(y.hash);
	};
	std::stable_sort(want.begin(), want.end(), by_key);
	CHECK(got == want);

	// find, with the right hash only.
	for (const auto &e : want) {
		const int off = find(b, e.name, e.hash);
		REQUIRE(off >= int(kLeafHdr));
		CHECK(entry_at(b, off) == e);
		CHECK(find(b, e.name, e.hash ^ 1) == -ENOENT);
		CHECK(find(b, e.name + "x", e.hash) == -ENOENT);
	}
	CHECK(find(b, "not there", hash_of("not there", seed)) == -ENOENT);

	// seek: the first entry whose key is >= the key asked for.
	for (int i = 0; i < 500; i++) {
		const u32 key = i < 100 ? twinfs_dir_key(want[i % want.size()].hash) + (i >= 50)
					: uniform<u32>(rng, 0, 0xffffffffu);
		const auto it = std::find_if(want.begin(), want.end(), [&](const Entry &e) {
			return twinfs_dir_key(e.hash) >= key;
		});
		const int off = twinfs_dirleaf_seek(b.data(), key);
		if (it == want.end()) {
			CHECK(off == -ENOENT);
		} else {
			REQUIRE(off >= 0);
			CHECK(entry_at(b, off) == *it);
		}
	}
	CHECK(twinfs_dirleaf_seek(b.data(), 0) == int(kLeafHdr));

	// Remove in random order; the rest stays sorted and valid.
	while (!want.empty()) {
		const size_t i = uniform<size_t>(rng, 0, want.size() - 1);
		const int off = find(b, want[i].name, want[i].hash);
		REQUIRE(off >= 0);
		twinfs_dirleaf_remove(b.data(), static_cast<u32>(off));
		CHECK(find(b, want[i].name, want[i].hash) == -ENOENT);
		want.erase(want.begin() + static_cast<std::ptrdiff_t>(i));
		REQUIRE(twinfs_dirleaf_check(b.data(), kDirIno) == 0);
		REQUIRE(entries(b) == want);
	}
	// An emptied leaf is byte for byte a fresh one.
	Block fresh;
	twinfs_dirleaf_init(fresh.data(), kDirIno, 0);
	CHECK(b == fresh);
}

TEST_CASE("leaf entries with equal hashes", "[dir][leaf]")
{
	Block b;
	twinfs_dirleaf_init(b.data(), kDirIno, 0);
	REQUIRE(insert(b, "m", 0x10, 5) == 0);
	REQUIRE(insert(b, "one", 0x77, 1) == 0);
	REQUIRE(insert(b, "two", 0x77, 2) == 0);
	REQUIRE(insert(b, "three", 0x77, 3) == 0);
	REQUIRE(twinfs_dirleaf_check(b.data(), kDirIno) == 0);
	// Equal keys keep insertion order, and find tells them apart by name.
	const auto v = entries(b);
	REQUIRE(v.size() == 4);
	CHECK(v[1].name == "one");
	CHECK(v[2].name == "two");
	CHECK(v[3].name == "three");
	CHECK(entry_at(b, find(b, "two", 0x77)).ino == 2);
	CHECK(entry_at(b, find(b, "three", 0x77)).ino == 3);
	CHECK(entry_at(b, twinfs_dirleaf_seek(b.data(), twinfs_dir_key(0x77))).name == "one");
}

TEST_CASE("leaf insert fails cleanly when full or invalid", "[dir][leaf]")
{
	auto rng = twinfs_test::make_rng(0xf011);
	Block b;
	twinfs_dirleaf_init(b.data(), kDirIno, 0);

	CHECK(insert(b, "", 1, 1) == -EINVAL);
	const std::string too_long(TWINFS_NAME_MAX + 1, 'a');
	CHECK(insert(b, too_long, 1, 1) == -EINVAL);
	const std::string longest(TWINFS_NAME_MAX, 'a');
	CHECK(TWINFS_DIRENT_SIZE(TWINFS_NAME_MAX) == 268u);

	// Fill with maximum-length names: 4072 / 268 = 15 fit.
	u32 n = 0;
	for (;; n++) {
		std::string name = longest;
		name[0] = static_cast<char>('A' + n);
		const Block before = b;
		const int rc = insert(b, name, uniform<u32>(rng, 0, 0xffffffffu), n + 1);
		if (rc == -ENOSPC) {
			CHECK(b == before);	// untouched
			break;
		}
		REQUIRE(rc == 0);
	}
	CHECK(n == TWINFS_DIR_LEAF_SPACE / TWINFS_DIRENT_SIZE(TWINFS_NAME_MAX));
	CHECK(twinfs_dirleaf_check(b.data(), kDirIno) == 0);
	// What is left still takes smaller entries, to the last byte.
	u32 left = TWINFS_DIR_LEAF_SPACE - le16_to_cpu(hdr(b).d_used);
	while (left >= TWINFS_DIRENT_SIZE(1)) {
		const u32 len = std::min<u32>(left - 10, TWINFS_NAME_MAX) & ~3u;
		const u32 size = TWINFS_DIRENT_SIZE(std::max(len, 1u));
		REQUIRE(size <= left);
		const std::string name(std::max(len, 1u), 'z');
		REQUIRE(insert(b, name, uniform<u32>(rng, 0, 0xffffffffu), 9) == 0);
		left -= size;
	}
	CHECK(le16_to_cpu(hdr(b).d_used) + left == TWINFS_DIR_LEAF_SPACE);
	CHECK(insert(b, "q", 5, 5) == -ENOSPC);
	CHECK(twinfs_dirleaf_check(b.data(), kDirIno) == 0);
}

TEST_CASE("leaf split moves exactly the entries with the bit set", "[dir][leaf]")
{
	auto rng = twinfs_test::make_rng(0x5b117);
	for (u32 bit : {0u, 1u, 5u, 19u}) {
		INFO("bit " << bit);
		Block old_b, new_b;
		twinfs_dirleaf_init(old_b.data(), kDirIno, bit);
		std::vector<Entry> all;
		for (u32 i = 0;; i++) {
			const std::string name = "n" + std::to_string(i) + random_name(rng, 0, 20);
			const Entry e{name, hash_of(name, 99), i + 1, 8};
			if (insert(old_b, e.name, e.hash, e.ino) == -ENOSPC)
				break;
			all.push_back(e);
		}
		set_depth(old_b, bit + 1);
		twinfs_dirleaf_init(new_b.data(), kDirIno, bit + 1);

		const u32 moved = twinfs_dirleaf_split(old_b.data(), new_b.data(), bit);
		const auto o = entries(old_b);
		const auto n = entries(new_b);
		const auto with_bit = std::count_if(all.begin(), all.end(), [&](const Entry &e) {
			return (e.hash >> bit) & 1;
		});
		CHECK(moved == u32(with_bit));
		CHECK(n.size() == moved);
		CHECK(o.size() + n.size() == all.size());
		CHECK(count_of(new_b) == n.size());
		CHECK(count_of(old_b) == o.size());
		for (const auto &e : o)
			CHECK_FALSE((e.hash >> bit) & 1);
		for (const auto &e : n)
			CHECK((e.hash >> bit) & 1);
		CHECK(key_sorted(o));
		CHECK(key_sorted(n));
		CHECK(twinfs_dirleaf_check(old_b.data(), kDirIno) == 0);
		CHECK(twinfs_dirleaf_check(new_b.data(), kDirIno) == 0);
		for (const auto &e : all) {
			const Block &home = (e.hash >> bit) & 1 ? new_b : old_b;
			const int off = find(home, e.name, e.hash);
			REQUIRE(off >= 0);
			CHECK(entry_at(home, off) == e);
		}
	}
}

TEST_CASE("dirleaf_check rejects corruption", "[dir][leaf]")
{
	Block good;
	twinfs_dirleaf_init(good.data(), kDirIno, 2);
	REQUIRE(insert(good, "alpha", 0x100, 11) == 0);
	REQUIRE(insert(good, "beta", 0x200, 12) == 0);
	REQUIRE(insert(good, "gamma", 0x300, 13) == 0);
	REQUIRE(twinfs_dirleaf_check(good.data(), kDirIno) == 0);
	const int second = twinfs_dirleaf_next(good.data(), kLeafHdr);
	REQUIRE(second > 0);

	// Each corruption is resealed, so the structural check must catch it.
	auto check_damaged = [&](auto &&damage) {
		Block b = good;
		damage(b);
		reseal(b);
		return twinfs_dirleaf_check(b.data(), kDirIno);
	};
	auto de = [](Block &b, int off) {
		return reinterpret_cast<twinfs_dirent *>(b.data() + off);
	};

	SECTION("checksum") {
		Block b = good;
		b.bytes[TWINFS_BLOCK_SIZE - 1] ^= 1;	// in the unused space
		CHECK(twinfs_dirleaf_check(b.data(), kDirIno) == -EUCLEAN);
		b = good;
		de(b, kLeafHdr)->de_name[0] = 'A';
		CHECK(twinfs_dirleaf_check(b.data(), kDirIno) == -EUCLEAN);
	}
	SECTION("magic") {
		CHECK(check_damaged([](Block &b) { hdr(b).d_magic = cpu_to_le32(TWINFS_DIR_HDR_MAGIC); }) == -EUCLEAN);
	}
	SECTION("owner") {
		CHECK(check_damaged([](Block &b) { hdr(b).d_ino = cpu_to_le32(kDirIno + 1); }) == -EUCLEAN);
	}
	SECTION("depth") {
		CHECK(check_damaged([](Block &b) { hdr(b).d_depth = cpu_to_le16(TWINFS_DIR_MAX_DEPTH); }) == 0);
		CHECK(check_damaged([](Block &b) { hdr(b).d_depth = cpu_to_le16(TWINFS_DIR_MAX_DEPTH + 1); }) == -EUCLEAN);
	}
	SECTION("used beyond the block") {
		CHECK(check_damaged([](Block &b) { hdr(b).d_used = cpu_to_le16(TWINFS_DIR_LEAF_SPACE + 4); }) == -EUCLEAN);
	}
	SECTION("used not matching the entries") {
		CHECK(check_damaged([](Block &b) { hdr(b).d_used = cpu_to_le16(le16_to_cpu(hdr(b).d_used) - 4); }) == -EUCLEAN);
		CHECK(check_damaged([](Block &b) { hdr(b).d_used = cpu_to_le16(le16_to_cpu(hdr(b).d_used) + 4); }) == -EUCLEAN);
		CHECK(check_damaged([](Block &b) { hdr(b).d_used = cpu_to_le16(le16_to_cpu(hdr(b).d_used) + 32); }) == -EUCLEAN);
	}
	SECTION("count") {
		CHECK(check_damaged([](Block &b) { hdr(b).d_count = cpu_to_le16(2); }) == -EUCLEAN);
		CHECK(check_damaged([](Block &b) { hdr(b).d_count = cpu_to_le16(4); }) == -EUCLEAN);
	}
	SECTION("empty name") {
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_name_len = 0; }) == -EUCLEAN);
	}
	SECTION("name running past the entries") {
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_name_len = 200; }) == -EUCLEAN);
	}
	SECTION("inode 0") {
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_ino = 0; }) == -EUCLEAN);
	}
	SECTION("slash or NUL in a name") {
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_name[1] = '/'; }) == -EUCLEAN);
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_name[0] = '\0'; }) == -EUCLEAN);
	}
	SECTION("keys out of order") {
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_hash = cpu_to_le32(0x1); }) == -EUCLEAN);
		// Equal keys are allowed.
		CHECK(check_damaged([&](Block &b) { de(b, second)->de_hash = de(b, kLeafHdr)->de_hash; }) == 0);
	}
}

namespace {

// An extendible hash directory in memory, built only from the core's leaf
// functions the way the kernel builds it on disk: leaves are blocks, the
// table maps the low `depth` bits of a hash to a leaf.
class ExtDir {
public:
	explicit ExtDir(u32 seed) : seed_(seed)
	{
		leaves_.emplace_back();
		twinfs_dirleaf_init(leaves_[0].data(), kDirIno, 0);
		table_.push_back(0);
	}

	// 0, or -EEXIST.
	int insert(const std::string &name, u32 ino)
	{
		const u32 h = hash_of(name, seed_);
		for (;;) {
			Block &leaf = leaves_[table_[twinfs_dir_slot(h, depth_)]];
			if (find(leaf, name, h) >= 0)
				return -EEXIST;
			const int rc = ::insert(leaf, name, h, ino);
			if (rc == 0)
				return 0;
			REQUIRE(rc == -ENOSPC);
			split(table_[twinfs_dir_slot(h, depth_)]);
		}
	}

	// 0, or -ENOENT.
	int remove(const std::string &name)
	{
		const u32 h = hash_of(name, seed_);
		Block &leaf = leaves_[table_[twinfs_dir_slot(h, depth_)]];
		const int off = find(leaf, name, h);
		if (off < 0)
			return off;
		twinfs_dirleaf_remove(leaf.data(), static_cast<u32>(off));
		return 0;
	}

	bool contains(const std::string &name) const
	{
		const u32 h = hash_of(name, seed_);
		return find(leaves_[table_[twinfs_dir_slot(h, depth_)]], name, h) >= 0;
	}

	// Checks every structural invariant and the contents against model.
	void verify(const std::set<std::string> &model) const
	{
		REQUIRE(table_.size() == size_t{1} << depth_);
		size_t total = 0;
		for (u32 li = 0; li < leaves_.size(); li++) {
			INFO("leaf " << li);
			const Block &leaf = leaves_[li];
			REQUIRE(twinfs_dirleaf_check(leaf.data(), kDirIno) == 0);
			const u32 l = depth_of(leaf);
			REQUIRE(l <= depth_);
			// The slots pointing at the leaf: 2^(depth-l) of
			// them, all with the leaf's suffix.
			u32 suffix = 0, slots = 0;
			for (u32 s = 0; s < table_.size(); s++) {
				if (table_[s] != li)
					continue;
				if (!slots++)
					suffix = twinfs_dir_slot(s, l);
				REQUIRE(twinfs_dir_slot(s, l) == suffix);
			}
			REQUIRE(slots == 1u << (depth_ - l));
			const auto es = entries(leaf);
			REQUIRE(key_sorted(es));
			for (const auto &e : es) {
				REQUIRE(twinfs_dir_slot(e.hash, l) == suffix);
				REQUIRE(model.count(e.name) == 1);
			}
			total += es.size();
		}
		REQUIRE(total == model.size());
		for (const auto &name : model)
			REQUIRE(contains(name));
	}

	// readdir: walk the key space in order, one leaf range at a time,
	// returning at most `batch` names a call and resuming from a cookie
	// (the key of the next name), the way getdents does.
	std::vector<std::string> readdir(size_t batch) const
	{
		std::vector<std::string> out;
		u64 cookie = 0;	// 2^32: end of directory
		u32 prev_key = 0;
		while (cookie <= 0xffffffffu) {
			size_t room = batch;
			for (;;) {
				const u32 key = static_cast<u32>(cookie);
				const u32 h = twinfs_dir_key(key);
				const Block &leaf = leaves_[table_[twinfs_dir_slot(h, depth_)]];
				const u32 l = depth_of(leaf);
				u32 first, last;
				twinfs_dir_leaf_range(twinfs_dir_slot(h, l), l, &first, &last);
				REQUIRE(first <= key);
				REQUIRE(key <= last);
				int off = twinfs_dirleaf_seek(leaf.data(), key);
				while (off >= 0 && room) {
					const Entry e = entry_at(leaf, off);
					REQUIRE(twinfs_dir_key(e.hash) >= prev_key);
					prev_key = twinfs_dir_key(e.hash);
					out.push_back(e.name);
					room--;
					off = twinfs_dirleaf_next(leaf.data(), static_cast<u32>(off));
				}
				if (off >= 0) {	// buffer full: resume at this entry
					cookie = twinfs_dir_key(entry_at(leaf, off).hash);
					break;
				}
				cookie = u64{last} + 1;
				if (cookie > 0xffffffffu)
					break;
			}
		}
		return out;
	}

	u32 depth() const { return depth_; }
	size_t leaves() const { return leaves_.size(); }
	u32 splits() const { return splits_; }

private:
	void split(u32 li)
	{
		const u32 l = depth_of(leaves_[li]);
		if (l == depth_) {
			REQUIRE(depth_ < TWINFS_DIR_MAX_DEPTH);
			const size_t n = table_.size();
			table_.resize(2 * n);
			std::copy_n(table_.begin(), n, table_.begin() + static_cast<std::ptrdiff_t>(n));
			depth_++;
		}
		const u32 ni = static_cast<u32>(leaves_.size());
		leaves_.emplace_back();	// may move the leaves: index only
		twinfs_dirleaf_init(leaves_[ni].data(), kDirIno, l + 1);
		set_depth(leaves_[li], l + 1);
		twinfs_dirleaf_split(leaves_[li].data(), leaves_[ni].data(), l);
		for (u32 s = 0; s < table_.size(); s++)
			if (table_[s] == li && ((s >> l) & 1))
				table_[s] = ni;
		splits_++;
	}

	u32 seed_;
	u32 depth_ = 0;
	u32 splits_ = 0;
	std::vector<Block> leaves_;
	std::vector<u32> table_;
};

} // namespace

TEST_CASE("extendible hash directory against a set", "[dir][random]")
{
	auto rng = twinfs_test::make_rng(0xd17d17);
	const u32 seed = uniform<u32>(rng, 0, 0xffffffffu);
	INFO("dirhash seed " << seed);
	ExtDir dir(seed);
	std::set<std::string> model;
	std::vector<std::string> names;	// ever inserted, to pick removals from

	for (int op = 0; op < 12000; op++) {
		INFO("operation " << op);
		const bool add = model.size() < 200 || uniform<u32>(rng, 0, 99) < 65;
		if (add) {
			const u32 r = uniform<u32>(rng, 0, 99);
			std::string name;
			if (r < 5 && !names.empty())	// an existing or removed name again
				name = names[uniform<size_t>(rng, 0, names.size() - 1)];
			else if (r < 10)
				name = random_name(rng, 200, TWINFS_NAME_MAX);
			else
				name = random_name(rng, 1, 40);
			const bool fresh = !model.count(name);
			REQUIRE(dir.insert(name, static_cast<u32>(op + 2)) == (fresh ? 0 : -EEXIST));
			if (fresh) {
				model.insert(name);
				names.push_back(name);
			}
		} else {
			const u32 r = uniform<u32>(rng, 0, 99);
			if (r < 10) {
				const std::string name = random_name(rng, 41, 50);
				REQUIRE(dir.remove(name) == -ENOENT);
			} else {
				auto it = model.begin();
				std::advance(it, uniform<size_t>(rng, 0, model.size() - 1));
				REQUIRE(dir.remove(*it) == 0);
				REQUIRE_FALSE(dir.contains(*it));
				model.erase(it);
			}
		}
		if (op % 1000 == 999)
			dir.verify(model);
	}
	dir.verify(model);
	INFO("names " << model.size() << " depth " << dir.depth() << " leaves " << dir.leaves());
	CHECK(model.size() > 3000);
	CHECK(dir.depth() >= 5);	// the table doubled several times
	CHECK(dir.splits() >= 40);

	// readdir in one go and in small batches lists every name once.
	for (size_t batch : {size_t{1000000}, size_t{1}, size_t{7}, size_t{64}}) {
		INFO("readdir batch " << batch);
		const auto listed = dir.readdir(batch);
		CHECK(listed.size() == model.size());
		const std::set<std::string> uniq(listed.begin(), listed.end());
		CHECK(uniq.size() == listed.size());
		CHECK(uniq == model);
	}

	// Empty it again: every leaf empty and valid.
	for (const auto &name : std::vector<std::string>(model.begin(), model.end())) {
		REQUIRE(dir.remove(name) == 0);
		model.erase(name);
	}
	dir.verify(model);
	CHECK(dir.readdir(10).empty());
}
