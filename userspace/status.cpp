// SPDX-License-Identifier: GPL-2.0
// twinfsctl status: see include/twinfs_user/status.hpp.
#include "twinfs_user/fd.hpp"
#include "twinfs_user/status.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "include/twinfs/twinfs_format.h"

namespace twinfs::status {
namespace {

namespace fs = std::filesystem;

// Known attributes in display order, with their table headers.  Any other
// file is shown after them (before OPTIONS) under its upper-cased name.
struct Known {
	std::string_view file;
	std::string_view header;
};
constexpr std::array<Known, 8> kKnown{{
	{"state", "STATE"},
	{"format_version", "FORMAT"},
	{"blocks", "BLOCKS"},
	{"free_blocks", "FREE"},
	{"inodes", "INODES"},
	{"free_inodes", "IFREE"},
	{"ag_count", "AGS"},
	{"mount_options", "OPTIONS"},
}};

int known_rank(std::string_view file)
{
	for (size_t i = 0; i < kKnown.size(); i++)
		if (kKnown[i].file == file)
			return static_cast<int>(i);
	return -1;
}

using twinfs::Fd;

// The value of one sysfs file, or the errno of the failure.
struct ReadResult {
	std::string value;
	int error = 0;
};

ReadResult read_value(const fs::path &path)
{
	constexpr size_t kMax = 64 * 1024;
	ReadResult r;
	Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (fd.get() < 0) {
		r.error = errno;
		return r;
	}
	std::array<char, 4096> buf;
	for (;;) {
		const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r.error = errno;
			return r;
		}
		if (n == 0 || r.value.size() >= kMax)
			break;
		r.value.append(buf.data(), static_cast<size_t>(n));
	}
	while (!r.value.empty() &&
	       (r.value.back() == '\n' || r.value.back() == ' ' ||
		r.value.back() == '\t' || r.value.back() == '\r'))
		r.value.pop_back();
	// One value a file: should a file hold several lines, show them on one.
	std::replace(r.value.begin(), r.value.end(), '\n', ' ');
	return r;
}

std::optional<FileSystem> read_filesystem(const fs::path &dir,
					  std::vector<std::string> &warnings)
{
	FileSystem f;
	f.device = dir.filename().string();
	std::error_code ec;
	fs::directory_iterator it(dir, ec);
	if (ec) {
		// Unmounted while we looked: not an error.
		if (ec == std::errc::no_such_file_or_directory)
			return std::nullopt;
		throw std::runtime_error("reading " + dir.string() + ": " + ec.message());
	}
	for (const auto &entry : it) {
		std::error_code tec;
		if (!entry.is_regular_file(tec))
			continue;	// subdirectories, links to other objects
		const fs::path path = entry.path();
		const ReadResult r = read_value(path);
		if (r.error == ENOENT)
			continue;
		if (r.error) {
			warnings.push_back("cannot read " + path.string() + ": " +
					   std::strerror(r.error));
			continue;
		}
		f.attrs.emplace_back(path.filename().string(), r.value);
	}
	std::sort(f.attrs.begin(), f.attrs.end(), [](const auto &a, const auto &b) {
		const int ra = known_rank(a.first), rb = known_rank(b.first);
		if (ra != rb)
			return ra < 0 ? false : rb < 0 ? true : ra < rb;
		return a.first < b.first;
	});
	return f;
}

bool parse_u64(const std::string *s, unsigned long long &out)
{
	if (!s || s->empty() || s->size() > 20 ||
	    !std::all_of(s->begin(), s->end(), [](char c) { return c >= '0' && c <= '9'; }))
		return false;
	errno = 0;
	char *end = nullptr;
	out = std::strtoull(s->c_str(), &end, 10);
	return errno == 0 && end && *end == '\0';
}

std::string upper(std::string_view s)
{
	std::string u(s);
	for (auto &c : u)
		if (c >= 'a' && c <= 'z')
			c = static_cast<char>(c - 'a' + 'A');
	return u;
}

struct Column {
	std::string header;
	std::vector<std::string> cells;	// one per file system, "-" if none
	bool right = true;		// numbers are right-aligned
};

// Adds the column header: cell(f) for each file system of fss, when at
// least one of them has a value.
template <typename Cell>
void add_column(std::vector<Column> &cols, const std::vector<const FileSystem *> &fss,
		std::string header, Cell &&cell)
{
	Column c{std::move(header), {}, true};
	bool any = false;
	for (const FileSystem *f : fss) {
		std::optional<std::string> v = cell(*f);
		any = any || v.has_value();
		if (v && !v->empty() && v->front() == '-')
			v = " " + *v;	// keep a value from looking like "-"
		c.cells.push_back(v ? *v : "-");
	}
	if (any)
		cols.push_back(std::move(c));
}

auto attr_cell(std::string_view name)
{
	return [name](const FileSystem &f) -> std::optional<std::string> {
		if (const auto *v = f.get(name))
			return *v;
		return std::nullopt;
	};
}

// A size in bytes, human readable; another value as it is.
auto bytes_cell(std::string_view name)
{
	return [name](const FileSystem &f) -> std::optional<std::string> {
		unsigned long long n;
		if (parse_u64(f.get(name), n))
			return human_bytes(n);
		if (const auto *v = f.get(name))
			return *v;
		return std::nullopt;
	};
}

// used / total as a percentage rounded up, if both are numbers.
auto percent_cell(std::string_view used, std::string_view total)
{
	return [used, total](const FileSystem &f) -> std::optional<std::string> {
		unsigned long long u, t;
		if (!parse_u64(f.get(used), u) || !parse_u64(f.get(total), t) || !t ||
		    u > t)
			return std::nullopt;
		return std::to_string((u * 100 + t - 1) / t) + "%";
	};
}

// The aligned rows of cols, header first: text columns left-aligned, a
// column of numbers, sizes and percentages right-aligned.
std::string render(std::vector<Column> &cols)
{
	for (auto &c : cols) {
		if (!c.right)
			continue;
		for (const auto &v : c.cells) {
			if (v == "-")
				continue;
			const bool numeric = !v.empty() && (v[0] >= '0' && v[0] <= '9') &&
				std::all_of(v.begin(), v.end(), [](char ch) {
					return (ch >= '0' && ch <= '9') || ch == '.' || ch == '%' ||
					       ch == 'B' || ch == 'K' || ch == 'M' || ch == 'G' ||
					       ch == 'T' || ch == 'P' || ch == 'E';
				});
			if (!numeric)
				c.right = false;
		}
	}

	std::vector<size_t> width;
	for (const auto &c : cols) {
		size_t w = c.header.size();
		for (const auto &v : c.cells)
			w = std::max(w, v.size());
		width.push_back(w);
	}
	std::string out;
	auto row = [&](auto &&cell) {
		std::string line;
		for (size_t i = 0; i < cols.size(); i++) {
			const std::string &v = cell(cols[i]);
			if (i)
				line += "  ";
			const std::string pad(width[i] - v.size(), ' ');
			line += cols[i].right ? pad + v : v + pad;
		}
		while (!line.empty() && line.back() == ' ')
			line.pop_back();
		out += line + "\n";
	};
	row([](const Column &c) -> const std::string & { return c.header; });
	const size_t rows = cols.empty() ? 0 : cols.front().cells.size();
	for (size_t r = 0; r < rows; r++)
		row([r](const Column &c) -> const std::string & { return c.cells[r]; });
	return out;
}

// The change memory section: file systems with at least one of its
// attributes, or "" when none has any (a module without it).
std::string change_memory_table(const Snapshot &snap)
{
	std::vector<const FileSystem *> fss;
	for (const auto &f : snap.filesystems)
		if (std::any_of(kChangeMemoryAttrs.begin(), kChangeMemoryAttrs.end(),
				[&](std::string_view a) { return f.get(a) != nullptr; }))
			fss.push_back(&f);
	if (fss.empty())
		return "";
	std::vector<Column> cols;
	cols.push_back(Column{"DEVICE", {}, false});
	for (const FileSystem *f : fss)
		cols.back().cells.push_back(f->device);
	add_column(cols, fss, "CM_DEVICE", attr_cell("cm_device"));
	add_column(cols, fss, "SIZE", bytes_cell("cm_size"));
	add_column(cols, fss, "USED", bytes_cell("cm_used"));
	add_column(cols, fss, "USE%", percent_cell("cm_used", "cm_size"));
	add_column(cols, fss, "LAST_SEQ", attr_cell("last_seq"));
	add_column(cols, fss, "CP_SEQ", attr_cell("cp_seq"));
	add_column(cols, fss, "CP_COUNT", attr_cell("cp_count"));
	add_column(cols, fss, "DIRTY", attr_cell("cp_dirty_blocks"));
	add_column(cols, fss, "REPLAYED", attr_cell("records_replayed"));
	return "\nchange memory:\n" + render(cols);
}

} // namespace

bool is_change_memory_attr(std::string_view name)
{
	return std::find(kChangeMemoryAttrs.begin(), kChangeMemoryAttrs.end(), name) !=
	       kChangeMemoryAttrs.end();
}

const std::string *FileSystem::get(std::string_view name) const
{
	for (const auto &[k, v] : attrs)
		if (k == name)
			return &v;
	return nullptr;
}

fs::path sysfs_root()
{
	const char *env = std::getenv(std::string(kSysfsRootEnv).c_str());
	if (env && *env)
		return fs::path(env);
	return fs::path(kDefaultSysfsRoot);
}

Snapshot read_snapshot(const fs::path &root)
{
	Snapshot snap;
	snap.root = root;
	std::error_code ec;
	const auto st = fs::status(root, ec);
	if (ec && ec != std::errc::no_such_file_or_directory)
		throw std::runtime_error("cannot access " + root.string() + ": " + ec.message());
	if (!fs::exists(st))
		return snap;
	if (!fs::is_directory(st))
		throw std::runtime_error(root.string() + " is not a directory");
	snap.module_loaded = true;

	fs::directory_iterator it(root, ec);
	if (ec)
		throw std::runtime_error("reading " + root.string() + ": " + ec.message());
	for (const auto &entry : it) {
		std::error_code dec;
		if (!entry.is_directory(dec))
			continue;	// module-wide files, if any
		if (auto f = read_filesystem(entry.path(), snap.warnings))
			snap.filesystems.push_back(std::move(*f));
	}
	std::sort(snap.filesystems.begin(), snap.filesystems.end(),
		  [](const FileSystem &a, const FileSystem &b) { return a.device < b.device; });
	return snap;
}

std::string format_columns(const std::vector<std::vector<std::string>> &rows)
{
	std::vector<std::size_t> width;
	for (const auto &r : rows) {
		width.resize(std::max(width.size(), r.size()), 0);
		for (std::size_t i = 0; i < r.size(); i++)
			width[i] = std::max(width[i], r[i].size());
	}
	std::string out;
	for (const auto &r : rows) {
		std::string line;
		for (std::size_t i = 0; i < r.size(); i++) {
			line += r[i];
			if (i + 1 < r.size())
				line += std::string(width[i] - r[i].size() + 2, ' ');
		}
		out += line + "\n";
	}
	return out;
}

std::string human_bytes(unsigned long long bytes)
{
	static constexpr const char *kUnits[] = {"B", "K", "M", "G", "T", "P", "E"};
	double v = static_cast<double>(bytes);
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
		v /= 1024.0;
		u++;
	}
	std::array<char, 32> buf;
	if (u == 0)
		std::snprintf(buf.data(), buf.size(), "%lluB", bytes);
	else if (v < 10.0)
		std::snprintf(buf.data(), buf.size(), "%.1f%s", v, kUnits[u]);
	else
		std::snprintf(buf.data(), buf.size(), "%.0f%s", v, kUnits[u]);
	return buf.data();
}

std::string format_table(const Snapshot &snap)
{
	if (!snap.module_loaded)
		return "twinfs module not loaded: " + snap.root.string() +
		       " does not exist (modprobe twinfs)\n";
	if (snap.filesystems.empty())
		return "no twinfs file system is mounted\n";

	std::vector<const FileSystem *> fss;
	for (const auto &f : snap.filesystems)
		fss.push_back(&f);
	std::vector<Column> cols;
	auto add = [&](std::string header, auto &&cell) {
		add_column(cols, fss, std::move(header), cell);
	};
	auto size = [](const FileSystem &f) -> std::optional<std::string> {
		unsigned long long blocks;
		if (!parse_u64(f.get("blocks"), blocks))
			return std::nullopt;
		return human_bytes(blocks * TWINFS_BLOCK_SIZE);
	};

	cols.push_back(Column{"DEVICE", {}, false});
	for (const FileSystem *f : fss)
		cols.back().cells.push_back(f->device);
	add("STATE", attr_cell("state"));
	add("FORMAT", attr_cell("format_version"));
	add("SIZE", size);
	add("BLOCKS", attr_cell("blocks"));
	add("FREE", attr_cell("free_blocks"));
	add("USE%", [](const FileSystem &f) -> std::optional<std::string> {
		unsigned long long blocks, free;
		if (!parse_u64(f.get("blocks"), blocks) ||
		    !parse_u64(f.get("free_blocks"), free) || !blocks || free > blocks)
			return std::nullopt;
		return std::to_string(((blocks - free) * 100 + blocks - 1) / blocks) + "%";
	});
	add("INODES", attr_cell("inodes"));
	add("IFREE", attr_cell("free_inodes"));
	add("AGS", attr_cell("ag_count"));
	std::vector<std::string> others;
	for (const FileSystem *f : fss)
		for (const auto &[name, value] : f->attrs)
			if (known_rank(name) < 0 && !is_change_memory_attr(name) &&
			    std::find(others.begin(), others.end(), name) == others.end())
				others.push_back(name);
	std::sort(others.begin(), others.end());
	for (const auto &name : others)
		add(upper(name), attr_cell(name));
	add("OPTIONS", attr_cell("mount_options"));
	return render(cols) + change_memory_table(snap);
}

bool is_json_integer(std::string_view s)
{
	if (!s.empty() && s.front() == '-')
		s.remove_prefix(1);
	if (s.empty() || s.size() > 19)
		return false;
	if (s.size() > 1 && s.front() == '0')
		return false;	// JSON has no leading zeros
	return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string json_quote(std::string_view s)
{
	std::string out = "\"";
	for (const unsigned char c : s) {
		switch (c) {
		case '"': out += "\\\""; break;
		case '\\': out += "\\\\"; break;
		case '\n': out += "\\n"; break;
		case '\r': out += "\\r"; break;
		case '\t': out += "\\t"; break;
		case '\b': out += "\\b"; break;
		case '\f': out += "\\f"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				std::array<char, 8> buf;
				std::snprintf(buf.data(), buf.size(), "\\u%04x", c);
				out += buf.data();
			} else {
				out += static_cast<char>(c);
			}
		}
	}
	return out + "\"";
}

std::string format_json(const Snapshot &snap)
{
	std::string out = "{\n";
	out += "  \"module_loaded\": ";
	out += snap.module_loaded ? "true" : "false";
	out += ",\n  \"sysfs\": " + json_quote(snap.root.string()) + ",\n";
	out += "  \"filesystems\": [";
	for (size_t i = 0; i < snap.filesystems.size(); i++) {
		const auto &f = snap.filesystems[i];
		out += i ? ",\n    {\n" : "\n    {\n";
		out += "      \"device\": " + json_quote(f.device);
		for (const auto &[name, value] : f.attrs) {
			// "device" is the key naming the directory; the
			// change memory has an object of its own.
			if (name == "device" || is_change_memory_attr(name))
				continue;
			out += ",\n      " + json_quote(name) + ": ";
			out += is_json_integer(value) ? value : json_quote(value);
		}
		std::string cm;
		for (const auto name : kChangeMemoryAttrs) {
			const std::string *value = f.get(name);
			if (!value)
				continue;
			cm += cm.empty() ? "\n" : ",\n";
			cm += "        " + json_quote(name) + ": ";
			cm += is_json_integer(*value) ? *value : json_quote(*value);
		}
		if (!cm.empty())
			out += ",\n      \"change_memory\": {" + cm + "\n      }";
		out += "\n    }";
	}
	out += snap.filesystems.empty() ? "]\n" : "\n  ]\n";
	return out + "}\n";
}

} // namespace twinfs::status
