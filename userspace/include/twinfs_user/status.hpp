// SPDX-License-Identifier: GPL-2.0
// twinfsctl status: reading /sys/fs/twinfs and formatting it as a table or
// as JSON.  A library of its own so the unit tests can run it on a fake
// sysfs tree.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace twinfs::status {

// The sysfs directory of the module: one subdirectory per mounted file
// system, named after its device, holding one value per file.
inline constexpr std::string_view kDefaultSysfsRoot = "/sys/fs/twinfs";
// Environment variable overriding it (tests, debugging).
inline constexpr std::string_view kSysfsRootEnv = "TWINFS_SYSFS";

// The change memory's attributes, shown in a section of their own (table:
// "change memory:" after the main table; JSON: a "change_memory" object
// per file system) when a file system has at least one of them.  A module
// without the change memory has none: the section is then left out.
inline constexpr std::array<std::string_view, 8> kChangeMemoryAttrs{
	"cm_device", "cm_size", "cm_used", "last_seq",
	"cp_seq", "cp_count", "cp_dirty_blocks", "records_replayed",
};
bool is_change_memory_attr(std::string_view name);

struct FileSystem {
	std::string device;
	// File name -> value (trailing white space removed), in display order:
	// the known attributes first, then any other file by name.
	std::vector<std::pair<std::string, std::string>> attrs;

	// The value of an attribute, or nullptr if the file is absent.
	const std::string *get(std::string_view name) const;
};

struct Snapshot {
	std::filesystem::path root;
	bool module_loaded = false;		// root exists
	std::vector<FileSystem> filesystems;	// sorted by device
	std::vector<std::string> warnings;	// unreadable attributes
};

// $TWINFS_SYSFS if set and not empty, else /sys/fs/twinfs.
std::filesystem::path sysfs_root();

// Reads every file system under root.  A missing root means the module is
// not loaded; other errors throw std::runtime_error naming the path.
Snapshot read_snapshot(const std::filesystem::path &root);

// An aligned table, one row per file system, or a one-line message when
// none is mounted or the module is not loaded; then the change memory
// section, if any.  Ends with a newline.
std::string format_table(const Snapshot &snap);

// A JSON document: {"module_loaded":..., "sysfs":..., "filesystems":[...]}.
// Values that are decimal integers are JSON numbers, others strings.  The
// change memory attributes of a file system are in its "change_memory"
// object (under their file names), left out when it has none.
std::string format_json(const Snapshot &snap);

// Rows of cells as left-aligned columns two blanks apart, a newline after
// each row (the first row is usually the header).
std::string format_columns(const std::vector<std::vector<std::string>> &rows);

// Helpers, exposed for the tests.
std::string json_quote(std::string_view s);
bool is_json_integer(std::string_view s);
std::string human_bytes(unsigned long long bytes);

} // namespace twinfs::status
