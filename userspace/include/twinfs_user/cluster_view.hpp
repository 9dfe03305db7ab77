// SPDX-License-Identifier: GPL-2.0
// The cluster part of `twinfsctl status`: twinfsd's status JSON
// (Documentation/twinfsd.md, "Status file") as a table, and the combined
// JSON document (the module's status with a "cluster" member).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace twinfs::cluster_view {

// The summary line (node, quorum, leader, members), one row per file
// system (state, holder, partner, mirror state and transport where it is
// mounted, what runs here, device, mountpoint), then the mirror target,
// the unfenced nodes and the last takeover.  Throws std::runtime_error
// when daemon_json is not a twinfsd status of format 1.
std::string format_table(std::string_view daemon_json);

// The one line of the table when there is no daemon to ask.
std::string format_unavailable(std::string_view why);

// module_json (twinfsctl's module status document) with "cluster":
// twinfsd's status, or null and "cluster_error": why.  Throws
// std::runtime_error on JSON that does not parse.
std::string combine_json(std::string_view module_json,
			 const std::optional<std::string> &daemon_json, std::string_view why);

} // namespace twinfs::cluster_view
