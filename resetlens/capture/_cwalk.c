/* Optional accelerator for resetlens.capture.walk: the per-record loop in C.
 *
 * Same arguments and results as walk_pcap_py / walk_pcapng_py in walk.py, except that the offsets
 * come back as a bytes object of native int64 values (walk.py wraps them with numpy.frombuffer).
 * Pure CPython API, no numpy headers, so it builds anywhere a C compiler exists; when it does not,
 * setup.py skips it and the Python walk is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define STOP_NEED 0
#define STOP_OTHER 1
#define STOP_BAD 2
#define MAX_BLOCK (64u << 20)

static inline uint32_t rd32(const unsigned char *p, int little) {
    if (little)
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    return (uint32_t)p[3] | ((uint32_t)p[2] << 8) | ((uint32_t)p[1] << 16) | ((uint32_t)p[0] << 24);
}

typedef struct {
    int64_t *data;
    Py_ssize_t n, cap;
} offsets_t;

/* Appends without the GIL (the raw allocator); on failure returns -1 and the caller, holding the GIL
 * again, raises MemoryError. */
static int push(offsets_t *o, int64_t v) {
    if (o->n == o->cap) {
        Py_ssize_t cap = o->cap ? o->cap * 2 : 4096;
        int64_t *grown = PyMem_RawRealloc(o->data, (size_t)cap * sizeof(int64_t));
        if (!grown) return -1;
        o->data = grown;
        o->cap = cap;
    }
    o->data[o->n++] = v;
    return 0;
}

static PyObject *as_bytes(offsets_t *o) {
    PyObject *out = PyBytes_FromStringAndSize(o->data ? (const char *)o->data : "", o->n * (Py_ssize_t)sizeof(int64_t));
    PyMem_RawFree(o->data);
    o->data = NULL;
    return out;
}

/* walk_pcap(buf, start, limit, hdr, maxcap, little) -> (offsets bytes, first unconsumed, absurd) */
static PyObject *walk_pcap(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, limit, hdr, maxcap;
    int little;
    if (!PyArg_ParseTuple(args, "y*nnnnp", &view, &start, &limit, &hdr, &maxcap, &little))
        return NULL;
    if (limit > view.len) limit = view.len;
    if (start < 0) start = 0;
    const unsigned char *buf = view.buf;
    offsets_t offs = {0};
    Py_ssize_t off = start;
    int absurd = 0, nomem = 0;
    Py_BEGIN_ALLOW_THREADS  /* pure C over the buffer: the read-ahead thread overlaps the tracker */
    while (off + hdr <= limit) {
        uint32_t cap = rd32(buf + off + 8, little);
        if ((Py_ssize_t)cap > maxcap) {
            absurd = 1;
            break;
        }
        Py_ssize_t nxt = off + hdr + (Py_ssize_t)cap;
        if (nxt > limit) break;
        if (push(&offs, off) < 0) {
            nomem = 1;
            break;
        }
        off = nxt;
    }
    Py_END_ALLOW_THREADS
    if (nomem) {
        PyBuffer_Release(&view);
        PyMem_RawFree(offs.data);
        return PyErr_NoMemory();
    }
    PyBuffer_Release(&view);
    PyObject *list = as_bytes(&offs);
    if (!list) return NULL;
    return Py_BuildValue("(NnO)", list, off, absurd ? Py_True : Py_False);
}

/* walk_pcapng(buf, start, limit, little) -> (offsets bytes, {offset: type} non-EPB, stop offset, STOP_*) */
static PyObject *walk_pcapng(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, limit;
    int little;
    if (!PyArg_ParseTuple(args, "y*nnp", &view, &start, &limit, &little))
        return NULL;
    if (limit > view.len) limit = view.len;
    if (start < 0) start = 0;
    const unsigned char *buf = view.buf;
    offsets_t offs = {0};
    PyObject *others = PyDict_New();
    if (!others) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t at = start;
    int stop = STOP_NEED;
    while (at + 12 <= limit) {
        uint32_t btype = rd32(buf + at, little);
        uint32_t length = rd32(buf + at + 4, little);
        uint32_t min_len;
        if (btype == 6 || btype == 2) min_len = 32;
        else if (btype == 3) min_len = 16;
        else {
            stop = STOP_OTHER;
            break;
        }
        if (length < min_len || (length & 3) || length > MAX_BLOCK) {
            stop = STOP_BAD;
            break;
        }
        if (at + (Py_ssize_t)length > limit) {
            stop = STOP_NEED;
            break;
        }
        if (btype != 6) {
            PyObject *k = PyLong_FromSsize_t(at);
            PyObject *v = PyLong_FromUnsignedLong(btype);
            int rc = (k && v) ? PyDict_SetItem(others, k, v) : -1;
            Py_XDECREF(k);
            Py_XDECREF(v);
            if (rc < 0) goto fail;
        }
        if (push(&offs, at) < 0) {
            PyErr_NoMemory();
            goto fail;
        }
        at += length;
    }
    PyBuffer_Release(&view);
    PyObject *list = as_bytes(&offs);
    if (!list) {
        Py_DECREF(others);
        return NULL;
    }
    return Py_BuildValue("(NNni)", list, others, at, stop);
fail:
    PyBuffer_Release(&view);
    PyMem_RawFree(offs.data);
    Py_DECREF(others);
    return NULL;
}


/* ---- full header decode (mirrors decode.py exactly; tests compare both on every input) ---------- */

typedef struct {
    const unsigned char *buf;
    Py_ssize_t len;
} src_t;

/* The per-frame helpers are inlined into the frame loop: called out of line they cost a third of it. */
#if defined(__GNUC__) || defined(__clang__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

HOT unsigned rd8(const src_t *s, int64_t at) {
    return (at >= 0 && at < s->len) ? s->buf[at] : 0;
}
HOT unsigned rd16(const src_t *s, int64_t at) {
    if (at >= 0 && at + 2 <= s->len) return ((unsigned)s->buf[at] << 8) | s->buf[at + 1];
    return (rd8(s, at) << 8) | rd8(s, at + 1);
}
HOT uint32_t rdb32(const src_t *s, int64_t at) {
    if (at >= 0 && at + 4 <= s->len) { /* one bounds check; compilers turn this into a bswap */
        const unsigned char *p = s->buf + at;
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
    return ((uint32_t)rd16(s, at) << 16) | rd16(s, at + 2);
}
HOT uint64_t rdb64(const src_t *s, int64_t at) {
    return ((uint64_t)rdb32(s, at) << 32) | rdb32(s, at + 4);
}

enum { F_IPVER, F_SRC_HI, F_SRC_LO, F_DST_HI, F_DST_LO, F_SPORT, F_DPORT, F_FLAGS, F_SEQ, F_ACK, F_WINDOW,
       F_TTL, F_IP_ID, F_DF, F_PAYLOAD_LEN, F_CAPTURED_LEN, F_OPTS, F_TSVAL, F_HEAD, F_DIRECTION, F_IFINDEX,
       F_COUNT, /* the fields decode() writes; pcap_block() also writes the record's own ones: */
       F_FRAME = F_COUNT, F_OFFSET, F_TS, F_IFACE, F_CSUM, F_ALL };

/* The packet table's layout (table.py PACKET_DTYPE) per F_* field; a layout equal to it gets stores of
 * constant size at constant offsets. Any other layout works too, through the sizes and offsets given. */
static const Py_ssize_t FIELD_OFF[F_ALL] = {26, 27, 35, 43, 51, 59, 61, 63, 65, 69, 73, 75, 76, 80, 81, 85, 89,
                                            90, 96, 95, 100, 0, 8, 16, 24, 94};
static const Py_ssize_t FIELD_SIZE[F_ALL] = {1, 8, 8, 8, 8, 2, 2, 2, 4, 4, 2, 1, 4, 1, 4, 4, 1, 4, 4, 1, 4,
                                             8, 8, 8, 2, 1};

typedef struct {
    Py_ssize_t off[F_ALL], size[F_ALL];
    int full;   /* the fields cover every byte of a row once: no zeroing needed */
    int native; /* every offset and size is FIELD_OFF's and FIELD_SIZE's */
} layout_t;

/* `native` is a constant at every call (the loops pick one of two inlined copies), so the switch
 * folds away to one store when the layout has the expected sizes. */
HOT void put(unsigned char *row, const layout_t *L, int f, uint64_t v, int native) {
    /* little-endian host only (checked by the Python side): the low bytes of v are the value.
     * Constant-size copies compile to single stores; a variable-size memcpy would be a call. */
    unsigned char *at = row + (native ? FIELD_OFF[f] : L->off[f]);
    switch (native ? FIELD_SIZE[f] : L->size[f]) {
    case 1: { uint8_t x = (uint8_t)v; memcpy(at, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)v; memcpy(at, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(at, &x, 4); break; }
    case 8: memcpy(at, &v, 8); break;
    default: memcpy(at, &v, (size_t)L->size[f]); break;
    }
}

typedef struct {
    int ok;
    int ipver;
    uint64_t src_hi, src_lo, dst_hi, dst_lo;
    unsigned ttl, df, proto;
    uint32_t ip_id;
    int64_t l4, l4end, end;
} ip_t;

#define V4_MAPPED 0x0000FFFF00000000ULL

/* IPv4 or IPv6 header at o (kind 4/6); returns 1 with *ip filled, 0 when unusable. */
HOT int ip_layer(const src_t *s, int kind, int64_t o, int64_t e, int64_t w, ip_t *ip, int64_t *frags) {
    memset(ip, 0, sizeof(*ip));
    if (kind == 4) {
        unsigned vihl = rd8(s, o);
        int64_t ihl = (int64_t)(vihl & 0x0F) * 4;
        int64_t total = rd16(s, o + 2);
        if (total == 0) total = w - o;
        if (!(o + 20 <= e && (vihl >> 4) == 4 && ihl >= 20 && o + ihl <= e && total >= ihl)) return 0;
        unsigned frag = rd16(s, o + 6);
        if (frag & 0x1FFF) {
            (*frags)++;
            return 0;
        }
        ip->ipver = 4;
        ip->src_lo = V4_MAPPED | rdb32(s, o + 12);
        ip->dst_lo = V4_MAPPED | rdb32(s, o + 16);
        ip->ttl = rd8(s, o + 8);
        ip->ip_id = rd16(s, o + 4);
        ip->df = (frag & 0x4000) != 0;
        ip->proto = rd8(s, o + 9);
        ip->l4 = o + ihl;
        ip->l4end = o + total;
        ip->end = e;
        return 1;
    }
    if (kind == 6) {
        if (!(o + 40 <= e && (rd8(s, o) >> 4) == 6)) return 0;
        int64_t plen = rd16(s, o + 4);
        if (plen == 0) plen = (w - o - 40) > 0 ? (w - o - 40) : 0;
        unsigned nh = rd8(s, o + 6);
        int64_t at = o + 40;
        uint32_t frag_id = 0;
        for (int i = 0; i < 8; i++) {
            if (!(nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60) || at + 8 > e) break;
            unsigned hlen = rd8(s, at + 1);
            int64_t length = nh == 44 ? 8 : (nh == 51 ? ((int64_t)hlen + 2) * 4 : ((int64_t)hlen + 1) * 8);
            if (nh == 44) {
                frag_id = rdb32(s, at + 4);
                if (rd16(s, at + 2) & 0xFFF8) {
                    (*frags)++;
                    return 0;
                }
            }
            nh = rd8(s, at);
            at += length;
        }
        ip->ipver = 6;
        ip->src_hi = rdb64(s, o + 8);
        ip->src_lo = rdb64(s, o + 16);
        ip->dst_hi = rdb64(s, o + 24);
        ip->dst_lo = rdb64(s, o + 32);
        ip->ttl = rd8(s, o + 7);
        ip->ip_id = frag_id;
        ip->proto = nh;
        ip->l4 = at;
        ip->l4end = o + 40 + plen;
        ip->end = e;
        return 1;
    }
    return 0;
}

/* Teredo inner IPv6 offset by Wireshark's heuristic (see decode.py), or -1. */
static int64_t teredo_inner(const src_t *s, int64_t udp, int64_t cend, int64_t *wend) {
    int64_t ulen = rd16(s, udp + 4);
    int64_t at = udp + 8;
    int64_t reported_end = udp + (ulen > 8 ? ulen : 8);
    unsigned first = rd16(s, at);
    if ((first >> 12) == 6) { /* plain IPv6 payload */
        if ((int64_t)rd16(s, udp + 12) != ulen - 48) return -1;
        *wend = udp + ulen;
        return at;
    }
    if (first != 0 && first != 1) return -1;
    if (cend - at < 40) return -1;
    unsigned val = first;
    if (val == 1) {
        int64_t idlen = rd8(s, at + 2), aulen = rd8(s, at + 3);
        at += 13;
        if (cend - at < idlen + aulen + 40) return -1;
        at += idlen + aulen;
        val = rd16(s, at);
    }
    if (val == 0) {
        at += 8;
        if (cend - at < 40) return -1;
        val = rd16(s, at);
    }
    if ((val >> 12) != 6) return -1;
    int64_t plen = rd16(s, at + 4);
    if (plen > 65467 || reported_end - (at + 40) != plen) return -1;
    *wend = at + 40 + plen;
    return at;
}

HOT int is_vlan(unsigned et) { return et == 0x8100 || et == 0x88A8 || et == 0x9100; }

/* Link layer: kind (4/6/0) and the network header offset; direction/ifindex for SLL. */
HOT int link_layer(const src_t *s, int64_t lt, int64_t d, int64_t e, int64_t *l3, unsigned *dir,
                      uint32_t *ifindex) {
    unsigned et;
    int64_t at;
    int ok;
    *dir = 0;
    *ifindex = 0;
    switch (lt) {
    case 1: /* Ethernet */
        ok = d + 14 <= e;
        et = rd16(s, d + 12);
        at = d + 14;
        break;
    case 113: { /* SLL */
        ok = d + 16 <= e;
        et = rd16(s, d + 14);
        at = d + 16;
        unsigned pt = rd16(s, d);
        *dir = ok ? (pt == 4 ? 2 : (pt <= 3 ? 1 : 0)) : 0;
        break;
    }
    case 276: { /* SLL2 */
        ok = d + 20 <= e;
        et = rd16(s, d);
        at = d + 20;
        unsigned pt = rd8(s, d + 10);
        *dir = ok ? (pt == 4 ? 2 : (pt <= 3 ? 1 : 0)) : 0;
        *ifindex = ok ? rdb32(s, d + 4) : 0;
        break;
    }
    case 10: /* FDDI + LLC/SNAP */
        ok = d + 21 <= e && rd16(s, d + 13) == 0xAAAA && rd8(s, d + 15) == 3;
        et = rd16(s, d + 19);
        at = d + 21;
        break;
    case 0:
    case 108: { /* BSD NULL / LOOP */
        ok = d + 4 <= e;
        uint32_t be = rdb32(s, d);
        uint32_t le = ((be & 0xFF) << 24) | ((be & 0xFF00) << 8) | ((be >> 8) & 0xFF00) | (be >> 24);
        *l3 = d + 4;
        if (!ok) return 0;
        if (le == 2 || be == 2) return 4;
#define AF6(x) ((x) == 10 || (x) == 24 || (x) == 28 || (x) == 30)
        if (AF6(le) || AF6(be)) return 6;
        return 0;
    }
    case 101:
    case 12:
    case 14:
    case 228:
    case 229: {
        unsigned ver = rd8(s, d) >> 4;
        ok = d + 1 <= e;
        if (lt == 228) ok = ok && ver == 4;
        if (lt == 229) ok = ok && ver == 6;
        *l3 = d;
        return (ok && (ver == 4 || ver == 6)) ? (int)ver : 0;
    }
    default:
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        if (!(is_vlan(et) && at + 4 <= e)) break;
        et = rd16(s, at + 2);
        at += 4;
    }
    if (et <= 1500 && at + 8 <= e && rd16(s, at) == 0xAAAA && rd8(s, at + 2) == 3) {
        et = rd16(s, at + 6);
        at += 8;
    }
    if (et == 0x8864 && at + 8 <= e) {
        unsigned proto = rd16(s, at + 6);
        et = proto == 0x0021 ? 0x0800 : (proto == 0x0057 ? 0x86DD : 0);
        at += 8;
    }
    if (et == 0x8847 || et == 0x8848) {
        et = 0;
        for (int i = 0; i < 8; i++) {
            if (at + 4 > e) break;
            int bottom = rd8(s, at + 2) & 1;
            at += 4;
            if (bottom) {
                unsigned ver = rd8(s, at) >> 4;
                et = ver == 4 ? 0x0800 : (ver == 6 ? 0x86DD : 0);
                break;
            }
        }
    }
    *l3 = at;
    if (!ok) return 0;
    return et == 0x0800 ? 4 : (et == 0x86DD ? 6 : 0);
}

HOT void tcp_options(const src_t *s, int64_t t, int64_t hdr, int64_t e, unsigned *opts, uint32_t *tsval) {
    int64_t opt_end = t + hdr;
    int cut = opt_end > e;
    if (cut) *opts |= 0x80;
    int64_t stop = opt_end < e ? opt_end : e;
    if (hdr == 32 && !cut && rdb32(s, t + 20) == 0x0101080AU) {
        *opts |= 0x10;
        *tsval = rdb32(s, t + 24);
        return;
    }
    int64_t at = t + 20;
    for (int i = 0; i < 40 && at < stop; i++) {
        unsigned kind = rd8(s, at);
        if (kind == 0) break;
        if (kind == 1) {
            at += 1;
            continue;
        }
        int64_t length = rd8(s, at + 1);
        int bad = (at + 1 >= stop) || length < 2 || at + length > opt_end;
        if (bad) {
            int bad_trunc = (at + 1 >= stop) && (stop < opt_end);
            if (!bad_trunc) *opts |= 0x40;
            break;
        }
        if (at + length <= stop) {
            if (kind == 2) *opts |= 0x01;
            else if (kind == 3) *opts |= 0x02;
            else if (kind == 4) *opts |= 0x04;
            else if (kind == 5) *opts |= 0x08;
            else if (kind == 8 && length == 10) {
                *opts |= 0x10;
                *tsval = rdb32(s, at + 2);
            } else *opts |= 0x20;
        }
        at += length;
    }
}

/* A RST row's segment (buf[t:stop]) and what its checksum needs. */
typedef struct {
    int64_t t, stop, tcp_len;
    int ipver;
    uint64_t src_hi, src_lo, dst_hi, dst_lo;
} rst_t;

#define ROW_NONE 0 /* no TCP row for this frame */
#define ROW_TCP 1  /* a row was written */
#define ROW_RST 2  /* a row was written and it is a RST (*rst filled) */

/* Link/IP/TCP decode of the frame buf[d : d + caplen] into row (the F_* fields below F_COUNT).
 * Non-first fragments met on the way are counted in *frags. record_dir: the record's own direction
 * (pcapng epb_flags), written when the link layer gives none. */
HOT int decode_frame(const src_t *s, int64_t lt, int64_t d, int64_t caplen, int64_t wirelen, unsigned char *row,
                     const layout_t *L, int64_t *frags, rst_t *rst, unsigned record_dir, int native) {
    int64_t e = d + caplen;
    int64_t w = d + (wirelen > caplen ? wirelen : caplen);
    int64_t l3 = 0;
    unsigned dir;
    uint32_t ifindex;
    int kind = link_layer(s, lt, d, e, &l3, &dir, &ifindex);
    ip_t ip;
    if (!(kind && ip_layer(s, kind, l3, e, w, &ip, frags))) return ROW_NONE;
    int64_t cend = ip.end < ip.l4end ? ip.end : ip.l4end;
    if (ip.proto == 4 || ip.proto == 41 || ip.proto == 17 || ip.proto == 47) {
        /* tunnels (one level): IP-in-IP, 6in4, GRE, VXLAN, Teredo; same rules as decode._tunnels */
        int64_t inner = -1, iwend = ip.l4end, l4 = ip.l4;
        int ikind = 6;
        unsigned idir;
        uint32_t iifx;
        if (ip.proto == 17) {
            int vxlan = rd16(s, l4) == 4789 || rd16(s, l4 + 2) == 4789;
            if (vxlan && l4 + 30 <= cend) {
                ikind = link_layer(s, 1, l4 + 16, cend, &inner, &idir, &iifx);
                if (!ikind) inner = -1;
            } else if (l4 + 48 <= cend) {
                inner = teredo_inner(s, l4, cend, &iwend);
            }
        } else if (ip.proto == 47) {
            unsigned gflags = rd16(s, l4), ptype = rd16(s, l4 + 2);
            if (l4 + 4 <= cend && (gflags & 0x4007) == 0) {
                int64_t at = l4 + 4 + 4 * ((gflags >> 15) & 1) + 4 * ((gflags >> 13) & 1) + 4 * ((gflags >> 12) & 1);
                if (ptype == 0x0800 || ptype == 0x86DD) {
                    inner = at;
                    ikind = ptype == 0x0800 ? 4 : 6;
                } else if (ptype == 0x6558) {
                    ikind = link_layer(s, 1, at, cend, &inner, &idir, &iifx);
                    if (!ikind) inner = -1;
                }
            }
        } else if (l4 < cend) {
            inner = l4;
            ikind = ip.proto == 4 ? 4 : 6;
        }
        if (inner < 0) return ROW_NONE;
        if (!ip_layer(s, ikind, inner, cend, iwend, &ip, frags)) return ROW_NONE;
    }
    int64_t t = ip.l4;
    e = ip.end;
    if (!(ip.proto == 6 && t + 16 <= e && t <= ip.l4end)) return ROW_NONE;
    unsigned off_flags = rd16(s, t + 12);
    int64_t hdr = (int64_t)(off_flags >> 12) * 4;
    unsigned flags = off_flags & 0x0FFF;
    unsigned opts = hdr < 20 ? 0x40 : 0;
    if (hdr < 20) hdr = 20;
    int64_t seg_end = e < ip.l4end ? e : ip.l4end;
    int64_t payload_len = ip.l4end - t - hdr;
    if (payload_len < 0) payload_len = 0;
    int64_t captured_len = seg_end - t - hdr;
    if (captured_len < 0) captured_len = 0;
    if (captured_len > payload_len) captured_len = payload_len;
    uint32_t tsval = 0;
    if (hdr > 20) tcp_options(s, t, hdr, e, &opts, &tsval);
    int64_t keep = captured_len < 4 ? captured_len : 4;
    uint32_t head = keep ? (rdb32(s, t + hdr) & (uint32_t)(0xFFFFFFFFULL << (8 * (4 - keep)))) : 0;
    put(row, L, F_IPVER, (uint64_t)ip.ipver, native);
    put(row, L, F_SRC_HI, ip.src_hi, native);
    put(row, L, F_SRC_LO, ip.src_lo, native);
    put(row, L, F_DST_HI, ip.dst_hi, native);
    put(row, L, F_DST_LO, ip.dst_lo, native);
    put(row, L, F_SPORT, rd16(s, t), native);
    put(row, L, F_DPORT, rd16(s, t + 2), native);
    put(row, L, F_FLAGS, flags, native);
    put(row, L, F_SEQ, rdb32(s, t + 4), native);
    put(row, L, F_ACK, rdb32(s, t + 8), native);
    put(row, L, F_WINDOW, rd16(s, t + 14), native);
    put(row, L, F_TTL, ip.ttl, native);
    put(row, L, F_IP_ID, ip.ip_id, native);
    put(row, L, F_DF, ip.df, native);
    put(row, L, F_PAYLOAD_LEN, (uint64_t)payload_len, native);
    put(row, L, F_CAPTURED_LEN, (uint64_t)captured_len, native);
    put(row, L, F_OPTS, opts, native);
    put(row, L, F_TSVAL, tsval, native);
    put(row, L, F_HEAD, head, native);
    put(row, L, F_DIRECTION, dir ? dir : record_dir, native);
    put(row, L, F_IFINDEX, ifindex, native);
    if (!(flags & 0x004)) return ROW_TCP;
    int64_t stop = t + hdr < e ? t + hdr : e;
    if (seg_end > stop) stop = seg_end;
    rst->t = t;
    rst->stop = stop;
    rst->tcp_len = ip.l4end - t;
    rst->ipver = ip.ipver;
    rst->src_hi = ip.src_hi;
    rst->src_lo = ip.src_lo;
    rst->dst_hi = ip.dst_hi;
    rst->dst_lo = ip.dst_lo;
    return ROW_RST;
}

static inline uint64_t words64(uint64_t x) {
    return (x >> 48) + ((x >> 32) & 0xFFFF) + ((x >> 16) & 0xFFFF) + (x & 0xFFFF);
}

/* decode.tcp_checksum_status in C: 1 OK, 2 BAD, 3 UNKNOWN (segment cut by the snaplen).
 * The big-endian 16-bit word sum modulo 0xFFFF is what the Python side computes as a big integer. */
static unsigned tcp_checksum_status(const src_t *s, const rst_t *r) {
    if (r->tcp_len < 20 || r->stop - r->t < r->tcp_len) return 3;
    uint64_t sum, n = (uint64_t)r->tcp_len;
    if (r->ipver == 4) /* src, dst, zero, protocol 6, TCP length (16 bits) */
        sum = words64(r->src_lo & 0xFFFFFFFFu) + words64(r->dst_lo & 0xFFFFFFFFu) + 6 + n;
    else /* src, dst, TCP length (32 bits), three zero bytes, next header 6 */
        sum = words64(r->src_hi) + words64(r->src_lo) + words64(r->dst_hi) + words64(r->dst_lo) + (n >> 16) +
              (n & 0xFFFF) + 6;
    const unsigned char *p = s->buf + r->t;
    uint64_t i = 0;
    for (; i + 1 < n; i += 2) sum += ((unsigned)p[i] << 8) | p[i + 1];
    if (n & 1) sum += (unsigned)p[n - 1] << 8;
    return sum % 0xFFFF == 0 ? 1 : 2;
}

/* Reads a (offset, size) tuple of `count` fields; 0 with an exception set when it does not fit. */
static int parse_layout(PyObject *obj, Py_ssize_t itemsize, int count, layout_t *L) {
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != 2 * count || itemsize <= 0) {
        PyErr_SetString(PyExc_ValueError, "bad layout");
        return 0;
    }
    Py_ssize_t total = 0;
    int native = 1;
    for (int f = 0; f < count; f++) {
        L->off[f] = PyLong_AsSsize_t(PyTuple_GET_ITEM(obj, 2 * f));
        L->size[f] = PyLong_AsSsize_t(PyTuple_GET_ITEM(obj, 2 * f + 1));
        if (PyErr_Occurred()) return 0;
        if (L->off[f] < 0 || L->off[f] + L->size[f] > itemsize || L->size[f] < 1 || L->size[f] > 8) {
            PyErr_SetString(PyExc_ValueError, "bad layout");
            return 0;
        }
        total += L->size[f];
        native = native && L->size[f] == FIELD_SIZE[f] && L->off[f] == FIELD_OFF[f];
    }
    L->native = native;
    L->full = 0;
    if (total == itemsize && itemsize <= 4096) { /* no byte written twice, so none is left out */
        unsigned char seen[4096] = {0};
        L->full = 1;
        for (int f = 0; f < count; f++)
            for (Py_ssize_t b = L->off[f]; b < L->off[f] + L->size[f]; b++) {
                if (seen[b]) L->full = 0;
                seen[b] = 1;
            }
    }
    return 1;
}

/* decode(buf, data, caplen, wirelen, linktype, table, layout) -> (rows, rec bytes, rst bytes, frags, first)
 * data/caplen/wirelen/linktype: int64 buffers of n records; table: writable, n rows of the packet dtype;
 * layout: (offset, size) pairs for the F_* fields. rst bytes: int64 (row, l4, stop, tcp_len) per RST. */
static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer vb, vd, vc, vw, vl, vt;
    PyObject *layout_obj;
    Py_ssize_t itemsize;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*nO", &vb, &vd, &vc, &vw, &vl, &vt, &itemsize, &layout_obj))
        return NULL;
    PyObject *result = NULL;
    offsets_t recs = {0}, rsts = {0};
    layout_t L;
    Py_ssize_t n = vd.len / 8;
    if (vc.len / 8 < n || vw.len / 8 < n || vl.len / 8 < n || itemsize <= 0 || vt.len < n * itemsize) {
        PyErr_SetString(PyExc_ValueError, "decode: inconsistent arguments");
        goto done;
    }
    if (!parse_layout(layout_obj, itemsize, F_COUNT, &L)) goto done;
    src_t s = {(const unsigned char *)vb.buf, vb.len};
    const int64_t *data = vd.buf, *caplen = vc.buf, *wirelen = vw.buf, *linktype = vl.buf;
    unsigned char *table = vt.buf;
    int64_t frags = 0, first_frag = -1;
    Py_ssize_t rows = 0;
    int nomem = 0;
    Py_BEGIN_ALLOW_THREADS  /* pure C over buffers: the read-ahead thread overlaps the tracker */
    for (Py_ssize_t i = 0; i < n; i++) {
        rst_t rst;
        int64_t frags_before = frags;
        unsigned char *row = table + rows * itemsize;
        int got = L.native ? decode_frame(&s, linktype[i], data[i], caplen[i], wirelen[i], row, &L, &frags, &rst, 0, 1)
                           : decode_frame(&s, linktype[i], data[i], caplen[i], wirelen[i], row, &L, &frags, &rst, 0, 0);
        if (frags != frags_before && first_frag < 0) first_frag = i;
        if (got == ROW_NONE) continue;
        if (push(&recs, i) < 0) {
            nomem = 1;
            break;
        }
        if (got == ROW_RST && (push(&rsts, rows) < 0 || push(&rsts, rst.t) < 0 || push(&rsts, rst.stop) < 0 ||
                               push(&rsts, rst.tcp_len) < 0)) {
            nomem = 1;
            break;
        }
        rows++;
    }
    Py_END_ALLOW_THREADS
    if (nomem) {
        PyErr_NoMemory();
        goto done;
    }
    {
        PyObject *rb = as_bytes(&recs);
        PyObject *sb = rb ? as_bytes(&rsts) : NULL;
        if (rb && sb) result = Py_BuildValue("(nNNLL)", rows, rb, sb, (long long)frags, (long long)first_frag);
        else {
            Py_XDECREF(rb);
            Py_XDECREF(sb);
        }
    }
done:
    PyMem_RawFree(recs.data);
    PyMem_RawFree(rsts.data);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&vd);
    PyBuffer_Release(&vc);
    PyBuffer_Release(&vw);
    PyBuffer_Release(&vl);
    PyBuffer_Release(&vt);
    return result;
}


/* ---- classic pcap: walk and decode in one pass ------------------------------------------------ */

/* Packet-table rows that pcap_block allocated without the GIL; numpy.frombuffer views them (writable). */
typedef struct {
    PyObject_HEAD
    unsigned char *data;
    Py_ssize_t len;
} rows_object;

/* Row memory of freed tables, reused by the next blocks: fresh memory costs a page fault per 4 KiB,
 * as much as the decode itself. Touched only with the GIL held (rows_dealloc, pcap_block's start). */
#define POOL_MAX 4         /* buffers kept */
#define POOL_MIN (1 << 16) /* smaller buffers are not worth keeping */
static struct {
    unsigned char *data;
    Py_ssize_t size;
} pool[POOL_MAX];
static int pool_n;

static void rows_dealloc(rows_object *self) {
    if (self->data && self->len >= POOL_MIN && pool_n < POOL_MAX) {
        pool[pool_n].data = self->data;
        pool[pool_n].size = self->len;
        pool_n++;
    } else {
        PyMem_RawFree(self->data);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int rows_getbuffer(rows_object *self, Py_buffer *view, int flags) {
    static unsigned char empty[1];
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data ? self->data : empty, self->len, 0, flags);
}

static PyBufferProcs rows_as_buffer = {(getbufferproc)rows_getbuffer, NULL};

static PyTypeObject rows_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resetlens.capture._cwalk.Rows",
    .tp_basicsize = sizeof(rows_object),
    .tp_dealloc = (destructor)rows_dealloc,
    .tp_as_buffer = &rows_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Packet-table rows written by pcap_block.",
};

/* One buffer being walked and decoded: classic pcap records (pcap_block) or a run of pcapng enhanced
 * packet blocks (pcapng_run). The loops run without the GIL. */
typedef struct {
    src_t s;
    const layout_t *L;
    Py_ssize_t limit, itemsize;
    int little;
    int64_t base, first_frame; /* stream offset of buf[0]; number of the first record */
    /* classic pcap */
    Py_ssize_t hdr, maxcap;
    double scale;
    int64_t linktype;
    /* pcapng: every interface so far (by global id) and the section's share of them */
    const int64_t *if_linktype;
    const uint64_t *if_ticks;
    const double *if_tsoffset;
    const unsigned char *if_usable; /* link type decoded */
    Py_ssize_t n_ifaces;
    int64_t section_base, section_ifaces;
    uint64_t default_ticks;
    /* results */
    unsigned char *table; /* rows written so far, room for cap */
    Py_ssize_t cap, rows, off;
    offsets_t rsts;    /* (frame, start, stop) per RST row */
    offsets_t unknown; /* (link type, stream offset) per record of an undecodable link type */
    int64_t records, frags, first_frag;
    double lo, hi, last; /* lowest, highest and last record time */
    int absurd, stop, nomem;
} block_walk_t;

/* The next row (zeroed unless every column is written anyway); NULL when out of memory. */
HOT unsigned char *new_row(block_walk_t *w) {
    if (w->rows >= w->cap) {
        unsigned char *grown = PyMem_RawRealloc(w->table, (size_t)(2 * w->cap * w->itemsize));
        if (!grown) return NULL;
        w->table = grown;
        w->cap *= 2;
    }
    unsigned char *row = w->table + w->rows * w->itemsize;
    if (!w->L->full) memset(row, 0, (size_t)w->itemsize);
    return row;
}

/* The record's own columns, its RST segment and checksum, once decode_frame wrote a row. */
HOT int finish_row(block_walk_t *w, unsigned char *row, int got, Py_ssize_t at, double ts, unsigned iface,
                   const rst_t *rst, int native) {
    uint64_t ts_bits;
    memcpy(&ts_bits, &ts, 8);
    put(row, w->L, F_FRAME, (uint64_t)(w->first_frame + w->records), native);
    put(row, w->L, F_OFFSET, (uint64_t)(w->base + at), native);
    put(row, w->L, F_TS, ts_bits, native);
    put(row, w->L, F_IFACE, iface, native);
    put(row, w->L, F_CSUM, got == ROW_RST ? tcp_checksum_status(&w->s, rst) : 0, native);
    w->rows++;
    if (got == ROW_RST && (push(&w->rsts, w->first_frame + w->records) < 0 || push(&w->rsts, rst->t) < 0 ||
                           push(&w->rsts, rst->stop) < 0))
        return 0;
    return 1;
}

/* One record's frame into the next row: decoded, its fragment noted, its own columns written.
 * 0 when out of memory. */
HOT int take_frame(block_walk_t *w, const src_t *s, int64_t lt, Py_ssize_t at, int64_t data, int64_t caplen,
                   int64_t wirelen, double ts, unsigned iface, unsigned dir, int64_t *frags, int native) {
    unsigned char *row = new_row(w);
    if (!row) return 0;
    rst_t rst;
    int64_t frags_before = *frags;
    int got = decode_frame(s, lt, data, caplen, wirelen, row, w->L, frags, &rst, dir, native);
    if (*frags != frags_before && w->first_frag < 0) w->first_frag = w->base + at;
    return got == ROW_NONE || finish_row(w, row, got, at, ts, iface, &rst, native);
}

HOT void note_ts(block_walk_t *w, double ts) {
    if (!w->records) w->lo = w->hi = ts;
    w->lo = ts < w->lo ? ts : w->lo;
    w->hi = ts > w->hi ? ts : w->hi;
    w->last = ts;
}

/* The classic pcap record loop: complete records of buf[0:limit], as walk_pcap finds them. */
HOT void pcap_records(block_walk_t *w, int native) {
    const unsigned char *buf = w->s.buf;
    const src_t s = w->s; /* locals: the row stores (unsigned char) could alias anything behind w */
    int64_t frags = w->frags;
    Py_ssize_t off = 0;
    while (off + w->hdr <= w->limit) {
        const unsigned char *rec = buf + off;
        uint32_t caplen = rd32(rec + 8, w->little);
        if ((Py_ssize_t)caplen > w->maxcap) {
            w->absurd = 1;
            break;
        }
        Py_ssize_t nxt = off + w->hdr + (Py_ssize_t)caplen;
        if (nxt > w->limit) break;
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(buf + nxt);      /* the next record's header and frame headers: fetched */
        __builtin_prefetch(buf + nxt + 64); /* while this frame is decoded */
#endif
        double ts = (double)rd32(rec, w->little) + (double)rd32(rec + 4, w->little) * w->scale; /* as numpy */
        note_ts(w, ts);
        if (!take_frame(w, &s, w->linktype, off, off + w->hdr, caplen, rd32(rec + 12, w->little), ts, 0, 0, &frags,
                        native)) {
            w->nomem = 1;
            break;
        }
        w->records++;
        off = nxt;
    }
    w->off = off;
    w->frags = frags;
}

#define STOP_PACKET 3 /* a simple or obsolete packet block, or any before an IDB: the general walk goes on */
#define STOP_CHECK 4  /* an enhanced packet block whose trailing length or caplen is impossible */

/* Direction bits of an EPB's epb_flags option (reader._epb_direction for one block). */
HOT unsigned epb_direction(const src_t *s, int64_t off, int64_t length, int64_t caplen, int little) {
    int64_t at = off + 28 + ((caplen + 3) & ~(int64_t)3);
    int64_t stop = off + length - 4;
    for (int i = 0; i < 8; i++) {
        if (!(at + 4 <= stop) || at + 8 > s->len) return 0;
        uint32_t head = rd32(s->buf + at, little);
        uint32_t code = little ? head & 0xFFFF : head >> 16;
        uint32_t olen = little ? head >> 16 : head & 0xFFFF;
        if (code == 2 && olen == 4 && at + 8 <= stop) {
            uint32_t bits = rd32(s->buf + at + 4, little) & 3;
            return bits == 1 ? 1 : (bits == 2 ? 2 : 0);
        }
        if (code == 0) return 0;
        at += 4 + ((olen + 3) & ~3u);
    }
    return 0;
}

/* The pcapng loop: consecutive enhanced packet blocks from w->off, checked as walk_pcapng and
 * reader._check check them, with the interface attributes reader._records gives them. */
HOT void pcapng_records(block_walk_t *w, int native) {
    const unsigned char *buf = w->s.buf;
    const src_t s = w->s; /* locals: the row stores (unsigned char) could alias anything behind w */
    int64_t frags = w->frags;
    const int little = w->little;
    Py_ssize_t at = w->off;
    int stop = STOP_NEED;
    while (at + 12 <= w->limit) {
        const unsigned char *blk = buf + at;
        uint32_t btype = rd32(blk, little), length = rd32(blk + 4, little);
        if (btype != 6 || !w->n_ifaces) { /* no interface yet: the general walk times the record with the */
            stop = (btype == 2 || btype == 3 || btype == 6) ? STOP_PACKET : STOP_OTHER; /* first one defined */
            break;                                                                 /* later in the buffer */
        }
        if (length < 32 || (length & 3) || length > MAX_BLOCK) {
            stop = STOP_BAD;
            break;
        }
        if (at + (Py_ssize_t)length > w->limit) {
            stop = STOP_NEED;
            break;
        }
        uint32_t caplen = rd32(blk + 20, little);
        if (rd32(blk + length - 4, little) != length || caplen > length - 32) {
            stop = STOP_CHECK;
            break;
        }
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(blk + length);
        __builtin_prefetch(blk + length + 64);
#endif
        uint32_t iface = rd32(blk + 8, little);
        int local = (int64_t)iface < w->section_ifaces;
        int64_t gid = local ? w->section_base + iface : 0;
        int known = gid < w->n_ifaces;
        int64_t linktype = local && known ? w->if_linktype[gid] : -1;
        uint64_t ticks = known ? w->if_ticks[gid] : w->default_ticks;
        double tsoffset = known ? w->if_tsoffset[gid] : 0.0;
        uint64_t units = ((uint64_t)rd32(blk + 12, little) << 32) | rd32(blk + 16, little);
        uint64_t sec = ticks ? units / ticks : 0;
        uint64_t frac = units - sec * ticks;
        double ts = ((double)sec + (double)frac / (double)ticks) + tsoffset; /* numpy's operations, in order */
        note_ts(w, ts);
        if (local && known && w->if_usable[gid]) {
            unsigned dir = epb_direction(&s, at, length, caplen, little);
            unsigned column = gid < 0xFFFF ? (unsigned)gid : 0xFFFF; /* the iface column is 16-bit */
            if (!take_frame(w, &s, linktype, at, at + 28, caplen, rd32(blk + 24, little), ts, column, dir, &frags,
                            native)) {
                w->nomem = 1;
                break;
            }
        } else if (push(&w->unknown, linktype) < 0 || push(&w->unknown, w->base + at) < 0) {
            w->nomem = 1;
            break;
        }
        w->records++;
        at += length;
    }
    w->off = at;
    w->stop = stop;
    w->frags = frags;
}

/* Takes a recycled row buffer (GIL held). */
static void rows_take(block_walk_t *w, unsigned char **reuse, Py_ssize_t *reuse_size) {
    *reuse = NULL;
    *reuse_size = 0;
    if (pool_n) {
        pool_n--;
        *reuse = pool[pool_n].data;
        *reuse_size = pool[pool_n].size;
    }
    (void)w;
}

/* Room for the rows of `span` bytes of records (no GIL); 0 when out of memory. */
static int rows_start(block_walk_t *w, unsigned char *reuse, Py_ssize_t reuse_size, Py_ssize_t span) {
    w->cap = span / 256 + 64; /* rows; grown when small frames are denser */
    if (reuse && reuse_size >= w->cap * w->itemsize) {
        w->table = reuse;
        w->cap = reuse_size / w->itemsize;
        return 1;
    }
    w->table = PyMem_RawRealloc(reuse, (size_t)(w->cap * w->itemsize)); /* keeps the pages it had */
    if (!w->table) PyMem_RawFree(reuse);
    return w->table != NULL;
}

/* Gives back what the rows did not use (no GIL). */
static void rows_trim(block_walk_t *w) {
    if (w->nomem || w->rows >= w->cap) return;
    if (!w->rows) {
        PyMem_RawFree(w->table);
        w->table = NULL;
        return;
    }
    unsigned char *shrunk = PyMem_RawRealloc(w->table, (size_t)(w->rows * w->itemsize));
    if (shrunk) w->table = shrunk;
}

/* The rows as a Rows object and the RST segments as {frame: bytes} (GIL held); 0 on error. */
static int block_objects(block_walk_t *w, PyObject **rows, PyObject **segments) {
    *rows = *segments = NULL;
    if (w->nomem) {
        PyErr_NoMemory();
        return 0;
    }
    rows_object *out = PyObject_New(rows_object, &rows_type);
    if (!out) return 0;
    out->data = w->table;
    out->len = w->rows * w->itemsize;
    w->table = NULL;
    *rows = (PyObject *)out;
    *segments = PyDict_New();
    if (!*segments) return 0;
    for (Py_ssize_t k = 0; k + 2 < w->rsts.n; k += 3) {
        int64_t *rst = w->rsts.data + k;
        PyObject *key = PyLong_FromLongLong(rst[0]);
        PyObject *value = PyBytes_FromStringAndSize((const char *)w->s.buf + rst[1], (Py_ssize_t)(rst[2] - rst[1]));
        int rc = (key && value) ? PyDict_SetItem(*segments, key, value) : -1;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (rc < 0) return 0;
    }
    return 1;
}

static void block_free(block_walk_t *w) {
    PyMem_RawFree(w->table);
    PyMem_RawFree(w->rsts.data);
    PyMem_RawFree(w->unknown.data);
}

/* pcap_block(buf, limit, hdr, maxcap, little, scale, linktype, base, first_frame, itemsize, layout)
 *   -> (rows, nrows, consumed, absurd, records, frags, first frag byte, ts min, ts max, {frame: RST segment})
 * Walks the complete records of buf[0:limit] as walk_pcap does and decodes each as decode does, writing
 * every field of its row (frame, stream offset, ts = sec + frac * scale, iface 0, RST checksum status). */
static PyObject *pcap_block(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t limit, hdr, maxcap, itemsize;
    int little;
    double scale;
    long long linktype, base, first_frame;
    PyObject *layout_obj;
    if (!PyArg_ParseTuple(args, "y*nnnpdLLLnO", &view, &limit, &hdr, &maxcap, &little, &scale, &linktype, &base,
                          &first_frame, &itemsize, &layout_obj))
        return NULL;
    layout_t L;
    if (hdr < 16 || !parse_layout(layout_obj, itemsize, F_ALL, &L)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "pcap_block: bad arguments");
        PyBuffer_Release(&view);
        return NULL;
    }
    if (limit > view.len) limit = view.len;
    block_walk_t w = {.s = {view.buf, view.len}, .L = &L, .limit = limit, .itemsize = itemsize, .little = little,
                      .base = base, .first_frame = first_frame, .hdr = hdr, .maxcap = maxcap, .scale = scale,
                      .linktype = linktype, .first_frag = -1};
    unsigned char *reuse;
    Py_ssize_t reuse_size;
    rows_take(&w, &reuse, &reuse_size);
    Py_BEGIN_ALLOW_THREADS  /* pure C over the buffer: the read-ahead thread overlaps the tracker */
    if (!rows_start(&w, reuse, reuse_size, limit)) w.nomem = 1;
    else if (L.native) pcap_records(&w, 1);
    else pcap_records(&w, 0);
    rows_trim(&w);
    Py_END_ALLOW_THREADS
    PyObject *rows, *segments, *result = NULL;
    if (block_objects(&w, &rows, &segments))
        result = Py_BuildValue("(OnnOLLLddO)", rows, w.rows, w.off, w.absurd ? Py_True : Py_False,
                               (long long)w.records, (long long)w.frags, (long long)w.first_frag, w.lo, w.hi,
                               segments);
    Py_XDECREF(rows);
    Py_XDECREF(segments);
    block_free(&w);
    PyBuffer_Release(&view);
    return result;
}

/* pcapng_run(buf, start, limit, little, if_linktype, if_ticks, if_tsoffset, if_usable, section_base,
 *            section_ifaces, default_ticks, base, first_frame, itemsize, layout)
 *   -> (rows, nrows, stop offset, STOP_*, records, frags, first frag byte, ts min, ts max, last ts,
 *       {frame: RST segment}, unknown bytes: int64 (link type, stream offset) per undecodable record)
 * The consecutive enhanced packet blocks from `start`; if_*: int64 / uint64 / float64 / uint8 arrays
 * over all interfaces so far (link type, ticks per second, if_tsoffset, link type decoded). */
static PyObject *pcapng_run(PyObject *self, PyObject *args) {
    Py_buffer view, vlt, vticks, voff, vuse;
    Py_ssize_t start, limit, itemsize;
    int little;
    long long section_base, section_ifaces, base, first_frame;
    unsigned long long default_ticks;
    PyObject *layout_obj;
    if (!PyArg_ParseTuple(args, "y*nnpy*y*y*y*LLKLLnO", &view, &start, &limit, &little, &vlt, &vticks, &voff,
                          &vuse, &section_base, &section_ifaces, &default_ticks, &base, &first_frame, &itemsize,
                          &layout_obj))
        return NULL;
    PyObject *result = NULL;
    layout_t L;
    Py_ssize_t n_ifaces = vlt.len / 8;
    if (!parse_layout(layout_obj, itemsize, F_ALL, &L)) goto release;
    if (vticks.len / 8 != n_ifaces || voff.len / 8 != n_ifaces || vuse.len != n_ifaces || start < 0) {
        PyErr_SetString(PyExc_ValueError, "pcapng_run: inconsistent arguments");
        goto release;
    }
    if (limit > view.len) limit = view.len;
    block_walk_t w = {.s = {view.buf, view.len}, .L = &L, .limit = limit, .itemsize = itemsize, .little = little,
                      .base = base, .first_frame = first_frame, .if_linktype = vlt.buf, .if_ticks = vticks.buf,
                      .if_tsoffset = voff.buf, .if_usable = vuse.buf, .n_ifaces = n_ifaces,
                      .section_base = section_base, .section_ifaces = section_ifaces,
                      .default_ticks = default_ticks, .off = start, .first_frag = -1};
    unsigned char *reuse;
    Py_ssize_t reuse_size;
    rows_take(&w, &reuse, &reuse_size);
    Py_BEGIN_ALLOW_THREADS  /* pure C over the buffer: the read-ahead thread overlaps the tracker */
    if (!rows_start(&w, reuse, reuse_size, limit - start)) w.nomem = 1;
    else if (L.native) pcapng_records(&w, 1);
    else pcapng_records(&w, 0);
    rows_trim(&w);
    Py_END_ALLOW_THREADS
    PyObject *rows, *segments;
    if (block_objects(&w, &rows, &segments)) {
        PyObject *unknown = as_bytes(&w.unknown);
        if (unknown)
            result = Py_BuildValue("(OnniLLLdddON)", rows, w.rows, w.off, w.stop, (long long)w.records,
                                   (long long)w.frags, (long long)w.first_frag, w.lo, w.hi, w.last, segments,
                                   unknown);
    }
    Py_XDECREF(rows);
    Py_XDECREF(segments);
    block_free(&w);
release:
    PyBuffer_Release(&view);
    PyBuffer_Release(&vlt);
    PyBuffer_Release(&vticks);
    PyBuffer_Release(&voff);
    PyBuffer_Release(&vuse);
    return result;
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Record offsets of a classic pcap block."},
    {"walk_pcapng", walk_pcapng, METH_VARARGS, "Packet block offsets of a pcapng block."},
    {"decode", decode, METH_VARARGS, "Link/IP/TCP decode of a block into packet-table rows."},
    {"pcap_block", pcap_block, METH_VARARGS, "Walk and decode a classic pcap block into packet-table rows."},
    {"pcapng_run", pcapng_run, METH_VARARGS, "Walk and decode a run of pcapng enhanced packet blocks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cwalk", "C record walk", -1, methods};

PyMODINIT_FUNC PyInit__cwalk(void) {
    if (PyType_Ready(&rows_type) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddObjectRef(m, "Rows", (PyObject *)&rows_type) < 0) Py_CLEAR(m);
    PyObject *native = m ? PyTuple_New(2 * F_ALL) : NULL; /* the layout with the fast stores */
    for (int f = 0; native && f < F_ALL; f++) {
        PyTuple_SET_ITEM(native, 2 * f, PyLong_FromSsize_t(FIELD_OFF[f]));
        PyTuple_SET_ITEM(native, 2 * f + 1, PyLong_FromSsize_t(FIELD_SIZE[f]));
    }
    if (m && (!native || PyErr_Occurred() || PyModule_AddObject(m, "NATIVE_LAYOUT", native) < 0)) {
        Py_XDECREF(native);
        Py_CLEAR(m);
    }
    return m;
}
