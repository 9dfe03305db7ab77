// SPDX-License-Identifier: GPL-2.0
// ModuleControl over the generic netlink family "twinfs" (genl.hpp: the
// mirror target's TARGET_START / TARGET_STOP / TARGET_STATUS and the
// mounts' STATUS) and mount(2)/umount2(2) with the options of README.md.
#include "twinfs_user/module_control.hpp"
#include "twinfs_user/genl.hpp"

#include <sys/mount.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

#include "include/twinfs/twinfs_genl.h"

namespace twinfs {
namespace {

namespace fs = std::filesystem;

std::system_error sys_error(const std::string &what)
{
	return std::system_error(errno, std::generic_category(), what);
}

// The twinfs part of a device path: what the module calls the device
// ("/dev/vda" -> "vda"), for pointing at its kernel messages.
std::string kernel_device_name(const std::string &dev)
{
	std::error_code ec;
	const fs::path p = fs::canonical(dev, ec);
	return (ec ? fs::path(dev) : p).filename().string();
}

// One request on a fresh socket; the module not being loaded is an error
// that names the operation too.
std::vector<genl::Bytes> genl_request(std::uint8_t cmd, std::span<const genl::Attr> attrs,
				      bool dump, const std::string &what)
{
	genl::Socket sock;
	if (!sock.family_present())
		throw genl::Error(what + ": the twinfs module is not loaded (no genetlink family twinfs)",
				  ENOENT);
	return sock.request(cmd, attrs, dump, what);
}

// The target's state as one line, as sysfs would start it.
std::string target_line(const genl::TargetStatus &t)
{
	std::string s = genl::format_target_text(t);
	while (!s.empty() && s.back() == '\n')
		s.pop_back();
	return s;
}

class GenlModuleControl final : public ModuleControl {
public:
	void start_target(std::uint16_t port, const std::string &nvram,
			  const std::string &keyfile) override
	{
		const genl::Attr attrs[] = {
			genl::Attr::u16(TWINFS_A_PORT, port),
			genl::Attr::string(TWINFS_A_TARGET_DEVICE, nvram),
			genl::Attr::string(TWINFS_A_KEY_FILE, keyfile),
		};
		genl_request(TWINFS_CMD_TARGET_START, attrs, false,
			     "mirror target start (port " + std::to_string(port) + ", device " +
				     nvram + ", key " + keyfile + ")");
	}

	// TARGET_STOP is acknowledged when no target runs, too.
	void stop_target() override
	{
		genl_request(TWINFS_CMD_TARGET_STOP, {}, false, "mirror target stop");
	}

	void mount(const MountSpec &spec) override
	{
		std::error_code ec;
		fs::create_directories(spec.mountpoint, ec);
		const std::string opts = mount_options(spec);
		if (::mount(spec.device.c_str(), spec.mountpoint.c_str(), "twinfs", 0,
			    opts.c_str()) < 0)
			throw sys_error("mount -t twinfs -o " + opts + " " + spec.device + " " +
					spec.mountpoint + " (the kernel log says why: 'twinfs (" +
					kernel_device_name(spec.device) + "):')");
	}

	void set_node(unsigned node) override
	{
		const genl::Attr attrs[] = {genl::Attr::u32(TWINFS_A_NODE_ID, node)};
		genl_request(TWINFS_CMD_SET_NODE, attrs, false,
			     "set node id " + std::to_string(node));
	}

	std::string prepare_takeover(unsigned node) override
	{
		const genl::Attr attrs[] = {genl::Attr::u32(TWINFS_A_MOUNT_NODE, node)};
		const genl::TakeoverReply t = genl::parse_takeover(genl::only_reply(
			genl_request(TWINFS_CMD_TAKEOVER, attrs, false,
				     "takeover of node area " + std::to_string(node)),
			"takeover"));
		if (!t.copy_device)
			return "takeover armed (no mirror target was running)";
		return "takeover armed: mirror target stopped, copy on " + *t.copy_device + " (" +
		       std::to_string(t.copy_writes.value_or(0)) + " writes)" +
		       (t.owner_was_connected ? "; its owner was still connected" : "");
	}

	std::string relinquish(const MountSpec &spec) override
	{
		const std::string dev = kernel_device_name(spec.device);
		std::string line;
		try {
			const genl::Attr attrs[] = {genl::Attr::string(TWINFS_A_DEVICE, dev)};
			const genl::RelinquishReply rr = genl::parse_relinquish(genl::only_reply(
				genl_request(TWINFS_CMD_RELINQUISH, attrs, false, "relinquish " + dev),
				"relinquish"));
			line = "consistency point " + std::to_string(rr.cp_seq) + " written, " +
			       std::to_string(rr.cm_used) + " bytes of change memory left";
		} catch (const genl::Error &e) {
			line = std::string("no consistency point before the umount (") + e.what() + ")";
		}
		if (::umount2(spec.mountpoint.c_str(), 0) < 0)
			throw sys_error("umount " + spec.mountpoint + " after " + line);
		return line;
	}

	void connect_partner(const std::string &device) override
	{
		link_request(TWINFS_CMD_CONNECT, device, "connect the partner link of ");
	}

	void disconnect_partner(const std::string &device) override
	{
		link_request(TWINFS_CMD_DISCONNECT, device, "disconnect the partner link of ");
	}

	static void link_request(std::uint8_t cmd, const std::string &device, const std::string &what)
	{
		const std::string dev = kernel_device_name(device);
		const genl::Attr attrs[] = {genl::Attr::string(TWINFS_A_DEVICE, dev)};
		genl_request(cmd, attrs, false, what + dev);
	}

	// Never throws (the daemon writes its status file from it every
	// second): what cannot be read is said in target.
	ModuleStatus status() const override
	{
		ModuleStatus st;
		try {
			genl::Socket sock;
			st.loaded = sock.family_present();
			if (!st.loaded)
				return st;
			st.target = target_line(genl::parse_target_status(genl::only_reply(
				sock.request(TWINFS_CMD_TARGET_STATUS, {}, false, "mirror target status"),
				"mirror target status")));
			for (const auto &r :
			     sock.request(TWINFS_CMD_STATUS, {}, true, "status of the mounts")) {
				const genl::FsStatus f = genl::parse_status(r);
				st.mirror[f.device] = to_string(MirrorStatus{
					f.mirror_state, f.transport.value_or(""), f.partner.value_or("")});
			}
		} catch (const std::exception &e) {
			st.target = std::string("unknown: ") + e.what();
		}
		return st;
	}
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
		log_("dry run: mirror target: start " + std::to_string(port) + " " + nvram + " " +
		     keyfile);
		target_ = "listening port=" + std::to_string(port) + " device=" + nvram;
	}
	void stop_target() override
	{
		if (target_ != "stopped")
			log_("dry run: mirror target: stop");
		target_ = "stopped";
	}
	void mount(const MountSpec &spec) override
	{
		std::error_code ec;
		fs::create_directories(spec.mountpoint, ec);
		log_("dry run: mount -t twinfs -o " + mount_options(spec) + " " + spec.device + " " +
		     spec.mountpoint);
	}
	void set_node(unsigned node) override
	{
		log_("dry run: node id " + std::to_string(node));
	}
	std::string prepare_takeover(unsigned node) override
	{
		stop_target();
		return "dry run: takeover of node area " + std::to_string(node) + " armed";
	}
	std::string relinquish(const MountSpec &spec) override
	{
		return "dry run: umount " + spec.mountpoint;
	}
	void connect_partner(const std::string &device) override
	{
		log_("dry run: connect the partner link of " + device);
	}
	void disconnect_partner(const std::string &device) override
	{
		log_("dry run: disconnect the partner link of " + device);
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

std::string to_string(const MirrorStatus &m)
{
	if (m.transport.empty() && m.partner.empty())
		return m.state;
	return (m.transport.empty() ? "-" : m.transport) + " " +
	       (m.partner.empty() ? "-" : m.partner) + " " + m.state;
}

MirrorStatus parse_mirror_line(std::string_view line)
{
	std::vector<std::string> w;
	std::size_t i = 0;
	while (i < line.size() && w.size() < 3) {
		const std::size_t j = std::min(line.find(' ', i), line.size());
		if (j > i)
			w.emplace_back(line.substr(i, j - i));
		i = j + 1;
	}
	MirrorStatus m;
	if (w.size() < 3) {
		if (!w.empty())
			m.state = w[0];
		return m;
	}
	m.transport = w[0] == "-" ? "" : w[0];
	m.partner = w[1] == "-" ? "" : w[1];
	m.state = w[2];
	return m;
}

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

std::unique_ptr<ModuleControl> make_genl_module_control()
{
	return std::make_unique<GenlModuleControl>();
}

} // namespace twinfs
