// SPDX-License-Identifier: GPL-2.0
// An owned file descriptor, closed when it goes out of scope.
#pragma once

#include <unistd.h>

namespace twinfs {

class Fd {
public:
	explicit Fd(int fd) : fd_(fd) {}
	Fd(const Fd &) = delete;
	Fd &operator=(const Fd &) = delete;
	~Fd()
	{
		if (fd_ >= 0)
			::close(fd_);
	}
	int get() const { return fd_; }

private:
	int fd_;
};

} // namespace twinfs
