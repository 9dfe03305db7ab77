// SPDX-License-Identifier: GPL-2.0
// See corosync.hpp.
#include "corosync.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace twinfs::corosync {

CorosyncError::CorosyncError(const std::string &call, cs_error_t err)
	: std::runtime_error(call + ": " + cs_strerror(err) + " (cs_error_t " +
			     std::to_string(static_cast<int>(err)) + ")"),
	  err_(err)
{
}

namespace {

void check(const std::string &call, cs_error_t err)
{
	if (err != CS_OK)
		throw CorosyncError(call, err);
}

// corosync answers CS_ERR_TRY_AGAIN while it is busy (e.g. during a
// membership change): a bounded retry, as its own tools do.
template <typename F>
cs_error_t retry(F &&f)
{
	cs_error_t err = CS_OK;
	for (int i = 0; i < 100; i++) {
		err = f();
		if (err != CS_ERR_TRY_AGAIN)
			break;
		std::this_thread::sleep_for(std::chrono::milliseconds(i < 10 ? 10 : 50));
	}
	return err;
}

std::vector<CpgMember> members_of(const cpg_address *a, size_t n)
{
	std::vector<CpgMember> v;
	v.reserve(n);
	for (size_t i = 0; i < n; i++)
		v.push_back({a[i].nodeid, a[i].pid, a[i].reason});
	return v;
}

} // namespace

// ---- Cpg ---------------------------------------------------------------

std::string reason_name(std::uint32_t reason)
{
	switch (reason) {
	case CPG_REASON_JOIN: return "join";
	case CPG_REASON_LEAVE: return "leave";
	case CPG_REASON_NODEDOWN: return "nodedown";
	case CPG_REASON_NODEUP: return "nodeup";
	case CPG_REASON_PROCDOWN: return "procdown";
	default: return std::to_string(reason);
	}
}

Cpg::Cpg(std::string group, CpgHandler &handler) : handler_(handler)
{
	if (group.empty() || group.size() > CPG_MAX_NAME_LENGTH - 1)
		throw std::invalid_argument("CPG group name '" + group + "': 1 to " +
					    std::to_string(CPG_MAX_NAME_LENGTH - 1) + " characters");
	name_.length = static_cast<uint32_t>(group.size());
	std::memcpy(name_.value, group.data(), group.size());
	cpg_model_v1_data_t model{};
	model.model = CPG_MODEL_V1;
	model.cpg_deliver_fn = deliver_cb;
	model.cpg_confchg_fn = confchg_cb;
	model.cpg_totem_confchg_fn = totem_cb;
	model.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF;
	check("cpg_model_initialize", retry([&] {
		      return cpg_model_initialize(&handle_, CPG_MODEL_V1,
						  reinterpret_cast<cpg_model_data_t *>(&model), this);
	      }));
	const cs_error_t err = cpg_fd_get(handle_, &fd_);
	if (err != CS_OK) {
		cpg_finalize(handle_);
		throw CorosyncError("cpg_fd_get", err);
	}
}

Cpg::~Cpg()
{
	if (joined_)
		retry([&] { return cpg_leave(handle_, &name_); });
	cpg_finalize(handle_);
}

Cpg *Cpg::self(cpg_handle_t h)
{
	void *ctx = nullptr;
	if (cpg_context_get(h, &ctx) != CS_OK || !ctx)
		std::abort();	// only our own handles call back
	return static_cast<Cpg *>(ctx);
}

void Cpg::join()
{
	check("cpg_join " + std::string(name_.value, name_.length),
	      retry([&] { return cpg_join(handle_, &name_); }));
	joined_ = true;
}

void Cpg::leave()
{
	if (!joined_)
		return;
	joined_ = false;
	check("cpg_leave " + std::string(name_.value, name_.length),
	      retry([&] { return cpg_leave(handle_, &name_); }));
}

std::uint32_t Cpg::local_nodeid() const
{
	unsigned int id = 0;
	check("cpg_local_get", retry([&] { return cpg_local_get(handle_, &id); }));
	return id;
}

void Cpg::send(std::span<const std::uint8_t> msg)
{
	iovec iov{const_cast<std::uint8_t *>(msg.data()), msg.size()};
	check("cpg_mcast_joined (" + std::to_string(msg.size()) + " bytes)",
	      retry([&] { return cpg_mcast_joined(handle_, CPG_TYPE_AGREED, &iov, 1); }));
}

void Cpg::dispatch()
{
	check("cpg_dispatch", cpg_dispatch(handle_, CS_DISPATCH_ALL));
}

void Cpg::deliver_cb(cpg_handle_t h, const cpg_name *, uint32_t nodeid, uint32_t pid, void *msg,
		     size_t len)
{
	self(h)->handler_.on_deliver(nodeid, pid,
				     std::span(static_cast<const std::uint8_t *>(msg), len));
}

void Cpg::confchg_cb(cpg_handle_t h, const cpg_name *, const cpg_address *m, size_t nm,
		     const cpg_address *l, size_t nl, const cpg_address *j, size_t nj)
{
	const auto mv = members_of(m, nm), lv = members_of(l, nl), jv = members_of(j, nj);
	self(h)->handler_.on_confchg(mv, lv, jv);
}

void Cpg::totem_cb(cpg_handle_t h, cpg_ring_id ring, uint32_t n, const uint32_t *members)
{
	self(h)->handler_.on_totem(ring.nodeid, ring.seq, std::span(members, n));
}

// ---- Quorum ------------------------------------------------------------

Quorum::Quorum()
{
	votequorum_callbacks_t cb{};
	cb.votequorum_quorum_notify_fn = notify_cb;
	check("votequorum_initialize", retry([&] { return votequorum_initialize(&handle_, &cb); }));
	cs_error_t err = votequorum_context_set(handle_, this);
	if (err == CS_OK)
		err = votequorum_fd_get(handle_, &fd_);
	if (err == CS_OK)
		err = retry([&] {
			return votequorum_trackstart(handle_, 0, CS_TRACK_CURRENT | CS_TRACK_CHANGES);
		});
	if (err != CS_OK) {
		votequorum_finalize(handle_);
		throw CorosyncError("votequorum setup (context, fd, trackstart)", err);
	}
}

Quorum::~Quorum()
{
	votequorum_trackstop(handle_);
	votequorum_finalize(handle_);
}

void Quorum::dispatch()
{
	check("votequorum_dispatch", votequorum_dispatch(handle_, CS_DISPATCH_ALL));
}

unsigned Quorum::flags(std::uint32_t nodeid) const
{
	votequorum_info info{};
	if (votequorum_getinfo(handle_, nodeid, &info) != CS_OK)
		return 0;
	return info.flags;
}

void Quorum::notify_cb(votequorum_handle_t h, uint64_t, uint32_t quorate, uint32_t,
		       votequorum_node_t[])
{
	void *ctx = nullptr;
	if (votequorum_context_get(h, &ctx) != CS_OK || !ctx)
		std::abort();
	auto *q = static_cast<Quorum *>(ctx);
	if (q->quorate_ != (quorate != 0))
		q->changed = true;
	q->quorate_ = quorate != 0;
}

// ---- Cmap --------------------------------------------------------------

Cmap::Cmap()
{
	check("cmap_initialize", retry([&] { return cmap_initialize(&handle_); }));
}

Cmap::~Cmap()
{
	cmap_finalize(handle_);
}

std::optional<std::uint32_t> Cmap::get_u32(const std::string &key) const
{
	uint32_t v = 0;
	const cs_error_t err = cmap_get_uint32(handle_, key.c_str(), &v);
	if (err == CS_ERR_NOT_EXIST)
		return std::nullopt;
	check("cmap_get_uint32 " + key, err);
	return v;
}

std::optional<std::string> Cmap::get_string(const std::string &key) const
{
	char *s = nullptr;
	const cs_error_t err = cmap_get_string(handle_, key.c_str(), &s);
	if (err == CS_ERR_NOT_EXIST)
		return std::nullopt;
	check("cmap_get_string " + key, err);
	std::string out(s);
	std::free(s);
	return out;
}

std::optional<std::uint32_t> token_timeout_ms(const Cmap &cmap)
{
	return cmap.get_u32("runtime.config.totem.token");
}

} // namespace twinfs::corosync
