/*
 * net.h - socket helpers. Errors are reported into a caller-provided buffer
 * naming the failing call ("bind: Address already in use") and -1 is
 * returned, so callers decide how to log.
 */
#ifndef ECHOD_NET_H
#define ECHOD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "opts.h"

/* "[ffff:...:ffff]:65535" plus NUL */
#define NET_ADDRSTRLEN 56

/*
 * net_listen: create, bind and listen on the address of *o (default: "::"
 * dual-stack with IPV6_V6ONLY off, falling back to 0.0.0.0 when IPv6 is
 * unavailable), SO_REUSEADDR, SO_OOBINLINE (inherited by accepted
 * sockets), non-blocking, close-on-exec. Writes the
 * address actually bound (the real port for port 0) as text to
 * name[0..namelen). Returns the socket, or -1 with the reason in err.
 */
int net_listen(const struct echod_opts *o, char *name, size_t namelen,
	       char *err, size_t errlen);

/*
 * net_addr_str: "127.0.0.1:53422" or "[::1]:53422"; IPv4-mapped IPv6
 * addresses are shown as plain IPv4. Returns buf.
 */
char *net_addr_str(const struct sockaddr *sa, socklen_t len, char *buf,
		   size_t buflen);

/*
 * net_addr_key: the client's address (no port) as 16 bytes, IPv4 and
 * IPv4-mapped IPv6 alike as ::ffff:a.b.c.d, for the per-address limit.
 */
void net_addr_key(const struct sockaddr *sa, uint8_t key[16]);

/* net_addr_port: the port of an AF_INET or AF_INET6 address, host order. */
uint16_t net_addr_port(const struct sockaddr *sa);

/*
 * Short I/O solved once. net_read: one read(2), retried on EINTR. Returns
 * bytes read (> 0), 0 at EOF, NET_AGAIN when nothing is available, or -1
 * with errno. net_write: writes as much of buf as the socket takes,
 * retrying short writes and EINTR; returns the bytes written (possibly 0
 * when the socket is full) or -1 with errno.
 */
#define NET_AGAIN (-2)
ssize_t net_read(int fd, void *buf, size_t len);
ssize_t net_write(int fd, const void *buf, size_t len);

#endif /* ECHOD_NET_H */
