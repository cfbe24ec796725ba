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

static inline unsigned rd8(const src_t *s, int64_t at) {
    return (at >= 0 && at < s->len) ? s->buf[at] : 0;
}
static inline unsigned rd16(const src_t *s, int64_t at) {
    if (at >= 0 && at + 2 <= s->len) return ((unsigned)s->buf[at] << 8) | s->buf[at + 1];
    return (rd8(s, at) << 8) | rd8(s, at + 1);
}
static inline uint32_t rdb32(const src_t *s, int64_t at) {
    if (at >= 0 && at + 4 <= s->len) { /* one bounds check; compilers turn this into a bswap */
        const unsigned char *p = s->buf + at;
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
    return ((uint32_t)rd16(s, at) << 16) | rd16(s, at + 2);
}
static inline uint64_t rdb64(const src_t *s, int64_t at) {
    return ((uint64_t)rdb32(s, at) << 32) | rdb32(s, at + 4);
}

enum { F_IPVER, F_SRC_HI, F_SRC_LO, F_DST_HI, F_DST_LO, F_SPORT, F_DPORT, F_FLAGS, F_SEQ, F_ACK, F_WINDOW,
       F_TTL, F_IP_ID, F_DF, F_PAYLOAD_LEN, F_CAPTURED_LEN, F_OPTS, F_TSVAL, F_HEAD, F_DIRECTION, F_IFINDEX,
       F_COUNT };

typedef struct {
    Py_ssize_t off[F_COUNT], size[F_COUNT];
} layout_t;

static inline void put(unsigned char *row, const layout_t *L, int f, uint64_t v) {
    /* little-endian host only (checked by the Python side): the low bytes of v are the value.
     * Constant-size copies compile to single stores; a variable-size memcpy would be a call. */
    unsigned char *at = row + L->off[f];
    switch (L->size[f]) {
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
static int ip_layer(const src_t *s, int kind, int64_t o, int64_t e, int64_t w, ip_t *ip, int64_t *frags) {
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

static int is_vlan(unsigned et) { return et == 0x8100 || et == 0x88A8 || et == 0x9100; }

/* Link layer: kind (4/6/0) and the network header offset; direction/ifindex for SLL. */
static int link_layer(const src_t *s, int64_t lt, int64_t d, int64_t e, int64_t *l3, unsigned *dir,
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

static void tcp_options(const src_t *s, int64_t t, int64_t hdr, int64_t e, unsigned *opts, uint32_t *tsval) {
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
    if (vc.len / 8 < n || vw.len / 8 < n || vl.len / 8 < n || itemsize <= 0 || vt.len < n * itemsize ||
        !PyTuple_Check(layout_obj) || PyTuple_GET_SIZE(layout_obj) != 2 * F_COUNT) {
        PyErr_SetString(PyExc_ValueError, "decode: inconsistent arguments");
        goto done;
    }
    for (int f = 0; f < F_COUNT; f++) {
        L.off[f] = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout_obj, 2 * f));
        L.size[f] = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout_obj, 2 * f + 1));
        if (PyErr_Occurred()) goto done;
        if (L.off[f] < 0 || L.off[f] + L.size[f] > itemsize || L.size[f] < 1 || L.size[f] > 8) {
            PyErr_SetString(PyExc_ValueError, "decode: bad layout");
            goto done;
        }
    }
    src_t s = {(const unsigned char *)vb.buf, vb.len};
    const int64_t *data = vd.buf, *caplen = vc.buf, *wirelen = vw.buf, *linktype = vl.buf;
    unsigned char *table = vt.buf;
    int64_t frags = 0, first_frag = -1;
    Py_ssize_t rows = 0;
    int nomem = 0;
    Py_BEGIN_ALLOW_THREADS  /* pure C over buffers: the read-ahead thread overlaps the tracker */
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t d = data[i];
        int64_t e = d + caplen[i];
        int64_t w = d + (wirelen[i] > caplen[i] ? wirelen[i] : caplen[i]);
        int64_t l3 = 0;
        unsigned dir;
        uint32_t ifindex;
        int kind = link_layer(&s, linktype[i], d, e, &l3, &dir, &ifindex);
        ip_t ip;
        int64_t frags_before = frags;
        int usable = kind && ip_layer(&s, kind, l3, e, w, &ip, &frags);
        if (frags != frags_before && first_frag < 0) first_frag = i;
        if (!usable) continue;
        int64_t cend = ip.end < ip.l4end ? ip.end : ip.l4end;
        if (ip.proto == 4 || ip.proto == 41 || ip.proto == 17 || ip.proto == 47) {
            /* tunnels (one level): IP-in-IP, 6in4, GRE, VXLAN, Teredo; same rules as decode._tunnels */
            int64_t inner = -1, iwend = ip.l4end, l4 = ip.l4;
            int ikind = 6;
            unsigned idir;
            uint32_t iifx;
            if (ip.proto == 17) {
                int vxlan = rd16(&s, l4) == 4789 || rd16(&s, l4 + 2) == 4789;
                if (vxlan && l4 + 30 <= cend) {
                    ikind = link_layer(&s, 1, l4 + 16, cend, &inner, &idir, &iifx);
                    if (!ikind) inner = -1;
                } else if (l4 + 48 <= cend) {
                    inner = teredo_inner(&s, l4, cend, &iwend);
                }
            } else if (ip.proto == 47) {
                unsigned gflags = rd16(&s, l4), ptype = rd16(&s, l4 + 2);
                if (l4 + 4 <= cend && (gflags & 0x4007) == 0) {
                    int64_t at = l4 + 4 + 4 * ((gflags >> 15) & 1) + 4 * ((gflags >> 13) & 1) + 4 * ((gflags >> 12) & 1);
                    if (ptype == 0x0800 || ptype == 0x86DD) {
                        inner = at;
                        ikind = ptype == 0x0800 ? 4 : 6;
                    } else if (ptype == 0x6558) {
                        ikind = link_layer(&s, 1, at, cend, &inner, &idir, &iifx);
                        if (!ikind) inner = -1;
                    }
                }
            } else if (l4 < cend) {
                inner = l4;
                ikind = ip.proto == 4 ? 4 : 6;
            }
            if (inner < 0) continue;
            frags_before = frags;
            usable = ip_layer(&s, ikind, inner, cend, iwend, &ip, &frags);
            if (frags != frags_before && first_frag < 0) first_frag = i;
            if (!usable) continue;
        }
        int64_t t = ip.l4;
        e = ip.end;
        if (!(ip.proto == 6 && t + 16 <= e && t <= ip.l4end)) continue;
        unsigned off_flags = rd16(&s, t + 12);
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
        if (hdr > 20) tcp_options(&s, t, hdr, e, &opts, &tsval);
        int64_t keep = captured_len < 4 ? captured_len : 4;
        uint32_t head = keep ? (rdb32(&s, t + hdr) & (uint32_t)(0xFFFFFFFFULL << (8 * (4 - keep)))) : 0;
        unsigned char *row = table + rows * itemsize;
        put(row, &L, F_IPVER, (uint64_t)ip.ipver);
        put(row, &L, F_SRC_HI, ip.src_hi);
        put(row, &L, F_SRC_LO, ip.src_lo);
        put(row, &L, F_DST_HI, ip.dst_hi);
        put(row, &L, F_DST_LO, ip.dst_lo);
        put(row, &L, F_SPORT, rd16(&s, t));
        put(row, &L, F_DPORT, rd16(&s, t + 2));
        put(row, &L, F_FLAGS, flags);
        put(row, &L, F_SEQ, rdb32(&s, t + 4));
        put(row, &L, F_ACK, rdb32(&s, t + 8));
        put(row, &L, F_WINDOW, rd16(&s, t + 14));
        put(row, &L, F_TTL, ip.ttl);
        put(row, &L, F_IP_ID, ip.ip_id);
        put(row, &L, F_DF, ip.df);
        put(row, &L, F_PAYLOAD_LEN, (uint64_t)payload_len);
        put(row, &L, F_CAPTURED_LEN, (uint64_t)captured_len);
        put(row, &L, F_OPTS, opts);
        put(row, &L, F_TSVAL, tsval);
        put(row, &L, F_HEAD, head);
        put(row, &L, F_DIRECTION, dir);
        put(row, &L, F_IFINDEX, ifindex);
        if (push(&recs, i) < 0) {
            nomem = 1;
            break;
        }
        if (flags & 0x004) {
            int64_t stop = t + hdr < e ? t + hdr : e;
            if (seg_end > stop) stop = seg_end;
            if (push(&rsts, rows) < 0 || push(&rsts, t) < 0 || push(&rsts, stop) < 0 ||
                push(&rsts, ip.l4end - t) < 0) {
                nomem = 1;
                break;
            }
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

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Record offsets of a classic pcap block."},
    {"walk_pcapng", walk_pcapng, METH_VARARGS, "Packet block offsets of a pcapng block."},
    {"decode", decode, METH_VARARGS, "Link/IP/TCP decode of a block into packet-table rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cwalk", "C record walk", -1, methods};

PyMODINIT_FUNC PyInit__cwalk(void) { return PyModule_Create(&module); }
