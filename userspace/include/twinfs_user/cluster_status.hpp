// SPDX-License-Identifier: GPL-2.0
// twinfsd's view as JSON, the status file twinfsctl reads (format in
// Documentation/twinfsd.md, "Status file").
#pragma once

#include "twinfs_user/cluster.hpp"
#include "twinfs_user/module_control.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace twinfs::cluster {

struct TakeoverTimes {
	std::string fs;
	NodeId from = 0;
	std::int64_t fence_ms = -1;	// membership change -> fence confirmed
	std::int64_t mount_ms = -1;	// the mount (replay) itself
	std::int64_t first_op_ms = -1;	// membership change -> first operation
	std::int64_t total_ms = -1;	// membership change -> OWNED delivered
};

struct StatusInput {
	const Config *cfg = nullptr;
	const ClusterState *cs = nullptr;
	const LocalState *local = nullptr;
	bool quorate = false;
	std::uint64_t ring_seq = 0;
	std::optional<std::uint32_t> token_ms;
	ModuleStatus module;
	std::optional<TakeoverTimes> last_takeover;
	std::int64_t time = 0;		// seconds since the epoch
};

// One JSON object, pretty-printed, ending with a newline.
std::string status_json(const StatusInput &in);

} // namespace twinfs::cluster
