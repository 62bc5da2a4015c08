/*
 * worker.c - one echo-stress worker: an epoll loop over non-blocking client
 * sockets, each slot a measured client or an abusive one.
 *
 * A measured client keeps up to --pipeline messages in flight, in a ring of
 * its own; they are written back to back and their echoes verified in
 * order. A message's bytes are a window of the shared random pattern chosen
 * by hash(conn id, message index), so an echo is checked with memcmp
 * against the pattern itself and nothing that was sent needs keeping: the
 * ring holds only each message's size, window and times. Every slot has at
 * most one timer at a time (connect timeout, the oldest echo's timeout or
 * the next open-loop send time, whichever is first, abuse tick), kept in a
 * binary heap.
 *
 * --proxy: every connection starts with a PROXY protocol header from a
 * made-up client (px_build), sent with the first message in one writev
 * when there is one at once, else alone right after the connect (a
 * server's header deadline runs from its accept). Its bytes go before any
 * message byte and are kept apart: never counted as sent, never expected
 * back.
 */
#define _GNU_SOURCE /* memmem, epoll_pwait2 */
#include "stress.h"
#include "proto.h"
#include "proxy.h" /* constants only: the header is built here */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_EVENTS   1024
#define POLL_NS	     20000000ull /* how often the phase flag is looked at */
#define NOREAD_CHUNK 65536u
#define TX_IOV	     64 /* iovecs per writev of pipelined messages */

enum slot_state {
	S_NEW = 0, /* not started yet (connect phase) */
	S_RETRY,   /* waiting on its timer to connect again */
	S_CONNECTING,
	S_READY, /* connected, nothing in flight */
	S_BUSY,	 /* measured: messages in flight */
	S_DEAD,	 /* finished */
};

/* One measured message in flight. */
struct msg {
	uint64_t t_sent;  /* latency counts from here (open loop: when due) */
	uint64_t t_start; /* when it was started: its echo timeout runs from
			     here */
	uint32_t pay, poff;
	uint8_t hdr[4];
};

struct conn {
	int fd;
	uint8_t kind, state, connected;
	uint8_t px_len, px_tx; /* --proxy: header bytes, of them written */
	uint32_t ev;  /* events registered with epoll; 0: not registered */
	uint32_t gen; /* bumped on close: stale epoll events are skipped */
	int hidx;     /* position in the timer heap, -1 if none */
	uint64_t deadline;
	uint64_t id;
	uint64_t msg_idx; /* messages started by this slot */
	uint64_t done;	  /* round trips completed by this slot */
	uint64_t rt_conn; /* round trips on the current connection */
	uint64_t t_conn, t_next;
	uint64_t stream_off; /* echo bytes verified before the oldest
				message */
	/* measured: the ring of messages in flight (qh: oldest, qn: how many,
	 * qtx: how many of them are wholly written); tx bytes of message qtx
	 * are written, rx bytes of the oldest verified.
	 * abusive: one message, hl header bytes (hdr), pay pattern bytes from
	 * poff, dl delimiter bytes; tx of its len bytes written. */
	uint32_t qh, qn, qtx;
	uint32_t pay, poff, len, tx, rx;
	uint8_t hdr[4];
	uint64_t px_idx; /* --proxy: the connection's global index */
};
struct worker {
	const struct st_config *cfg;
	struct st_control *ctl;
	struct st_shared *sh;
	unsigned wid;
	int ep, phase;
	uint64_t now;
	struct conn *slots;
	unsigned nslots, n_meas, meas_live, pending;
	struct conn **heap;
	unsigned hn;
	uint8_t *rxbuf;
	struct msg *ring; /* n_meas rings of depth messages */
	uint32_t depth, hl, dl;
	uint64_t timeout_ns;
	uint64_t interval_ns; /* open loop: per-connection send period */
	uint64_t open;
	int iv_on;		 /* --hdr-log: recording per second */
	uint64_t iv_cur, iv_end; /* the second being recorded, its end */
};

uint64_t st_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- timer heap ---- */

static void heap_swap(struct worker *w, unsigned a, unsigned b)
{
	struct conn *t = w->heap[a];

	w->heap[a] = w->heap[b];
	w->heap[b] = t;
	w->heap[a]->hidx = (int)a;
	w->heap[b]->hidx = (int)b;
}

static void heap_fix(struct worker *w, unsigned i)
{
	while (i > 0 && w->heap[(i - 1) / 2]->deadline > w->heap[i]->deadline) {
		heap_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;

		if (l < w->hn && w->heap[l]->deadline < w->heap[m]->deadline)
			m = l;
		if (r < w->hn && w->heap[r]->deadline < w->heap[m]->deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(w, i, m);
		i = m;
	}
}

static void timer_clear(struct worker *w, struct conn *c)
{
	unsigned i;

	if (c->hidx < 0)
		return;
	i = (unsigned)c->hidx;
	c->hidx = -1;
	if (--w->hn == i)
		return;
	w->heap[i] = w->heap[w->hn];
	w->heap[i]->hidx = (int)i;
	heap_fix(w, i);
}

static void timer_set(struct worker *w, struct conn *c, uint64_t when)
{
	c->deadline = when;
	if (c->hidx < 0) {
		c->hidx = (int)w->hn;
		w->heap[w->hn++] = c;
	}
	heap_fix(w, (unsigned)c->hidx);
}

/* ---- bookkeeping ---- */

static void set_events(struct worker *w, struct conn *c, uint32_t ev)
{
	struct epoll_event e;
	int op;

	if (c->ev == ev)
		return;
	op = c->ev == 0 ? EPOLL_CTL_ADD
	     : ev == 0	? EPOLL_CTL_DEL
			: EPOLL_CTL_MOD;
	e.events = ev;
	e.data.u64 = (uint64_t)(c - w->slots) | ((uint64_t)c->gen << 32);
	if (epoll_ctl(w->ep, op, c->fd, &e) == 0)
		c->ev = ev;
}

static void record_err(struct worker *w, struct conn *c, enum st_err e,
		       uint64_t offset)
{
	struct st_shared *sh = w->sh;

	sh->err[e]++;
	if (!sh->first[e].set) {
		sh->first[e].set = 1;
		sh->first[e].conn = c->id;
		sh->first[e].offset = offset;
	}
}

static void conn_close(struct worker *w, struct conn *c, int rst)
{
	timer_clear(w, c);
	if (c->fd >= 0) {
		if (rst) {
			struct linger l = {1, 0};

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == S_CONNECTING)
		w->pending--;
	if (c->connected)
		w->open--;
	c->connected = 0;
	c->ev = 0;
	c->gen++;
	/* what was in flight is lost with the connection */
	c->qh = c->qn = c->qtx = 0;
	c->tx = c->rx = c->len = 0;
	c->px_len = c->px_tx = 0;
}

static void slot_dead(struct worker *w, struct conn *c)
{
	conn_close(w, c, 0);
	if (c->kind == K_MEASURED && c->state != S_DEAD)
		w->meas_live--;
	c->state = S_DEAD;
}

/* After a slot's connection ended: try again later, or stop. */
static void slot_retry(struct worker *w, struct conn *c, uint64_t delay)
{
	conn_close(w, c, 0);
	if (w->phase != PH_MEASURE) {
		slot_dead(w, c);
		return;
	}
	c->state = S_RETRY;
	timer_set(w, c, w->now + delay);
}

static void fail(struct worker *w, struct conn *c, enum st_err e,
		 uint64_t offset)
{
	record_err(w, c, e, offset);
	/* Measured clients reconnect at once to keep the load on; the stream
	 * they were checking is lost either way. */
	slot_retry(w, c, 0);
}

static void abuse_ended(struct worker *w, struct conn *c, int error)
{
	struct st_abuse_stats *a = &w->sh->abuse[c->kind];

	if (error)
		a->errors++;
	else
		a->closed_by_server++;
	slot_retry(w, c, ST_RETRY_NS);
}

/* A write on the connection failed. */
static void tx_failed(struct worker *w, struct conn *c)
{
	if (c->kind == K_MEASURED)
		fail(w, c, E_RESET, c->stream_off + c->rx);
	else
		abuse_ended(w, c, 1);
}

static void conn_open(struct worker *w, struct conn *c);

/* ---- --hdr-log intervals (see struct st_ivlog) ---- */

static void iv_rotate(struct worker *w)
{
	struct st_ivlog *iv = &w->sh->iv;

	while (w->now >= w->iv_end) {
		/* The other buffer holds second iv_cur - 1: wait (briefly:
		 * the parent looks every 10 ms) until it is taken. */
		uint64_t give_up = w->now + 2000000000ull;

		while (__atomic_load_n(&iv->ack, __ATOMIC_ACQUIRE) <
			   w->iv_cur &&
		       st_now_ns() < give_up) {
			struct timespec ts = {0, 1000000};

			nanosleep(&ts, NULL);
		}
		hist_init(&iv->h[(w->iv_cur + 1) % 2]);
		__atomic_store_n(&iv->pub, w->iv_cur + 1, __ATOMIC_RELEASE);
		w->iv_cur++;
		w->iv_end += 1000000000ull;
	}
}

static void rt_record(struct worker *w, uint64_t us)
{
	hist_record(&w->sh->rt, us);
	if (w->iv_on) {
		if (w->now >= w->iv_end)
			iv_rotate(w);
		hist_record(&w->sh->iv.h[w->iv_cur % 2], us);
	}
}

/* ---- messages ---- */

static struct msg *q_at(const struct worker *w, const struct conn *c,
			uint32_t i)
{
	return &w->ring[(size_t)(c - w->slots) * w->depth +
			(c->qh + i) % w->depth];
}

/* Message index idx of connection id: its pattern window. */
static uint32_t msg_window(uint64_t id, uint64_t idx)
{
	uint64_t h = st_mix64(id * 0x100000001b3ull ^ st_mix64(idx));

	return (uint32_t)((h >> 32) % ST_PAT_WINDOWS);
}

/* An abusive client's next message. */
static void msg_setup(struct worker *w, struct conn *c, uint32_t pay)
{
	c->poff = msg_window(c->id, c->msg_idx);
	c->msg_idx++;
	c->pay = pay;
	proto_frame_hdr(c->hdr, pay);
	c->len = w->hl + c->pay + w->dl;
	c->tx = c->rx = 0;
}

static uint32_t measured_size(const struct st_config *cfg, struct conn *c)
{
	uint64_t h;

	if (cfg->size_min == cfg->size_max)
		return cfg->size_min;
	h = st_mix64(c->id ^ st_mix64(c->msg_idx + 0x5bd1e995ull));
	return cfg->size_min +
	       (uint32_t)(h % ((uint64_t)cfg->size_max - cfg->size_min + 1));
}

static uint32_t msg_len(const struct worker *w, const struct msg *m)
{
	return w->hl + m->pay + w->dl;
}

/* Bytes [off, off + n) of a message (hl header bytes at hdr, pay pattern
 * bytes from poff, dl delimiter bytes) as up to 3 iovecs. */
static int msg_iov(const struct worker *w, const uint8_t *hdr, uint32_t pay,
		   uint32_t poff, uint32_t off, uint32_t n, struct iovec *iov)
{
	uint32_t len = w->hl + pay + w->dl;
	int k = 0;

	while (n > 0) {
		const uint8_t *p;
		uint32_t seg;

		if (off < w->hl) {
			p = hdr + off;
			seg = w->hl - off;
		} else if (off < w->hl + pay) {
			p = w->cfg->pat + poff + (off - w->hl);
			seg = w->hl + pay - off;
		} else {
			p = &w->cfg->delim;
			seg = len - off;
		}
		if (seg > n)
			seg = n;
		iov[k].iov_base = (void *)p;
		iov[k].iov_len = seg;
		k++;
		off += seg;
		n -= seg;
	}
	return k;
}

/* Index of the first byte of data[0..n) that differs from message m at
 * off, or n: block compares, per-byte work only on the error path. */
static size_t msg_cmp(const struct worker *w, const struct msg *m, uint32_t off,
		      const uint8_t *data, size_t n)
{
	struct iovec iov[3];
	size_t done = 0, i;
	int k, j;

	k = msg_iov(w, m->hdr, m->pay, m->poff, off, (uint32_t)n, iov);
	for (j = 0; j < k; j++) {
		const uint8_t *exp = iov[j].iov_base;

		if (memcmp(exp, data + done, iov[j].iov_len) != 0) {
			for (i = 0; exp[i] == data[done + i]; i++)
				;
			return done + i;
		}
		done += iov[j].iov_len;
	}
	return n;
}

static int tx_errno_ok(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* ---- --proxy headers ---- */

/* The connection's PROXY header in b (ST_PROXY_HDR_MAX bytes): TCP4 from
 * its made-up client to the server; returns its length. Built again for
 * each write that needs it (rarely more than one): it depends only on
 * px_idx. */
static uint32_t px_build(const struct worker *w, const struct conn *c,
			 uint8_t *b)
{
	const struct st_config *cfg = w->cfg;
	uint32_t src = ST_PROXY_NET + (uint32_t)(c->px_idx % ST_PROXY_NADDR);
	uint32_t sport =
	    ST_PROXY_PORT0 + (uint32_t)(c->px_idx % ST_PROXY_NPORT);
	uint32_t dst = cfg->proxy_dst, n;
	int k;

	if (cfg->proxy == ST_PROXY_V1) {
		k = snprintf((char *)b, ST_PROXY_HDR_MAX,
			     "PROXY TCP4 %u.%u.%u.%u %u.%u.%u.%u %u %u\r\n",
			     src >> 24, (src >> 16) & 255, (src >> 8) & 255,
			     src & 255, dst >> 24, (dst >> 16) & 255,
			     (dst >> 8) & 255, dst & 255, sport,
			     (unsigned)cfg->proxy_dport);
		return k > 0 ? (uint32_t)k : 0; /* at most 56 bytes */
	}
	memcpy(b, PROXY_V2_SIG, PROXY_V2_SIG_LEN);
	n = PROXY_V2_SIG_LEN;
	b[n++] = 0x20 | PROXY_CMD_PROXY; /* version 2, PROXY */
	b[n++] = PROXY_FAM_TCP4;
	b[n++] = 0;
	b[n++] = PROXY_V2_ADDR4_LEN;
	src = htonl(src);
	dst = htonl(dst);
	memcpy(b + n, &src, 4);
	memcpy(b + n + 4, &dst, 4);
	b[n + 8] = (uint8_t)(sport >> 8);
	b[n + 9] = (uint8_t)sport;
	b[n + 10] = (uint8_t)(cfg->proxy_dport >> 8);
	b[n + 11] = (uint8_t)cfg->proxy_dport;
	return n + PROXY_V2_ADDR4_LEN;
}

static int px_pending(const struct conn *c)
{
	return c->px_tx < c->px_len;
}

/* A new connection's header: its global index, wid + k * workers for the
 * worker's k-th, so that no two connections of the run share one. */
static void px_start(struct worker *w, struct conn *c)
{
	uint8_t b[ST_PROXY_HDR_MAX];

	if (!w->cfg->proxy)
		return;
	c->px_idx = w->sh->proxy_conns++ * w->cfg->workers + w->wid;
	c->px_len = (uint8_t)px_build(w, c, b);
	c->px_tx = 0;
}

/* If the header is pending, put its rest in iov[0]; returns the iovecs
 * used (0 or 1). b: ST_PROXY_HDR_MAX bytes that must outlive the write. */
static int px_iov(const struct worker *w, const struct conn *c, uint8_t *b,
		  struct iovec *iov)
{
	if (!px_pending(c))
		return 0;
	px_build(w, c, b);
	iov->iov_base = b + c->px_tx;
	iov->iov_len = (size_t)(c->px_len - c->px_tx);
	return 1;
}

/* r bytes were written: take the header's share of them; returns the
 * rest, which are message bytes. */
static size_t px_took(struct worker *w, struct conn *c, size_t r)
{
	size_t h;

	if (!px_pending(c))
		return r;
	h = (size_t)(c->px_len - c->px_tx);
	if (h > r)
		h = r;
	c->px_tx = (uint8_t)(c->px_tx + h);
	if (!px_pending(c))
		w->sh->proxy_sent++;
	return r - h;
}

/* The header alone, when no message goes with it; -1 on a socket error. */
static int px_flush(struct worker *w, struct conn *c)
{
	uint8_t b[ST_PROXY_HDR_MAX];
	struct iovec iov;
	ssize_t r;

	while (px_iov(w, c, b, &iov) > 0) {
		r = write(c->fd, iov.iov_base, iov.iov_len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (tx_errno_ok())
				break;
			return -1;
		}
		px_took(w, c, (size_t)r);
	}
	if (px_pending(c))
		set_events(w, c, c->ev | EPOLLOUT);
	else
		set_events(w, c, c->ev & ~(uint32_t)EPOLLOUT);
	return 0;
}

/* Message bytes started and not yet written? */
static int tx_pending(const struct conn *c)
{
	return c->kind == K_MEASURED ? c->qtx < c->qn : c->tx < c->len;
}

/* An abusive client: send up to limit more bytes of its message; -1 on a
 * socket error. */
static int flush_tx(struct worker *w, struct conn *c, uint32_t limit,
		    int want_out)
{
	uint8_t pb[ST_PROXY_HDR_MAX];
	struct iovec iov[4];
	uint32_t n;
	ssize_t r;
	size_t m;
	int k;

	while (c->tx < c->len && limit > 0) {
		/* --proxy: a header still pending goes first; limit counts
		 * message bytes only */
		n = c->len - c->tx < limit ? c->len - c->tx : limit;
		k = px_iov(w, c, pb, iov);
		k += msg_iov(w, c->hdr, c->pay, c->poff, c->tx, n, iov + k);
		r = writev(c->fd, iov, k);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (tx_errno_ok())
				break;
			return -1;
		}
		m = px_took(w, c, (size_t)r);
		c->tx += (uint32_t)m;
		limit -= (uint32_t)m;
		w->sh->abuse[c->kind].bytes_sent += (uint64_t)m;
	}
	if (want_out && c->tx < c->len)
		set_events(w, c, c->ev | EPOLLOUT);
	else
		set_events(w, c, c->ev & ~(uint32_t)EPOLLOUT);
	return 0;
}

/* A measured client: write what is started and not yet written, several
 * messages per writev; -1 on a socket error. */
static int flush_measured(struct worker *w, struct conn *c)
{
	uint8_t pb[ST_PROXY_HDR_MAX];
	struct iovec iov[TX_IOV];
	ssize_t r0;
	size_t r;

	while (c->qtx < c->qn) {
		uint32_t i = c->qtx, off = c->tx;
		/* --proxy: the header, if still pending, in the same writev */
		int k = px_iov(w, c, pb, iov);

		while (i < c->qn && k + 3 <= TX_IOV) {
			const struct msg *m = q_at(w, c, i);
			uint32_t len = msg_len(w, m);

			k += msg_iov(w, m->hdr, m->pay, m->poff, off, len - off,
				     iov + k);
			off = 0;
			i++;
		}
		r0 = writev(c->fd, iov, k);
		if (r0 < 0) {
			if (errno == EINTR)
				continue;
			if (tx_errno_ok())
				break;
			return -1;
		}
		r = px_took(w, c, (size_t)r0);
		w->sh->bytes_sent += (uint64_t)r;
		while (r > 0) {
			uint32_t rest = msg_len(w, q_at(w, c, c->qtx)) - c->tx;

			if ((uint64_t)r < rest) {
				c->tx += (uint32_t)r;
				break;
			}
			r -= rest;
			c->tx = 0;
			c->qtx++;
		}
	}
	if (c->qtx < c->qn)
		set_events(w, c, c->ev | EPOLLOUT);
	else
		set_events(w, c, c->ev & ~(uint32_t)EPOLLOUT);
	return 0;
}

/* May this connection start another message (window, -n, --churn)? The
 * open-loop schedule is looked at separately. */
static int may_start(const struct worker *w, const struct conn *c)
{
	const struct st_config *cfg = w->cfg;

	return w->phase == PH_MEASURE && c->qn < w->depth &&
	       !(cfg->messages && c->done + c->qn >= cfg->messages) &&
	       !(cfg->churn && c->rt_conn + c->qn >= cfg->churn);
}

/*
 * A measured client's next move: start the messages its window, its
 * limits and (open loop) its schedule allow and write them; then, with
 * nothing in flight, finish, reconnect (--churn) or wait for the next send
 * time; with messages in flight, arm the timer for the oldest one's
 * timeout or the next send time, whichever comes first.
 */
static void measured_step(struct worker *w, struct conn *c)
{
	const struct st_config *cfg = w->cfg;
	int started = 0;
	uint64_t when;

	while (may_start(w, c) && !(w->interval_ns && c->t_next > w->now)) {
		struct msg *m = q_at(w, c, c->qn);

		m->pay = measured_size(cfg, c);
		m->poff = msg_window(c->id, c->msg_idx);
		c->msg_idx++;
		proto_frame_hdr(m->hdr, m->pay);
		m->t_start = w->now;
		if (w->interval_ns) {
			/* Latency counts from when the message was due, so a
			 * stalled server cannot hide its stall by delaying our
			 * sends. */
			m->t_sent = c->t_next;
			c->t_next += w->interval_ns;
		} else {
			m->t_sent = w->now;
		}
		c->qn++;
		started = 1;
	}
	if (started && flush_measured(w, c) < 0) {
		fail(w, c, E_RESET, c->stream_off + c->rx);
		return;
	}
	if (c->qn == 0) {
		if (w->phase != PH_MEASURE ||
		    (cfg->messages && c->done >= cfg->messages)) {
			slot_dead(w, c);
			return;
		}
		if (cfg->churn && c->rt_conn >= cfg->churn) {
			/* We close first, so TIME_WAIT lands on our side,
			 * where the kernel may reuse it for loopback
			 * (tcp_tw_reuse). */
			conn_close(w, c, 0);
			conn_open(w, c);
			return;
		}
		c->state = S_READY; /* open loop: until the next send time */
		timer_set(w, c, c->t_next);
		return;
	}
	c->state = S_BUSY;
	when = q_at(w, c, 0)->t_start + w->timeout_ns;
	if (w->interval_ns && c->t_next < when && may_start(w, c))
		when = c->t_next;
	timer_set(w, c, when);
}

static void oversize_send(struct worker *w, struct conn *c)
{
	const struct st_config *cfg = w->cfg;

	if (c->tx < c->len)
		return; /* the last one is still going out */
	if (cfg->mode == ST_LINE) {
		msg_setup(w, c, cfg->max_msg + 1);
	} else {
		/* The header announces max_msg + 1; a little of the body is
		 * enough for the server to refuse it. */
		msg_setup(w, c, 1024);
		proto_frame_hdr(c->hdr, cfg->max_msg + 1);
	}
	if (flush_tx(w, c, UINT32_MAX, 1) < 0)
		abuse_ended(w, c, 1);
}

static void noread_push(struct worker *w, struct conn *c)
{
	uint32_t pay = w->cfg->mode == ST_RAW ? NOREAD_CHUNK : 16384;

	if (w->cfg->mode != ST_RAW && pay > w->cfg->max_msg)
		pay = w->cfg->max_msg;
	for (;;) {
		if (c->tx >= c->len)
			msg_setup(w, c, pay);
		if (flush_tx(w, c, UINT32_MAX, 1) < 0) {
			abuse_ended(w, c, 1);
			return;
		}
		if (c->tx < c->len)
			return;
	}
}

/* A connection is up and the measure phase runs: start its work. */
static void start_activity(struct worker *w, struct conn *c)
{
	const struct st_config *cfg = w->cfg;
	uint32_t pay;

	switch (c->kind) {
	case K_MEASURED:
		measured_step(w, c);
		break;
	case K_SLOWLORIS:
		pay = cfg->mode == ST_FRAME ? cfg->max_msg : ST_PAT_WINDOWS;
		if (pay > 65536)
			pay = 65536;
		msg_setup(w, c, pay);
		timer_set(w, c, w->now);
		break;
	case K_NOREAD:
		c->len = c->tx = 0;
		noread_push(w, c);
		break;
	case K_IDLE:
		break;
	case K_RESET:
		timer_set(w, c, w->now + ST_ABUSE_PERIOD_NS);
		break;
	case K_OVERSIZE:
		c->len = c->tx = 0;
		oversize_send(w, c);
		if (c->state == S_READY)
			timer_set(w, c, w->now + ST_ABUSE_PERIOD_NS);
		break;
	}
}

/* ---- connections ---- */

static void connect_failed(struct worker *w, struct conn *c, int err)
{
	enum st_err e;

	if (c->kind != K_MEASURED) {
		w->sh->abuse[c->kind].connect_failed++;
		slot_retry(w, c, ST_RETRY_NS);
		return;
	}
	e = err == ECONNREFUSED ? E_CONN_REFUSED
	    : err == ECONNRESET ? E_CONN_RESET
	    : err == ETIMEDOUT	? E_CONN_TIMEOUT
				: E_CONN_OTHER;
	if (e == E_CONN_OTHER && !w->sh->first_errno_other)
		w->sh->first_errno_other = err;
	record_err(w, c, e, 0);
	if (w->phase == PH_CONNECT)
		slot_dead(w, c);
	else
		slot_retry(w, c, ST_RETRY_NS);
}

static void on_connected(struct worker *w, struct conn *c)
{
	uint32_t gen;
	int one = 1;

	w->pending--;
	c->state = S_READY;
	c->connected = 1;
	c->rt_conn = 0;
	c->stream_off = 0;
	w->open++;
	timer_clear(w, c);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->kind == K_MEASURED) {
		hist_record(&w->sh->connect, (w->now - c->t_conn) / 1000);
		w->sh->opened++;
		if (w->phase == PH_MEASURE)
			w->sh->opened_measure++;
	} else {
		w->sh->abuse[c->kind].connects++;
	}
	/* noread never asks for input, but still hears a close */
	set_events(w, c, c->kind == K_NOREAD ? EPOLLRDHUP : EPOLLIN);
	px_start(w, c);
	gen = c->gen;
	if (w->phase == PH_MEASURE)
		start_activity(w, c);
	/* --proxy: no message went out with the header (connect phase, idle,
	 * a timer first): it goes alone, now, as a proxy's would. */
	if (c->gen == gen && px_pending(c) && !tx_pending(c) &&
	    px_flush(w, c) < 0)
		tx_failed(w, c);
}

static void conn_open(struct worker *w, struct conn *c)
{
	const struct st_config *cfg = w->cfg;
	int fd;

	c->t_conn = w->now;
	fd = socket(cfg->addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		c->state = S_RETRY;
		connect_failed(w, c, errno);
		return;
	}
	c->fd = fd;
	c->state = S_CONNECTING;
	w->pending++;
	if (cfg->nsources) {
		const struct sockaddr_storage *src =
		    &cfg->sources[c->id % cfg->nsources];
		int one = 1;

		/* The port is picked at connect(), per destination: each
		 * source address then has the whole local port range for
		 * this server, not for all destinations together. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
			   sizeof(one));
		if (bind(fd, (const struct sockaddr *)src,
			 src->ss_family == AF_INET6
			     ? sizeof(struct sockaddr_in6)
			     : sizeof(struct sockaddr_in)) < 0) {
			connect_failed(w, c, errno);
			return;
		}
	}
	if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) ==
	    0) {
		on_connected(w, c);
		return;
	}
	if (errno != EINPROGRESS) {
		connect_failed(w, c, errno);
		return;
	}
	set_events(w, c, EPOLLOUT);
	timer_set(w, c, w->now + (uint64_t)(cfg->connect_timeout * 1e9));
}

/* ---- events ---- */

static void abuse_input(struct worker *w, struct conn *c, const uint8_t *d,
			size_t n)
{
	struct st_abuse_stats *a = &w->sh->abuse[c->kind];

	a->bytes_received += n;
	if (c->kind == K_OVERSIZE &&
	    memmem(d, n, PROTO_ERR_TOO_LONG, sizeof(PROTO_ERR_TOO_LONG) - 1))
		a->err_replies++;
}

static void measured_input(struct worker *w, struct conn *c, const uint8_t *d,
			   size_t n)
{
	int completed = 0;

	while (n > 0) {
		struct msg *m;
		size_t avail, k, bad;
		uint32_t len;

		if (c->qn == 0) {
			fail(w, c, E_EXTRA, c->stream_off);
			return;
		}
		m = q_at(w, c, 0);
		len = msg_len(w, m);
		/* What of the oldest message was written can come back. */
		avail = (c->qtx > 0 ? len : c->tx) - c->rx;
		k = avail < n ? avail : n;
		bad = msg_cmp(w, m, c->rx, d, k);
		if (bad < k) {
			fail(w, c, E_MISMATCH, c->stream_off + c->rx + bad);
			return;
		}
		c->rx += (uint32_t)k;
		w->sh->bytes_recv += k;
		d += k;
		n -= k;
		if (c->rx < len) {
			if (n > 0) { /* bytes we have not written yet */
				fail(w, c, E_EXTRA, c->stream_off + c->rx);
				return;
			}
			break;
		}
		rt_record(w, (w->now - m->t_sent) / 1000);
		w->sh->messages++;
		c->done++;
		c->rt_conn++;
		c->stream_off += len;
		c->qh = (c->qh + 1) % w->depth;
		c->qn--;
		c->qtx--;
		c->rx = 0;
		completed = 1;
	}
	if (completed)
		measured_step(w, c);
}

static void on_input(struct worker *w, struct conn *c)
{
	uint32_t gen = c->gen;
	int rounds = 4;
	ssize_t r;

	while (rounds-- > 0 && c->gen == gen) {
		r = read(c->fd, w->rxbuf, ST_RXBUF);
		if (r > 0) {
			w->now = st_now_ns();
			if (c->kind == K_MEASURED)
				measured_input(w, c, w->rxbuf, (size_t)r);
			else
				abuse_input(w, c, w->rxbuf, (size_t)r);
			if ((size_t)r < ST_RXBUF)
				return;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (c->kind != K_MEASURED)
			abuse_ended(w, c, r < 0);
		else if (r < 0)
			fail(w, c, E_RESET, c->stream_off + c->rx);
		else
			fail(w, c, c->state == S_BUSY ? E_SHORT : E_CLOSED,
			     c->stream_off + c->rx);
		return;
	}
}

static void on_event(struct worker *w, struct conn *c, uint32_t ev)
{
	uint32_t gen = c->gen;
	socklen_t sl = sizeof(int);
	int err = 0;

	if (c->state == S_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
		if (err)
			connect_failed(w, c, err);
		else if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			on_connected(w, c);
		return;
	}
	if ((ev & EPOLLOUT) && px_pending(c) && !tx_pending(c)) {
		/* the rest of a header that went alone; with messages
		 * pending, their writer sends it first */
		if (px_flush(w, c) < 0) {
			tx_failed(w, c);
			return;
		}
		ev &= ~(uint32_t)EPOLLOUT;
	}
	if (c->kind == K_NOREAD) {
		if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
			abuse_ended(w, c, (ev & EPOLLERR) != 0);
		else if (ev & EPOLLOUT)
			noread_push(w, c);
		return;
	}
	if ((ev & EPOLLOUT) && c->kind == K_MEASURED && c->qtx < c->qn) {
		if (flush_measured(w, c) < 0) {
			fail(w, c, E_RESET, c->stream_off + c->rx);
			return;
		}
	} else if ((ev & EPOLLOUT) && c->tx < c->len) {
		if (flush_tx(w, c, UINT32_MAX, 1) < 0) {
			abuse_ended(w, c, 1);
			return;
		}
	}
	if (c->gen == gen && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		on_input(w, c);
}

static void on_timer(struct worker *w, struct conn *c)
{
	switch (c->state) {
	case S_CONNECTING:
		connect_failed(w, c, ETIMEDOUT);
		return;
	case S_RETRY:
		conn_open(w, c);
		return;
	case S_BUSY:
		if (q_at(w, c, 0)->t_start + w->timeout_ns <= w->now)
			fail(w, c, E_TIMEOUT, c->stream_off + c->rx);
		else
			measured_step(w, c); /* open loop: a send is due */
		return;
	case S_READY:
		break;
	default:
		return;
	}
	switch (c->kind) {
	case K_MEASURED:
		measured_step(w, c);
		break;
	case K_SLOWLORIS:
		if (c->tx >= c->len)
			msg_setup(w, c, c->pay);
		if (flush_tx(w, c, 1, 0) < 0) {
			abuse_ended(w, c, 1);
			return;
		}
		timer_set(w, c, w->now + ST_SLOWLORIS_NS);
		break;
	case K_RESET:
		msg_setup(w, c, w->cfg->size_max ? w->cfg->size_max : 1);
		/* Half a message, then RST: the server must cope with input
		 * it will never see finished. */
		if (flush_tx(w, c, c->len / 2 ? c->len / 2 : 1, 0) == 0)
			w->sh->abuse[K_RESET].resets_sent++;
		conn_close(w, c, 1);
		conn_open(w, c);
		break;
	case K_OVERSIZE:
		oversize_send(w, c);
		if (c->state == S_READY)
			timer_set(w, c, w->now + ST_ABUSE_PERIOD_NS);
		break;
	}
}

/* ---- phases ---- */

static void enter_measure(struct worker *w)
{
	unsigned i;

	if (w->cfg->hdr_log) {
		w->iv_on = 1;
		w->iv_cur = 0;
		w->iv_end = w->ctl->measure_start_ns + 1000000000ull;
	}
	for (i = 0; i < w->nslots; i++) {
		struct conn *c = &w->slots[i];

		if (w->interval_ns)
			c->t_next = w->ctl->measure_start_ns +
				    st_mix64(c->id) % w->interval_ns;
		if (c->state == S_READY)
			start_activity(w, c);
	}
}

static void enter_drain(struct worker *w)
{
	unsigned i;

	for (i = 0; i < w->nslots; i++) {
		struct conn *c = &w->slots[i];

		if (c->kind == K_MEASURED && c->state == S_BUSY)
			continue; /* its echo is awaited */
		if (c->kind != K_MEASURED && c->connected)
			w->sh->abuse[c->kind].open_at_end++;
		slot_dead(w, c);
	}
}

static void publish(struct worker *w)
{
	struct st_shared *sh = w->sh;
	uint64_t errs = 0;
	int i;

	for (i = 0; i < E_NERR; i++)
		errs += sh->err[i];
	__atomic_store_n(&sh->p_open, w->open, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->p_msgs, sh->messages, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->p_bytes, sh->bytes_recv, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->p_errors, errs, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->p_opened, sh->opened, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->p_pending, w->pending, __ATOMIC_RELAXED);
}

static int wait_events(struct worker *w, struct epoll_event *evs,
		       uint64_t wait_ns)
{
	static int no_pwait2;
	struct timespec ts;
	int n;

	if (!no_pwait2) {
		ts.tv_sec = (time_t)(wait_ns / 1000000000ull);
		ts.tv_nsec = (long)(wait_ns % 1000000000ull);
		n = epoll_pwait2(w->ep, evs, MAX_EVENTS, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		no_pwait2 = 1;
	}
	return epoll_wait(w->ep, evs, MAX_EVENTS,
			  (int)((wait_ns + 999999) / 1000000));
}

void worker_run(const struct st_config *cfg, struct st_control *ctl,
		unsigned wid, uint64_t meas_first, unsigned n_meas,
		uint64_t abuse_first, const unsigned abuse[K_NKINDS])
{
	static struct epoll_event evs[MAX_EVENTS];
	struct worker wk, *w = &wk;
	unsigned i, k, next_new = 0;
	uint64_t t0, total;
	int n, p;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN); /* the parent turns ^C into the drain */
	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	w->ctl = ctl;
	w->sh = &ctl->w[wid];
	w->wid = wid;
	w->n_meas = w->meas_live = n_meas;
	w->nslots = n_meas;
	for (k = 1; k < K_NKINDS; k++)
		w->nslots += abuse[k];
	w->slots = calloc(w->nslots ? w->nslots : 1, sizeof(*w->slots));
	w->heap = calloc(w->nslots ? w->nslots : 1, sizeof(*w->heap));
	w->rxbuf = malloc(ST_RXBUF);
	w->depth = cfg->pipeline ? cfg->pipeline : 1;
	w->ring =
	    calloc((size_t)(n_meas ? n_meas : 1) * w->depth, sizeof(*w->ring));
	w->hl = cfg->mode == ST_FRAME ? PROTO_FRAME_HDR : 0;
	w->dl = cfg->mode == ST_LINE ? 1 : 0;
	w->timeout_ns = (uint64_t)(cfg->timeout * 1e9);
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!w->slots || !w->heap || !w->rxbuf || !w->ring || w->ep < 0)
		_exit(3);
	hist_init(&w->sh->rt);
	hist_init(&w->sh->connect);
	for (i = 0; i < w->nslots; i++) {
		w->slots[i].fd = -1;
		w->slots[i].hidx = -1;
		w->slots[i].id = meas_first + i;
	}
	i = n_meas;
	for (k = 1; k < K_NKINDS; k++) {
		unsigned j;

		for (j = 0; j < abuse[k]; j++, i++) {
			w->slots[i].kind = (uint8_t)k;
			w->slots[i].id = abuse_first++;
		}
	}
	total = cfg->conns;
	if (cfg->rate > 0)
		w->interval_ns = (uint64_t)((double)total / cfg->rate * 1e9);
	if (cfg->rate > 0 && w->interval_ns == 0)
		w->interval_ns = 1;

	t0 = w->now = st_now_ns();
	w->phase = PH_CONNECT;
	for (;;) {
		uint64_t wait = POLL_NS;

		/* connect phase: start new connections, paced and capped */
		if (w->phase == PH_CONNECT && next_new < w->nslots) {
			double rate =
			    cfg->connect_rate * w->nslots / cfg->total_slots;
			uint64_t allowed = w->nslots;

			if (cfg->connect_rate > 0) {
				allowed = (uint64_t)((double)(w->now - t0) /
						     1e9 * rate) +
					  1;
				wait = 1000000;
			}
			while (next_new < w->nslots && next_new < allowed &&
			       w->pending < ST_PENDING_CONNECTS)
				conn_open(w, &w->slots[next_new++]);
		}
		if (w->phase == PH_CONNECT && next_new == w->nslots &&
		    w->pending == 0 && !w->sh->connect_done)
			__atomic_store_n(&w->sh->connect_done, 1,
					 __ATOMIC_RELEASE);
		if (w->phase == PH_MEASURE && w->meas_live == 0 &&
		    !w->sh->measure_done)
			__atomic_store_n(&w->sh->measure_done, 1,
					 __ATOMIC_RELEASE);
		/* In the drain every slot but the measured ones with echoes
		 * awaited is dead (enter_drain), and those die as they
		 * finish: meas_live counts them, no scan needed. */
		if (w->phase == PH_DRAIN && w->meas_live == 0)
			break;
		publish(w);

		if (w->hn > 0) {
			uint64_t d = w->heap[0]->deadline;

			d = d > w->now ? d - w->now : 0;
			if (d < wait)
				wait = d;
		}
		if (w->iv_on) { /* wake to close the second */
			uint64_t d =
			    w->iv_end > w->now ? w->iv_end - w->now : 0;

			if (d < wait)
				wait = d;
		}
		n = wait_events(w, evs, wait);
		w->now = st_now_ns();
		if (w->iv_on && w->now >= w->iv_end)
			iv_rotate(w);
		for (i = 0; i < (unsigned)(n > 0 ? n : 0); i++) {
			struct conn *c = &w->slots[(uint32_t)evs[i].data.u64];

			if (c->gen == (uint32_t)(evs[i].data.u64 >> 32) &&
			    c->fd >= 0)
				on_event(w, c, evs[i].events);
		}
		w->now = st_now_ns();
		while (w->hn > 0 && w->heap[0]->deadline <= w->now) {
			struct conn *c = w->heap[0];

			timer_clear(w, c);
			on_timer(w, c);
		}
		p = __atomic_load_n(&ctl->phase, __ATOMIC_ACQUIRE);
		if (p != w->phase) {
			if (w->phase == PH_CONNECT && p >= PH_MEASURE) {
				w->phase = PH_MEASURE;
				enter_measure(w);
			}
			if (p == PH_DRAIN) {
				w->phase = PH_DRAIN;
				enter_drain(w);
			}
		}
	}
	for (i = 0; i < w->nslots; i++)
		conn_close(w, &w->slots[i], 0);
	if (w->iv_on) { /* the last, partial second */
		w->now = st_now_ns();
		iv_rotate(w);
		__atomic_store_n(&w->sh->iv.pub, w->iv_cur + 1,
				 __ATOMIC_RELEASE);
	}
	publish(w);
	__atomic_store_n(&w->sh->finished, 1, __ATOMIC_RELEASE);
	_exit(0);
}
