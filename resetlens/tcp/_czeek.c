/* Compiled twin of resetlens.tcp.conn: Zeek's per-packet TCP connection logic in C.
 *
 * conn.py is the readable reference; this file restates it statement by statement (tests/test_tcp_fast.py
 * checks both give identical connections, RST snapshots, flows and anchors). One Engine per vantage:
 *
 *   Engine(layout, row_layout, row_size, likely_ports, anchor_data_pkts, cap)
 *   feed(table, itemsize, cid, ordn, anchor) -> [snapshot tuple per RST]  (one chunk, capture order)
 *   conn_arrays() -> (packets, first RST ordinal, ended) per connection idx, as int64/int64/uint8 bytes
 *   finish() -> (rows bytearray, histories, sent_by_orig bytes)  (ends every live connection)
 *
 * Connection rows are written in the layout Python passes (CONNECTION_DTYPE), at the position of their
 * creation index, so finish() hands over the table in creation order with nothing left to sort.
 *
 * Live connections are found through an open-addressing hash table keyed by the exact 4-tuple (lower
 * endpoint first), so two different tuples never share a connection. Connection state lives in slots that
 * are freed when the connection ends: memory follows live connections, not packets. Pure CPython API (no
 * numpy headers); the table is read through the buffer protocol at the field offsets Python passes in.
 * The packet loop touches no Python object (raw allocator, history letters kept in an arena, snapshots
 * turned into tuples afterwards), so feed() releases the GIL and the read-ahead thread decodes meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Endpoint states (resetlens.tcp.zeek). */
#define INACTIVE 0
#define SYN_SENT 1
#define SYN_ACK_SENT 2
#define PARTIAL 3
#define ESTABLISHED 4
#define CLOSED 5
#define RESET 6

/* Timeouts in seconds (resetlens.tcp.zeek). */
#define TCP_SYN_TIMEOUT 5.0
#define TCP_SESSION_TIMER 6.0
#define TCP_CONNECTION_LINGER 5.0
#define TCP_ATTEMPT_DELAY 5.0
#define TCP_CLOSE_DELAY 5.0
#define TCP_PARTIAL_CLOSE_DELAY 3.0
#define TCP_RESET_DELAY 5.0
#define TCP_INACTIVITY_TIMEOUT 300.0
#define UDP_INACTIVITY_TIMEOUT 60.0
#define TOO_LARGE_SEQ_DELTA 1048576

/* History "seen" bits; the responder's are shifted left by HIST_RESP_SHIFT. */
#define HIST_SYN_PKT 0x1
#define HIST_FIN_PKT 0x2
#define HIST_RST_PKT 0x4
#define HIST_FIN_RST_PKT 0x8
#define HIST_DATA_PKT 0x10
#define HIST_ACK_PKT 0x20
#define HIST_MULTI_FLAG_PKT 0x40
#define HIST_RESP_SHIFT 16

/* TCP flag bits of the table's `flags` column; OPT_WSCALE of its `opts` column. */
#define FIN_F 0x01
#define SYN_F 0x02
#define RST_F 0x04
#define ACK_F 0x10
#define OPT_WSCALE 0x02

/* Analyzer timer kinds (conn.py T_*). */
#define T_ATTEMPT 0
#define T_EXPIRE 1
#define T_PARTIAL_CLOSE 2
#define T_DELETE 3
#define T_RESET 4

#define MAX_BLOCKS 8    /* out-of-order data blocks remembered per direction (conn.py: same) */
#define MAX_TIMERS 16   /* pending analyzer timers per connection (Zeek keeps a handful at most) */
#define HIST_MAX 256    /* history letters kept per connection: bounds a RST snapshot's history copy */
#define N_FIELDS 15     /* packet-table fields read (layout tuple: offset, size per field) */

/* Indices into the layout tuple, and each field's size in bytes. */
enum { F_FRAME, F_TS, F_SRC_HI, F_SRC_LO, F_DST_HI, F_DST_LO, F_SPORT, F_DPORT, F_FLAGS, F_SEQ, F_ACK,
       F_WINDOW, F_PLEN, F_CAPLEN, F_OPTS };
static const int FIELD_SIZE[N_FIELDS] = {8, 8, 8, 8, 8, 8, 2, 2, 2, 4, 4, 2, 4, 4, 1};

typedef struct {
    int64_t st, pst;          /* state, previous state */
    int64_t sseq, lseq, aseq; /* start, last (one past highest sent), highest acked by peer: absolute */
    int64_t finc, rstc, fins; /* FIN count, RST count, FIN sequence (relative) */
    int64_t dcl;              /* did_close */
    int64_t hsyn, hfin, hrst; /* relative sequence of the last SYN / FIN end / RST seen in history */
    int64_t rxc, rxt, w0c, w0t, gpc, gpt; /* retransmission, zero-window, gap counts and thresholds */
    int64_t rea, trim;        /* reassembler: next in-order byte, highest ack processed (relative) */
    int64_t nblk;             /* out-of-order blocks held */
    int64_t pkts, dpk;        /* packets, data packets */
    int64_t acks, wins;       /* ack field of the last ACK sent, window of the last non-RST packet (-1) */
    int64_t wsc;              /* the endpoint's SYN offered window scaling */
    int64_t bs[MAX_BLOCKS], be[MAX_BLOCKS];
} endpoint_t;

typedef struct {
    endpoint_t ep[2]; /* [0] originator, [1] responder (a role flip swaps them) */
    uint64_t khi[2], klo[2];
    uint16_t kport[2]; /* exact key, lower endpoint first */
    uint64_t hash;
    int64_t idx;       /* creation index at the vantage */
    int64_t hseen, hlen;
    int64_t active, partial, fps; /* is_active, is_partial, first_packet_seen (1 orig, 2 resp) */
    int64_t fframe, lframe, npk;
    int64_t ofirst;    /* the originator is the key's first endpoint */
    int64_t flips, tcanc;
    int64_t snap_head; /* latest RST snapshot of this connection not yet resolved (-1 none) */
    int live;          /* the slot holds a live connection */
    int nt;
    double start, last, inact, prev, nextt;
    double tt[MAX_TIMERS];
    int tk[MAX_TIMERS];
    uint8_t hist[HIST_MAX];
} conn_t;

/* Connection-row fields written (row_layout tuple: offset, size per field; CONNECTION_DTYPE order). */
enum { R_IDX, R_VANTAGE, R_TS, R_DURATION, R_ORIG_HI, R_ORIG_LO, R_RESP_HI, R_RESP_LO, R_ORIG_P, R_RESP_P, R_STATE,
       R_ORIG_BYTES, R_RESP_BYTES, R_ORIG_PKTS, R_RESP_PKTS, R_FIRST_FRAME, R_LAST_FRAME, N_RFIELDS };
static const int RFIELD_SIZE[N_RFIELDS] = {8, 2, 8, 8, 8, 8, 8, 8, 2, 2, 1, 8, 8, 8, 8, 8, 8};

typedef struct {
    uint64_t hash;
    int64_t slot; /* -1 empty */
} hent_t;

/* One RST snapshot of the chunk being fed (conn.py VantageTracker._snapshot's values). */
typedef struct {
    int64_t row, idx, ord, sst, rst, snext, rnext, rack, rwin; /* -1 where conn.py has None */
    double prev;
    int wscaled, has_prev;
    int64_t hlen;
    uint8_t hist[HIST_MAX];
} snap_t;

typedef struct {
    PyObject_HEAD
    Py_ssize_t off[N_FIELDS];
    uint8_t likely[65536];
    int64_t anchor_data_pkts;
    int broken; /* an error left the state half-updated: refuse further use */
    /* slots */
    conn_t *slots;
    int64_t cap;
    int64_t *free_stack;
    int64_t nfree;
    /* live hash table */
    hent_t *tab;
    uint64_t tmask;
    int64_t nlive, peak_live;
    uint64_t seed;
    /* per connection idx */
    int64_t next_idx, idx_cap;
    int64_t *total, *first_rst;
    uint8_t *dead;
    /* RST snapshots (by snapshot number) */
    int64_t nsnap, snap_cap;
    int64_t *snap_next;
    int64_t *snap_flips;
    uint8_t *snap_side, *snap_orig;
    /* connection rows, by idx (written when the connection ends) */
    Py_ssize_t roff[N_RFIELDS];
    Py_ssize_t row_size;
    uint8_t *rows;
    int finished; /* finish() ran: the rows and histories were handed over */
    int busy;     /* feed() is running without the GIL: every other call is refused */
    int ready;    /* __init__ succeeded */
    /* history letters of ended connections: arena[hist_off[idx] : + hist_len[idx]] */
    uint8_t *arena;
    int64_t arena_used, arena_cap;
    int64_t *hist_off, *hist_len;
    /* the current chunk's RST snapshots, turned into tuples once the GIL is back */
    snap_t *fsnaps;
    int64_t nfsnap, fsnap_cap;
} Engine;

/* ---- helpers -------------------------------------------------------------------------------------- */

static inline int64_t sd(int64_t a, int64_t b) { /* a - b in 32-bit sequence space, signed */
    uint64_t x = ((uint64_t)a - (uint64_t)b + 0x80000000u) & 0xFFFFFFFFu;
    return (int64_t)x - 0x80000000;
}

static inline void put_i64(uint8_t *p, int64_t v) { memcpy(p, &v, 8); }
static inline void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void put_f64(uint8_t *p, double v) { memcpy(p, &v, 8); }
static inline void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static inline int64_t times10(int64_t v) { return v < INT64_MAX / 10 ? v * 10 : INT64_MAX; }

/* Memory is taken from the raw allocator, which needs no GIL: the packet loop runs without it. Growth
 * functions return -1 on failure and set no Python error; the caller raises MemoryError once it holds
 * the GIL again. */
static int grow_array(void **p, int64_t *cap, int64_t need, size_t item) {
    if (need <= *cap) return 0;
    int64_t n = *cap ? *cap : 1024;
    while (n < need) {
        if (n > INT64_MAX / 2 || (uint64_t)n * 2 > (uint64_t)PY_SSIZE_T_MAX / item) return -1;
        n *= 2;
    }
    void *q = PyMem_RawRealloc(*p, (size_t)n * item);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t key_hash(uint64_t seed, uint64_t h1, uint64_t l1, uint16_t p1, uint64_t h2, uint64_t l2,
                                uint16_t p2) {
    uint64_t x = mix64(seed ^ h1);
    x = mix64(x ^ l1);
    x = mix64(x ^ (((uint64_t)p1 << 16) | p2));
    x = mix64(x ^ h2);
    x = mix64(x ^ l2);
    return x;
}

/* ---- history ---------------------------------------------------------------------------------------- */

static inline void add_hist(conn_t *c, int e, int code) {
    if (c->hlen < HIST_MAX) c->hist[c->hlen++] = (uint8_t)(e ? code + 32 : code);
}

static inline int check_hist(conn_t *c, int e, int64_t mask, int code) {
    if (e) mask <<= HIST_RESP_SHIFT;
    if (c->hseen & mask) return 1;
    c->hseen |= mask;
    add_hist(c, e, code);
    return 0;
}

/* ---- timers ----------------------------------------------------------------------------------------- */

static inline void add_timer(conn_t *c, double t, int kind) {
    if (c->tcanc) return;
    if (c->nt < MAX_TIMERS) {
        c->tt[c->nt] = t;
        c->tk[c->nt] = kind;
        c->nt++;
        if (t < c->nextt) c->nextt = t;
    }
}

static inline void set_state(conn_t *c, int e, int64_t new_state) {
    endpoint_t *ep = &c->ep[e], *peer = &c->ep[e ^ 1];
    if (new_state != ep->st) {
        if (new_state > SYN_ACK_SENT && ep->st <= SYN_ACK_SENT && peer->st <= SYN_ACK_SENT)
            c->inact = TCP_INACTIVITY_TIMEOUT;
        ep->pst = ep->st;
        ep->st = new_state;
    }
}

static void flip(conn_t *c) {
    endpoint_t tmp = c->ep[0];
    c->ep[0] = c->ep[1];
    c->ep[1] = tmp;
    c->ofirst = 1 - c->ofirst;
    int64_t fps = c->fps;
    c->fps = ((fps & 1) ? 2 : 0) | ((fps & 2) ? 1 : 0);
    c->partial = 0;
    c->flips++;
    if (c->hlen < HIST_MAX) c->hist[c->hlen++] = '^';
}

static int64_t ep_size(const endpoint_t *e, const endpoint_t *p) {
    if (e->pst == SYN_SENT && e->st == RESET && p->st == INACTIVE) {
        int64_t d = sd(e->aseq, e->sseq);
        if (d != 0 && d != 1) return 0;
    }
    int64_t a = sd(e->lseq, e->sseq);
    int64_t b = sd(e->aseq, e->sseq);
    int64_t size = a > b ? a : b;
    if (size <= 0) return 0;
    size -= 1;
    if (e->finc > 0 && size != 0) size -= 1;
    return size;
}

static int fire(conn_t *c, double due, int kind) {
    endpoint_t *o = &c->ep[0], *r = &c->ep[1];
    if (kind == T_DELETE) return 1;
    if (!c->active) return 0;
    if (kind == T_ATTEMPT) {
        if ((o->st == SYN_SENT || o->st == SYN_ACK_SENT) && r->st == INACTIVE) {
            c->active = 0;
            return 1;
        }
        return 0;
    }
    if (kind == T_EXPIRE) {
        if (c->last + TCP_CONNECTION_LINGER < due) {
            if (o->dcl || r->dcl) {
                if ((o->dcl && r->dcl) || o->st == RESET || r->st == RESET || o->st == INACTIVE ||
                    r->st == INACTIVE) {
                    c->active = 0;
                    return 1;
                }
            }
            if (r->st == INACTIVE && o->st == INACTIVE) return 1;
        }
        add_timer(c, due + TCP_SESSION_TIMER, T_EXPIRE);
        return 0;
    }
    if (kind == T_PARTIAL_CLOSE) {
        if (o->st != INACTIVE && r->st != INACTIVE && !(o->dcl && r->dcl))
            return !(o->st == RESET || r->st == RESET);
        return 0;
    }
    if (kind == T_RESET) return 1;
    return 0;
}

/* Run the timers due at or before t (state is frozen since the last packet): removed? A timer either
 * ends the connection or has no effect, except EXPIRE, which re-adds itself SESSION_TIMER later; pending
 * timers are never older than the previous packet of the connection, so the loop runs a few dozen rounds
 * at most (ROUND_LIMIT only guards against the impossible). */
#define ROUND_LIMIT (1 << 20)
static int expired_by(conn_t *c, double t) {
    if (c->last + c->inact <= t) return 1;
    for (int64_t rounds = 0; c->nt > 0; rounds++) {
        if (rounds >= ROUND_LIMIT) return 1;
        int n = c->nt, best = 0;
        for (int k = 1; k < n; k++)
            if (c->tt[k] < c->tt[best] || (c->tt[k] == c->tt[best] && c->tk[k] < c->tk[best])) best = k;
        double due = c->tt[best];
        int kind = c->tk[best];
        if (!(due <= t)) { /* conn.py: due > t; a NaN time (never from the reader) counts as not due */
            c->nextt = due;
            return 0;
        }
        c->tt[best] = c->tt[n - 1];
        c->tk[best] = c->tk[n - 1];
        c->nt = n - 1;
        if (fire(c, due, kind)) return 1;
    }
    c->nextt = INFINITY;
    return 0;
}

static int is_reuse(const conn_t *c, int64_t flags, int64_t seq) {
    if (!(flags & SYN_F)) return 0;
    const endpoint_t *o = &c->ep[0], *r = &c->ep[1];
    const endpoint_t *co = o;
    if (flags & ACK_F) {
        if (o->st != INACTIVE) return 0;
        co = r;
    }
    if (!(o->dcl || r->dcl)) {
        if (seq == co->sseq) return 0;
        if (!(flags & ACK_F) && co->st == SYN_ACK_SENT && r->st == INACTIVE && seq == r->sseq) return 0;
    }
    return 1;
}

/* ---- reassembly (content gaps) ---------------------------------------------------------------------- */

static void absorb(endpoint_t *e) {
    int64_t n = e->nblk;
    if (n == 0) return;
    for (int64_t i = 1; i < n; i++) { /* insertion sort by (start, end); n <= MAX_BLOCKS */
        int64_t a = e->bs[i], b = e->be[i];
        int64_t j = i - 1;
        while (j >= 0 && (e->bs[j] > a || (e->bs[j] == a && e->be[j] > b))) {
            e->bs[j + 1] = e->bs[j];
            e->be[j + 1] = e->be[j];
            j--;
        }
        e->bs[j + 1] = a;
        e->be[j + 1] = b;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (e->bs[i] <= e->rea) {
            if (e->be[i] > e->rea) e->rea = e->be[i];
        } else {
            e->bs[k] = e->bs[i];
            e->be[k] = e->be[i];
            k++;
        }
    }
    e->nblk = k;
}

static void data_sent(endpoint_t *e, int64_t rel, int64_t plen) {
    int64_t end = rel + plen;
    if (end <= e->rea) return;
    if (rel <= e->rea) {
        e->rea = end;
        absorb(e);
    } else if (e->nblk < MAX_BLOCKS) {
        e->bs[e->nblk] = rel;
        e->be[e->nblk] = end;
        e->nblk++;
    }
}

static inline int is_clean(const endpoint_t *e) {
    return e->st == ESTABLISHED || (e->st == CLOSED && e->pst == ESTABLISHED);
}

static void ack_received(conn_t *c, int e, int64_t rel_ack) {
    endpoint_t *ep = &c->ep[e];
    if (ep->finc > 0 && rel_ack >= ep->fins) rel_ack = ep->fins - 1;
    if (rel_ack <= ep->trim) return;
    ep->trim = rel_ack;
    if (rel_ack <= ep->rea) return;
    if (rel_ack <= 2 && c->partial) return;
    absorb(ep); /* sorts the blocks */
    int64_t covered = ep->rea;
    int hole = 0;
    for (int64_t i = 0; i < ep->nblk; i++) {
        if (ep->bs[i] > covered) {
            hole = 1;
            break;
        }
        if (ep->be[i] > covered) covered = ep->be[i];
    }
    if (covered < rel_ack) hole = 1;
    if (hole && is_clean(ep) && is_clean(&c->ep[e ^ 1])) {
        ep->gpc++;
        if (ep->gpc == ep->gpt) {
            add_hist(c, e, 'G');
            ep->gpt = times10(ep->gpt);
        }
    }
    if (rel_ack > ep->rea) ep->rea = rel_ack;
    absorb(ep);
}

static void connection_closed(conn_t *c, int e, int gen_event) {
    endpoint_t *ep = &c->ep[e], *peer = &c->ep[e ^ 1];
    if (ep->dcl) return;
    ep->dcl = 1;
    if (ep->st == RESET || peer->dcl || peer->st == INACTIVE) {
        if ((ep->pst != INACTIVE || peer->st != INACTIVE) && gen_event) c->active = 0;
        c->tt[0] = c->last + TCP_CLOSE_DELAY; /* CancelTimers, then the delete timer */
        c->tk[0] = T_DELETE;
        c->nt = 1;
        c->nextt = c->tt[0];
        c->tcanc = 1;
    } else if (ep->pst == INACTIVE) {
        add_timer(c, c->last + TCP_PARTIAL_CLOSE_DELAY, T_PARTIAL_CLOSE);
    } else {
        add_timer(c, c->last + TCP_SESSION_TIMER, T_EXPIRE);
    }
}

/* ---- one segment (conn.process_packet) -------------------------------------------------------------- */

static void packet(conn_t *c, int is_orig, double t, int64_t flags, int64_t seq, int64_t ack, int64_t plen,
                   int64_t caplen, int64_t window) {
    int e = is_orig ? 0 : 1;
    int p = e ^ 1;
    c->ep[e].pkts++;
    int64_t syn = flags & SYN_F, fin = flags & FIN_F, rst = flags & RST_F, has_ack = flags & ACK_F;

    /* SetPartialStatus */
    if (e == 0) {
        if (!(c->fps & 1)) c->partial = ((!syn) || has_ack) ? 1 : 0;
    } else if (!(c->fps & 2) && !c->partial) {
        c->partial = syn ? 0 : 1;
    }

    int64_t seg_len = plen + (syn ? 1 : 0) + (fin ? 1 : 0) - (rst ? plen : 0);
    int64_t end_seq = (int64_t)(((uint64_t)seq + (uint64_t)seg_len) & 0xFFFFFFFFu);

    /* init_endpoint */
    int64_t st = c->ep[e].st;
    if (st == INACTIVE) {
        if (syn) {
            c->ep[e].sseq = seq;
            c->ep[e].aseq = seq;
            c->ep[e].lseq = end_seq;
        } else {
            int64_t v = (int64_t)(((uint64_t)seq - 1u) & 0xFFFFFFFFu);
            c->ep[e].sseq = v;
            c->ep[e].aseq = v;
            c->ep[e].lseq = seq;
        }
    } else if (syn && (((st == SYN_SENT || st == SYN_ACK_SENT) && seq != c->ep[e].sseq) || st == ESTABLISHED ||
                       st == PARTIAL || (st == RESET && c->ep[e].pst == INACTIVE))) {
        c->ep[e].sseq = seq;
        c->ep[e].aseq = seq;
        c->ep[e].lseq = end_seq;
    }

    int64_t rel_seq = sd(seq, c->ep[e].sseq);
    int underflow = rel_seq < 0;

    /* update_history */
    int bits = (syn ? 1 : 0) + (fin ? 1 : 0) + (rst ? 1 : 0);
    if (bits > 1) {
        if (fin && rst)
            check_hist(c, e, HIST_FIN_RST_PKT, 'I');
        else
            check_hist(c, e, HIST_MULTI_FLAG_PKT, 'Q');
    } else if (bits == 1) {
        if (syn) {
            int code = has_ack ? 'H' : 'S';
            if (check_hist(c, e, HIST_SYN_PKT, code) && rel_seq != c->ep[e].hsyn) add_hist(c, e, code);
            c->ep[e].hsyn = rel_seq;
        } else if (fin) {
            if (check_hist(c, e, HIST_FIN_PKT, 'F') && rel_seq + plen != c->ep[e].hfin) add_hist(c, e, 'F');
            c->ep[e].hfin = rel_seq + plen;
        } else {
            if (check_hist(c, e, HIST_RST_PKT, 'R') && rel_seq != c->ep[e].hrst) add_hist(c, e, 'R');
            c->ep[e].hrst = rel_seq;
        }
    } else if (plen) {
        check_hist(c, e, HIST_DATA_PKT, 'D');
    } else if (has_ack) {
        check_hist(c, e, HIST_ACK_PKT, 'A');
    }

    /* update_window: zero windows */
    if (window == 0 && !rst && c->ep[p].st != CLOSED && c->ep[e].st != RESET) {
        c->ep[e].w0c++;
        if (c->ep[e].w0c == c->ep[e].w0t) {
            add_hist(c, e, 'W');
            c->ep[e].w0t = times10(c->ep[e].w0t);
        }
    }
    if (!rst) c->ep[e].wins = window;

    if (!(c->ep[0].dcl && c->ep[1].dcl)) c->last = t;

    if (fin) {
        c->ep[e].finc++;
        c->ep[e].fins = rel_seq + seg_len;
    }
    if (rst) c->ep[e].rstc++;

    int64_t rel_ack = 0;
    if (has_ack) {
        c->ep[e].acks = ack;
        if (c->ep[p].st == INACTIVE) {
            rel_ack = 1;
            int64_t v = (int64_t)(((uint64_t)ack - 1u) & 0xFFFFFFFFu);
            c->ep[p].sseq = v;
            c->ep[p].aseq = v;
            c->ep[p].lseq = v;
        } else {
            rel_ack = sd(ack, c->ep[p].sseq);
            if (rel_ack < 0) {
                rel_ack = 0;
            } else if (!rst) {
                int64_t delta_ack = sd(ack, c->ep[p].aseq);
                if (!(ack == 0 && delta_ack > TOO_LARGE_SEQ_DELTA) && delta_ack > 0) c->ep[p].aseq = ack;
            }
        }
    }

    /* update_last_seq */
    int64_t delta_last = sd(end_seq, c->ep[e].lseq);
    if ((syn || rst) && (delta_last > TOO_LARGE_SEQ_DELTA || delta_last < -TOO_LARGE_SEQ_DELTA)) {
        /* untrusted jump */
    } else if (fin && sd(c->ep[e].lseq, c->ep[e].sseq) == 1) {
        c->ep[e].lseq = end_seq;
    } else if (c->ep[e].st == RESET) {
        /* nothing */
    } else if (delta_last > 0) {
        c->ep[e].lseq = end_seq;
    } else if (plen > 0) {
        c->ep[e].rxc++;
        if (c->ep[e].rxc == c->ep[e].rxt) {
            add_hist(c, e, 'T');
            c->ep[e].rxt = times10(c->ep[e].rxt);
        }
    }

    /* state machine (conn._state_machine) */
    int do_close = 0, gen_event = 0;
    st = c->ep[e].st;
    if (st == INACTIVE) {
        if (syn) {
            if (is_orig) {
                set_state(c, e, has_ack ? SYN_ACK_SENT : SYN_SENT);
                add_timer(c, t + TCP_ATTEMPT_DELAY, T_ATTEMPT);
            } else {
                if (!has_ack && c->ep[p].st == SYN_ACK_SENT && seq == c->ep[e].sseq) {
                    /* SYN/SYN-ACK reversal: flip the endpoints and establish */
                    c->partial = 0;
                    flip(c);
                    e ^= 1;
                    p ^= 1;
                    set_state(c, p, ESTABLISHED);
                    c->fps |= 1;
                }
                if (c->ep[p].st == SYN_SENT) set_state(c, p, ESTABLISHED);
                set_state(c, e, ESTABLISHED);
            }
        }
        if (fin) {
            set_state(c, e, CLOSED);
            do_close = gen_event = 1;
        }
        if (rst) {
            set_state(c, e, RESET);
            int is_reject;
            if (e == 0)
                is_reject = c->ep[p].st == ESTABLISHED;
            else
                is_reject = c->ep[p].st == SYN_SENT || c->ep[p].st == SYN_ACK_SENT;
            do_close = 1;
            gen_event = !is_reject;
        }
        if (c->ep[e].st == INACTIVE) {
            if (e == 1 && plen == 0 && c->ep[0].st == SYN_SENT) {
                /* an ACK before the SYN-ACK does not make a partial connection */
            } else if (has_ack && c->ep[p].st == ESTABLISHED) {
                set_state(c, e, ESTABLISHED);
                c->partial = 0;
                c->fps |= e == 0 ? 1 : 2;
            } else {
                set_state(c, e, PARTIAL);
            }
        }
    } else if (st == SYN_SENT || st == SYN_ACK_SENT) {
        if (fin) {
            set_state(c, e, CLOSED);
            do_close = gen_event = 1;
        }
        if (rst) {
            set_state(c, e, RESET);
            c->active = 0;
            do_close = 1;
        }
    } else if (st == ESTABLISHED || st == PARTIAL) {
        if (syn && st == PARTIAL && c->ep[p].st == INACTIVE && !has_ack) set_state(c, e, SYN_SENT);
        if (fin && !rst) {
            set_state(c, e, CLOSED);
            if (c->ep[p].st == RESET && c->ep[p].pst == CLOSED) set_state(c, p, CLOSED);
            do_close = gen_event = 1;
        }
        if (rst) {
            set_state(c, e, RESET);
            do_close = 1;
            if (c->ep[p].st != RESET || c->ep[p].pst != ESTABLISHED) c->active = 0;
        }
    } else if (st == CLOSED) {
        if (rst && c->ep[p].st != CLOSED) {
            set_state(c, e, RESET);
            if (!c->ep[e].dcl) do_close = 1;
            add_timer(c, t + TCP_RESET_DELAY, T_RESET);
        }
    }

    if (has_ack) ack_received(c, p, rel_ack);

    if (plen > 0 && !rst && !underflow) {
        c->ep[e].dpk++;
        if (caplen >= plen) data_sent(&c->ep[e], syn ? rel_seq + 1 : rel_seq, plen);
    }

    if (do_close) connection_closed(c, e, gen_event);

    c->fps |= is_orig ? 1 : 2;
}

/* ---- results ---------------------------------------------------------------------------------------- */

/* Zeek's conn_state() test for RSTOS0: the history matches ^?S[^HAFGIQ]*R.* as a whole. */
static int rstos0(const conn_t *c) {
    int64_t i = 0, n = c->hlen;
    if (i < n && c->hist[i] == '^') i++;
    if (i >= n || c->hist[i] != 'S') return 0;
    for (i++; i < n; i++) {
        uint8_t ch = c->hist[i];
        if (ch == 'R') return 1;
        if (ch == 'H' || ch == 'A' || ch == 'F' || ch == 'G' || ch == 'I' || ch == 'Q') return 0;
    }
    return 0;
}

/* Index into STATE_CODES: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH. */
static int state_code(const conn_t *c) {
    const endpoint_t *o = &c->ep[0], *r = &c->ep[1];
    int64_t os = o->st, rs = r->st;
    int o_inactive = os == INACTIVE || os == PARTIAL;
    int r_inactive = rs == INACTIVE || rs == PARTIAL;
    if (rs == RESET) {
        if (os == SYN_SENT || os == SYN_ACK_SENT || (os == RESET && ep_size(o, r) == 0 && ep_size(r, o) == 0))
            return 3;
        return o_inactive ? 9 : 7;
    }
    if (os == RESET) {
        if (r_inactive) return rstos0(c) ? 8 : 12;
        return 6;
    }
    if (rs == CLOSED && os == CLOSED) return 2;
    if (os == CLOSED) return r_inactive ? 10 : 4;
    if (rs == CLOSED) return o_inactive ? 11 : 5;
    if (os == SYN_SENT && rs == INACTIVE) return 0;
    if (os == ESTABLISHED && rs == ESTABLISHED) return 1;
    return 12;
}

/* Keep a history's letters in the arena; *off receives where. */
static int arena_put(Engine *self, const uint8_t *text, int64_t len, int64_t *off) {
    if (grow_array((void **)&self->arena, &self->arena_cap, self->arena_used + len + 1, 1) < 0) return -1;
    if (len) memcpy(self->arena + self->arena_used, text, (size_t)len);
    *off = self->arena_used;
    self->arena_used += len;
    return 0;
}

/* ---- slots and the live table ----------------------------------------------------------------------- */

static int ensure_idx(Engine *self, int64_t need) {
    if (need <= self->idx_cap) return 0;
    int64_t cap = self->idx_cap, c2 = cap, c3 = cap, c4 = cap, c5 = cap, c6 = cap;
    if (grow_array((void **)&self->total, &cap, need, sizeof(int64_t)) < 0 ||
        grow_array((void **)&self->first_rst, &c2, need, sizeof(int64_t)) < 0 ||
        grow_array((void **)&self->dead, &c3, need, sizeof(uint8_t)) < 0 ||
        grow_array((void **)&self->rows, &c4, need, (size_t)self->row_size) < 0 ||
        grow_array((void **)&self->hist_off, &c5, need, sizeof(int64_t)) < 0 ||
        grow_array((void **)&self->hist_len, &c6, need, sizeof(int64_t)) < 0)
        return -1;
    self->idx_cap = cap;
    return 0;
}

/* Double the slot pool (or create it with `want` slots) and the live table with it. All or nothing. */
static int grow_slots(Engine *self, int64_t want) {
    int64_t old = self->cap;
    int64_t cap = old ? old * 2 : (want < 1 ? 1 : want);
    if (cap > (int64_t)(PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(conn_t)) / 2) return -1;
    uint64_t entries = 64; /* the live table stays at most half full: at least 2 * cap entries */
    while (entries < (uint64_t)cap * 2) entries <<= 1;
    hent_t *tab = NULL;
    if (entries > self->tmask + 1) {
        tab = PyMem_RawMalloc((size_t)entries * sizeof(hent_t));
        if (!tab) return -1;
    }
    int64_t *fs = PyMem_RawRealloc(self->free_stack, (size_t)cap * sizeof(int64_t));
    if (!fs) {
        PyMem_RawFree(tab);
        return -1;
    }
    self->free_stack = fs;
    conn_t *slots = PyMem_RawRealloc(self->slots, (size_t)cap * sizeof(conn_t));
    if (!slots) {
        PyMem_RawFree(tab);
        return -1;
    }
    self->slots = slots;
    memset(slots + old, 0, (size_t)(cap - old) * sizeof(conn_t));
    for (int64_t s = cap - 1; s >= old; s--) self->free_stack[self->nfree++] = s;
    self->cap = cap;
    if (tab) {
        for (uint64_t i = 0; i < entries; i++) tab[i].slot = -1;
        uint64_t mask = entries - 1;
        if (self->tab) {
            for (uint64_t i = 0; i <= self->tmask; i++) {
                if (self->tab[i].slot < 0) continue;
                uint64_t j = self->tab[i].hash & mask;
                while (tab[j].slot >= 0) j = (j + 1) & mask;
                tab[j] = self->tab[i];
            }
            PyMem_RawFree(self->tab);
        }
        self->tab = tab;
        self->tmask = mask;
    }
    return 0;
}

static int64_t lookup(Engine *self, uint64_t h, uint64_t h1, uint64_t l1, uint16_t p1, uint64_t h2, uint64_t l2,
                      uint16_t p2) {
    uint64_t mask = self->tmask;
    for (uint64_t j = h & mask, n = 0; n <= mask; j = (j + 1) & mask, n++) {
        int64_t s = self->tab[j].slot;
        if (s < 0) return -1;
        if (self->tab[j].hash != h) continue;
        const conn_t *c = &self->slots[s];
        if (c->khi[0] == h1 && c->klo[0] == l1 && c->kport[0] == p1 && c->khi[1] == h2 && c->klo[1] == l2 &&
            c->kport[1] == p2)
            return s;
    }
    return -1;
}

static void table_insert(Engine *self, uint64_t h, int64_t s) {
    uint64_t mask = self->tmask;
    uint64_t j = h & mask;
    while (self->tab[j].slot >= 0) j = (j + 1) & mask; /* never full: at most half the entries used */
    self->tab[j].hash = h;
    self->tab[j].slot = s;
    if (++self->nlive > self->peak_live) self->peak_live = self->nlive;
}

static void table_remove(Engine *self, int64_t s) { /* linear probing with backward-shift deletion */
    uint64_t mask = self->tmask;
    uint64_t h = self->slots[s].hash;
    uint64_t i = h & mask, n = 0;
    while (self->tab[i].slot != s) {
        if (self->tab[i].slot < 0 || ++n > mask) return; /* not present (cannot happen) */
        i = (i + 1) & mask;
    }
    uint64_t j = i;
    for (n = 0; n <= mask; n++) {
        j = (j + 1) & mask;
        if (self->tab[j].slot < 0) break;
        uint64_t k = self->tab[j].hash & mask;
        /* move entry j back to the hole at i unless its home k lies cyclically in (i, j] */
        int in_range = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!in_range) {
            self->tab[i] = self->tab[j];
            i = j;
        }
    }
    self->tab[i].slot = -1;
    self->nlive--;
}

/* The connection in slot s ended: its row, its snapshots' sender role, free the slot. */
static int finalise(Engine *self, int64_t s) {
    conn_t *c = &self->slots[s];
    if (arena_put(self, c->hist, c->hlen, &self->hist_off[c->idx]) < 0) return -1;
    self->hist_len[c->idx] = c->hlen;
    int of = c->ofirst ? 0 : 1; /* key endpoint of the originator */
    uint8_t *row = self->rows + (size_t)c->idx * (size_t)self->row_size;
    const Py_ssize_t *ro = self->roff;
    put_i64(row + ro[R_IDX], c->idx);
    put_u16(row + ro[R_VANTAGE], 0);
    put_f64(row + ro[R_TS], c->start);
    put_f64(row + ro[R_DURATION], c->last - c->start);
    put_u64(row + ro[R_ORIG_HI], c->khi[of]);
    put_u64(row + ro[R_ORIG_LO], c->klo[of]);
    put_u64(row + ro[R_RESP_HI], c->khi[of ^ 1]);
    put_u64(row + ro[R_RESP_LO], c->klo[of ^ 1]);
    put_u16(row + ro[R_ORIG_P], c->kport[of]);
    put_u16(row + ro[R_RESP_P], c->kport[of ^ 1]);
    row[ro[R_STATE]] = (uint8_t)state_code(c);
    put_i64(row + ro[R_ORIG_BYTES], ep_size(&c->ep[0], &c->ep[1]));
    put_i64(row + ro[R_RESP_BYTES], ep_size(&c->ep[1], &c->ep[0]));
    put_i64(row + ro[R_ORIG_PKTS], c->ep[0].pkts);
    put_i64(row + ro[R_RESP_PKTS], c->ep[1].pkts);
    put_i64(row + ro[R_FIRST_FRAME], c->fframe);
    put_i64(row + ro[R_LAST_FRAME], c->lframe);
    for (int64_t k = c->snap_head, n = 0; k >= 0 && n < self->nsnap; k = self->snap_next[k], n++)
        self->snap_orig[k] = (self->snap_side[k] == 0) != ((c->flips - self->snap_flips[k]) % 2 == 1);
    c->snap_head = -1;
    c->live = 0;
    self->total[c->idx] = c->npk;
    self->dead[c->idx] = 1;
    table_remove(self, s);
    self->free_stack[self->nfree++] = s;
    return 0;
}

static void new_conn(conn_t *c, int64_t idx, double t, int64_t frame, int64_t src_first) {
    memset(c, 0, offsetof(conn_t, hist));
    for (int e = 0; e < 2; e++) {
        c->ep[e].rxt = 1;
        c->ep[e].w0t = 1;
        c->ep[e].gpt = 1;
        c->ep[e].rea = 1;
        c->ep[e].trim = 1;
        c->ep[e].acks = -1;
        c->ep[e].wins = -1;
    }
    c->idx = idx;
    c->active = 1;
    c->fframe = frame;
    c->lframe = frame;
    c->ofirst = src_first;
    c->snap_head = -1;
    c->live = 1;
    c->start = t;
    c->last = t;
    c->inact = UDP_INACTIVITY_TIMEOUT;
    c->prev = t;
    c->tt[0] = t + TCP_SYN_TIMEOUT;
    c->tk[0] = T_EXPIRE;
    c->nt = 1;
    c->nextt = t + TCP_SYN_TIMEOUT;
}

/* ---- the Engine type -------------------------------------------------------------------------------- */

static void Engine_dealloc(Engine *self) {
    void *blocks[] = {self->slots,     self->free_stack, self->tab,       self->total,    self->first_rst,
                      self->dead,      self->snap_next,  self->snap_flips, self->snap_side, self->snap_orig,
                      self->rows,      self->arena,      self->hist_off,  self->hist_len, self->fsnaps};
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) PyMem_RawFree(blocks[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Engine_init(Engine *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"layout", "row_layout", "row_size", "likely_ports", "anchor_data_pkts", "cap", NULL};
    PyObject *layout, *row_layout;
    Py_ssize_t row_size;
    Py_buffer likely;
    long long anchor_data_pkts = 2, cap = 4096;
    if (self->ready || self->slots) {
        PyErr_SetString(PyExc_RuntimeError, "Engine already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOny*|LL", kwlist, &layout, &row_layout, &row_size, &likely,
                                     &anchor_data_pkts, &cap))
        return -1;
    if (likely.len != 65536) {
        PyBuffer_Release(&likely);
        PyErr_SetString(PyExc_ValueError, "likely_ports must be 65536 bytes");
        return -1;
    }
    for (Py_ssize_t i = 0; i < 65536; i++) self->likely[i] = ((const uint8_t *)likely.buf)[i] != 0;
    PyBuffer_Release(&likely);
    if (!PyTuple_Check(layout) || PyTuple_GET_SIZE(layout) != 2 * N_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "layout must be a tuple of (offset, size) per field");
        return -1;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2 * f));
        Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2 * f + 1));
        if (PyErr_Occurred()) return -1;
        if (off < 0 || size != FIELD_SIZE[f]) {
            PyErr_SetString(PyExc_ValueError, "packet-table layout does not match the engine");
            return -1;
        }
        self->off[f] = off;
    }
    if (!PyTuple_Check(row_layout) || PyTuple_GET_SIZE(row_layout) != 2 * N_RFIELDS || row_size <= 0 ||
        row_size > 4096) {
        PyErr_SetString(PyExc_ValueError, "row_layout must be a tuple of (offset, size) per connection field");
        return -1;
    }
    for (int f = 0; f < N_RFIELDS; f++) {
        Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(row_layout, 2 * f));
        Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(row_layout, 2 * f + 1));
        if (PyErr_Occurred()) return -1;
        if (off < 0 || size != RFIELD_SIZE[f] || off + size > row_size) {
            PyErr_SetString(PyExc_ValueError, "connection-row layout does not match the engine");
            return -1;
        }
        self->roff[f] = off;
    }
    self->row_size = row_size;
    self->anchor_data_pkts = anchor_data_pkts;
    self->seed = mix64((uint64_t)(uintptr_t)self ^ 0x9E3779B97F4A7C15ULL); /* results never depend on it */
    self->tmask = 0;
    if (cap < 1 || cap > (1LL << 24)) {
        PyErr_SetString(PyExc_ValueError, "cap must be between 1 and 2**24 slots");
        return -1;
    }
    if (grow_slots(self, cap) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    self->ready = 1;
    return 0;
}

/* Refuse a call the engine cannot serve now (not initialised, running, broken, finished). */
static int unusable(Engine *self, int after_finish_ok) {
    const char *why = !self->ready ? "Engine is not initialised"
                      : self->busy ? "Engine is busy in feed() on another thread"
                      : self->broken ? "engine state was left inconsistent by an earlier error"
                      : (self->finished && !after_finish_ok) ? "Engine already finished"
                                                             : NULL;
    if (why) PyErr_SetString(PyExc_RuntimeError, why);
    return why != NULL;
}

static inline uint64_t rd_u(const char *p, int size) {
    switch (size) {
    case 1: return *(const uint8_t *)p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline double rd_f8(const char *p) {
    double v;
    memcpy(&v, p, 8);
    return v;
}

/* Record the state just before a RST (no GIL needed). */
static int record_snapshot(Engine *self, const conn_t *c, int e, Py_ssize_t row) {
    if (grow_array((void **)&self->fsnaps, &self->fsnap_cap, self->nfsnap + 1, sizeof(snap_t)) < 0) return -1;
    const endpoint_t *ep = &c->ep[e], *peer = &c->ep[e ^ 1];
    snap_t *sn = &self->fsnaps[self->nfsnap++];
    sn->row = row;
    sn->idx = c->idx;
    sn->ord = c->npk;
    sn->sst = ep->st;
    sn->rst = peer->st;
    sn->snext = ep->st != INACTIVE ? ep->lseq : -1;
    sn->rnext = peer->st != INACTIVE ? peer->lseq : -1;
    sn->rack = peer->acks;
    sn->rwin = peer->wins;
    sn->wscaled = ep->wsc && peer->wsc;
    sn->has_prev = c->npk != 0;
    sn->prev = c->prev;
    sn->hlen = c->hlen;
    memcpy(sn->hist, c->hist, (size_t)c->hlen);
    return 0;
}

static PyObject *opt_int(int64_t v) { return v >= 0 ? PyLong_FromLongLong(v) : Py_NewRef(Py_None); }

/* Snapshot tuple: (row, conn_idx, ordinal, sender_state, receiver_state, sender_next_seq,
 * receiver_next_seq, receiver_ack, receiver_window, window_scaled, prev_ts, history_before);
 * None where conn.py has None. */
static PyObject *snapshot_tuple(const snap_t *sn) {
    return Py_BuildValue("(nLLLLNNNNONN)", (Py_ssize_t)sn->row, (long long)sn->idx, (long long)sn->ord,
                         (long long)sn->sst, (long long)sn->rst, opt_int(sn->snext), opt_int(sn->rnext),
                         opt_int(sn->rack), opt_int(sn->rwin), sn->wscaled ? Py_True : Py_False,
                         sn->has_prev ? PyFloat_FromDouble(sn->prev) : Py_NewRef(Py_None),
                         PyUnicode_DecodeLatin1((const char *)sn->hist, (Py_ssize_t)sn->hlen, NULL));
}

/* Remove the connections Zeek's timers would have removed by `now` (keeps memory bounded). */
static int sweep(Engine *self, double now) {
    for (int64_t s = 0; s < self->cap; s++) {
        conn_t *c = &self->slots[s];
        if (!c->live) continue;
        if ((now >= c->nextt || now - c->last >= c->inact) && expired_by(c, now))
            if (finalise(self, s) < 0) return -1;
    }
    return 0;
}

/* The packet loop over one chunk, then the sweep: pure C, run without the GIL. -1: out of memory. */
static int run_rows(Engine *self, const char *base, Py_ssize_t n, Py_ssize_t itemsize, int32_t *cid,
                    int32_t *ordn, uint8_t *anchor) {
    const Py_ssize_t *off = self->off;
    double t = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *r = base + i * itemsize;
        t = rd_f8(r + off[F_TS]);
        int64_t frame = (int64_t)rd_u(r + off[F_FRAME], 8);
        uint64_t sh = rd_u(r + off[F_SRC_HI], 8), sl = rd_u(r + off[F_SRC_LO], 8);
        uint64_t dh = rd_u(r + off[F_DST_HI], 8), dl = rd_u(r + off[F_DST_LO], 8);
        uint16_t sp = (uint16_t)rd_u(r + off[F_SPORT], 2), dp = (uint16_t)rd_u(r + off[F_DPORT], 2);
        int64_t fl = (int64_t)rd_u(r + off[F_FLAGS], 2);
        int64_t seq = (int64_t)rd_u(r + off[F_SEQ], 4), ack = (int64_t)rd_u(r + off[F_ACK], 4);
        int64_t window = (int64_t)rd_u(r + off[F_WINDOW], 2);
        int64_t plen = (int64_t)rd_u(r + off[F_PLEN], 4), caplen = (int64_t)rd_u(r + off[F_CAPLEN], 4);
        int64_t opts = (int64_t)rd_u(r + off[F_OPTS], 1);
        int first = sh < dh || (sh == dh && (sl < dl || (sl == dl && sp <= dp)));
        uint64_t h1 = first ? sh : dh, l1 = first ? sl : dl, h2 = first ? dh : sh, l2 = first ? dl : sl;
        uint16_t p1 = first ? sp : dp, p2 = first ? dp : sp;
        uint64_t h = key_hash(self->seed, h1, l1, p1, h2, l2, p2);
        int64_t s = lookup(self, h, h1, l1, p1, h2, l2, p2);
        if (s >= 0) {
            conn_t *c = &self->slots[s];
            int gone = 0;
            if (t >= c->nextt || t - c->last >= c->inact) gone = expired_by(c, t);
            if (!gone && (fl & SYN_F)) gone = is_reuse(c, fl, seq);
            if (gone) {
                if (finalise(self, s) < 0) return -1;
                s = -1;
            }
        }
        if (s < 0) {
            if (self->nfree == 0 && grow_slots(self, 0) < 0) return -1;
            if (ensure_idx(self, self->next_idx + 1) < 0) return -1;
            s = self->free_stack[--self->nfree];
            conn_t *c = &self->slots[s];
            new_conn(c, self->next_idx, t, frame, first);
            c->khi[0] = h1;
            c->klo[0] = l1;
            c->kport[0] = p1;
            c->khi[1] = h2;
            c->klo[1] = l2;
            c->kport[1] = p2;
            c->hash = h;
            self->total[self->next_idx] = 0;
            self->first_rst[self->next_idx] = -1;
            self->dead[self->next_idx] = 0;
            memset(self->rows + (size_t)self->next_idx * (size_t)self->row_size, 0, (size_t)self->row_size);
            self->next_idx++;
            table_insert(self, h, s);
            int want_flip; /* conn.wants_flip: should the first packet's destination be the originator? */
            if ((fl & SYN_F) && !(fl & ACK_F))
                want_flip = 0;
            else if (fl & SYN_F)
                want_flip = 1;
            else if (self->likely[sp])
                want_flip = self->likely[dp] ? sp < dp : 1;
            else
                want_flip = 0;
            if (want_flip) flip(c);
        }
        conn_t *c = &self->slots[s];
        int is_orig = first == c->ofirst;
        int e = is_orig ? 0 : 1;
        uint8_t anc = 0;
        if (fl & (SYN_F | RST_F)) {
            if (fl & SYN_F) {
                c->ep[e].wsc = (opts & OPT_WSCALE) ? 1 : 0;
                anc = 1;
            }
            if (fl & RST_F) {
                if (self->first_rst[c->idx] < 0) self->first_rst[c->idx] = c->npk;
                if (record_snapshot(self, c, e, i) < 0) return -1;
                if (self->nsnap == self->snap_cap) {
                    int64_t c1 = self->snap_cap, c2 = self->snap_cap, c3 = self->snap_cap, c4 = self->snap_cap;
                    if (grow_array((void **)&self->snap_next, &c1, self->nsnap + 1, sizeof(int64_t)) < 0 ||
                        grow_array((void **)&self->snap_flips, &c2, self->nsnap + 1, sizeof(int64_t)) < 0 ||
                        grow_array((void **)&self->snap_side, &c3, self->nsnap + 1, sizeof(uint8_t)) < 0 ||
                        grow_array((void **)&self->snap_orig, &c4, self->nsnap + 1, sizeof(uint8_t)) < 0)
                        return -1;
                    self->snap_cap = c1;
                }
                int64_t k = self->nsnap++;
                self->snap_side[k] = (uint8_t)e;
                self->snap_flips[k] = c->flips;
                self->snap_orig[k] = (uint8_t)(e == 0);
                self->snap_next[k] = c->snap_head;
                c->snap_head = k;
            }
        } else if (plen && c->ep[e].dpk < self->anchor_data_pkts) {
            anc = 1;
        }
        anchor[i] = anc;
        packet(c, is_orig, t, fl, seq, ack, plen, caplen, window);
        cid[i] = (int32_t)c->idx;
        ordn[i] = (int32_t)(c->npk < INT32_MAX ? c->npk : INT32_MAX);
        c->npk++;
        c->lframe = frame;
        c->prev = t;
    }
    return sweep(self, t);
}

static PyObject *Engine_feed(Engine *self, PyObject *args) {
    Py_buffer tb, vc, vo, va;
    if (unusable(self, 0)) return NULL;
    Py_ssize_t itemsize;
    if (!PyArg_ParseTuple(args, "y*nw*w*w*", &tb, &itemsize, &vc, &vo, &va)) return NULL;
    PyObject *snaps = NULL;
    Py_ssize_t n = itemsize > 0 ? tb.len / itemsize : 0;
    if (itemsize <= 0 || tb.len % itemsize || vc.len < n * 4 || vo.len < n * 4 || va.len < n) {
        PyErr_SetString(PyExc_ValueError, "feed: buffer sizes do not match");
        goto done;
    }
    for (int f = 0; f < N_FIELDS; f++)
        if (self->off[f] + FIELD_SIZE[f] > itemsize) {
            PyErr_SetString(PyExc_ValueError, "feed: row too short for the layout");
            goto done;
        }
    if (n) {
        int rc;
        self->busy = 1;
        self->nfsnap = 0;
        Py_BEGIN_ALLOW_THREADS /* pure C: the read-ahead thread decodes the next chunk meanwhile */
        rc = run_rows(self, tb.buf, n, itemsize, vc.buf, vo.buf, va.buf);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (rc < 0) {
            self->broken = 1;
            PyErr_NoMemory();
            goto done;
        }
    }
    snaps = PyList_New((Py_ssize_t)(n ? self->nfsnap : 0));
    if (!snaps) goto done;
    for (int64_t k = 0; n && k < self->nfsnap; k++) {
        PyObject *tup = snapshot_tuple(&self->fsnaps[k]);
        if (!tup) {
            Py_CLEAR(snaps);
            goto done;
        }
        PyList_SET_ITEM(snaps, (Py_ssize_t)k, tup);
    }
done:
    PyBuffer_Release(&tb);
    PyBuffer_Release(&vc);
    PyBuffer_Release(&vo);
    PyBuffer_Release(&va);
    return snaps;
}

/* conn_arrays() -> (packets so far, ordinal of the first RST or -1, ended) per connection idx, as bytes of
 * int64, int64 and uint8. */
static PyObject *Engine_conn_arrays(Engine *self, PyObject *noargs) {
    (void)noargs;
    if (unusable(self, 1)) return NULL;
    Py_ssize_t n = (Py_ssize_t)self->next_idx;
    PyObject *total = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    if (!total) return NULL;
    int64_t *tv = (int64_t *)PyBytes_AS_STRING(total);
    if (n) memcpy(tv, self->total, (size_t)n * sizeof(int64_t));
    for (int64_t s = 0; s < self->cap; s++)
        if (self->slots[s].live) tv[self->slots[s].idx] = self->slots[s].npk;
    return Py_BuildValue("(Ny#y#)", total, n ? (const char *)self->first_rst : "",
                         n * (Py_ssize_t)sizeof(int64_t), n ? (const char *)self->dead : "", n);
}

/* finish() -> (rows, histories, sent_by_orig): ends every live connection, then hands over the rows
 * (a bytearray of row_size records in creation order), their history strings and, per RST snapshot,
 * whether its sender ended up the originator. Once only. */
static PyObject *Engine_finish(Engine *self, PyObject *noargs) {
    (void)noargs;
    if (unusable(self, 0)) return NULL;
    for (int64_t s = 0; s < self->cap; s++)
        if (self->slots[s].live && finalise(self, s) < 0) {
            self->broken = 1;
            return PyErr_NoMemory();
        }
    Py_ssize_t n = (Py_ssize_t)self->next_idx;
    PyObject *rows = NULL, *hist = NULL, *sent = NULL, *seen = NULL;
    rows = PyByteArray_FromStringAndSize(n ? (const char *)self->rows : "", n * self->row_size);
    sent = PyBytes_FromStringAndSize(self->nsnap ? (const char *)self->snap_orig : "", (Py_ssize_t)self->nsnap);
    hist = PyList_New(n);
    seen = PyDict_New(); /* one str object per distinct history */
    if (!rows || !sent || !hist || !seen) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *text = PyUnicode_DecodeLatin1((const char *)self->arena + self->hist_off[i],
                                                (Py_ssize_t)self->hist_len[i], NULL);
        if (!text) goto fail;
        PyObject *one = PyDict_SetDefault(seen, text, text); /* borrowed */
        Py_XINCREF(one);
        Py_DECREF(text);
        if (!one) goto fail;
        PyList_SET_ITEM(hist, i, one);
    }
    Py_DECREF(seen);
    self->finished = 1;
    PyMem_RawFree(self->rows); /* the rows and histories are the caller's now */
    PyMem_RawFree(self->arena);
    self->rows = NULL;
    self->arena = NULL;
    self->arena_used = self->arena_cap = 0;
    return Py_BuildValue("(NNN)", rows, hist, sent);
fail:
    Py_XDECREF(rows);
    Py_XDECREF(sent);
    Py_XDECREF(hist);
    Py_XDECREF(seen);
    return NULL;
}

static PyObject *Engine_stats(Engine *self, PyObject *noargs) {
    (void)noargs;
    if (unusable(self, 1)) return NULL;
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:n}", "live", (long long)self->nlive, "peak_live",
                         (long long)self->peak_live, "slots", (long long)self->cap,
                         "connections", (long long)self->next_idx, "snapshots", (long long)self->nsnap,
                         "slot_bytes", (Py_ssize_t)sizeof(conn_t));
}

static PyMethodDef Engine_methods[] = {
    {"feed", (PyCFunction)Engine_feed, METH_VARARGS,
     "feed(table, itemsize, cid, ordn, anchor) -> snapshot tuples; one chunk of packet-table rows"},
    {"conn_arrays", (PyCFunction)Engine_conn_arrays, METH_NOARGS,
     "per connection idx: packets (int64), first RST ordinal (int64, -1 none), ended (uint8), as bytes"},
    {"finish", (PyCFunction)Engine_finish, METH_NOARGS, "end every live connection: (rows, histories, sent_by_orig)"},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "live connections, slots, connections, snapshots"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resetlens.tcp._czeek.Engine",
    .tp_doc = "Zeek's TCP connection logic over packet-table chunks of one vantage",
    .tp_basicsize = sizeof(Engine),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_czeek", "Zeek TCP connection engine in C", -1,
                                    NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__czeek(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    /* the constants compiled in, so a test can check them against resetlens.tcp.zeek */
    PyObject *consts = Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:d,s:d,s:d,s:d,s:d,s:d,s:d,s:d,s:d,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,"
        "s:n,s:n,s:n}",
        "INACTIVE", INACTIVE, "SYN_SENT", SYN_SENT, "SYN_ACK_SENT", SYN_ACK_SENT, "PARTIAL", PARTIAL,
        "ESTABLISHED", ESTABLISHED, "CLOSED", CLOSED, "RESET", RESET, "TCP_SYN_TIMEOUT", TCP_SYN_TIMEOUT,
        "TCP_SESSION_TIMER", TCP_SESSION_TIMER, "TCP_CONNECTION_LINGER", TCP_CONNECTION_LINGER,
        "TCP_ATTEMPT_DELAY", TCP_ATTEMPT_DELAY, "TCP_CLOSE_DELAY", TCP_CLOSE_DELAY, "TCP_PARTIAL_CLOSE_DELAY",
        TCP_PARTIAL_CLOSE_DELAY, "TCP_RESET_DELAY", TCP_RESET_DELAY, "TCP_INACTIVITY_TIMEOUT",
        TCP_INACTIVITY_TIMEOUT, "UDP_INACTIVITY_TIMEOUT", UDP_INACTIVITY_TIMEOUT, "TOO_LARGE_SEQ_DELTA",
        TOO_LARGE_SEQ_DELTA, "HIST_SYN_PKT", HIST_SYN_PKT, "HIST_FIN_PKT", HIST_FIN_PKT, "HIST_RST_PKT",
        HIST_RST_PKT, "HIST_FIN_RST_PKT", HIST_FIN_RST_PKT, "HIST_DATA_PKT", HIST_DATA_PKT, "HIST_ACK_PKT",
        HIST_ACK_PKT, "HIST_MULTI_FLAG_PKT", HIST_MULTI_FLAG_PKT, "HIST_RESP_SHIFT", HIST_RESP_SHIFT,
        "MAX_BLOCKS", (Py_ssize_t)MAX_BLOCKS, "HIST_MAX", (Py_ssize_t)HIST_MAX, "SLOT_BYTES",
        (Py_ssize_t)sizeof(conn_t));
    if (!consts || PyModule_AddObject(m, "CONSTANTS", consts) < 0) {
        Py_XDECREF(consts);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
