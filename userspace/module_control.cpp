// SPDX-License-Identifier: GPL-2.0
// ModuleControl over today's interfaces: the mirror target's sysfs file
// (kmod/mirror_target.c: "start PORT DEVICE KEYFILE" / "stop") and
// mount(2)/umount2(2) with the options of README.md.
#include "twinfs_user/module_control.hpp"
#include "twinfs_user/fd.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace twinfs {
namespace {

namespace fs = std::filesystem;

std::system_error sys_error(const std::string &what)
{
	return std::system_error(errno, std::generic_category(), what);
}

std::string read_line(const fs::path &p)
{
	Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
	if (fd.get() < 0)
		return {};
	char buf[1024];
	ssize_t n;
	do
		n = ::read(fd.get(), buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return {};
	std::string s(buf, static_cast<size_t>(n));
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	return s;
}

class SysfsModuleControl final : public ModuleControl {
public:
	explicit SysfsModuleControl(fs::path root) : root_(std::move(root)) {}

	void start_target(std::uint16_t port, const std::string &nvram,
			  const std::string &keyfile) override
	{
		write_target("start " + std::to_string(port) + " " + nvram + " " + keyfile);
	}

	void stop_target() override
	{
		if (read_line(root_ / "mirror_target") == "stopped")
			return;
		write_target("stop");
	}

	void mount(const MountSpec &spec) override
	{
		std::error_code ec;
		fs::create_directories(spec.mountpoint, ec);
		const std::string opts = mount_options(spec);
		if (::mount(spec.device.c_str(), spec.mountpoint.c_str(), "twinfs", 0,
			    opts.c_str()) < 0)
			throw sys_error("mount -t twinfs -o " + opts + " " + spec.device + " " +
					spec.mountpoint);
	}

	void takeover(const MountSpec &spec) override
	{
		stop_target();
		mount(spec);
	}

	void relinquish(const std::string &mountpoint) override
	{
		if (::umount2(mountpoint.c_str(), 0) < 0)
			throw sys_error("umount " + mountpoint);
	}

	ModuleStatus status() const override
	{
		ModuleStatus st;
		std::error_code ec;
		st.loaded = fs::is_directory(root_, ec);
		if (!st.loaded)
			return st;
		st.target = read_line(root_ / "mirror_target");
		for (const auto &d : fs::directory_iterator(root_, ec))
			if (d.is_directory(ec) && fs::exists(d.path() / "mirror", ec))
				st.mirror[d.path().filename()] = read_line(d.path() / "mirror");
		return st;
	}

private:
	void write_target(const std::string &cmd)
	{
		const fs::path p = root_ / "mirror_target";
		Fd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
		if (fd.get() < 0)
			throw sys_error("open " + p.string());
		if (::write(fd.get(), cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size()))
			throw sys_error("echo '" + cmd + "' > " + p.string());
	}

	fs::path root_;
};

class DryRunModuleControl final : public ModuleControl {
public:
	explicit DryRunModuleControl(std::function<void(const std::string &)> log)
		: log_(std::move(log))
	{
	}
	void start_target(std::uint16_t port, const std::string &nvram,
			  const std::string &keyfile) override
	{
		log_("dry run: mirror_target: start " + std::to_string(port) + " " + nvram + " " +
		     keyfile);
		target_ = "listening port=" + std::to_string(port) + " device=" + nvram;
	}
	void stop_target() override
	{
		if (target_ != "stopped")
			log_("dry run: mirror_target: stop");
		target_ = "stopped";
	}
	void mount(const MountSpec &spec) override
	{
		std::error_code ec;
		fs::create_directories(spec.mountpoint, ec);
		log_("dry run: mount -t twinfs -o " + mount_options(spec) + " " + spec.device + " " +
		     spec.mountpoint);
	}
	void takeover(const MountSpec &spec) override
	{
		stop_target();
		mount(spec);
	}
	void relinquish(const std::string &mountpoint) override
	{
		log_("dry run: umount " + mountpoint);
	}
	ModuleStatus status() const override
	{
		ModuleStatus st;
		st.loaded = true;
		st.target = target_;
		return st;
	}

private:
	std::function<void(const std::string &)> log_;
	std::string target_ = "stopped";
};

} // namespace

std::unique_ptr<ModuleControl> make_dry_run_module_control(
	std::function<void(const std::string &)> log)
{
	return std::make_unique<DryRunModuleControl>(std::move(log));
}

std::string mount_options(const MountSpec &spec)
{
	std::string o = "nvram=" + spec.nvram + ",node=" + std::to_string(spec.node);
	if (!spec.partner.empty()) {
		o += ",partner=" + spec.partner;
		if (!spec.cluster_key.empty())
			o += ",cluster_key=" + spec.cluster_key;
	}
	if (!spec.extra.empty())
		o += "," + spec.extra;
	return o;
}

std::unique_ptr<ModuleControl> make_sysfs_module_control(std::filesystem::path root)
{
	return std::make_unique<SysfsModuleControl>(std::move(root));
}

} // namespace twinfs
