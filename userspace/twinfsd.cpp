// SPDX-License-Identifier: GPL-2.0
// twinfsd: the twinfs membership daemon.
//
// A stub for now: the corosync membership (CPG, votequorum), leader
// election, the ownership map and takeover orchestration arrive with the
// corosync issue.  It already behaves as the service will: parses its
// options, reports readiness to systemd (Type=notify) and stops cleanly on
// SIGTERM.
#include "twinfs_user/fd.hpp"
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#ifdef TWINFS_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "twinfs_user/version.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

bool g_use_syslog = false;

void log(int prio, std::string_view msg)
{
	if (g_use_syslog)
		::syslog(prio, "%.*s", static_cast<int>(msg.size()), msg.data());
	else
		std::cerr << "twinfsd: " << msg << std::endl;
}

std::system_error sys_error(const std::string &what)
{
	return std::system_error(errno, std::generic_category(), what);
}

using twinfs::Fd;

#ifndef TWINFS_HAVE_LIBSYSTEMD
// The sd_notify protocol without libsystemd: one datagram to the socket
// named by $NOTIFY_SOCKET ('@' starts an abstract socket name).
int notify_socket(std::string_view state)
{
	const char *path = std::getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	const size_t len = std::strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path))
		return -EINVAL;
	std::memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	if (fd.get() < 0)
		return -errno;
	const auto alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
	if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
		     reinterpret_cast<const sockaddr *>(&addr), alen) < 0)
		return -errno;
	return 1;
}
#endif

// Tells systemd about a state change; a no-op outside systemd.
void notify(const std::string &state)
{
#ifdef TWINFS_HAVE_LIBSYSTEMD
	const int rc = sd_notify(0, state.c_str());
#else
	const int rc = notify_socket(state);
#endif
	if (rc < 0)
		log(LOG_WARNING, "cannot notify systemd (" + state + "): " +
				 std::strerror(-rc));
}

void usage(std::ostream &os)
{
	os << "usage: twinfsd [--foreground] [--help] [--version]\n"
	      "\n"
	      "The twinfs membership daemon: follows corosync membership, keeps\n"
	      "the cluster-wide ownership map and orchestrates takeover.\n"
	      "\n"
	      "  -f, --foreground   stay in the foreground, log to standard error\n"
	      "                     (as under systemd, see twinfsd.service)\n"
	      "  -h, --help         show this help\n"
	      "  -V, --version      show the version\n";
}

struct Options {
	bool foreground = false;
};

// Detaches from the terminal: the parent returns to the shell at once, the
// child runs in a new session with standard streams on /dev/null.
void daemonize()
{
	const pid_t pid = ::fork();
	if (pid < 0)
		throw sys_error("fork");
	if (pid > 0)
		std::_Exit(kExitOk);
	if (::setsid() < 0)
		throw sys_error("setsid");
	if (::chdir("/") < 0)
		throw sys_error("chdir /");
	::umask(022);
	Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (null.get() < 0)
		throw sys_error("open /dev/null");
	for (int fd = 0; fd <= 2; fd++)
		if (::dup2(null.get(), fd) < 0)
			throw sys_error("dup2 /dev/null");
	::openlog("twinfsd", LOG_PID, LOG_DAEMON);
	g_use_syslog = true;
}

int serve(const Options &opts)
{
	// Signals are taken synchronously with sigwaitinfo: block them first,
	// before any other thread could exist.
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr))
		throw std::system_error(err, std::generic_category(), "pthread_sigmask");

	if (!opts.foreground)
		daemonize();

	log(LOG_INFO, "version " + std::string(twinfs::kVersion) + " starting");
	log(LOG_NOTICE, "not yet implemented: membership arrives with the corosync "
			"issue; idling until SIGTERM");
	notify("READY=1\nSTATUS=Idle: membership arrives with the corosync issue");

	for (;;) {
		siginfo_t info;
		const int sig = ::sigwaitinfo(&set, &info);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			throw sys_error("sigwaitinfo");
		}
		if (sig == SIGHUP) {
			log(LOG_INFO, "SIGHUP: no configuration to reload yet");
			continue;
		}
		notify("STOPPING=1");
		log(LOG_INFO, std::string("stopping on SIG") + ::sigabbrev_np(sig));
		return kExitOk;
	}
}

int run(std::span<const std::string_view> args)
{
	Options opts;
	for (const auto arg : args) {
		if (arg == "-h" || arg == "--help") {
			usage(std::cout);
			return kExitOk;
		}
		if (arg == "-V" || arg == "--version") {
			std::cout << "twinfsd " << twinfs::kVersion << "\n";
			return kExitOk;
		}
		if (arg == "-f" || arg == "--foreground") {
			opts.foreground = true;
			continue;
		}
		std::cerr << "twinfsd: unknown argument '" << arg << "'\n"
			  << "Try 'twinfsd --help'.\n";
		return kExitUsage;
	}
	return serve(opts);
}

} // namespace

int main(int argc, char **argv)
{
	try {
		const std::vector<std::string_view> args(argv + 1, argv + argc);
		return run(args);
	} catch (const std::exception &e) {
		log(LOG_ERR, e.what());
		return kExitError;
	}
}
