// SPDX-License-Identifier: GPL-2.0
// The client of twinfsd's control socket: see
// include/twinfs_user/control_client.hpp.
#include "twinfs_user/control_client.hpp"
#include "twinfs_user/fd.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace twinfs::control {
namespace {

std::string sys_text(int err)
{
	return std::strerror(err);
}

std::string duration_text(int ms)
{
	return ms % 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s";
}

// Waits until fd is readable; false at the deadline.
bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline)
{
	for (;;) {
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now()).count();
		if (left <= 0)
			return false;
		pollfd p{fd, POLLIN, 0};
		const int r = ::poll(&p, 1, static_cast<int>(left));
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
	}
}

} // namespace

std::string parse_reply(std::string_view reply, std::string_view req)
{
	const std::string what = "twinfsd's reply to '" + std::string(req) + "'";
	if (reply.starts_with("ok")) {
		std::string_view rest = reply.substr(2);
		if (rest.starts_with(": "))
			rest.remove_prefix(2);
		else if (rest.starts_with("\n"))
			rest.remove_prefix(1);
		else if (!rest.empty())
			throw std::runtime_error(what + " is malformed: '" +
						 std::string(reply.substr(0, 60)) + "'");
		std::string out(rest);
		if (out.empty() || out.back() != '\n')
			return out;
		if (reply.starts_with("ok: "))
			out.pop_back();	// a one-line message
		return out;
	}
	if (reply.starts_with("error")) {
		std::string_view rest = reply.substr(5);
		if (rest.starts_with(": "))
			rest.remove_prefix(2);
		while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' '))
			rest.remove_suffix(1);
		throw DaemonError(rest.empty() ? std::string("error") : std::string(rest));
	}
	if (reply.empty())
		throw std::runtime_error(what + " is empty");
	throw std::runtime_error(what + " is malformed (neither ok nor error): '" +
				 std::string(reply.substr(0, 60)) + "'");
}

std::string request(const std::string &path, std::string_view req, int timeout_ms)
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.empty() || path.size() >= sizeof(addr.sun_path))
		throw std::runtime_error("control socket '" + path + "': bad path");
	std::memcpy(addr.sun_path, path.c_str(), path.size());
	Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
	if (fd.get() < 0)
		throw std::runtime_error("control socket: socket(AF_UNIX, SOCK_SEQPACKET): " +
					 sys_text(errno));
	if (::connect(fd.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0) {
		const int err = errno;
		struct stat st;
		if (err == ECONNREFUSED && ::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
			throw std::runtime_error(path + " is not a socket (twinfsd's control socket?)");
		if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
			throw NotRunning("twinfsd is not running (" + path + ": " + sys_text(err) + ")");
		if (err == EACCES || err == EPERM)
			throw std::runtime_error("cannot connect to twinfsd at " + path + ": " +
						 sys_text(err) + " (the control socket is root's)");
		if (err == EPROTOTYPE || err == ENOTSOCK)
			throw std::runtime_error(path + " is not twinfsd's control socket (" +
						 sys_text(err) + ")");
		throw std::runtime_error("cannot connect to twinfsd at " + path + ": " + sys_text(err));
	}
	if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
		throw std::runtime_error("sending '" + std::string(req) + "' to twinfsd at " + path +
					 ": " + sys_text(errno));
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	if (!wait_readable(fd.get(), deadline))
		throw std::runtime_error("twinfsd at " + path + " did not answer '" + std::string(req) +
					 "' within " + duration_text(timeout_ms) +
					 " (busy mounting?)");
	// The size of the reply first: one message, however long.
	const ssize_t len = ::recv(fd.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
	if (len < 0)
		throw std::runtime_error("reading twinfsd's reply at " + path + ": " + sys_text(errno));
	if (len == 0)
		throw std::runtime_error("twinfsd at " + path + " closed the connection without "
					 "answering '" + std::string(req) + "'");
	std::vector<char> buf(static_cast<std::size_t>(len));
	const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
	if (n < 0)
		throw std::runtime_error("reading twinfsd's reply at " + path + ": " + sys_text(errno));
	return parse_reply(std::string_view(buf.data(), static_cast<std::size_t>(n)), req);
}

} // namespace twinfs::control
