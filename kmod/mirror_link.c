// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: what both ends of the mirror link share: the cluster key and its
 * HMAC, frames over a kernel TCP socket, addresses.
 */
#include <crypto/hash.h>
#include <linux/inet.h>
#include <linux/kernel_read_file.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/tcp.h>
#include <net/sock.h>
#include "mirror.h"

#define TWINFS_KEY_MAX	4096

int twinfs_mirror_key_load(struct twinfs_mirror_key *k, const char *path)
{
	void *buf = NULL;
	ssize_t len;
	int err;

	k->tfm = NULL;
	len = kernel_read_file_from_path(path, 0, &buf, TWINFS_KEY_MAX, NULL,
					 READING_UNKNOWN);
	if (len < 0)
		return len;
	err = -EINVAL;
	if (len < 16)
		goto out;
	k->tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(k->tfm)) {
		err = PTR_ERR(k->tfm);
		k->tfm = NULL;
		goto out;
	}
	err = crypto_shash_setkey(k->tfm, buf, len);
	if (err) {
		crypto_free_shash(k->tfm);
		k->tfm = NULL;
	}
out:
	memzero_explicit(buf, len > 0 ? len : 0);
	vfree(buf);
	return err;
}

void twinfs_mirror_key_put(struct twinfs_mirror_key *k)
{
	if (k->tfm)
		crypto_free_shash(k->tfm);
	k->tfm = NULL;
}

int twinfs_mirror_mac(struct twinfs_mirror_key *k, const char *label,
		      const u8 *a, const u8 *b, u8 *mac)
{
	u8 msg[8 + 2 * TWINFS_MIRROR_NONCE];

	memcpy(msg, label, 8);
	memcpy(msg + 8, a, TWINFS_MIRROR_NONCE);
	memcpy(msg + 8 + TWINFS_MIRROR_NONCE, b, TWINFS_MIRROR_NONCE);
	return crypto_shash_tfm_digest(k->tfm, msg, sizeof(msg), mac);
}

static int twinfs_sock_io(struct socket *s, void *buf, size_t len, bool tx)
{
	struct kvec iov;
	struct msghdr msg = { .msg_flags = tx ? MSG_NOSIGNAL : MSG_WAITALL };
	int ret;

	while (len) {
		iov.iov_base = buf;
		iov.iov_len = len;
		if (tx)
			ret = kernel_sendmsg(s, &msg, &iov, 1, len);
		else
			ret = kernel_recvmsg(s, &msg, &iov, 1, len,
					     MSG_WAITALL);
		if (ret == 0)
			return -ECONNRESET;
		if (ret < 0)
			return ret;
		buf += ret;
		len -= ret;
	}
	return 0;
}

void twinfs_mirror_frame_init(struct twinfs_mirror_frame *f, u16 type,
			      u16 flags, u64 id, u64 off, const void *payload,
			      u32 len)
{
	memset(f, 0, sizeof(*f));
	f->f_magic = cpu_to_le32(TWINFS_MIRROR_MAGIC);
	f->f_type = cpu_to_le16(type);
	f->f_flags = cpu_to_le16(flags);
	f->f_id = cpu_to_le64(id);
	f->f_off = cpu_to_le64(off);
	f->f_len = cpu_to_le32(len);
	f->f_data_crc = cpu_to_le32(payload && len ?
				    ~twinfs_crc32c(~0u, payload, len) : 0);
	twinfs_csum_set(f, sizeof(*f),
			offsetof(struct twinfs_mirror_frame, f_crc));
}

bool twinfs_mirror_frame_ok(const struct twinfs_mirror_frame *f)
{
	return le32_to_cpu(f->f_magic) == TWINFS_MIRROR_MAGIC &&
	       twinfs_csum_ok(f, sizeof(*f),
			      offsetof(struct twinfs_mirror_frame, f_crc)) &&
	       !(le16_to_cpu(f->f_flags) & ~TWINFS_MIRROR_F_KNOWN) &&
	       !f->f_pad;
}

int twinfs_mirror_send_flags(struct socket *s, u16 type, u16 flags, u64 id,
			     u64 off, const void *payload, u32 len)
{
	struct twinfs_mirror_frame f;
	int err;

	twinfs_mirror_frame_init(&f, type, flags, id, off, payload, len);
	err = twinfs_sock_io(s, &f, sizeof(f), true);
	if (!err && len)
		err = twinfs_sock_io(s, (void *)payload, len, true);
	return err;
}

int twinfs_mirror_send(struct socket *s, u16 type, u64 id, u64 off,
		       const void *payload, u32 len)
{
	return twinfs_mirror_send_flags(s, type, 0, id, off, payload, len);
}

int twinfs_mirror_recv(struct socket *s, struct twinfs_mirror_frame *f,
		       void *buf, u32 max)
{
	u32 len;
	int err;

	err = twinfs_sock_io(s, f, sizeof(*f), false);
	if (err)
		return err;
	if (!twinfs_mirror_frame_ok(f))
		return -EBADMSG;
	len = le32_to_cpu(f->f_len);
	if (len > max)
		return -EBADMSG;
	if (!len)
		return 0;
	err = twinfs_sock_io(s, buf, len, false);
	if (err)
		return err;
	if (~twinfs_crc32c(~0u, buf, len) != le32_to_cpu(f->f_data_crc))
		return -EBADMSG;
	return 0;
}

/* No delay, a dead peer noticed in about 5 s, bounded handshake. */
void twinfs_mirror_tune(struct socket *s, long sndtimeo)
{
	tcp_sock_set_nodelay(s->sk);
	sock_set_keepalive(s->sk);
	tcp_sock_set_keepidle(s->sk, 2);
	tcp_sock_set_keepintvl(s->sk, 1);
	tcp_sock_set_keepcnt(s->sk, 3);
	s->sk->sk_sndtimeo = sndtimeo;
	s->sk->sk_rcvtimeo = 5 * HZ;
}

/* "a.b.c.d:port" or "a.b.c.d" (default port). */
int twinfs_mirror_parse_addr(const char *str, struct sockaddr_in *sin)
{
	const char *end;
	unsigned int port = TWINFS_MIRROR_PORT;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (!in4_pton(str, -1, (u8 *)&sin->sin_addr.s_addr, ':', &end))
		return -EINVAL;
	if (*end == ':' && (kstrtouint(end + 1, 10, &port) || !port ||
			    port > 65535))
		return -EINVAL;
	if (*end && *end != ':')
		return -EINVAL;
	sin->sin_port = htons(port);
	return 0;
}
