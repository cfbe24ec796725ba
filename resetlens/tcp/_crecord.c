/* Compiled twin of resetlens.tcp.resets.build_record: one ResetRecord per RST snapshot, context walk in C.
 *
 * resets.py is the readable reference (build_record, _sequence, _preceded_by, _context); this file restates
 * it statement by statement and tests/test_tcp_crecord.py checks both give equal records (every field's
 * value and type, the __dict__ order) on the corpus, the lab captures and generated and hostile traffic.
 *
 *   Builder(cls, field_names, layout, itemsize, flag_text, option_names, csum_names, state_names,
 *           addr_text, payload_context)
 *   build(vantage, snapshots, flows, segments) -> (records, punted)
 *
 * build() makes one record per RstSnapshot, in order: `cls.__new__(cls)` with a `__dict__` filled in
 * field_names order, as the dataclass __init__ would. What only Python knows stays there: the text tables
 * (flag letters, option names, checksum and state names) come in as tuples indexed by the raw value,
 * IPv6 address text and the payload decoding (rare) are called back. A snapshot whose Python values are
 * of a kind this file does not restate (a non-int state, a str subclass, a row of another size) is left
 * as None in `records` and its index listed in `punted`: the caller builds it with build_record.
 *
 * Pure CPython API (no numpy headers): rows are read through the buffer protocol at the field offsets
 * Python passes in (resets.RECORD_FIELDS of PACKET_DTYPE), flows at any stride.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* TCP flag bits of the table's `flags` column (resetlens.capture.table). */
#define FIN_F 0x001
#define SYN_F 0x002
#define RST_F 0x004
#define ACK_F 0x010
#define RESERVED_F 0xE00
/* Option bits dropped from the common baseline options (resets._context). */
#define OPT_SACK 0x08
#define OPT_MALFORMED 0x40
#define OPT_TRUNCATED 0x80

#define TOO_LARGE_SEQ_DELTA 1048576  /* resetlens.tcp.zeek */
#define CHALLENGE_ACK_WINDOW 2.0     /* resets.CHALLENGE_ACK_WINDOW */
#define AFTER_LIST_MAX 20            /* resets.AFTER_LIST_MAX */
#define MAX_SCALED_WINDOW_SHIFT 14   /* resets.MAX_SCALED_WINDOW_SHIFT */
#define LAST_PACKETS 3               /* packets listed before the RST (resets._context) */

/* Packet-table fields read, in the order of resets.RECORD_FIELDS, with their sizes in bytes. */
enum {
    C_FRAME, C_TS, C_SRC_HI, C_SRC_LO, C_DST_HI, C_DST_LO, C_SPORT, C_DPORT, C_FLAGS, C_SEQ, C_ACK, C_TTL,
    C_IP_ID, C_IPVER, C_DF, C_WINDOW, C_OPTS, C_CSUM, C_PAYLOAD_LEN, C_CAPTURED_LEN, N_COLS
};
static const int COL_SIZE[N_COLS] = {8, 8, 8, 8, 8, 8, 2, 2, 2, 4, 4, 1, 4, 1, 1, 2, 1, 1, 4, 4};

/* ResetRecord's fields in declaration order (checked against dataclasses.fields at Builder()). */
enum {
    R_VANTAGE, R_FRAME, R_TS, R_UID, R_SRC, R_SPORT, R_DST, R_DPORT, R_SENT_BY, R_FLAGS, R_RST_ACK, R_SEQ,
    R_ACK, R_TTL, R_IP_ID, R_DF, R_WINDOW, R_OPTIONS, R_RESERVED_BITS, R_CHECKSUM, R_SEQ_CHECK,
    R_EXPECTED_SEQ, R_SEQ_OFFSET, R_RECEIVER_WINDOW, R_WINDOW_SCALED, R_ACK_CHECK, R_EXPECTED_ACK,
    R_SENDER_STATE, R_RECEIVER_STATE, R_HISTORY_BEFORE, R_PRECEDED_BY, R_LAST_PACKETS, R_IDLE_BEFORE,
    R_BASELINE_PACKETS, R_BASELINE_TTL, R_TTL_DELTA, R_BASELINE_IP_ID, R_IP_ID_DELTA, R_BASELINE_DF,
    R_DF_CHANGED, R_BASELINE_WINDOW, R_BASELINE_OPTIONS, R_MISSING_OPTIONS, R_PAYLOAD_LEN,
    R_PAYLOAD_CAPTURED, R_DIAGNOSTIC, R_CAUSE_TEXT, R_RETRANSMITTED, R_SENDER_DATA_AFTER,
    R_SENDER_ACK_AFTER, R_SENDER_AFTER, R_CHALLENGE_ACK, R_RECEIVER_AFTER, R_MORE_RSTS,
    R_RST_SEQ_CHANGES, R_RST_ACK_CHANGES, R_SEQ_INSIDE_SENT_DATA, N_REC
};
static const char *REC_NAMES[N_REC] = {
    "vantage", "frame", "ts", "uid", "src", "sport", "dst", "dport", "sent_by", "flags", "rst_ack", "seq",
    "ack", "ttl", "ip_id", "df", "window", "options", "reserved_bits", "checksum", "seq_check",
    "expected_seq", "seq_offset", "receiver_window", "window_scaled", "ack_check", "expected_ack",
    "sender_state", "receiver_state", "history_before", "preceded_by", "last_packets", "idle_before",
    "baseline_packets", "baseline_ttl", "ttl_delta", "baseline_ip_id", "ip_id_delta", "baseline_df",
    "df_changed", "baseline_window", "baseline_options", "missing_options", "payload_len",
    "payload_captured", "diagnostic", "cause_text", "retransmitted", "sender_data_after",
    "sender_ack_after", "sender_after", "challenge_ack", "receiver_after", "more_rsts", "rst_seq_changes",
    "rst_ack_changes", "seq_inside_sent_data",
};

/* RstSnapshot attributes read. */
enum {
    S_CONN_IDX, S_ROW, S_SENDER_STATE, S_RECEIVER_STATE, S_SENDER_NEXT_SEQ, S_RECEIVER_NEXT_SEQ,
    S_RECEIVER_ACK, S_RECEIVER_WINDOW, S_WINDOW_SCALED, S_PREV_TS, S_HISTORY_BEFORE, S_SENT_BY_ORIG, N_SNAP
};
static const char *SNAP_NAMES[N_SNAP] = {
    "conn_idx", "row", "sender_state", "receiver_state", "sender_next_seq", "receiver_next_seq",
    "receiver_ack", "receiver_window", "window_scaled", "prev_ts", "history_before", "sent_by_orig",
};

/* The constant texts a record holds. */
enum {
    T_ORIG, T_RESP, T_EXACT, T_IN_WINDOW, T_OUTSIDE, T_UNKNOWN, T_NONE, T_OLD, T_AHEAD, T_NOTHING, T_SYN,
    T_HANDSHAKE, T_DATA, T_FIN, T_OTHER, T_SENDER, T_RECEIVER, T_K_FRAME, T_K_FROM, T_K_FLAGS, T_K_LEN, N_TEXT
};
static const char *TEXTS[N_TEXT] = {
    "orig", "resp", "exact", "in_window", "outside", "unknown", "none", "old", "ahead", "nothing", "syn",
    "handshake", "data", "fin", "other", "sender", "receiver", "frame", "from", "flags", "len",
};

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;          /* ResetRecord */
    Py_ssize_t off[N_COLS];     /* field offsets in a packet-table row */
    Py_ssize_t itemsize;        /* bytes per row */
    PyObject *flag_text;        /* tuple: flag letters of flags & 0xFF */
    PyObject *option_names;     /* tuple: names (a tuple of str) of each opts byte */
    PyObject *csum_names;       /* tuple: checksum text of each csum byte */
    PyObject *state_names;      /* tuple: Zeek endpoint state names */
    PyObject *addr_text;        /* callable (hi, lo) -> address text, for what is not IPv4-mapped */
    PyObject *payload_context;  /* callable (segment, captured) -> (diagnostic, cause_text) */
    PyObject *rec_names[N_REC]; /* interned field names */
    PyObject *snap_names[N_SNAP];
    PyObject *text[N_TEXT];
    PyObject *dict_name;        /* "__dict__" */
    PyObject *template;         /* {field: None} in field order: copied per record (one memcpy) */
    PyObject *empty;            /* () for tp_new */
} Builder;

static inline uint64_t rd8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint32_t rd4(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint16_t rd2(const char *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline double rdf(const char *p) {
    double v;
    memcpy(&v, p, 8);
    return v;
}
#define U8(p) ((uint8_t)*(p))

/* conn.seq_delta: a - b in 32-bit sequence space, signed. */
static inline int64_t seq_delta(uint64_t a, uint64_t b) { return (int64_t)(int32_t)(uint32_t)(a - b); }

static void Builder_clear_refs(Builder *self) {
    Py_CLEAR(self->cls);
    Py_CLEAR(self->flag_text);
    Py_CLEAR(self->option_names);
    Py_CLEAR(self->csum_names);
    Py_CLEAR(self->state_names);
    Py_CLEAR(self->addr_text);
    Py_CLEAR(self->payload_context);
    for (int i = 0; i < N_REC; i++) Py_CLEAR(self->rec_names[i]);
    for (int i = 0; i < N_SNAP; i++) Py_CLEAR(self->snap_names[i]);
    for (int i = 0; i < N_TEXT; i++) Py_CLEAR(self->text[i]);
    Py_CLEAR(self->dict_name);
    Py_CLEAR(self->template);
    Py_CLEAR(self->empty);
}

static void Builder_dealloc(Builder *self) {
    Builder_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int tuple_of_len(PyObject *o, Py_ssize_t n, const char *what) {
    if (!PyTuple_CheckExact(o) || (n >= 0 && PyTuple_GET_SIZE(o) != n)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a tuple of %zd items", what, n);
        return -1;
    }
    return 0;
}

static int Builder_init(Builder *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"cls", "field_names", "layout", "itemsize", "flag_text", "option_names",
                             "csum_names", "state_names", "addr_text", "payload_context", NULL};
    PyObject *cls, *field_names, *layout, *flag_text, *option_names, *csum_names, *state_names, *addr_text,
        *payload_context;
    Py_ssize_t itemsize;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOnOOOOOO", kwlist, &cls, &field_names, &layout, &itemsize,
                                     &flag_text, &option_names, &csum_names, &state_names, &addr_text,
                                     &payload_context))
        return -1;
    Builder_clear_refs(self);
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a class");
        return -1;
    }
    /* records are made without calling __init__: a class with a __post_init__ would miss it */
    if (PyObject_HasAttrString(cls, "__post_init__")) {
        PyErr_SetString(PyExc_ValueError, "cls has a __post_init__, which _crecord.c would never run");
        return -1;
    }
    if (tuple_of_len(field_names, N_REC, "field_names") < 0) return -1;
    for (int i = 0; i < N_REC; i++) {
        PyObject *name = PyTuple_GET_ITEM(field_names, i);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, REC_NAMES[i]) != 0) {
            PyErr_Format(PyExc_ValueError, "field %d is not %s: ResetRecord and _crecord.c differ", i,
                         REC_NAMES[i]);
            return -1;
        }
    }
    if (tuple_of_len(layout, 2 * N_COLS, "layout") < 0) return -1;
    if (itemsize <= 0) {
        PyErr_SetString(PyExc_ValueError, "itemsize must be positive");
        return -1;
    }
    for (int f = 0; f < N_COLS; f++) {
        Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2 * f));
        Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2 * f + 1));
        if (PyErr_Occurred()) return -1;
        if (off < 0 || size != COL_SIZE[f] || off + size > itemsize) {
            PyErr_SetString(PyExc_ValueError, "packet-table layout does not match _crecord.c");
            return -1;
        }
        self->off[f] = off;
    }
    self->itemsize = itemsize;
    if (tuple_of_len(flag_text, 256, "flag_text") < 0 || tuple_of_len(option_names, 256, "option_names") < 0 ||
        tuple_of_len(csum_names, 256, "csum_names") < 0 || tuple_of_len(state_names, -1, "state_names") < 0)
        return -1;
    for (Py_ssize_t i = 0; i < 256; i++) {
        if (tuple_of_len(PyTuple_GET_ITEM(option_names, i), -1, "option_names[i]") < 0) return -1;
    }
    if (!PyCallable_Check(addr_text) || !PyCallable_Check(payload_context)) {
        PyErr_SetString(PyExc_TypeError, "addr_text and payload_context must be callable");
        return -1;
    }
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    self->flag_text = Py_NewRef(flag_text);
    self->option_names = Py_NewRef(option_names);
    self->csum_names = Py_NewRef(csum_names);
    self->state_names = Py_NewRef(state_names);
    self->addr_text = Py_NewRef(addr_text);
    self->payload_context = Py_NewRef(payload_context);
    for (int i = 0; i < N_REC; i++)
        if (!(self->rec_names[i] = PyUnicode_InternFromString(REC_NAMES[i]))) return -1;
    for (int i = 0; i < N_SNAP; i++)
        if (!(self->snap_names[i] = PyUnicode_InternFromString(SNAP_NAMES[i]))) return -1;
    for (int i = 0; i < N_TEXT; i++)
        if (!(self->text[i] = PyUnicode_InternFromString(TEXTS[i]))) return -1;
    if (!(self->dict_name = PyUnicode_InternFromString("__dict__"))) return -1;
    if (!(self->empty = PyTuple_New(0))) return -1;
    /* grown key by key, as the dataclass __init__ grows an instance's dict (same size, str-only keys) */
    if (!(self->template = PyDict_New())) return -1;
    for (int i = 0; i < N_REC; i++)
        if (PyDict_SetItem(self->template, self->rec_names[i], Py_None) < 0) return -1;
    return 0;
}

static inline PyObject *text(Builder *b, int t) { return Py_NewRef(b->text[t]); }
static inline PyObject *boolean(int v) { return Py_NewRef(v ? Py_True : Py_False); }

/* A fresh list of the names of one opts byte (resets.option_names). */
static PyObject *names_list(Builder *b, unsigned bits) {
    return PySequence_List(PyTuple_GET_ITEM(b->option_names, bits & 0xFF));
}

/* Decimal digits of v at p; returns the end. */
static char *put_uint(char *p, unsigned long long v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* An ASCII str of the n bytes at p (PyUnicode_FromFormat costs more than the rest of a record). */
static PyObject *ascii_str(const char *p, Py_ssize_t n) {
    PyObject *s = PyUnicode_New(n, 127);
    if (s) memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

/* halves_to_addr: dotted quad for IPv4-mapped values, else Python's text. */
static PyObject *addr(Builder *b, uint64_t hi, uint64_t lo) {
    if (hi == 0 && (lo >> 32) == 0xFFFF) {
        char buf[16], *p = buf;
        for (int shift = 24; shift >= 0; shift -= 8) {
            p = put_uint(p, (lo >> shift) & 255);
            *p++ = '.';
        }
        return ascii_str(buf, p - buf - 1);
    }
    PyObject *h = PyLong_FromUnsignedLongLong(hi), *l = h ? PyLong_FromUnsignedLongLong(lo) : NULL;
    PyObject *out = l ? PyObject_CallFunctionObjArgs(b->addr_text, h, l, NULL) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(l);
    return out;
}

/* VantageTracker.uid: "C<idx + 1>@<vantage>". */
static PyObject *uid_text(PyObject *vantage, long long number) {
    if (!PyUnicode_IS_ASCII(vantage) || number < 0) return PyUnicode_FromFormat("C%lld@%U", number, vantage);
    char head[24], *p = head;
    *p++ = 'C';
    p = put_uint(p, (unsigned long long)number);
    *p++ = '@';
    const Py_ssize_t nh = p - head, nv = PyUnicode_GET_LENGTH(vantage);
    PyObject *s = PyUnicode_New(nh + nv, 127);
    if (!s) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(s), head, (size_t)nh);
    memcpy(PyUnicode_1BYTE_DATA(s) + nh, PyUnicode_1BYTE_DATA(vantage), (size_t)nv);
    return s;
}

/* A Python int (not bool-like objects of other kinds) taken mod 2^64; 0 when it is not an int. */
static int as_u64(PyObject *o, uint64_t *out) {
    if (!PyLong_Check(o)) return 0;
    *out = PyLong_AsUnsignedLongLongMask(o);
    if (*out == (uint64_t)-1 && PyErr_Occurred()) return -1;
    return 1;
}

/* STATE_NAMES[v] as Python indexes it (negative from the end); 0 when v is out of range or no int. */
static int state_name(Builder *b, PyObject *v, PyObject **out) {
    if (!PyLong_Check(v)) return 0;
    int overflow = 0;
    long long i = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (i == -1 && PyErr_Occurred()) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(b->state_names);
    if (overflow || i < -n || i >= n) return 0;
    *out = Py_NewRef(PyTuple_GET_ITEM(b->state_names, i < 0 ? i + n : i));
    return 1;
}

/* resets._preceded_by over the history letters. */
static int preceded_by(PyObject *history) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(history);
    int kind = PyUnicode_KIND(history);
    const void *data = PyUnicode_DATA(history);
    int fin = 0, data_ = 0, hand = 0, syn = 0, any = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '^') continue;
        any = 1;
        if (c == 'F' || c == 'f') fin = 1;
        else if (c == 'D' || c == 'd') data_ = 1;
        else if (c == 'H' || c == 'h' || c == 'A' || c == 'a') hand = 1;
        else if (c == 'S' || c == 's') syn = 1;
    }
    return fin ? T_FIN : data_ ? T_DATA : hand ? T_HANDSHAKE : syn ? T_SYN : any ? T_OTHER : T_NOTHING;
}

/* The first AFTER_LIST_MAX frames of one "after" category. */
typedef struct {
    uint64_t frame[AFTER_LIST_MAX];
    int n;
} frames_t;

static inline void add_frame(frames_t *list, uint64_t frame) {
    if (list->n < AFTER_LIST_MAX) list->frame[list->n++] = frame;
}

/* The frames as a list of exactly their size (as resets._context's slice makes it). */
static PyObject *frame_list(const frames_t *list) {
    PyObject *out = PyList_New(list->n);
    if (!out) return NULL;
    for (int i = 0; i < list->n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(list->frame[i]);
        if (!v) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

/* resets._context: the RST's place in its flow (rows at base, n of them, `stride` bytes apart). v holds
 * the record's values so far (the after-lists and last_packets already empty lists). */
static int context(Builder *b, PyObject **v, const char *base, Py_ssize_t n, Py_ssize_t stride,
                   const char *rst, int seq_exact) {
    const Py_ssize_t *off = b->off;
    const uint64_t frame = rd8(rst + off[C_FRAME]), me_hi = rd8(rst + off[C_SRC_HI]);
    const uint64_t me_lo = rd8(rst + off[C_SRC_LO]);
    const uint16_t me_port = rd2(rst + off[C_SPORT]), rst_flags = rd2(rst + off[C_FLAGS]);
    const uint32_t rst_seq = rd4(rst + off[C_SEQ]), rst_ack = rd4(rst + off[C_ACK]);
    const int has_ack = (rst_flags & ACK_F) != 0, is_v4 = U8(rst + off[C_IPVER]) == 4;
    const double rst_ts = rdf(rst + off[C_TS]);
#define ROW(k) (base + (k) * stride)
#define FROM_ME(r) \
    (rd8((r) + off[C_SRC_HI]) == me_hi && rd8((r) + off[C_SRC_LO]) == me_lo && rd2((r) + off[C_SPORT]) == me_port)

    /* bisect_left over the frame column, step for step (flows are in frame order; a corrupt one is not) */
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (rd8(ROW(mid) + off[C_FRAME]) < frame) lo = mid + 1;
        else hi = mid;
    }
    const Py_ssize_t pos = lo;
    const Py_ssize_t end = pos < n && rd8(ROW(pos) + off[C_FRAME]) == frame ? pos + 1 : pos;

    for (Py_ssize_t k = pos > LAST_PACKETS ? pos - LAST_PACKETS : 0; k < pos; k++) {
        const char *r = ROW(k);
        PyObject *d = PyDict_New(), *fr = d ? PyLong_FromUnsignedLongLong(rd8(r + off[C_FRAME])) : NULL;
        PyObject *len = fr ? PyLong_FromUnsignedLong(rd4(r + off[C_PAYLOAD_LEN])) : NULL;
        PyObject *letters = PyTuple_GET_ITEM(b->flag_text, rd2(r + off[C_FLAGS]) & 0xFF);
        int bad = !len || PyDict_SetItem(d, b->text[T_K_FRAME], fr) < 0 ||
                  PyDict_SetItem(d, b->text[T_K_FROM], b->text[FROM_ME(r) ? T_SENDER : T_RECEIVER]) < 0 ||
                  PyDict_SetItem(d, b->text[T_K_FLAGS], letters) < 0 ||
                  PyDict_SetItem(d, b->text[T_K_LEN], len) < 0 || PyList_Append(v[R_LAST_PACKETS], d) < 0;
        Py_XDECREF(fr);
        Py_XDECREF(len);
        Py_XDECREF(d);
        if (bad) return -1;
    }

    /* the sender's earlier packets: the baseline, and an earlier RST with this seq */
    Py_ssize_t n_base = 0, df_set = 0, last_base = -1;
    uint32_t ttl_count[256];
    uint8_t ttl_order[256];
    int n_ttl = 0;
    memset(ttl_count, 0, sizeof ttl_count);
    unsigned common = 0xFF;
    int nonsyn = 0, retransmitted = 0;
    for (Py_ssize_t k = 0; k < pos; k++) {
        const char *r = ROW(k);
        if (!FROM_ME(r)) continue;
        const uint16_t f = rd2(r + off[C_FLAGS]);
        if (f & RST_F) {
            if (rd4(r + off[C_SEQ]) == rst_seq) retransmitted = 1;
            continue;
        }
        n_base++;
        last_base = k;
        const uint8_t t = U8(r + off[C_TTL]);
        if (ttl_count[t]++ == 0) ttl_order[n_ttl++] = t;
        if (U8(r + off[C_DF])) df_set++;
        if (!(f & SYN_F)) {
            nonsyn = 1;
            common &= U8(r + off[C_OPTS]);
        }
    }
    Py_SETREF(v[R_RETRANSMITTED], boolean(retransmitted));
    Py_SETREF(v[R_BASELINE_PACKETS], PyLong_FromSsize_t(n_base));
    if (!v[R_BASELINE_PACKETS]) return -1;
    if (n_base) {
        uint8_t best = ttl_order[0]; /* ties: the first TTL seen, as Counter.most_common */
        for (int j = 1; j < n_ttl; j++)
            if (ttl_count[ttl_order[j]] > ttl_count[best]) best = ttl_order[j];
        const char *lb = ROW(last_base);
        Py_SETREF(v[R_BASELINE_TTL], PyLong_FromLong(best));
        Py_SETREF(v[R_TTL_DELTA], PyLong_FromLong((long)U8(rst + off[C_TTL]) - (long)best));
        if (!v[R_BASELINE_TTL] || !v[R_TTL_DELTA]) return -1;
        if (is_v4) {
            const uint32_t base_id = rd4(lb + off[C_IP_ID]);
            const int64_t d = (int64_t)rd4(rst + off[C_IP_ID]) - (int64_t)base_id;
            Py_SETREF(v[R_BASELINE_IP_ID], PyLong_FromUnsignedLong(base_id));
            Py_SETREF(v[R_IP_ID_DELTA], PyLong_FromLongLong(((d + 0x8000) & 0xFFFF) - 0x8000));
            if (!v[R_BASELINE_IP_ID] || !v[R_IP_ID_DELTA]) return -1;
        }
        const int base_df = df_set * 2 >= n_base;
        Py_SETREF(v[R_BASELINE_DF], boolean(base_df));
        Py_SETREF(v[R_DF_CHANGED], boolean((U8(rst + off[C_DF]) != 0) != base_df));
        Py_SETREF(v[R_BASELINE_WINDOW], PyLong_FromLong(rd2(lb + off[C_WINDOW])));
        if (!v[R_BASELINE_WINDOW]) return -1;
        if (nonsyn) {
            common &= ~(unsigned)(OPT_SACK | OPT_TRUNCATED | OPT_MALFORMED);
            Py_SETREF(v[R_BASELINE_OPTIONS], names_list(b, common));
            Py_SETREF(v[R_MISSING_OPTIONS], names_list(b, common & ~(unsigned)U8(rst + off[C_OPTS])));
            if (!v[R_BASELINE_OPTIONS] || !v[R_MISSING_OPTIONS]) return -1;
        }
    }

    if (end >= n) return 0;
    int seq_changes = 0, ack_changes = 0;
    enum { DATA_AFTER, ACK_AFTER, SENT_AFTER, RECV_AFTER, MORE, N_AFTER };
    frames_t after[N_AFTER];
    for (int i = 0; i < N_AFTER; i++) after[i].n = 0;
    for (Py_ssize_t k = end; k < n; k++) {
        const char *r = ROW(k);
        const uint16_t f = rd2(r + off[C_FLAGS]);
        const uint64_t fr = rd8(r + off[C_FRAME]);
        const int from_sender = FROM_ME(r);
        if (f & RST_F) {
            add_frame(&after[MORE], fr);
            if (from_sender) {
                seq_changes |= rd4(r + off[C_SEQ]) != rst_seq;
                if (has_ack && (f & ACK_F)) ack_changes |= rd4(r + off[C_ACK]) != rst_ack;
            }
        }
        if (from_sender) {
            if (!(f & RST_F)) {
                add_frame(&after[SENT_AFTER], fr);
                if (rd4(r + off[C_PAYLOAD_LEN]) > 0) add_frame(&after[DATA_AFTER], fr);
                else if ((f & ACK_F) && !(f & (SYN_F | FIN_F))) add_frame(&after[ACK_AFTER], fr);
            }
        } else
            add_frame(&after[RECV_AFTER], fr);
    }
    static const int FIELD_OF[N_AFTER] = {R_SENDER_DATA_AFTER, R_SENDER_ACK_AFTER, R_SENDER_AFTER,
                                          R_RECEIVER_AFTER, R_MORE_RSTS};
    for (int i = 0; i < N_AFTER; i++) {
        Py_SETREF(v[FIELD_OF[i]], frame_list(&after[i]));
        if (!v[FIELD_OF[i]]) return -1;
    }
    const char *e = ROW(end);
    if (!FROM_ME(e) && !seq_exact) {
        const uint16_t f = rd2(e + off[C_FLAGS]);
        const int pure_ack = rd4(e + off[C_PAYLOAD_LEN]) == 0 && !(f & (SYN_F | FIN_F | RST_F)) && (f & ACK_F);
        if (pure_ack && rdf(e + off[C_TS]) - rst_ts <= CHALLENGE_ACK_WINDOW) {
            Py_SETREF(v[R_CHALLENGE_ACK], PyLong_FromUnsignedLongLong(rd8(e + off[C_FRAME])));
            if (!v[R_CHALLENGE_ACK]) return -1;
        }
    }
    Py_SETREF(v[R_RST_SEQ_CHANGES], boolean(seq_changes));
    Py_SETREF(v[R_RST_ACK_CHANGES], boolean(ack_changes));
    return 0;
#undef ROW
#undef FROM_ME
}

/* One record: 1 made (*out), 0 punted (left to build_record), -1 error. */
static int make_record(Builder *b, PyObject *vantage, PyObject *snap, PyObject *flows, PyObject *segments,
                       PyObject **out) {
    PyObject *s[N_SNAP] = {0}, *v[N_REC] = {0};
    Py_buffer row = {0}, fv = {0};
    int have_row = 0, have_flow = 0, rc = -1;
    for (int i = 0; i < N_SNAP; i++)
        if (!(s[i] = PyObject_GetAttr(snap, b->snap_names[i]))) goto done;

    if (PyObject_GetBuffer(s[S_ROW], &row, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        rc = 0;
        goto done;
    }
    have_row = 1;
    if (row.len != b->itemsize || !PyLong_CheckExact(s[S_CONN_IDX]) || !PyUnicode_CheckExact(vantage) ||
        !PyUnicode_Check(s[S_HISTORY_BEFORE]) || (s[S_PREV_TS] != Py_None && !PyFloat_Check(s[S_PREV_TS]))) {
        rc = 0;
        goto done;
    }
    const char *r = row.buf;
    const Py_ssize_t *off = b->off;
    const uint64_t frame = rd8(r + off[C_FRAME]);
    const uint16_t flags = rd2(r + off[C_FLAGS]);
    const uint32_t seq = rd4(r + off[C_SEQ]), ack = rd4(r + off[C_ACK]);
    const uint32_t captured = rd4(r + off[C_CAPTURED_LEN]);
    const double ts = rdf(r + off[C_TS]);
    const int has_ack = (flags & ACK_F) != 0;
    int overflow = 0;
    long long idx = PyLong_AsLongLongAndOverflow(s[S_CONN_IDX], &overflow);
    if (idx == -1 && PyErr_Occurred()) goto done;
    if (overflow || idx == LLONG_MAX) {
        rc = 0;
        goto done;
    }

    /* the dataclass defaults first (fresh lists, as default_factory gives) */
    for (int i = 0; i < N_REC; i++) v[i] = Py_NewRef(Py_None);
    Py_SETREF(v[R_SEQ_CHECK], text(b, T_UNKNOWN));
    Py_SETREF(v[R_WINDOW_SCALED], boolean(0));
    Py_SETREF(v[R_PRECEDED_BY], text(b, T_NOTHING));
    Py_SETREF(v[R_BASELINE_PACKETS], PyLong_FromLong(0));
    Py_SETREF(v[R_DF_CHANGED], boolean(0));
    Py_SETREF(v[R_RETRANSMITTED], boolean(0));
    Py_SETREF(v[R_RST_SEQ_CHANGES], boolean(0));
    Py_SETREF(v[R_RST_ACK_CHANGES], boolean(0));
    Py_SETREF(v[R_SEQ_INSIDE_SENT_DATA], boolean(0));
    static const int LISTS[] = {R_LAST_PACKETS, R_BASELINE_OPTIONS, R_MISSING_OPTIONS, R_SENDER_DATA_AFTER,
                                R_SENDER_ACK_AFTER, R_SENDER_AFTER, R_RECEIVER_AFTER, R_MORE_RSTS};
    for (size_t i = 0; i < sizeof LISTS / sizeof LISTS[0]; i++) {
        Py_SETREF(v[LISTS[i]], PyList_New(0));
        if (!v[LISTS[i]]) goto done;
    }

    /* the RST's own header (build_record's ResetRecord(...) arguments) */
    Py_SETREF(v[R_VANTAGE], Py_NewRef(vantage));
    Py_SETREF(v[R_FRAME], PyLong_FromUnsignedLongLong(frame));
    Py_SETREF(v[R_TS], PyFloat_FromDouble(ts));
    Py_SETREF(v[R_UID], uid_text(vantage, idx + 1));
    Py_SETREF(v[R_SRC], addr(b, rd8(r + off[C_SRC_HI]), rd8(r + off[C_SRC_LO])));
    Py_SETREF(v[R_SPORT], PyLong_FromLong(rd2(r + off[C_SPORT])));
    Py_SETREF(v[R_DST], addr(b, rd8(r + off[C_DST_HI]), rd8(r + off[C_DST_LO])));
    Py_SETREF(v[R_DPORT], PyLong_FromLong(rd2(r + off[C_DPORT])));
    int by_orig = PyObject_IsTrue(s[S_SENT_BY_ORIG]);
    if (by_orig < 0) goto done;
    Py_SETREF(v[R_SENT_BY], text(b, by_orig ? T_ORIG : T_RESP));
    Py_SETREF(v[R_FLAGS], Py_NewRef(PyTuple_GET_ITEM(b->flag_text, flags & 0xFF)));
    Py_SETREF(v[R_RST_ACK], boolean(has_ack));
    Py_SETREF(v[R_SEQ], PyLong_FromUnsignedLong(seq));
    if (has_ack) Py_SETREF(v[R_ACK], PyLong_FromUnsignedLong(ack));
    Py_SETREF(v[R_TTL], PyLong_FromLong(U8(r + off[C_TTL])));
    if (U8(r + off[C_IPVER]) == 4) Py_SETREF(v[R_IP_ID], PyLong_FromUnsignedLong(rd4(r + off[C_IP_ID])));
    Py_SETREF(v[R_DF], boolean(U8(r + off[C_DF]) != 0));
    Py_SETREF(v[R_WINDOW], PyLong_FromLong(rd2(r + off[C_WINDOW])));
    Py_SETREF(v[R_OPTIONS], names_list(b, U8(r + off[C_OPTS])));
    Py_SETREF(v[R_RESERVED_BITS], boolean((flags & RESERVED_F) != 0));
    Py_SETREF(v[R_CHECKSUM], Py_NewRef(PyTuple_GET_ITEM(b->csum_names, U8(r + off[C_CSUM]))));
    for (int k = 0; k < 2; k++) {
        PyObject *name = NULL;
        int got = state_name(b, s[k ? S_RECEIVER_STATE : S_SENDER_STATE], &name);
        if (got <= 0) {
            rc = got;
            goto done;
        }
        Py_SETREF(v[k ? R_RECEIVER_STATE : R_SENDER_STATE], name);
    }
    Py_SETREF(v[R_HISTORY_BEFORE], Py_NewRef(s[S_HISTORY_BEFORE]));
    Py_SETREF(v[R_PAYLOAD_LEN], PyLong_FromUnsignedLong(rd4(r + off[C_PAYLOAD_LEN])));
    Py_SETREF(v[R_PAYLOAD_CAPTURED], PyLong_FromUnsignedLong(captured));
    for (int i = 0; i < N_REC; i++)
        if (!v[i]) goto done;

    /* _sequence */
    PyObject *expected = s[S_RECEIVER_ACK] != Py_None ? s[S_RECEIVER_ACK] : s[S_SENDER_NEXT_SEQ];
    Py_SETREF(v[R_RECEIVER_WINDOW], Py_NewRef(s[S_RECEIVER_WINDOW]));
    Py_SETREF(v[R_WINDOW_SCALED], Py_NewRef(s[S_WINDOW_SCALED]));
    int seq_exact = 0, got;
    if (expected != Py_None) {
        uint64_t e;
        if ((got = as_u64(expected, &e)) <= 0) {
            rc = got;
            goto done;
        }
        const int64_t offset = seq_delta(seq, e);
        Py_SETREF(v[R_EXPECTED_SEQ], Py_NewRef(expected));
        Py_SETREF(v[R_SEQ_OFFSET], PyLong_FromLongLong(offset));
        if (!v[R_SEQ_OFFSET]) goto done;
        int check;
        if (offset == 0) {
            check = T_EXACT;
            seq_exact = 1;
        } else if (s[S_RECEIVER_WINDOW] != Py_None) {
            PyObject *rw = s[S_RECEIVER_WINDOW];
            if (!PyLong_Check(rw)) {
                rc = 0;
                goto done;
            }
            int scaled = PyObject_IsTrue(s[S_WINDOW_SCALED]);
            if (scaled < 0) goto done;
            long long w = PyLong_AsLongLongAndOverflow(rw, &overflow);
            if (w == -1 && PyErr_Occurred()) goto done;
            /* offset is a signed 32-bit value: a window beyond 2^40 either way decides alone */
            int in_window;
            if (overflow > 0 || w > ((long long)1 << 40)) in_window = offset > 0;
            else if (overflow < 0 || w < -((long long)1 << 40)) in_window = 0;
            else {
                long long wnd = w * (scaled ? (1LL << MAX_SCALED_WINDOW_SHIFT) : 1);
                in_window = 0 < offset && offset < (wnd > 1 ? wnd : 1);
            }
            check = in_window ? T_IN_WINDOW : T_OUTSIDE;
        } else
            check = offset < 0 ? T_OUTSIDE : T_UNKNOWN;
        Py_SETREF(v[R_SEQ_CHECK], text(b, check));
    }
    if (s[S_SENDER_NEXT_SEQ] != Py_None) {
        uint64_t nxt;
        if ((got = as_u64(s[S_SENDER_NEXT_SEQ], &nxt)) <= 0) {
            rc = got;
            goto done;
        }
        const int64_t behind = seq_delta(seq, nxt);
        Py_SETREF(v[R_SEQ_INSIDE_SENT_DATA], boolean(-TOO_LARGE_SEQ_DELTA < behind && behind < 0));
    }
    if (!has_ack) Py_SETREF(v[R_ACK_CHECK], text(b, T_NONE));
    else if (s[S_RECEIVER_NEXT_SEQ] == Py_None) Py_SETREF(v[R_ACK_CHECK], text(b, T_UNKNOWN));
    else {
        uint64_t rn;
        if ((got = as_u64(s[S_RECEIVER_NEXT_SEQ], &rn)) <= 0) {
            rc = got;
            goto done;
        }
        Py_SETREF(v[R_EXPECTED_ACK], Py_NewRef(s[S_RECEIVER_NEXT_SEQ]));
        const int64_t d = seq_delta(ack, rn);
        Py_SETREF(v[R_ACK_CHECK], text(b, d == 0 ? T_EXACT : d < 0 ? T_OLD : T_AHEAD));
    }

    Py_SETREF(v[R_PRECEDED_BY], text(b, preceded_by(s[S_HISTORY_BEFORE])));
    if (s[S_PREV_TS] != Py_None) {
        const double idle = ts - PyFloat_AS_DOUBLE(s[S_PREV_TS]);
        Py_SETREF(v[R_IDLE_BEFORE], PyFloat_FromDouble(idle > 0.0 ? idle : 0.0));
        if (!v[R_IDLE_BEFORE]) goto done;
    }
    if (captured && segments != Py_None) {
        PyObject *segment = PyDict_GetItemWithError(segments, v[R_FRAME]);
        if (!segment && PyErr_Occurred()) goto done;
        if (segment && segment != Py_None) {
            PyObject *pair = PyObject_CallFunctionObjArgs(b->payload_context, segment, v[R_PAYLOAD_CAPTURED], NULL);
            if (!pair) goto done;
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                Py_DECREF(pair);
                PyErr_SetString(PyExc_TypeError, "payload_context must return a pair");
                goto done;
            }
            Py_SETREF(v[R_DIAGNOSTIC], Py_NewRef(PyTuple_GET_ITEM(pair, 0)));
            Py_SETREF(v[R_CAUSE_TEXT], Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
            Py_DECREF(pair);
        }
    }

    PyObject *flow = PyDict_GetItemWithError(flows, v[R_UID]);
    if (!flow && PyErr_Occurred()) goto done;
    if (flow && flow != Py_None) {
        if (PyObject_GetBuffer(flow, &fv, PyBUF_STRIDES) < 0) {
            PyErr_Clear();
            rc = 0;
            goto done;
        }
        have_flow = 1;
        if (fv.ndim != 1 || fv.itemsize != b->itemsize || !fv.strides) {
            rc = 0;
            goto done;
        }
        if (fv.shape[0] > 0 && context(b, v, fv.buf, fv.shape[0], fv.strides[0], r, seq_exact) < 0) goto done;
    }

    /* the record: cls.__new__(cls) with its __dict__ in field order */
    PyObject *d = PyDict_Copy(b->template);
    if (!d) goto done;
    for (int i = 0; i < N_REC; i++) {
        if (PyDict_SetItem(d, b->rec_names[i], v[i]) < 0) {
            Py_DECREF(d);
            goto done;
        }
    }
    PyObject *rec = b->cls->tp_new(b->cls, b->empty, NULL);
    if (!rec || PyObject_SetAttr(rec, b->dict_name, d) < 0) {
        Py_XDECREF(rec);
        Py_DECREF(d);
        goto done;
    }
    Py_DECREF(d);
    *out = rec;
    rc = 1;
done:
    if (have_flow) PyBuffer_Release(&fv);
    if (have_row) PyBuffer_Release(&row);
    for (int i = 0; i < N_SNAP; i++) Py_XDECREF(s[i]);
    for (int i = 0; i < N_REC; i++) Py_XDECREF(v[i]);
    return rc;
}

static PyObject *Builder_build(Builder *self, PyObject *args) {
    PyObject *vantage, *snapshots, *flows, *segments;
    if (!self->cls) {
        PyErr_SetString(PyExc_RuntimeError, "Builder not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!O!O", &vantage, &PyList_Type, &snapshots, &PyDict_Type, &flows, &segments))
        return NULL;
    if (segments != Py_None && !PyDict_Check(segments)) {
        PyErr_SetString(PyExc_TypeError, "segments must be a dict or None");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(snapshots);
    PyObject *records = PyList_New(n), *punted = PyList_New(0);
    if (!records || !punted) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = NULL;
        int got = make_record(self, vantage, PyList_GET_ITEM(snapshots, i), flows, segments, &rec);
        if (got < 0) goto fail;
        if (got == 0) {
            PyObject *k = PyLong_FromSsize_t(i);
            if (!k || PyList_Append(punted, k) < 0) {
                Py_XDECREF(k);
                goto fail;
            }
            Py_DECREF(k);
            rec = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(records, i, rec);
    }
    return Py_BuildValue("(NN)", records, punted);
fail:
    Py_XDECREF(records);
    Py_XDECREF(punted);
    return NULL;
}

static PyMethodDef Builder_methods[] = {
    {"build", (PyCFunction)Builder_build, METH_VARARGS,
     "build(vantage, snapshots, flows, segments) -> (records, punted): one record per RstSnapshot"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resetlens.tcp._crecord.Builder",
    .tp_doc = "ResetRecords of one analysis from RST snapshots and their flows",
    .tp_basicsize = sizeof(Builder),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Builder_init,
    .tp_dealloc = (destructor)Builder_dealloc,
    .tp_methods = Builder_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_crecord", "RST records' context walk in C", -1,
                                    NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__crecord(void) {
    if (PyType_Ready(&BuilderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&BuilderType);
    if (PyModule_AddObject(m, "Builder", (PyObject *)&BuilderType) < 0) {
        Py_DECREF(&BuilderType);
        Py_DECREF(m);
        return NULL;
    }
    /* the constants compiled in, so a test can check them against resetlens.tcp.resets and its imports */
    PyObject *consts = Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:d,s:i,s:i,s:i}", "FIN", FIN_F, "SYN", SYN_F, "RST", RST_F,
        "ACK", ACK_F, "RESERVED", RESERVED_F, "OPT_SACK", OPT_SACK, "OPT_MALFORMED", OPT_MALFORMED,
        "OPT_TRUNCATED", OPT_TRUNCATED, "TOO_LARGE_SEQ_DELTA", TOO_LARGE_SEQ_DELTA, "CHALLENGE_ACK_WINDOW",
        CHALLENGE_ACK_WINDOW, "AFTER_LIST_MAX", AFTER_LIST_MAX, "MAX_SCALED_WINDOW_SHIFT",
        MAX_SCALED_WINDOW_SHIFT, "LAST_PACKETS", LAST_PACKETS);
    PyObject *fields = PyTuple_New(N_REC);
    if (fields)
        for (int i = 0; i < N_REC; i++) PyTuple_SET_ITEM(fields, i, PyUnicode_FromString(REC_NAMES[i]));
    if (!consts || !fields || PyModule_AddObject(m, "CONSTANTS", consts) < 0) {
        Py_XDECREF(consts);
        Py_XDECREF(fields);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObject(m, "FIELDS", fields) < 0) {
        Py_DECREF(fields);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
