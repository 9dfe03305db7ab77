// SPDX-License-Identifier: GPL-2.0
// The client of twinfsd's control socket (Documentation/twinfsd.md,
// "Control socket"): a SOCK_SEQPACKET unix socket, one request per
// message, one reply starting with "ok" or "error".
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace twinfs::control {

inline constexpr std::string_view kDefaultSocket = "/run/twinfsd/control";

// twinfsd is not running: no socket, or nobody listening on it.
class NotRunning : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// twinfsd answered "error: ...": what() is its text.
class DaemonError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// Sends one request to the socket at path and returns the reply's text
// after "ok" (and after the newline or ": " that follows it).  Throws
// NotRunning, DaemonError, or std::runtime_error naming the socket for
// anything else (permission, no reply within timeout_ms, a malformed
// reply).
std::string request(const std::string &path, std::string_view req, int timeout_ms = 10000);

// The text of a reply to req (for the tests): as request().
std::string parse_reply(std::string_view reply, std::string_view req);

} // namespace twinfs::control
