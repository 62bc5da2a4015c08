/*
 * net.c - see net.h.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int net_err(char *err, size_t errlen, const char *call)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", call, strerror(errno));
	return -1;
}

static int listen_on(const struct sockaddr *sa, socklen_t salen, int backlog,
		     char *err, size_t errlen)
{
	int fd, on = 1, off = 0, saved;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return net_err(err, errlen, "socket");
	/* So that a restarted server can bind at once while connections of
	 * the previous one sit in TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0) {
		net_err(err, errlen, "setsockopt SO_REUSEADDR");
		goto fail;
	}
	/* RFC 862 echoes every byte, TCP urgent ones included: keep them in
	 * the stream, in order. Accepted sockets inherit the option, so it
	 * costs no system call per connection. */
	if (setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on)) < 0) {
		net_err(err, errlen, "setsockopt SO_OOBINLINE");
		goto fail;
	}
	/* Dual-stack "::" must not depend on net.ipv6.bindv6only. */
	if (sa->sa_family == AF_INET6 &&
	    memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, &in6addr_any,
		   sizeof(in6addr_any)) == 0 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) {
		net_err(err, errlen, "setsockopt IPV6_V6ONLY");
		goto fail;
	}
	if (bind(fd, sa, salen) < 0) {
		net_err(err, errlen, "bind");
		goto fail;
	}
	if (listen(fd, backlog) < 0) {
		net_err(err, errlen, "listen");
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int net_listen(const struct echod_opts *o, char *name, size_t namelen,
	       char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	socklen_t len;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (o->bind_family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(o->port);
		s4->sin_addr = o->bind4;
		fd = listen_on((struct sockaddr *)s4, sizeof(*s4),
			       (int)o->backlog, err, errlen);
	} else {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(o->port);
		s6->sin6_addr = o->bind6;
		fd = listen_on((struct sockaddr *)s6, sizeof(*s6),
			       (int)o->backlog, err, errlen);
		/* No IPv6 on this host: the default becomes IPv4 only. */
		if (fd < 0 && !o->bind_set &&
		    (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
			memset(&ss, 0, sizeof(ss));
			s4->sin_family = AF_INET;
			s4->sin_port = htons(o->port);
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
			fd = listen_on((struct sockaddr *)s4, sizeof(*s4),
				       (int)o->backlog, err, errlen);
		}
	}
	if (fd < 0)
		return -1;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		net_err(err, errlen, "getsockname");
		close(fd);
		return -1;
	}
	net_addr_str((struct sockaddr *)&ss, len, name, namelen);
	return fd;
}

char *net_addr_str(const struct sockaddr *sa, socklen_t len, char *buf,
		   size_t buflen)
{
	char a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, buflen, "%s:%u", a, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], a,
				  sizeof(a));
			snprintf(buf, buflen, "%s:%u", a, ntohs(s6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			snprintf(buf, buflen, "[%s]:%u", a,
				 ntohs(s6->sin6_port));
		}
	} else {
		snprintf(buf, buflen, "unknown");
	}
	return buf;
}

void net_addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = 0xff;
		key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr,
		       4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

ssize_t net_read(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return NET_AGAIN;
	return n;
}

ssize_t net_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(fd, p + done, len - done);
		if (n > 0) {
			done += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else if (n < 0) {
			/* Report bytes already written first; the error will
			 * show again on the next call. */
			return done > 0 ? (ssize_t)done : -1;
		} else {
			break;
		}
	}
	return (ssize_t)done;
}

uint16_t net_addr_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET
			 ? ((const struct sockaddr_in *)sa)->sin_port
			 : ((const struct sockaddr_in6 *)sa)->sin6_port);
}
