// SPDX-License-Identifier: GPL-2.0
// Small RAII wrappers of the corosync client libraries twinfsd uses: CPG
// (the "twinfs" process group: membership and agreed-order messages),
// votequorum (is this partition quorate) and cmap (the running totem
// configuration).  Each owns its handle, finalizes it in the destructor and
// throws CorosyncError naming the call and the cs_error_t.  Callbacks run
// from dispatch(), called by the daemon's poll loop when fd() is readable.
#pragma once

#include <corosync/cmap.h>
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace twinfs::corosync {

class CorosyncError : public std::runtime_error {
public:
	CorosyncError(const std::string &call, cs_error_t err);
	cs_error_t error() const { return err_; }

private:
	cs_error_t err_;
};

struct CpgMember {
	std::uint32_t nodeid;
	std::uint32_t pid;
	std::uint32_t reason;	// CPG_REASON_* (joined and left lists)
};

// "join", "leave", "nodedown", "nodeup", "procdown" or the number.
std::string reason_name(std::uint32_t reason);

class CpgHandler {
public:
	virtual ~CpgHandler() = default;
	virtual void on_confchg(std::span<const CpgMember> members, std::span<const CpgMember> left,
				std::span<const CpgMember> joined) = 0;
	virtual void on_deliver(std::uint32_t nodeid, std::uint32_t pid,
				std::span<const std::uint8_t> msg) = 0;
	virtual void on_totem(std::uint32_t ring_nodeid, std::uint64_t ring_seq,
			      std::span<const std::uint32_t> members) = 0;
};

class Cpg {
public:
	Cpg(std::string group, CpgHandler &handler);
	~Cpg();
	Cpg(const Cpg &) = delete;
	Cpg &operator=(const Cpg &) = delete;

	void join();
	void leave();		// also done by the destructor when joined
	int fd() const { return fd_; }
	std::uint32_t local_nodeid() const;
	// Agreed order, to every member including this one; retries
	// CS_ERR_TRY_AGAIN (flow control) for up to a few seconds.
	void send(std::span<const std::uint8_t> msg);
	// Runs the callbacks of every pending event.
	void dispatch();

private:
	static void deliver_cb(cpg_handle_t, const cpg_name *, uint32_t, uint32_t, void *, size_t);
	static void confchg_cb(cpg_handle_t, const cpg_name *, const cpg_address *, size_t,
			       const cpg_address *, size_t, const cpg_address *, size_t);
	static void totem_cb(cpg_handle_t, cpg_ring_id, uint32_t, const uint32_t *);
	static Cpg *self(cpg_handle_t h);

	cpg_handle_t handle_ = 0;
	cpg_name name_{};
	CpgHandler &handler_;
	int fd_ = -1;
	bool joined_ = false;
};

class Quorum {
public:
	Quorum();
	~Quorum();
	Quorum(const Quorum &) = delete;
	Quorum &operator=(const Quorum &) = delete;

	int fd() const { return fd_; }
	void dispatch();
	bool quorate() const { return quorate_; }
	// VOTEQUORUM_INFO_* flags of node `nodeid` (two_node, wait_for_all, ...).
	unsigned flags(std::uint32_t nodeid) const;
	// Set when dispatch() changed quorate(); cleared by the caller.
	bool changed = false;

private:
	static void notify_cb(votequorum_handle_t, uint64_t, uint32_t, uint32_t, votequorum_node_t[]);

	votequorum_handle_t handle_ = 0;
	int fd_ = -1;
	bool quorate_ = false;
};

class Cmap {
public:
	Cmap();
	~Cmap();
	Cmap(const Cmap &) = delete;
	Cmap &operator=(const Cmap &) = delete;
	std::optional<std::uint32_t> get_u32(const std::string &key) const;
	std::optional<std::string> get_string(const std::string &key) const;

private:
	cmap_handle_t handle_ = 0;
};

// The token timeout corosync runs with, in ms (runtime.config.totem.token).
std::optional<std::uint32_t> token_timeout_ms(const Cmap &cmap);

} // namespace twinfs::corosync
