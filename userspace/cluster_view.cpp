// SPDX-License-Identifier: GPL-2.0
// The cluster part of twinfsctl status: see
// include/twinfs_user/cluster_view.hpp.
#include "twinfs_user/cluster_view.hpp"
#include "twinfs_user/status.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <vector>

namespace twinfs::cluster_view {
namespace {

using json = nlohmann::ordered_json;

std::string str(const json &j, const char *key, const std::string &def = "-")
{
	const auto it = j.find(key);
	if (it == j.end() || it->is_null())
		return def;
	if (it->is_string())
		return it->get<std::string>();
	return it->dump();
}

bool flag(const json &j, const char *key)
{
	const auto it = j.find(key);
	return it != j.end() && it->is_boolean() && it->get<bool>();
}

// {"id", "name"} -> "b"; with_id: "b (2)"; null -> "-".
std::string node(const json &j, bool with_id = false)
{
	if (!j.is_object())
		return "-";
	const std::string name = str(j, "name", "");
	const std::string id = str(j, "id", "?");
	if (name.empty())
		return "node " + id;
	return with_id ? name + " (" + id + ")" : name;
}

std::string node_at(const json &j, const char *key, bool with_id = false)
{
	const auto it = j.find(key);
	return it == j.end() ? "-" : node(*it, with_id);
}

std::string node_list(const json &j, const char *key)
{
	const auto it = j.find(key);
	if (it == j.end() || !it->is_array() || it->empty())
		return "none";
	std::string s;
	for (const auto &n : *it)
		s += (s.empty() ? "" : ", ") + node(n, true);
	return s;
}

json parse(std::string_view text, const char *what)
{
	try {
		return json::parse(text);
	} catch (const json::exception &e) {
		throw std::runtime_error(std::string(what) + " is not JSON: " + e.what());
	}
}

} // namespace

std::string format_unavailable(std::string_view why)
{
	return "cluster: " + std::string(why) + "\n";
}

std::string format_table(std::string_view daemon_json)
{
	const json j = parse(daemon_json, "twinfsd's status");
	if (!j.is_object() || !j.contains("format") || j["format"] != 1 ||
	    !j.contains("filesystems") || !j["filesystems"].is_array())
		throw std::runtime_error("twinfsd's status is not of format 1 with file systems");
	std::string out = "cluster: node " + node_at(j, "node", true) + ", " +
			  (flag(j, "quorate") ? "quorate" : "NOT quorate") +
			  (flag(j, "synced") ? "" : ", not synchronized yet") + ", leader " +
			  node_at(j, "leader", true) + "; members " + node_list(j, "members");
	if (j.contains("token_timeout_ms") && !j["token_timeout_ms"].is_null())
		out += "; corosync token " + str(j, "token_timeout_ms") + " ms";
	out += "\n";

	std::vector<std::vector<std::string>> rows{
		{"FILE SYSTEM", "STATE", "HOLDER", "PARTNER", "TARGET", "MIRROR", "HERE",
		 "DEVICE", "MOUNTPOINT"}};
	for (const auto &f : j["filesystems"]) {
		if (!f.is_object())
			throw std::runtime_error("twinfsd's status: a file system is not an object");
		std::string state = str(f, "state");
		if (flag(f, "giveback"))
			state += " (giveback)";
		// The mirror is known where the file system is mounted.
		std::string mirror = str(f, "mirror_state");
		if (mirror != "-" && str(f, "transport") != "-")
			mirror += "/" + str(f, "transport");
		std::string here;
		if (flag(f, "mounted_here"))
			here = "mounted";
		if (flag(f, "target_here"))
			here += here.empty() ? "target" : ", target";
		rows.push_back({str(f, "name"), state, node_at(f, "holder"), node_at(f, "partner"),
				node_at(f, "target"), mirror, here.empty() ? "-" : here,
				str(f, "device"), str(f, "mountpoint")});
	}
	out += rows.size() == 1 ? "no file system configured\n" : status::format_columns(rows);
	out += "mirror target here: " + str(j, "mirror_target", "(module not loaded)") + "\n";
	if (j.contains("unfenced") && j["unfenced"].is_array() && !j["unfenced"].empty())
		out += "not fenced yet: " + node_list(j, "unfenced") + "\n";
	if (j.contains("last_takeover") && j["last_takeover"].is_object()) {
		const json &t = j["last_takeover"];
		const std::string fence = str(t, "fence_ms");
		out += "last takeover here: " + str(t, "filesystem") + " from " +
		       node_at(t, "from", true) + ": ";
		if (fence == "-1")
			out += "taken back (no fence), mount " + str(t, "mount_ms") + " ms";
		else
			out += "first operation " + str(t, "first_op_ms") +
			       " ms after the membership change (fence " + fence + " ms, mount " +
			       str(t, "mount_ms") + " ms)";
		out += ", announced at " + str(t, "total_ms") + " ms\n";
	}
	return out;
}

std::string combine_json(std::string_view module_json,
			 const std::optional<std::string> &daemon_json, std::string_view why)
{
	json j = parse(module_json, "the module's status");
	if (!j.is_object())
		throw std::runtime_error("the module's status is not a JSON object");
	if (daemon_json) {
		j["cluster"] = parse(*daemon_json, "twinfsd's status");
	} else {
		j["cluster"] = nullptr;
		j["cluster_error"] = std::string(why);
	}
	return j.dump(2) + "\n";
}

} // namespace twinfs::cluster_view
