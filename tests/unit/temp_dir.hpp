// SPDX-License-Identifier: GPL-2.0
// A temporary directory for the unit tests, removed with everything in it.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace twinfs_test {

class TempDir {
public:
	explicit TempDir(const std::string &prefix = "twinfs-test")
	{
		std::string tmpl =
			(std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
		if (!::mkdtemp(tmpl.data()))
			throw std::runtime_error("mkdtemp " + tmpl + " failed");
		path_ = tmpl;
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	~TempDir()
	{
		std::error_code ec;
		std::filesystem::remove_all(path_, ec);
	}
	const std::filesystem::path &path() const { return path_; }

private:
	std::filesystem::path path_;
};

} // namespace twinfs_test
