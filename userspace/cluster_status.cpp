// SPDX-License-Identifier: GPL-2.0
// twinfsd's status file: see include/twinfs_user/cluster_status.hpp.
#include "twinfs_user/cluster_status.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <system_error>

namespace twinfs::cluster {

namespace {

nlohmann::ordered_json node_ref(const Config &cfg, NodeId id)
{
	if (id == 0)
		return nullptr;
	const Node *n = cfg.node(id);
	return {{"id", id}, {"name", n ? n->name : ""}};
}

// What the module calls a device: "vda" for /dev/vda, and for a symbolic
// link (/dev/disk/by-id/...) the name of the device it points to.
std::string device_name(const std::string &dev)
{
	std::error_code ec;
	const std::filesystem::path p = std::filesystem::canonical(dev, ec);
	return (ec ? std::filesystem::path(dev) : p).filename().string();
}

} // namespace

std::string status_json(const StatusInput &in)
{
	using json = nlohmann::ordered_json;
	const Config &cfg = *in.cfg;
	const ClusterState &cs = *in.cs;
	json j;
	j["format"] = 1;
	j["time"] = in.time;
	j["node"] = node_ref(cfg, cs.me());
	j["synced"] = cs.synced();
	j["quorate"] = in.quorate;
	j["leader"] = cs.leader() ? node_ref(cfg, *cs.leader()) : json(nullptr);
	j["ring_seq"] = in.ring_seq;
	j["token_timeout_ms"] = in.token_ms ? json(*in.token_ms) : json(nullptr);
	j["lost_quorum"] = std::string(to_string(cfg.lost_quorum));
	json members = json::array();
	for (NodeId n : cs.members())
		members.push_back(node_ref(cfg, n));
	j["members"] = members;
	json fss = json::array();
	for (const auto &e : cs.map().fs) {
		const FileSystem *f = cfg.filesystem(e.name);
		json o;
		o["name"] = e.name;
		o["state"] = std::string(to_string(e.state));
		o["holder"] = node_ref(cfg, e.holder);
		o["target"] = node_ref(cfg, e.target);
		// The other node of the pair: the holder's mirror, the one that
		// takes over when the holder fails.
		o["partner"] = f ? node_ref(cfg, cfg.other(*f, e.holder ? e.holder : f->initial_owner))
				 : json(nullptr);
		o["epoch"] = e.epoch;
		o["giveback"] = e.giveback;
		o["device"] = f ? f->device : "";
		o["mountpoint"] = f ? f->mountpoint : "";
		o["mounted_here"] = in.local->mounted.count(e.name) > 0;
		o["target_here"] = in.local->targets.count(e.name) > 0;
		const auto it = f ? in.module.mirror.find(device_name(f->device)) : in.module.mirror.end();
		if (it != in.module.mirror.end()) {
			const MirrorStatus m = parse_mirror_line(it->second);
			o["mirror"] = it->second;
			o["mirror_state"] = m.state;
			o["transport"] = m.transport.empty() ? json(nullptr) : json(m.transport);
		} else {
			o["mirror"] = nullptr;
			o["mirror_state"] = nullptr;
			o["transport"] = nullptr;
		}
		fss.push_back(o);
	}
	j["filesystems"] = fss;
	json unf = json::array();
	for (const auto &u : cs.map().unfenced)
		unf.push_back(node_ref(cfg, u.node));
	j["unfenced"] = unf;
	json abs = json::array();
	for (const auto &u : cs.map().absent)
		abs.push_back(node_ref(cfg, u.node));
	j["absent"] = abs;
	j["mirror_target"] = in.module.loaded ? json(in.module.target) : json(nullptr);
	if (in.last_takeover) {
		const auto &t = *in.last_takeover;
		j["last_takeover"] = {{"filesystem", t.fs}, {"from", node_ref(cfg, t.from)},
				      {"fence_ms", t.fence_ms}, {"mount_ms", t.mount_ms},
				      {"first_op_ms", t.first_op_ms}, {"total_ms", t.total_ms}};
	} else {
		j["last_takeover"] = nullptr;
	}
	return j.dump(2) + "\n";
}

} // namespace twinfs::cluster
