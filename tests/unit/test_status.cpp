// SPDX-License-Identifier: GPL-2.0
// Unit tests of twinfsctl status (userspace/status.cpp) on fake sysfs trees.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "twinfs_user/status.hpp"

namespace fs = std::filesystem;
using namespace twinfs::status;

namespace {

using twinfs_test::TempDir;

void write_file(const fs::path &p, const std::string &content)
{
	fs::create_directories(p.parent_path());
	std::ofstream f(p);
	f << content;
	if (!f)
		throw std::runtime_error("cannot write " + p.string());
}

// Two mounted file systems the way the module shows them, plus things
// that are not file systems or not attributes.
void make_tree(const fs::path &root)
{
	const fs::path vda = root / "vda";
	write_file(vda / "format_version", "1\n");
	write_file(vda / "blocks", "262144\n");
	write_file(vda / "free_blocks", "200000\n");
	write_file(vda / "inodes", "65536\n");
	write_file(vda / "free_inodes", "65530\n");
	write_file(vda / "ag_count", "8\n");
	write_file(vda / "mount_options", "rw,data=ordered\n");
	write_file(vda / "state", "mounted\n");
	const fs::path vdb = root / "vdb";
	write_file(vdb / "format_version", "1\n");
	write_file(vdb / "blocks", "1048576\n");
	write_file(vdb / "free_blocks", "1048000\n");
	write_file(vdb / "state", "mounted\n");
	write_file(vdb / "role", "mds\n");
	write_file(vdb / "tokens" / "granted", "3\n");	// a subdirectory: skipped
	write_file(root / "features", "base\n");		// module-wide: skipped
}

} // namespace

TEST_CASE("status: module not loaded", "[status]")
{
	TempDir tmp;
	const auto snap = read_snapshot(tmp.path() / "absent");
	CHECK_FALSE(snap.module_loaded);
	CHECK(snap.filesystems.empty());
	const auto table = format_table(snap);
	CHECK(table.find("module not loaded") != std::string::npos);
	CHECK(table.find((tmp.path() / "absent").string()) != std::string::npos);
	const auto json = format_json(snap);
	CHECK(json.find("\"module_loaded\": false") != std::string::npos);
	CHECK(json.find("\"filesystems\": []") != std::string::npos);
}

TEST_CASE("status: module loaded, nothing mounted", "[status]")
{
	TempDir tmp;
	write_file(tmp.path() / "features", "base\n");
	const auto snap = read_snapshot(tmp.path());
	CHECK(snap.module_loaded);
	CHECK(snap.filesystems.empty());
	CHECK(format_table(snap) == "no twinfs file system is mounted\n");
	CHECK(format_json(snap) == "{\n"
				   "  \"module_loaded\": true,\n"
				   "  \"sysfs\": \"" + tmp.path().string() + "\",\n"
				   "  \"filesystems\": []\n"
				   "}\n");
}

TEST_CASE("status: a root that is a file is an error", "[status]")
{
	TempDir tmp;
	write_file(tmp.path() / "file", "x");
	CHECK_THROWS_WITH(read_snapshot(tmp.path() / "file"),
			  Catch::Contains("is not a directory"));
}

TEST_CASE("status: reading a fake sysfs tree", "[status]")
{
	TempDir tmp;
	make_tree(tmp.path());
	const auto snap = read_snapshot(tmp.path());
	REQUIRE(snap.module_loaded);
	REQUIRE(snap.filesystems.size() == 2);
	CHECK(snap.warnings.empty());
	const auto &vda = snap.filesystems[0];
	const auto &vdb = snap.filesystems[1];
	CHECK(vda.device == "vda");
	CHECK(vdb.device == "vdb");
	REQUIRE(vda.get("state"));
	CHECK(*vda.get("state") == "mounted");	// newline stripped
	CHECK(*vda.get("mount_options") == "rw,data=ordered");
	CHECK(vdb.get("ag_count") == nullptr);
	CHECK(vdb.get("granted") == nullptr);
	CHECK(*vdb.get("role") == "mds");
	// Known attributes first in display order, then the others by name.
	std::vector<std::string> order;
	for (const auto &[k, v] : vdb.attrs)
		order.push_back(k);
	CHECK(order == std::vector<std::string>{"state", "format_version", "blocks",
						"free_blocks", "role"});
}

TEST_CASE("status: table", "[status]")
{
	TempDir tmp;
	make_tree(tmp.path());
	const auto table = format_table(read_snapshot(tmp.path()));
	CHECK(table ==
	      "DEVICE  STATE    FORMAT  SIZE   BLOCKS     FREE  USE%  INODES  IFREE  AGS  ROLE  OPTIONS\n"
	      "vda     mounted       1  1.0G   262144   200000   24%   65536  65530    8  -     rw,data=ordered\n"
	      "vdb     mounted       1  4.0G  1048576  1048000    1%       -      -    -  mds   -\n");
}

TEST_CASE("status: table with only some attributes", "[status]")
{
	TempDir tmp;
	write_file(tmp.path() / "sdb" / "state", "mounted\n");
	write_file(tmp.path() / "sda" / "state", "replaying\n");
	write_file(tmp.path() / "sda" / "blocks", "garbage\n");
	CHECK(format_table(read_snapshot(tmp.path())) ==
	      "DEVICE  STATE      BLOCKS\n"
	      "sda     replaying  garbage\n"
	      "sdb     mounted    -\n");
}

TEST_CASE("status: JSON", "[status]")
{
	TempDir tmp;
	make_tree(tmp.path());
	write_file(tmp.path() / "vdb" / "label", "say \"hi\"\\\n");
	write_file(tmp.path() / "vdb" / "generation", "007\n");
	const auto json = format_json(read_snapshot(tmp.path()));
	CHECK(json == "{\n"
		      "  \"module_loaded\": true,\n"
		      "  \"sysfs\": \"" + tmp.path().string() + "\",\n"
		      "  \"filesystems\": [\n"
		      "    {\n"
		      "      \"device\": \"vda\",\n"
		      "      \"state\": \"mounted\",\n"
		      "      \"format_version\": 1,\n"
		      "      \"blocks\": 262144,\n"
		      "      \"free_blocks\": 200000,\n"
		      "      \"inodes\": 65536,\n"
		      "      \"free_inodes\": 65530,\n"
		      "      \"ag_count\": 8,\n"
		      "      \"mount_options\": \"rw,data=ordered\"\n"
		      "    },\n"
		      "    {\n"
		      "      \"device\": \"vdb\",\n"
		      "      \"state\": \"mounted\",\n"
		      "      \"format_version\": 1,\n"
		      "      \"blocks\": 1048576,\n"
		      "      \"free_blocks\": 1048000,\n"
		      "      \"generation\": \"007\",\n"
		      "      \"label\": \"say \\\"hi\\\"\\\\\",\n"
		      "      \"role\": \"mds\"\n"
		      "    }\n"
		      "  ]\n"
		      "}\n");
}

TEST_CASE("status: unreadable attributes become warnings", "[status]")
{
	TempDir tmp;
	make_tree(tmp.path());
	REQUIRE(::chmod(tmp.path().c_str(), 0755) == 0);
	REQUIRE(::chmod((tmp.path() / "vda" / "inodes").c_str(), 0200) == 0);

	// Permission bits do not stop root: read as nobody in a child then.
	auto check = [&]() {
		const auto snap = read_snapshot(tmp.path());
		return snap.filesystems.size() == 2 &&
		       snap.filesystems[0].get("inodes") == nullptr &&
		       snap.filesystems[0].get("blocks") != nullptr &&
		       snap.warnings.size() == 1 &&
		       snap.warnings[0].find("vda/inodes") != std::string::npos &&
		       snap.warnings[0].find("Permission denied") != std::string::npos;
	};
	if (::geteuid() != 0) {
		CHECK(check());
		return;
	}
	const pid_t pid = ::fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		if (::setgid(65534) != 0 || ::setuid(65534) != 0)
			::_exit(77);
		bool ok = false;
		try {
			ok = check();
		} catch (...) {
		}
		::_exit(ok ? 0 : 1);
	}
	int status = 0;
	REQUIRE(::waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		WARN("cannot switch to uid 65534: unreadable-file check skipped");
		return;
	}
	CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("status: TWINFS_SYSFS overrides the sysfs root", "[status]")
{
	const char *old = std::getenv("TWINFS_SYSFS");
	const std::string saved = old ? old : "";
	::setenv("TWINFS_SYSFS", "/tmp/fake-sysfs", 1);
	CHECK(sysfs_root() == fs::path("/tmp/fake-sysfs"));
	::setenv("TWINFS_SYSFS", "", 1);
	CHECK(sysfs_root() == fs::path("/sys/fs/twinfs"));
	::unsetenv("TWINFS_SYSFS");
	CHECK(sysfs_root() == fs::path("/sys/fs/twinfs"));
	if (old)
		::setenv("TWINFS_SYSFS", saved.c_str(), 1);
}

TEST_CASE("status: JSON and size helpers", "[status]")
{
	CHECK(json_quote("plain") == "\"plain\"");
	CHECK(json_quote("a\"b\\c\n\t\x01\x7f") == "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"");
	CHECK(json_quote("caf\xc3\xa9") == "\"caf\xc3\xa9\"");	// UTF-8 passes through
	CHECK(is_json_integer("0"));
	CHECK(is_json_integer("123"));
	CHECK(is_json_integer("-5"));
	CHECK_FALSE(is_json_integer(""));
	CHECK_FALSE(is_json_integer("-"));
	CHECK_FALSE(is_json_integer("007"));
	CHECK_FALSE(is_json_integer("1.5"));
	CHECK_FALSE(is_json_integer("12a"));
	CHECK_FALSE(is_json_integer("99999999999999999999"));
	CHECK(human_bytes(0) == "0B");
	CHECK(human_bytes(1023) == "1023B");
	CHECK(human_bytes(1024) == "1.0K");
	CHECK(human_bytes(1536) == "1.5K");
	CHECK(human_bytes(1ull << 30) == "1.0G");
	CHECK(human_bytes(10ull << 30) == "10G");
	CHECK(human_bytes(3ull << 40) == "3.0T");
}

TEST_CASE("status: the change memory section", "[status]")
{
	TempDir tmp;
	make_tree(tmp.path());
	const fs::path vda = tmp.path() / "vda";
	write_file(vda / "cm_device", "/dev/pmem0\n");
	write_file(vda / "cm_size", "67108864\n");
	write_file(vda / "cm_used", "1048576\n");
	write_file(vda / "last_seq", "1234\n");
	write_file(vda / "cp_seq", "1200\n");
	write_file(vda / "cp_count", "17\n");
	write_file(vda / "cp_dirty_blocks", "42\n");
	write_file(vda / "records_replayed", "3\n");
	const auto snap = read_snapshot(tmp.path());
	CHECK(is_change_memory_attr("cp_seq"));
	CHECK_FALSE(is_change_memory_attr("role"));

	// Not columns of the main table; vdb has none, so it has no row.
	CHECK(format_table(snap) ==
	      "DEVICE  STATE    FORMAT  SIZE   BLOCKS     FREE  USE%  INODES  IFREE  AGS  ROLE  OPTIONS\n"
	      "vda     mounted       1  1.0G   262144   200000   24%   65536  65530    8  -     rw,data=ordered\n"
	      "vdb     mounted       1  4.0G  1048576  1048000    1%       -      -    -  mds   -\n"
	      "\n"
	      "change memory:\n"
	      "DEVICE  CM_DEVICE   SIZE  USED  USE%  LAST_SEQ  CP_SEQ  CP_COUNT  DIRTY  REPLAYED\n"
	      "vda     /dev/pmem0   64M  1.0M    2%      1234    1200        17     42         3\n");

	const auto json = format_json(snap);
	CHECK(json.find("      \"mount_options\": \"rw,data=ordered\",\n"
			"      \"change_memory\": {\n"
			"        \"cm_device\": \"/dev/pmem0\",\n"
			"        \"cm_size\": 67108864,\n"
			"        \"cm_used\": 1048576,\n"
			"        \"last_seq\": 1234,\n"
			"        \"cp_seq\": 1200,\n"
			"        \"cp_count\": 17,\n"
			"        \"cp_dirty_blocks\": 42,\n"
			"        \"records_replayed\": 3\n"
			"      }\n"
			"    },\n") != std::string::npos);
	CHECK(json.find("\"cp_seq\": 1200,\n        \"cp_count\"") != std::string::npos);
	CHECK(json.find("\"role\": \"mds\"\n    }") != std::string::npos);	// vdb: none
}

TEST_CASE("status: change memory attributes that are missing are left out", "[status]")
{
	TempDir tmp;
	write_file(tmp.path() / "vda" / "state", "mounted\n");
	write_file(tmp.path() / "vdb" / "state", "mounted\n");
	write_file(tmp.path() / "vdb" / "cp_seq", "5\n");
	write_file(tmp.path() / "vdb" / "cm_size", "big\n");
	const auto snap = read_snapshot(tmp.path());
	CHECK(format_table(snap) ==
	      "DEVICE  STATE\n"
	      "vda     mounted\n"
	      "vdb     mounted\n"
	      "\n"
	      "change memory:\n"
	      "DEVICE  SIZE  CP_SEQ\n"
	      "vdb     big        5\n");
	CHECK(format_json(snap) == "{\n"
				   "  \"module_loaded\": true,\n"
				   "  \"sysfs\": \"" + tmp.path().string() + "\",\n"
				   "  \"filesystems\": [\n"
				   "    {\n"
				   "      \"device\": \"vda\",\n"
				   "      \"state\": \"mounted\"\n"
				   "    },\n"
				   "    {\n"
				   "      \"device\": \"vdb\",\n"
				   "      \"state\": \"mounted\",\n"
				   "      \"change_memory\": {\n"
				   "        \"cm_size\": \"big\",\n"
				   "        \"cp_seq\": 5\n"
				   "      }\n"
				   "    }\n"
				   "  ]\n"
				   "}\n");
}
