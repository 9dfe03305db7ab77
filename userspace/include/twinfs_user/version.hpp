// SPDX-License-Identifier: GPL-2.0
// Version of the twinfs user-space programs.
#pragma once

#include <string_view>

namespace twinfs {

inline constexpr std::string_view kVersion = "0.1.0";

} // namespace twinfs
