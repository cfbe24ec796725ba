/* Compiled twin of resetlens.blame.story.tell: the packet story of one reset, read straight from the flow.
 *
 * story.py's `tell_python` is the readable reference; this file restates it statement by statement
 * (tests/test_blame_cstory.py checks both give identical Story objects, every field's value and type, on
 * the lab bundles, the corpus, generated and random flows). Python configures it once at import:
 *
 *   configure(layout, itemsize, dtype, story_type, field_names, reply_window, tls_head, http_heads,
 *             after_cap, burst_window, fallback)
 *   tell(flow, rst_frame, src_lo=None, sport=None) -> Story | None
 *
 * The flow (a numpy array of PACKET_DTYPE rows, frame order, any stride) is read through the buffer
 * protocol at the field offsets Python passes in: no per-flow column lists, no numpy headers. Floats are
 * single subtractions and comparisons, as in Python, and the module is built with -ffp-contract=off, so
 * every time comes out bit-identical. The Story is made as Story.__new__ and filled attribute by attribute
 * in field order, as the dataclass __init__ does (it has no __post_init__ and every field is given).
 * Anything this file does not handle exactly (another dtype, a frame or address given as a float or a numpy
 * integer, unknown keywords) is handed to the Python reference, which gives the answer or the error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* TCP flag bits of the table's `flags` column and OPT_TS of its `opts` column (resetlens.capture.table). */
#define FIN_F 0x01
#define SYN_F 0x02
#define RST_F 0x04
#define ACK_F 0x10
#define OPT_TS_F 0x10

#define MAX_AFTER_CAP 256 /* largest list cap configure() accepts (the lists are built on the C stack) */
#define MAX_HTTP_HEADS 32  /* most "request starts like" heads configure() accepts */

/* Packet-table fields read here, in the order of configure()'s layout (offset, size per field). */
enum { F_FRAME, F_TS, F_SRC_LO, F_SPORT, F_FLAGS, F_PLEN, F_HEAD, F_TTL, F_IP_ID, F_OPTS, F_SEQ, F_ACK, N_COLS };
static const int COL_SIZE[N_COLS] = {8, 8, 8, 2, 2, 4, 4, 1, 4, 1, 4, 4};

/* Story fields in the dataclass's order; configure() checks the names against story.Story's. */
enum {
    S_RST_INDEX, S_SENDER_IS_ORIG, S_RST_ACK, S_SYN_SEEN, S_SYNACK_SEEN, S_ESTABLISHED, S_SENDER_DATA_BEFORE,
    S_PEER_DATA_BEFORE, S_SENDER_FIN_BEFORE, S_PEER_FIN_BEFORE, S_SENDER_RST_BEFORE, S_ANSWERS,
    S_ANSWERED_FRAME, S_REPLY_EXACT, S_GAP_BEFORE, S_PEER_IDLE_BEFORE_TRIGGER, S_SINCE_HANDSHAKE,
    S_SINCE_PEER_REQUEST, S_PEER_FIRST_HEAD, S_PEER_SENT_TLS_HELLO, S_PEER_SENT_HTTP, S_SENDER_FIRST_HEAD,
    S_SENDER_FIN_DELAY, S_SENDER_TTL_BASELINE, S_SENDER_IPID_PREV, S_SENDER_USED_TS, S_SENDER_AFTER,
    S_SENDER_DATA_AFTER, S_PEER_AFTER, S_PEER_DATA_AFTER, S_RST_BURST, S_BURST_SEQ_CHANGES, S_RST_TS,
    S_PACKETS, N_FIELDS
};
static const char *const FIELD_NAMES[N_FIELDS] = {
    "rst_index", "sender_is_orig", "rst_ack", "syn_seen", "synack_seen", "established", "sender_data_before",
    "peer_data_before", "sender_fin_before", "peer_fin_before", "sender_rst_before", "answers",
    "answered_frame", "reply_exact", "gap_before", "peer_idle_before_trigger", "since_handshake",
    "since_peer_request", "peer_first_head", "peer_sent_tls_hello", "peer_sent_http", "sender_first_head",
    "sender_fin_delay", "sender_ttl_baseline", "sender_ipid_prev", "sender_used_ts", "sender_after",
    "sender_data_after", "peer_after", "peer_data_after", "rst_burst", "burst_seq_changes", "rst_ts", "packets",
};

/* What configure() set; `configured` guards tell() before it. */
static int configured = 0;
static Py_ssize_t col_off[N_COLS];
static Py_ssize_t row_size;
static PyObject *packet_dtype;                 /* PACKET_DTYPE: flows of another dtype go to the fallback */
static PyTypeObject *story_type;               /* story.Story */
static PyObject *field_names[N_FIELDS];        /* interned attribute names */
static double reply_window;                    /* story.REPLY_WINDOW */
static uint64_t tls_head;                      /* story.TLS_HANDSHAKE_HEAD */
static uint64_t http_heads[MAX_HTTP_HEADS];    /* story.HTTP_HEADS */
static int n_http_heads;
static Py_ssize_t after_cap;                   /* story.AFTER_CAP */
static double burst_window;                    /* story.BURST_WINDOW */
static PyObject *fallback;                     /* story.tell_python */
static PyObject *empty_tuple;
static PyObject *s_dtype, *kw_src_lo, *kw_sport, *str_syn, *str_synack, *str_data, *str_fin, *str_ack, *str_none;

/* Unaligned native-endian reads of one field of row i (PACKET_DTYPE is packed). */
typedef struct {
    const char *buf;
    Py_ssize_t stride;
} Rows;

static inline const char *cell(const Rows *r, Py_ssize_t i, int col) { return r->buf + i * r->stride + col_off[col]; }
static inline uint64_t u64(const Rows *r, Py_ssize_t i, int col) {
    uint64_t v;
    memcpy(&v, cell(r, i, col), 8);
    return v;
}
static inline double f64(const Rows *r, Py_ssize_t i, int col) {
    double v;
    memcpy(&v, cell(r, i, col), 8);
    return v;
}
static inline uint32_t u32(const Rows *r, Py_ssize_t i, int col) {
    uint32_t v;
    memcpy(&v, cell(r, i, col), 4);
    return v;
}
static inline uint16_t u16(const Rows *r, Py_ssize_t i, int col) {
    uint16_t v;
    memcpy(&v, cell(r, i, col), 2);
    return v;
}
static inline uint8_t u8(const Rows *r, Py_ssize_t i, int col) { return *(const uint8_t *)cell(r, i, col); }

/* A Python int against a column of `max` at most: 0 it fits (*out set), 1 it can equal no value of the
 * column (negative or too large), -1 not an int (the caller hands the call to the fallback). */
static int as_column_value(PyObject *o, uint64_t max, uint64_t *out) {
    if (!PyLong_Check(o)) return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && v < 0)) return 1;
    uint64_t u;
    if (overflow > 0) {
        u = PyLong_AsUnsignedLongLong(o);
        if (u == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1; /* above 2**64 - 1 */
        }
    } else {
        u = (uint64_t)v;
    }
    if (u > max) return 1;
    *out = u;
    return 0;
}

/* A list of the first `k` frames. */
static PyObject *frame_list(const uint64_t *frames, Py_ssize_t k) {
    PyObject *list = PyList_New(k);
    if (!list) return NULL;
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *v = PyLong_FromUnsignedLongLong(frames[j]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, j, v);
    }
    return list;
}

static inline PyObject *opt_float(int present, double v) {
    if (!present) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static inline PyObject *opt_u64(int present, uint64_t v) {
    if (!present) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(v);
}

/* The story itself: story.tell_python over rows r[0..n), the RST at idx (n > 0). `sender_known` is 0 when
 * the sender given can equal no row (an address or port outside the columns' range). */
static PyObject *story_of(const Rows *r, Py_ssize_t n, Py_ssize_t idx, int sender_known, uint64_t s_lo,
                          uint64_t s_port) {
#define SENDER(i) (sender_known && u64(r, i, F_SRC_LO) == s_lo && u16(r, i, F_SPORT) == s_port)
    double rst_ts = f64(r, idx, F_TS);
    unsigned rst_fl = u16(r, idx, F_FLAGS);

    /* One walk over the packets before the RST (as tell_python's). */
    Py_ssize_t first_syn = -1, first_synack = -1;
    uint64_t sd = 0, pd = 0;
    int s_fin = 0, p_fin = 0, s_rst = 0;
    Py_ssize_t last_peer = -1, first_peer_data = -1, last_peer_data = -1, first_s_data = -1, last_s_data = -1;
    Py_ssize_t first_s_fin = -1, last_s_row = -1;
    Py_ssize_t ttl_counts[256];
    int any_ttl = 0;
    int all_ts = 1;
    memset(ttl_counts, 0, sizeof ttl_counts);
    for (Py_ssize_t i = 0; i < idx; i++) {
        unsigned f = u16(r, i, F_FLAGS);
        uint32_t p = u32(r, i, F_PLEN);
        if (f & SYN_F) {
            if (!(f & ACK_F)) {
                if (first_syn < 0) first_syn = i;
            } else if (first_synack < 0) {
                first_synack = i;
            }
        }
        if (SENDER(i)) {
            sd += p;
            if (f & FIN_F) {
                s_fin = 1;
                if (first_s_fin < 0) first_s_fin = i;
            }
            if (f & RST_F) {
                s_rst = 1;
            } else {
                last_s_row = i;
                ttl_counts[u8(r, i, F_TTL)]++;
                any_ttl = 1;
                if (!(u8(r, i, F_OPTS) & OPT_TS_F)) all_ts = 0;
            }
            if (p > 0) {
                if (first_s_data < 0) first_s_data = i;
                last_s_data = i;
            }
        } else {
            pd += p;
            if (f & FIN_F) p_fin = 1;
            last_peer = i;
            if (p > 0) {
                if (first_peer_data < 0) first_peer_data = i;
                last_peer_data = i;
            }
        }
    }
    Py_ssize_t o = first_syn >= 0 ? first_syn : 0;
    uint64_t orig_lo = u64(r, o, F_SRC_LO);
    unsigned orig_port = u16(r, o, F_SPORT);
    int sender_is_orig = sender_known && s_lo == orig_lo && s_port == orig_port;

    int established = 0;
    double since_handshake = 0.0;
    if (first_syn >= 0 && first_synack >= 0) {
        for (Py_ssize_t i = first_synack + 1; i < idx; i++) {
            if (u64(r, i, F_SRC_LO) == orig_lo && u16(r, i, F_SPORT) == orig_port &&
                (u16(r, i, F_FLAGS) & (ACK_F | SYN_F)) == ACK_F) {
                established = 1;
                since_handshake = rst_ts - f64(r, i, F_TS);
                break;
            }
        }
    }

    double gap_before = idx > 0 ? rst_ts - f64(r, idx - 1, F_TS) : 0.0;

    /* What the RST answers: the peer's last segment, right before it and shortly before. */
    PyObject *answers = str_none;
    int answered = 0, reply_exact = 0;
    uint64_t answered_frame = 0;
    double idle_trigger = 0.0;
    if (last_peer >= 0) {
        Py_ssize_t last = last_peer;
        if (rst_ts - f64(r, last, F_TS) <= reply_window && last == idx - 1) {
            unsigned lf = u16(r, last, F_FLAGS);
            uint32_t lp = u32(r, last, F_PLEN);
            uint64_t seg_len = (uint64_t)lp + ((lf & SYN_F) ? 1 : 0) + ((lf & FIN_F) ? 1 : 0);
            if ((lf & SYN_F) && !(lf & ACK_F))
                answers = str_syn;
            else if (lf & SYN_F)
                answers = str_synack;
            else if (lp > 0)
                answers = str_data;
            else if (lf & FIN_F)
                answers = str_fin;
            else if (lf & RST_F)
                answers = str_none;
            else
                answers = str_ack;
            if (answers != str_none) {
                answered = 1;
                answered_frame = u64(r, last, F_FRAME);
                if (rst_fl & ACK_F)
                    reply_exact = u32(r, idx, F_ACK) == ((u32(r, last, F_SEQ) + seg_len) & 0xFFFFFFFFu);
                else
                    reply_exact = (lf & ACK_F) && u32(r, idx, F_SEQ) == u32(r, last, F_ACK);
                idle_trigger = last > 0 ? f64(r, last, F_TS) - f64(r, last - 1, F_TS) : 0.0;
            }
        }
    }

    double since_req = last_peer_data >= 0 ? rst_ts - f64(r, last_peer_data, F_TS) : 0.0;
    uint64_t first_head = first_peer_data >= 0 ? u32(r, first_peer_data, F_HEAD) : 0;
    int has_fin_delay = first_s_fin >= 0 && last_s_data >= 0 && last_s_data < first_s_fin;
    double fin_delay = has_fin_delay ? f64(r, first_s_fin, F_TS) - f64(r, last_s_data, F_TS) : 0.0;
    uint64_t sender_head = first_s_data >= 0 ? u32(r, first_s_data, F_HEAD) : 0;

    /* The most common TTL; ties: the lowest of them. */
    uint64_t ttl_base = 0;
    if (any_ttl) {
        Py_ssize_t top = 0;
        for (int t = 0; t < 256; t++)
            if (ttl_counts[t] > top) {
                top = ttl_counts[t];
                ttl_base = (uint64_t)t;
            }
    }
    int used_ts = last_s_row >= 0 && all_ts;
    int is_http = 0;
    for (int k = 0; k < n_http_heads; k++)
        if (http_heads[k] == first_head) is_http = 1;

    /* What followed, each list cut at after_cap. */
    uint64_t s_after[MAX_AFTER_CAP], s_data_after[MAX_AFTER_CAP], p_after[MAX_AFTER_CAP],
        p_data_after[MAX_AFTER_CAP];
    Py_ssize_t ns = 0, nsd = 0, np_ = 0, npd = 0;
    for (Py_ssize_t i = idx + 1; i < n; i++) {
        unsigned f = u16(r, i, F_FLAGS);
        if (SENDER(i)) {
            if (!(f & RST_F)) {
                uint64_t fr = u64(r, i, F_FRAME);
                if (ns < after_cap) s_after[ns++] = fr;
                if (u32(r, i, F_PLEN) > 0 && nsd < after_cap) s_data_after[nsd++] = fr;
            }
        } else {
            uint64_t fr = u64(r, i, F_FRAME);
            if (np_ < after_cap) p_after[np_++] = fr;
            if (u32(r, i, F_PLEN) > 0 && !(f & RST_F) && npd < after_cap) p_data_after[npd++] = fr;
        }
    }
    /* The sender's RSTs within burst_window of this one (all of the flow's rows, before and after). */
    Py_ssize_t burst = 0;
    int seq_changes = 0;
    uint32_t burst_seq = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((u16(r, i, F_FLAGS) & RST_F) && SENDER(i) && fabs(f64(r, i, F_TS) - rst_ts) <= burst_window) {
            uint32_t sq = u32(r, i, F_SEQ);
            if (burst == 0)
                burst_seq = sq;
            else if (sq != burst_seq)
                seq_changes = 1;
            burst++;
        }
    }
#undef SENDER

    PyObject *v[N_FIELDS];
    v[S_RST_INDEX] = PyLong_FromSsize_t(idx);
    v[S_SENDER_IS_ORIG] = PyBool_FromLong(sender_is_orig);
    v[S_RST_ACK] = PyBool_FromLong(rst_fl & ACK_F);
    v[S_SYN_SEEN] = PyBool_FromLong(first_syn >= 0);
    v[S_SYNACK_SEEN] = PyBool_FromLong(first_synack >= 0);
    v[S_ESTABLISHED] = PyBool_FromLong(established);
    v[S_SENDER_DATA_BEFORE] = PyLong_FromUnsignedLongLong(sd);
    v[S_PEER_DATA_BEFORE] = PyLong_FromUnsignedLongLong(pd);
    v[S_SENDER_FIN_BEFORE] = PyBool_FromLong(s_fin);
    v[S_PEER_FIN_BEFORE] = PyBool_FromLong(p_fin);
    v[S_SENDER_RST_BEFORE] = PyBool_FromLong(s_rst);
    Py_INCREF(answers);
    v[S_ANSWERS] = answers;
    v[S_ANSWERED_FRAME] = opt_u64(answered, answered_frame);
    v[S_REPLY_EXACT] = PyBool_FromLong(reply_exact);
    v[S_GAP_BEFORE] = PyFloat_FromDouble(gap_before);
    v[S_PEER_IDLE_BEFORE_TRIGGER] = PyFloat_FromDouble(idle_trigger);
    v[S_SINCE_HANDSHAKE] = opt_float(established, since_handshake);
    v[S_SINCE_PEER_REQUEST] = opt_float(last_peer_data >= 0, since_req);
    v[S_PEER_FIRST_HEAD] = PyLong_FromUnsignedLongLong(first_head);
    v[S_PEER_SENT_TLS_HELLO] = PyBool_FromLong((first_head >> 16) == tls_head);
    v[S_PEER_SENT_HTTP] = PyBool_FromLong(is_http);
    v[S_SENDER_FIRST_HEAD] = PyLong_FromUnsignedLongLong(sender_head);
    v[S_SENDER_FIN_DELAY] = opt_float(has_fin_delay, fin_delay);
    v[S_SENDER_TTL_BASELINE] = opt_u64(any_ttl, ttl_base);
    v[S_SENDER_IPID_PREV] = opt_u64(last_s_row >= 0, last_s_row >= 0 ? u32(r, last_s_row, F_IP_ID) : 0);
    v[S_SENDER_USED_TS] = PyBool_FromLong(used_ts);
    v[S_SENDER_AFTER] = frame_list(s_after, ns);
    v[S_SENDER_DATA_AFTER] = frame_list(s_data_after, nsd);
    v[S_PEER_AFTER] = frame_list(p_after, np_);
    v[S_PEER_DATA_AFTER] = frame_list(p_data_after, npd);
    v[S_RST_BURST] = PyLong_FromSsize_t(burst);
    v[S_BURST_SEQ_CHANGES] = PyBool_FromLong(seq_changes);
    v[S_RST_TS] = PyFloat_FromDouble(rst_ts);
    v[S_PACKETS] = PyLong_FromSsize_t(n);

    PyObject *story = NULL;
    int k;
    for (k = 0; k < N_FIELDS; k++)
        if (!v[k]) goto done;
    story = story_type->tp_new(story_type, empty_tuple, NULL); /* Story.__new__(Story) */
    if (!story) goto done;
    setattrofunc setattro = Py_TYPE(story)->tp_setattro;
    for (k = 0; k < N_FIELDS; k++) /* in field order, as the dataclass __init__ assigns them */
        if (setattro(story, field_names[k], v[k]) < 0) {
            Py_CLEAR(story);
            break;
        }
done:
    for (k = 0; k < N_FIELDS; k++) Py_XDECREF(v[k]);
    return story;
}

static PyObject *call_fallback(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return PyObject_Vectorcall(fallback, args, nargs, kwnames);
}

static inline int same_name(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_Check(a) && PyUnicode_Compare(a, b) == 0);
}

static PyObject *tell(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    (void)self;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_cstory.tell called before configure()");
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs < 2 || nargs > 4) return call_fallback(args, nargs, kwnames);
    PyObject *flow = args[0], *frame_obj = args[1];
    PyObject *src_lo_obj = nargs > 2 ? args[2] : Py_None, *sport_obj = nargs > 3 ? args[3] : Py_None;
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        if (nargs <= 2 && same_name(name, kw_src_lo))
            src_lo_obj = args[nargs + j];
        else if (nargs <= 3 && same_name(name, kw_sport))
            sport_obj = args[nargs + j];
        else
            return call_fallback(args, nargs, kwnames); /* a name the reference takes or refuses itself */
    }

    /* Only PACKET_DTYPE rows and plain ints take the compiled path. */
    PyObject *dtype = PyObject_GetAttr(flow, s_dtype);
    if (!dtype) {
        PyErr_Clear();
        return call_fallback(args, nargs, kwnames);
    }
    int same = dtype == packet_dtype ? 1 : PyObject_RichCompareBool(dtype, packet_dtype, Py_EQ);
    Py_DECREF(dtype);
    if (same != 1) {
        PyErr_Clear();
        return call_fallback(args, nargs, kwnames);
    }
    uint64_t frame = 0, s_lo = 0, s_port = 0;
    int frame_fit = as_column_value(frame_obj, UINT64_MAX, &frame);
    int lo_fit = src_lo_obj == Py_None ? 0 : as_column_value(src_lo_obj, UINT64_MAX, &s_lo);
    int port_fit = sport_obj == Py_None ? 0 : as_column_value(sport_obj, 0xFFFF, &s_port);
    if (frame_fit < 0 || lo_fit < 0 || port_fit < 0) return call_fallback(args, nargs, kwnames);

    Py_buffer view;
    if (PyObject_GetBuffer(flow, &view, PyBUF_STRIDES) < 0) {
        PyErr_Clear();
        return call_fallback(args, nargs, kwnames);
    }
    PyObject *result = NULL;
    if (view.ndim != 1 || view.itemsize != row_size) {
        PyBuffer_Release(&view);
        return call_fallback(args, nargs, kwnames);
    }
    Rows rows = {(const char *)view.buf, view.strides ? view.strides[0] : row_size};
    Py_ssize_t n = view.shape[0];
    if (n == 0 || frame_fit == 1) { /* empty, or a frame number no row can hold */
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    /* bisect_left over the frame column */
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (u64(&rows, mid, F_FRAME) < frame)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= n || u64(&rows, lo, F_FRAME) != frame) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    if (src_lo_obj == Py_None) s_lo = u64(&rows, lo, F_SRC_LO);
    if (sport_obj == Py_None) s_port = u16(&rows, lo, F_SPORT);
    result = story_of(&rows, n, lo, lo_fit == 0 && port_fit == 0, s_lo, s_port);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *intern(const char *s, PyObject **slot) {
    PyObject *o = PyUnicode_InternFromString(s);
    Py_XSETREF(*slot, o);
    return o;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *layout, *dtype, *stype, *names, *heads, *fb;
    Py_ssize_t itemsize, cap;
    double window, bwindow;
    unsigned long long thead;
    if (!PyArg_ParseTuple(args, "O!nOOO!dKO!ndO:configure", &PyTuple_Type, &layout, &itemsize, &dtype, &stype,
                          &PyTuple_Type, &names, &window, &thead, &PyTuple_Type, &heads, &cap, &bwindow, &fb))
        return NULL;
    if (PyTuple_GET_SIZE(layout) != 2 * N_COLS) {
        PyErr_SetString(PyExc_ValueError, "layout: (offset, size) of each field read");
        return NULL;
    }
    Py_ssize_t off[N_COLS];
    for (int c = 0; c < N_COLS; c++) {
        off[c] = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2 * c));
        Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2 * c + 1));
        if (PyErr_Occurred()) return NULL;
        if (size != COL_SIZE[c] || off[c] < 0 || off[c] + size > itemsize) {
            PyErr_Format(PyExc_ValueError, "layout: field %d has size %zd at offset %zd", c, size, off[c]);
            return NULL;
        }
    }
    if (!PyType_Check(stype) || ((PyTypeObject *)stype)->tp_new == NULL) {
        PyErr_SetString(PyExc_TypeError, "story_type: a class");
        return NULL;
    }
    if (PyTuple_GET_SIZE(names) != N_FIELDS) {
        PyErr_Format(PyExc_ValueError, "Story has %zd fields, the C story %d", PyTuple_GET_SIZE(names), N_FIELDS);
        return NULL;
    }
    PyObject *interned[N_FIELDS];
    for (int k = 0; k < N_FIELDS; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, FIELD_NAMES[k]) != 0) {
            PyErr_Format(PyExc_ValueError, "Story field %d is %R, the C story has %s", k, name, FIELD_NAMES[k]);
            return NULL;
        }
        interned[k] = name;
    }
    Py_ssize_t nh = PyTuple_GET_SIZE(heads);
    if (nh > MAX_HTTP_HEADS) {
        PyErr_SetString(PyExc_ValueError, "too many HTTP heads");
        return NULL;
    }
    uint64_t h[MAX_HTTP_HEADS];
    for (Py_ssize_t k = 0; k < nh; k++) {
        h[k] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(heads, k));
        if (PyErr_Occurred()) return NULL;
    }
    if (cap < 0 || cap > MAX_AFTER_CAP) {
        PyErr_SetString(PyExc_ValueError, "after_cap out of range");
        return NULL;
    }
    if (!PyCallable_Check(fb)) {
        PyErr_SetString(PyExc_TypeError, "fallback: a callable");
        return NULL;
    }
    if (!empty_tuple && !(empty_tuple = PyTuple_New(0))) return NULL;
    if (!intern("dtype", &s_dtype) || !intern("src_lo", &kw_src_lo) || !intern("sport", &kw_sport) || !intern("syn", &str_syn) ||
        !intern("synack", &str_synack) || !intern("data", &str_data) || !intern("fin", &str_fin) ||
        !intern("ack", &str_ack) || !intern("", &str_none))
        return NULL;
    for (int k = 0; k < N_FIELDS; k++) {
        Py_INCREF(interned[k]);
        PyUnicode_InternInPlace(&interned[k]);
        Py_XSETREF(field_names[k], interned[k]);
    }
    memcpy(col_off, off, sizeof off);
    row_size = itemsize;
    Py_INCREF(dtype);
    Py_XSETREF(packet_dtype, dtype);
    Py_INCREF(stype);
    Py_XSETREF(story_type, (PyTypeObject *)stype);
    reply_window = window;
    tls_head = thead;
    memcpy(http_heads, h, sizeof h);
    n_http_heads = (int)nh;
    after_cap = cap;
    burst_window = bwindow;
    Py_INCREF(fb);
    Py_XSETREF(fallback, fb);
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(layout, itemsize, dtype, story_type, field_names, reply_window, tls_head, http_heads, "
     "after_cap, burst_window, fallback): the table layout, the Story class and story.py's constants"},
    {"tell", (PyCFunction)(void (*)(void))tell, METH_FASTCALL | METH_KEYWORDS,
     "tell(flow, rst_frame, src_lo=None, sport=None) -> Story | None: story.tell_python, compiled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cstory", "The packet story of a reset in C", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cstory(void) { return PyModule_Create(&module); }
