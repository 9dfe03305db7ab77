// SPDX-License-Identifier: GPL-2.0
// twinfsctl: administration of twinfs.  For now `status`, reading
// /sys/fs/twinfs (or $TWINFS_SYSFS); relocation, partner and mirror
// commands arrive with the membership daemon.
#include <cstdio>
#include <exception>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "twinfs_user/status.hpp"
#include "twinfs_user/version.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

void usage(std::ostream &os)
{
	os << "usage: twinfsctl [--help] [--version] <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  status [--json]   show the mounted twinfs file systems, one row each,\n"
	      "                    then their change memory (device, size, use,\n"
	      "                    last seq, consistency points, blocks changed\n"
	      "                    since the last one, records replayed at mount)\n"
	      "                    when the module has one\n"
	      "                    (--json: the same as a JSON document)\n"
	      "\n"
	      "The status is read from /sys/fs/twinfs/<device>/; set TWINFS_SYSFS to\n"
	      "read another directory.\n"
	      "\n"
	      "exit status: 0 success, 1 error (including: module not loaded),\n"
	      "2 usage error\n";
}

int usage_error(const std::string &msg)
{
	std::cerr << "twinfsctl: " << msg << "\n"
		  << "Try 'twinfsctl --help'.\n";
	return kExitUsage;
}

int cmd_status(std::span<const std::string_view> args)
{
	bool json = false;
	for (const auto arg : args) {
		if (arg == "--json")
			json = true;
		else if (arg == "-h" || arg == "--help") {
			usage(std::cout);
			return kExitOk;
		} else
			return usage_error("status: unknown argument '" + std::string(arg) + "'");
	}
	const auto snap = twinfs::status::read_snapshot(twinfs::status::sysfs_root());
	for (const auto &w : snap.warnings)
		std::cerr << "twinfsctl: warning: " << w << "\n";
	if (json) {
		std::cout << twinfs::status::format_json(snap);
	} else if (snap.module_loaded) {
		std::cout << twinfs::status::format_table(snap);
	} else {
		std::cerr << "twinfsctl: " << twinfs::status::format_table(snap);
	}
	std::cout.flush();
	if (!std::cout)
		throw std::runtime_error("writing to standard output failed");
	return snap.module_loaded ? kExitOk : kExitError;
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
