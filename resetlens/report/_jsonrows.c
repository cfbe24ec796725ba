/* JSON text of connection rows, straight from the columns of a resetlens.tcp.conntable.ConnectionTable.
 *
 * The JSON writer's pure-Python path formats one f-string per row; a 1 GB capture has ~150 k rows and
 * that costs ~0.3 s. This builds the same text in C (floats in Python's repr, strings escaped as JSON).
 * The formatting runs without the GIL: the strings' UTF-8 is collected first (with the GIL), so a thread
 * can write the rows while the main thread goes on with the analysis.
 *
 * rows(columns, vantages, history, texts, uids, fd=-1) -> bytes (UTF-8), or with fd >= 0 the number of
 * bytes written to that file descriptor (in ~1 MiB writes, without the GIL)
 *   columns:  tuple of 15 one-dimensional buffers (any stride, e.g. fields of a structured array), one
 *             value per row, in this order and these types:
 *             idx i8, vantage u2, ts f8, duration f8, orig_p u2, resp_p u2, state u1,
 *             orig_bytes i8, resp_bytes i8, orig_pkts i8, resp_pkts i8, first_frame i8, last_frame i8,
 *             orig_id i8, resp_id i8 (indexes into texts)
 *   vantages: tuple of str, indexed by the vantage column
 *   history:  tuple of str, one per row
 *   texts:    tuple of str (address texts), indexed by orig_id and resp_id
 *   uids:     None (uid = "C{idx+1}@{vantage}") or a tuple of str, one per row
 * Rows are separated by ",\n  "; no leading indent or trailing separator. Non-finite floats are the
 * caller's business (it checks first): they would come out as Python's repr, which JSON does not allow.
 * A str that UTF-8 cannot carry (a lone surrogate) raises UnicodeError before anything is written.
 *
 * ladders(...) formats the packet rows of ladder diagrams the same way, as orjson's indented text (see
 * the comment above it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Column order of the `columns` tuple. */
enum { C_IDX, C_VANTAGE, C_TS, C_DURATION, C_ORIG_P, C_RESP_P, C_STATE, C_ORIG_BYTES, C_RESP_BYTES,
       C_ORIG_PKTS, C_RESP_PKTS, C_FIRST_FRAME, C_LAST_FRAME, C_ORIG_ID, C_RESP_ID, N_COLUMNS };
/* Bytes per value of each column. */
static const Py_ssize_t WIDTH[N_COLUMNS] = {8, 2, 8, 8, 2, 2, 1, 8, 8, 8, 8, 8, 8, 8, 8};

static const char *STATE_CODES[] = {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                                    "SH", "SHR", "OTH"};
#define N_STATES 13
#define FLUSH_AT (1 << 20) /* with an fd: write out whenever this much text is buffered */

/* What went wrong without the GIL (turned into a Python exception once it is held again). */
enum { OK = 0, ERR_MEMORY, ERR_IO, ERR_RANGE };

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
    int err, err_no; /* the first failure; every later call is a no-op */
    int fixed;       /* buf is not ours to grow (a bytes object's): running out of room is ERR_RANGE */
} Out;

typedef struct {
    const char *s;
    Py_ssize_t n;
} Str;

static int out_grow(Out *o, Py_ssize_t more) { /* GIL-free: raw allocator, failure kept in o->err */
    if (o->err) return -1;
    if (o->len + more <= o->cap) return 0;
    if (o->fixed) {
        o->err = ERR_RANGE;
        return -1;
    }
    Py_ssize_t cap = o->cap ? o->cap : 1 << 16;
    while (cap < o->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) { o->err = ERR_MEMORY; return -1; }
        cap *= 2;
    }
    char *b = PyMem_RawRealloc(o->buf, (size_t)cap);
    if (!b) { o->err = ERR_MEMORY; return -1; }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static inline int out_reserve(Out *o, Py_ssize_t more) { /* room for `more` bytes (the check inlined) */
    if (!o->err && o->len + more <= o->cap) return 0;
    return out_grow(o, more);
}

static int out_raw(Out *o, const char *s, Py_ssize_t n) {
    if (out_reserve(o, n) < 0) return -1;
    memcpy(o->buf + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

#define OUT_LIT(o, s) out_raw((o), (s), (Py_ssize_t)(sizeof(s) - 1))

static int out_flush(Out *o, int fd) { /* everything buffered to fd (partial writes and EINTR retried) */
    Py_ssize_t done = 0;
    while (done < o->len) {
        ssize_t w = write(fd, o->buf + done, (size_t)(o->len - done));
        if (w < 0) {
            if (errno == EINTR) continue;
            o->err = ERR_IO;
            o->err_no = errno;
            return -1;
        }
        done += w;
    }
    o->len = 0;
    return 0;
}

static int out_int(Out *o, long long v) {  /* decimal digits by hand: snprintf dominated the rows */
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return out_raw(o, p, end - p);
}

/* Powers of ten that doubles hold exactly. */
static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
static const int64_t IPOW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};
#define MAX_FAST_DECIMALS 9
#define FAST_LIMIT 2251799813685248.0 /* 2^51: below it, v * 10^k is within 3/8 of the integer sought */

/* repr(v) without the general shortest-digits search when v is m / 10^k for a small k (a capture
 * timestamp in µs is): the first k whose nearest integer m gives back v exactly is the shortest
 * representation (m and 10^k are exact doubles, so m / 10^k is correctly rounded, as parsing the text
 * would be), and below FAST_LIMIT no other integer can also give v. Returns 0 when it does not apply. */
static int fast_repr(Out *o, double v) {
    int neg = v < 0;
    double a = neg ? -v : v;
    if (!(a >= 1e-4 && a < FAST_LIMIT)) return 0; /* 0, -0, tiny, huge, NaN: repr's own rules */
    for (int k = 0; k <= MAX_FAST_DECIMALS; k++) {
        double scaled = a * POW10[k];
        if (scaled >= FAST_LIMIT) return 0;
        double r = nearbyint(scaled);
        if (r / POW10[k] != a) continue;
        int64_t m = (int64_t)r;
        int64_t whole = m / IPOW10[k], frac = m % IPOW10[k];
        if (out_reserve(o, 48) < 0) return -1;
        if (neg) o->buf[o->len++] = '-';
        if (out_int(o, whole) < 0) return -1;
        o->buf[o->len++] = '.';
        if (k == 0) {
            o->buf[o->len++] = '0'; /* "5.0", as repr writes integral floats */
            return 1;
        }
        for (int d = k - 1; d >= 0; d--) { /* the k decimals, leading zeros kept */
            o->buf[o->len + d] = (char)('0' + frac % 10);
            frac /= 10;
        }
        o->len += k;
        return 1;
    }
    return 0;
}

/* ---- repr(v) without the GIL: the shortest digits that read back as v, from snprintf and strtod ----
 * (Python's own dtoa keeps unguarded shared state, so it needs the GIL.) Correct rounding by snprintf
 * ("%.*e") and strtod is glibc's and C99 Annex F's promise; the locale must write '.' (checked first). */

#define MAX_DIGITS 17 /* 17 significant digits always read back as the same double */

/* v > 0 correctly rounded to p significant digits: the digits (no dot) into d, the decimal exponent of
 * the first digit into *e10 (v ~ d[0].d[1..] x 10^e10). Returns p, or 0 if snprintf misbehaved. */
static int digits_of(double v, int p, char *d, int *e10) {
    char text[40];
    int n = snprintf(text, sizeof text, "%.*e", p - 1, v);
    if (n <= 0 || n >= (int)sizeof text) return 0;
    int k = 0;
    const char *s = text;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') d[k++] = *s;
    if (*s != 'e' || k != p) return 0;
    *e10 = atoi(s + 1);
    return p;
}

/* Whether the p digits d with exponent e10 read back (strtod, correctly rounded) as v. */
static int reads_back(const char *d, int p, int e10, double v) {
    char text[48];
    int k = 0;
    text[k++] = d[0];
    text[k++] = '.';
    memcpy(text + k, d + 1, (size_t)(p - 1));
    k += p - 1;
    k += snprintf(text + k, sizeof text - (size_t)k, "e%d", e10);
    return strtod(text, NULL) == v;
}

/* The p-digit string one unit in the last place above d (the digits of the next p-digit decimal); returns
 * the exponent, which grows by one when 99..9 carries to 100..0. */
static int digits_up(char *d, int p, int e10) {
    int i = p - 1;
    while (i >= 0 && d[i] == '9') d[i--] = '0';
    if (i >= 0) {
        d[i]++;
        return e10;
    }
    d[0] = '1';
    return e10 + 1;
}

/* The 17 digits `all` (exponent e_all, v correctly rounded) rounded to p < 17 digits, when they decide it:
 * they are within half a unit of their last place of v, so only dropped digits of exactly 50..0 leave
 * open which way v rounds (then 0: ask snprintf). Saves a snprintf per length tried. */
static int rounded_from(const char *all, int e_all, int p, char *d, int *e10) {
    int cmp = all[p] - '5';
    for (int i = p + 1; cmp == 0 && i < MAX_DIGITS; i++)
        if (all[i] != '0') cmp = 1;
    if (cmp == 0) return 0;
    memcpy(d, all, (size_t)p);
    *e10 = cmp > 0 ? digits_up(d, p, e_all) : e_all;
    return p;
}

/* Shortest digits of v > 0 (finite) that read back as v, and the closest such to v, as repr's dtoa picks.
 * For a double that is not a power of two the round-trip interval is symmetric around v, so the correctly
 * rounded p digits read back whenever any p digits do, and they do for every p above the shortest: search
 * downwards from 17. A power of two has half the room below it that it has above: there the p-digit
 * decimal just above the correctly rounded one may read back when that does not, so every p is tried
 * from 1 up with both. Returns the number of digits (0 on a snprintf failure). */
static int shortest_digits(double v, char *d, int *e10) {
    int exp2;
    double m = frexp(v, &exp2);
    int power_of_two = m == 0.5 && v >= 2.2250738585072014e-308; /* subnormals: even spacing */
    if (!power_of_two) {
        char all[MAX_DIGITS + 1], cand[MAX_DIGITS + 1];
        int e_all, ce;
        if (!digits_of(v, MAX_DIGITS, all, &e_all)) return 0;
        memcpy(d, all, MAX_DIGITS);
        *e10 = e_all;
        int best = MAX_DIGITS;
        for (int p = MAX_DIGITS - 1; p >= 1; p--) {
            if (!rounded_from(all, e_all, p, cand, &ce) && !digits_of(v, p, cand, &ce)) return best;
            if (!reads_back(cand, p, ce, v)) break;
            memcpy(d, cand, (size_t)p);
            *e10 = ce;
            best = p;
        }
        return best;
    }
    for (int p = 1; p <= MAX_DIGITS; p++) {
        if (!digits_of(v, p, d, e10)) return 0;
        if (reads_back(d, p, *e10, v)) return p;
        char up[MAX_DIGITS + 1];
        memcpy(up, d, (size_t)p);
        int ue = digits_up(up, p, *e10);
        if (reads_back(up, p, ue, v)) {
            memcpy(d, up, (size_t)p);
            *e10 = ue;
            return p;
        }
    }
    return digits_of(v, MAX_DIGITS, d, e10);
}

/* repr(v) laid out from its shortest digits: fixed notation for 1e-4 <= |v| < 1e16 (".0" on integral
 * values), else d.ddde+XX with at least two exponent digits. */
static int repr_nogil(Out *o, double v) {
    if (out_reserve(o, 40) < 0) return -1;
    char *w = o->buf + o->len, *start = w;
    if (signbit(v)) {
        *w++ = '-';
        v = -v;
    }
    if (v == 0.0) {
        memcpy(w, "0.0", 3);
        o->len += (w + 3) - start;
        return 0;
    }
    char d[MAX_DIGITS + 1];
    int e10, p = shortest_digits(v, d, &e10);
    if (!p) {
        o->err = ERR_RANGE;
        return -1;
    }
    if (e10 >= -4 && e10 < 16) {
        if (e10 < 0) {
            *w++ = '0';
            *w++ = '.';
            for (int z = -1; z > e10; z--) *w++ = '0';
            memcpy(w, d, (size_t)p);
            w += p;
        } else if (e10 + 1 < p) {
            memcpy(w, d, (size_t)(e10 + 1));
            w += e10 + 1;
            *w++ = '.';
            memcpy(w, d + e10 + 1, (size_t)(p - e10 - 1));
            w += p - e10 - 1;
        } else {
            memcpy(w, d, (size_t)p);
            w += p;
            for (int z = p; z <= e10; z++) *w++ = '0';
            *w++ = '.';
            *w++ = '0';
        }
    } else {
        *w++ = d[0];
        if (p > 1) {
            *w++ = '.';
            memcpy(w, d + 1, (size_t)(p - 1));
            w += p - 1;
        }
        w += sprintf(w, "e%c%02d", e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
    }
    o->len += w - start;
    return 0;
}

/* Whether snprintf and strtod use '.' here (a C library locale set by the program could change that). */
static int locale_writes_dot(void) {
    const struct lconv *lc = localeconv();
    return lc && lc->decimal_point && strcmp(lc->decimal_point, ".") == 0;
}

static int out_float(Out *o, double v, int gil_held) {
    int fast = fast_repr(o, v);
    if (fast != 0) return fast < 0 ? -1 : 0;
    if (!gil_held) return repr_nogil(o, v);
    char *s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);  /* exactly repr(float) */
    if (!s) {
        o->err = ERR_MEMORY;
        return -1;
    }
    int rc = out_raw(o, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

/* UTF-8 text as a JSON string's contents (no quotes): quotes, backslash and control characters escaped. */
static int out_json_inner(Out *o, Str str) {
    const char *s = str.s;
    Py_ssize_t n = str.n;
    if (out_reserve(o, 6 * n) < 0) return -1;
    char *d = o->buf + o->len;
    Py_ssize_t plain = 0;  /* addresses, histories and uids rarely need escaping: copy them whole */
    while (plain < n && (unsigned char)s[plain] >= 0x20 && s[plain] != '"' && s[plain] != '\\') plain++;
    memcpy(d, s, (size_t)plain);
    d += plain;
    for (Py_ssize_t i = plain; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { *d++ = '\\'; *d++ = (char)c; }
        else if (c == '\n') { *d++ = '\\'; *d++ = 'n'; }
        else if (c == '\r') { *d++ = '\\'; *d++ = 'r'; }
        else if (c == '\t') { *d++ = '\\'; *d++ = 't'; }
        else if (c == '\b') { *d++ = '\\'; *d++ = 'b'; }
        else if (c == '\f') { *d++ = '\\'; *d++ = 'f'; }
        else if (c < 0x20) {  /* \u00XX, as Python's json writes it */
            static const char HEX[] = "0123456789abcdef";
            memcpy(d, "\\u00", 4);
            d[4] = HEX[c >> 4];
            d[5] = HEX[c & 15];
            d += 6;
        }
        else *d++ = (char)c;
    }
    o->len = d - o->buf;
    return 0;
}

static int out_json_str(Out *o, Str s) {
    if (OUT_LIT(o, "\"") < 0 || out_json_inner(o, s) < 0) return -1;
    return OUT_LIT(o, "\"");
}

/* Everything the formatting needs, gathered with the GIL held; read-only afterwards. */
typedef struct {
    Py_ssize_t n;
    const char *col[N_COLUMNS];
    Py_ssize_t stride[N_COLUMNS];
    Str *vantages, *texts, *history, *uids; /* uids NULL: made from idx and vantage */
    Py_ssize_t n_vantages, n_texts;
    int fd;        /* < 0: all text into the buffer */
    int gil_held;  /* the locale does not write '.': floats through Python's own repr, GIL kept */
    Py_ssize_t written;
} Job;

static inline int64_t i8_at(const Job *j, int c, Py_ssize_t i) {
    int64_t v;
    memcpy(&v, j->col[c] + i * j->stride[c], 8); /* fields of a packed structured array: unaligned */
    return v;
}
static inline double f8_at(const Job *j, int c, Py_ssize_t i) {
    double v;
    memcpy(&v, j->col[c] + i * j->stride[c], 8);
    return v;
}
static inline unsigned u2_at(const Job *j, int c, Py_ssize_t i) {
    uint16_t v;
    memcpy(&v, j->col[c] + i * j->stride[c], 2);
    return v;
}

static int format_rows(Job *j, Out *o) { /* may run without the GIL: touches no Python object */
    for (Py_ssize_t i = 0; i < j->n; i++) {
        unsigned vi = u2_at(j, C_VANTAGE, i);
        unsigned st = (unsigned char)j->col[C_STATE][i * j->stride[C_STATE]];
        int64_t oid = i8_at(j, C_ORIG_ID, i), rid = i8_at(j, C_RESP_ID, i);
        if (vi >= j->n_vantages || st >= N_STATES || oid < 0 || oid >= j->n_texts || rid < 0 ||
            rid >= j->n_texts) {
            o->err = ERR_RANGE;
            return -1;
        }
        Str vname = j->vantages[vi];
        if (i) OUT_LIT(o, ",\n  ");
        OUT_LIT(o, "{\"vantage\":");
        out_json_str(o, vname);
        OUT_LIT(o, ",\"ts\":");
        out_float(o, f8_at(j, C_TS, i), j->gil_held);
        OUT_LIT(o, ",\"orig_h\":");
        out_json_str(o, j->texts[oid]);
        OUT_LIT(o, ",\"orig_p\":");
        out_int(o, u2_at(j, C_ORIG_P, i));
        OUT_LIT(o, ",\"resp_h\":");
        out_json_str(o, j->texts[rid]);
        OUT_LIT(o, ",\"resp_p\":");
        out_int(o, u2_at(j, C_RESP_P, i));
        OUT_LIT(o, ",\"conn_state\":\"");
        out_raw(o, STATE_CODES[st], (Py_ssize_t)strlen(STATE_CODES[st]));
        OUT_LIT(o, "\",\"history\":");
        out_json_str(o, j->history[i]);
        OUT_LIT(o, ",\"duration\":");
        out_float(o, f8_at(j, C_DURATION, i), j->gil_held);
        OUT_LIT(o, ",\"orig_bytes\":");
        out_int(o, i8_at(j, C_ORIG_BYTES, i));
        OUT_LIT(o, ",\"resp_bytes\":");
        out_int(o, i8_at(j, C_RESP_BYTES, i));
        OUT_LIT(o, ",\"uid\":");
        if (j->uids == NULL) {
            OUT_LIT(o, "\"C");
            out_int(o, i8_at(j, C_IDX, i) + 1);
            OUT_LIT(o, "@");
            out_json_inner(o, vname);
            OUT_LIT(o, "\"");
        } else {
            out_json_str(o, j->uids[i]);
        }
        OUT_LIT(o, ",\"orig_pkts\":");
        out_int(o, i8_at(j, C_ORIG_PKTS, i));
        OUT_LIT(o, ",\"resp_pkts\":");
        out_int(o, i8_at(j, C_RESP_PKTS, i));
        OUT_LIT(o, ",\"first_frame\":");
        out_int(o, i8_at(j, C_FIRST_FRAME, i));
        OUT_LIT(o, ",\"last_frame\":");
        out_int(o, i8_at(j, C_LAST_FRAME, i));
        OUT_LIT(o, "}");
        if (o->err) return -1;
        if (j->fd >= 0 && o->len >= FLUSH_AT) {
            j->written += o->len;
            if (out_flush(o, j->fd) < 0) return -1;
        }
    }
    if (j->fd >= 0) {
        j->written += o->len;
        return out_flush(o, j->fd);
    }
    return 0;
}

/* UTF-8 of each str of a tuple (its own buffers: valid while the tuple lives; a tuple cannot change). */
static int utf8_of(PyObject *tuple, Str *into) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        PyObject *s = PyTuple_GET_ITEM(tuple, i);
        if (!PyUnicode_Check(s)) {
            PyErr_SetString(PyExc_TypeError, "rows: expected str items");
            return -1;
        }
        into[i].s = PyUnicode_AsUTF8AndSize(s, &into[i].n);
        if (!into[i].s) return -1;
    }
    return 0;
}

static PyObject *rows(PyObject *self, PyObject *args) {
    PyObject *columns, *vantages, *history, *texts, *uids;
    int fd = -1;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O|i", &PyTuple_Type, &columns, &PyTuple_Type, &vantages, &PyTuple_Type,
                          &history, &PyTuple_Type, &texts, &uids, &fd))
        return NULL;
    if (PyTuple_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "rows: expected 15 columns");
        return NULL;
    }
    if (uids != Py_None && !PyTuple_Check(uids)) {
        PyErr_SetString(PyExc_TypeError, "rows: uids must be None or a tuple");
        return NULL;
    }
    Py_buffer views[N_COLUMNS];
    int got = 0;
    PyObject *result = NULL;
    Out o = {NULL, 0, 0, OK, 0};
    Job j;
    memset(&j, 0, sizeof j);
    Str *strs = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(history);
    for (; got < N_COLUMNS; got++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(columns, got), &views[got], PyBUF_STRIDED_RO) < 0) goto done;
        Py_buffer *v = &views[got];
        if (v->itemsize != WIDTH[got] || v->ndim > 1 || (v->ndim == 1 ? v->shape[0] : 1) != n) {
            PyErr_Format(PyExc_ValueError, "rows: column %d is not %zd values of %zd bytes", got, n, WIDTH[got]);
            got++;
            goto done;
        }
        j.col[got] = v->buf;
        j.stride[got] = v->ndim == 1 ? v->strides[0] : v->itemsize;
    }
    if (uids != Py_None && PyTuple_GET_SIZE(uids) != n) {
        PyErr_SetString(PyExc_ValueError, "rows: uids and history of different lengths");
        goto done;
    }
    j.n = n;
    j.n_vantages = PyTuple_GET_SIZE(vantages);
    j.n_texts = PyTuple_GET_SIZE(texts);
    Py_ssize_t n_strs = j.n_vantages + j.n_texts + n + (uids != Py_None ? n : 0);
    strs = PyMem_Calloc((size_t)n_strs + 1, sizeof(Str));
    if (!strs) {
        PyErr_NoMemory();
        goto done;
    }
    j.vantages = strs;
    j.texts = j.vantages + j.n_vantages;
    j.history = j.texts + j.n_texts;
    j.uids = uids != Py_None ? j.history + n : NULL;
    if (utf8_of(vantages, j.vantages) < 0 || utf8_of(texts, j.texts) < 0 || utf8_of(history, j.history) < 0 ||
        (uids != Py_None && utf8_of(uids, j.uids) < 0))
        goto done;
    j.fd = fd;
    j.gil_held = !locale_writes_dot();
    if (fd < 0 && out_reserve(&o, n * 448) < 0) { /* a typical row is ~310 bytes: one allocation */
        PyErr_NoMemory();
        goto done;
    }
    if (j.gil_held) {
        format_rows(&j, &o);
    } else {
        Py_BEGIN_ALLOW_THREADS
        format_rows(&j, &o);
        Py_END_ALLOW_THREADS
    }
    if (o.err == ERR_MEMORY) PyErr_NoMemory();
    else if (o.err == ERR_IO) {
        errno = o.err_no;
        PyErr_SetFromErrno(PyExc_OSError);
    } else if (o.err == ERR_RANGE) PyErr_SetString(PyExc_ValueError, "rows: vantage, state or address index out of range");
    else if (fd >= 0) result = PyLong_FromSsize_t(j.written);
    else result = PyBytes_FromStringAndSize(o.buf ? o.buf : "", o.len);  /* UTF-8, as written to the file */
done:
    for (int k = 0; k < got; k++) PyBuffer_Release(&views[k]);
    PyMem_Free(strs);
    PyMem_RawFree(o.buf);
    return result;
}

/* ---- ladder diagram rows (resetlens.capture.ladder.Ladder) as orjson's OPT_INDENT_2 text ----
 *
 * ladders(items, offsets, record_size, flag_texts, indent) -> tuple, one bytes or None per item
 *   items:       tuple of (rows, offset, names): rows a one-dimensional buffer of packet-table records
 *                (any stride), offset the float added to each ts, names a dict {(hi, lo): str} of address
 *                texts (or None)
 *   offsets:     tuple of L_FIELDS byte offsets of the fields below within a record
 *   record_size: bytes per record (the rows' itemsize must be this)
 *   flag_texts:  tuple of 256 str, the flag letters of each value of the flags' low 8 bits
 *   indent:      spaces before the line of the "ladder" key (where the closing bracket goes)
 * Each bytes is exactly what orjson.dumps(ladder.tolist(), option=OPT_INDENT_2) gives at that depth. None
 * where this cannot promise that: an address missing from names, a ts that is not finite or outside
 * 1e-4 <= |ts| < 1e16 (there orjson's float text differs from repr's), or a str UTF-8 cannot carry.
 * The formatting runs without the GIL (the texts and buffers are held until it is done). */

/* Fields of a record read by `ladders`, in the order of their offsets. */
enum { L_FRAME, L_TS, L_SRC_HI, L_SRC_LO, L_SPORT, L_DST_HI, L_DST_LO, L_DPORT, L_FLAGS, L_SEQ, L_ACK,
       L_PAYLOAD_LEN, L_TTL, L_IP_ID, L_IPVER, L_WINDOW, L_FIELDS };
/* Bytes of each field. */
static const Py_ssize_t L_WIDTH[L_FIELDS] = {8, 8, 8, 8, 2, 8, 8, 2, 2, 4, 4, 4, 1, 4, 1, 2};

#define L_NAMES 4       /* address texts per ladder at most (a connection has two) */
#define L_MAX_INDENT 64 /* deeper than any field of the model */
#define L_FLOAT 48      /* room out_float asks for (a repr in fixed notation is at most ~24 bytes) */
#define L_TAIL_NUMBERS (10 + 10 + 10 + 3 + 10 + 5) /* digits of seq, ack, len, ttl, ip_id, window at most */
#define L_PIECE 96      /* room for one piece of layout: separator, indent and key (at most ~85 bytes) */

/* The fixed text between the values of a row, in order: the row's opening, each key, the row's close. */
static const char *L_KEYS[] = {"frame", "ts", "src", "sport", "dst", "dport", "flags", "seq", "ack", "len",
                               "ttl", "ip_id", "window"};
enum { P_OPEN_FIRST, P_OPEN, P_KEY, P_CLOSE = P_KEY + 13, P_END, N_PIECES };

typedef struct {
    const char *rows;
    Py_ssize_t n, stride;
    double offset;
    uint64_t hi[L_NAMES], lo[L_NAMES];
    Str name[L_NAMES];
    int n_names;
    int ok;              /* 1 once its text is complete; -1: left to orjson */
    Py_ssize_t row_room; /* the most bytes one row takes (ladder_row_room) */
    PyObject *text;      /* a bytes object with room for the longest text the rows could give */
    Out out;             /* writing into it */
} LadderJob;

typedef struct {
    LadderJob *items;
    Py_ssize_t n;
    Py_ssize_t off[L_FIELDS];
    Str flags[256];
    char piece[N_PIECES][L_PIECE];
    Py_ssize_t piece_len[N_PIECES];
    int flags_plain; /* no flag text needs escaping (they are letters) */
    int gil_held;
} LadderBatch;

/* The layout pieces for ladders whose key stands `indent` spaces deep (orjson's OPT_INDENT_2). */
static void ladder_pieces(LadderBatch *b, int indent) {
    for (int p = 0; p < N_PIECES; p++) {
        char *w = b->piece[p];
        const char *lead = p == P_OPEN_FIRST || p == P_KEY || p == P_CLOSE || p == P_END ? "\n" : ",\n";
        int spaces = p == P_END ? indent : p < P_KEY || p == P_CLOSE ? indent + 2 : indent + 4;
        w += sprintf(w, "%s%*s", lead, spaces, "");
        if (p == P_OPEN_FIRST || p == P_OPEN) *w++ = '{';
        else if (p == P_CLOSE) *w++ = '}';
        else if (p == P_END) *w++ = ']';
        else w += sprintf(w, "\"%s\": ", L_KEYS[p - P_KEY]);
        b->piece_len[p] = w - b->piece[p];
    }
}

static inline uint64_t l_uint(const char *rec, Py_ssize_t off, Py_ssize_t width) {
    uint8_t b1; uint16_t b2; uint32_t b4; uint64_t b8;
    switch (width) {
    case 1: memcpy(&b1, rec + off, 1); return b1;
    case 2: memcpy(&b2, rec + off, 2); return b2;
    case 4: memcpy(&b4, rec + off, 4); return b4;
    default: memcpy(&b8, rec + off, 8); return b8;
    }
}

static inline void put_uint(Out *o, unsigned long long u) { /* room reserved by the caller */
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    memcpy(o->buf + o->len, p, (size_t)(end - p));
    o->len += end - p;
}

static inline void put_piece(Out *o, const LadderBatch *b, int p) { /* room reserved by the caller */
    memcpy(o->buf + o->len, b->piece[p], (size_t)b->piece_len[p]);
    o->len += b->piece_len[p];
}

static inline void put_quoted(Out *o, Str s) { /* a str that needs no escaping; room reserved by the caller */
    char *w = o->buf + o->len;
    *w = '"';
    memcpy(w + 1, s.s, (size_t)s.n);
    w[s.n + 1] = '"';
    o->len += s.n + 2;
}

static int needs_escape(Str s) { /* whether JSON would escape any byte of it */
    for (Py_ssize_t i = 0; i < s.n; i++)
        if ((unsigned char)s.s[i] < 0x20 || s.s[i] == '"' || s.s[i] == '\\') return 1;
    return 0;
}

/* The text of one address, or NULL when names lacks it. */
static const Str *l_name(const LadderJob *l, uint64_t hi, uint64_t lo) {
    for (int k = 0; k < l->n_names; k++)
        if (l->hi[k] == hi && l->lo[k] == lo) return &l->name[k];
    return NULL;
}

#define L_U(rec, f) l_uint((rec), b->off[f], L_WIDTH[f])

/* One ladder's text; 0 when done, 1 when it must be left to orjson (nothing kept), -1 on an Out error. */
static int format_ladder(const LadderBatch *b, const LadderJob *l, Out *o) {
    if (l->n == 0) return OUT_LIT(o, "[]");
    if (!b->flags_plain) return 1;
    OUT_LIT(o, "[");
    for (Py_ssize_t i = 0; i < l->n; i++) {
        const char *rec = l->rows + i * l->stride;
        double ts;
        memcpy(&ts, rec + b->off[L_TS], 8);
        ts += l->offset; /* as Python adds them: one IEEE double addition */
        double a = fabs(ts);
        if (!(a >= 1e-4 && a < 1e16)) return 1;
        const Str *src = l_name(l, L_U(rec, L_SRC_HI), L_U(rec, L_SRC_LO));
        const Str *dst = l_name(l, L_U(rec, L_DST_HI), L_U(rec, L_DST_LO));
        if (!src || !dst) return 1;
        if (out_reserve(o, l->row_room) < 0) return -1; /* the whole row's room: the writes below unchecked */
        put_piece(o, b, i ? P_OPEN : P_OPEN_FIRST);
        put_piece(o, b, P_KEY + 0);
        put_uint(o, L_U(rec, L_FRAME));
        put_piece(o, b, P_KEY + 1);
        if (out_float(o, ts, b->gil_held) < 0) return -1; /* asks for L_FLOAT bytes of room itself */
        put_piece(o, b, P_KEY + 2);
        put_quoted(o, *src);
        put_piece(o, b, P_KEY + 3);
        put_uint(o, L_U(rec, L_SPORT));
        put_piece(o, b, P_KEY + 4);
        put_quoted(o, *dst);
        put_piece(o, b, P_KEY + 5);
        put_uint(o, L_U(rec, L_DPORT));
        put_piece(o, b, P_KEY + 6);
        put_quoted(o, b->flags[L_U(rec, L_FLAGS) & 0xFF]);
        put_piece(o, b, P_KEY + 7);
        put_uint(o, L_U(rec, L_SEQ));
        put_piece(o, b, P_KEY + 8);
        put_uint(o, L_U(rec, L_ACK));
        put_piece(o, b, P_KEY + 9);
        put_uint(o, L_U(rec, L_PAYLOAD_LEN));
        put_piece(o, b, P_KEY + 10);
        put_uint(o, L_U(rec, L_TTL));
        put_piece(o, b, P_KEY + 11);
        if (L_U(rec, L_IPVER) == 4) put_uint(o, L_U(rec, L_IP_ID));
        else {
            memcpy(o->buf + o->len, "null", 4);
            o->len += 4;
        }
        put_piece(o, b, P_KEY + 12);
        put_uint(o, L_U(rec, L_WINDOW));
        put_piece(o, b, P_CLOSE);
    }
    if (out_reserve(o, b->piece_len[P_END]) < 0) return -1;
    put_piece(o, b, P_END);
    return 0;
}

static void format_ladders(LadderBatch *b) { /* may run without the GIL: writes only its own bytes objects */
    for (Py_ssize_t k = 0; k < b->n; k++) {
        LadderJob *l = &b->items[k];
        if (l->ok < 0) continue; /* left to orjson */
        l->ok = format_ladder(b, l, &l->out) == 0 && !l->out.err ? 1 : -1;
    }
}

/* The most bytes one row of l can take: layout pieces, the largest numbers, and the strings quoted (none
 * needs escaping: ladder_item and flags_plain checked). */
static Py_ssize_t ladder_row_room(const LadderBatch *b, const LadderJob *l, Py_ssize_t longest_flags) {
    Py_ssize_t room = 20 + L_FLOAT + 5 + 5 + L_TAIL_NUMBERS, longest_name = 0;
    for (int p = P_OPEN; p <= P_CLOSE; p++) room += b->piece_len[p];
    for (int k = 0; k < l->n_names; k++)
        if (l->name[k].n > longest_name) longest_name = l->name[k].n;
    return room + 2 * (longest_name + 2) + longest_flags + 2;
}

/* An item's rows buffer, offset and address texts into l (the buffer into view, the texts' str objects
 * into held, with new references); 1 when the item is usable, 0 when it must be left to orjson. */
static int ladder_item(PyObject *item, Py_ssize_t record_size, LadderJob *l, Py_buffer *view, int *viewed,
                       PyObject **held, int *n_held) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
        PyErr_SetString(PyExc_TypeError, "ladders: each item must be a (rows, offset, names) tuple");
        return -1;
    }
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(item, 0), view, PyBUF_STRIDED_RO) < 0) return -1;
    *viewed = 1;
    if (view->itemsize != record_size || view->ndim != 1) {
        PyErr_SetString(PyExc_ValueError, "ladders: rows must be one-dimensional records of record_size bytes");
        return -1;
    }
    l->rows = view->buf;
    l->n = view->shape[0];
    l->stride = view->strides[0];
    l->offset = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 1));
    if (l->offset == -1.0 && PyErr_Occurred()) return -1;
    PyObject *names = PyTuple_GET_ITEM(item, 2);
    if (names == Py_None) return l->n == 0;
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "ladders: names must be a dict or None");
        return -1;
    }
    if (PyDict_GET_SIZE(names) > L_NAMES) return 0;
    PyObject *key, *text;
    Py_ssize_t pos = 0;
    while (PyDict_Next(names, &pos, &key, &text)) {
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2 || !PyUnicode_Check(text)) return 0;
        unsigned long long hi = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(key, 0));
        unsigned long long lo = PyErr_Occurred() ? 0 : PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(key, 1));
        if (PyErr_Occurred()) {
            PyErr_Clear(); /* not two 64-bit halves */
            return 0;
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(text, &n);
        if (!s) {
            PyErr_Clear(); /* a lone surrogate: orjson's path decides */
            return 0;
        }
        if (needs_escape((Str){s, n})) return 0; /* an address never does */
        int k = l->n_names++;
        l->hi[k] = hi;
        l->lo[k] = lo;
        l->name[k].s = s;
        l->name[k].n = n;
        Py_INCREF(text); /* its UTF-8 stays while the formatting runs, whatever happens to the dict */
        held[(*n_held)++] = text;
    }
    return 1;
}

static PyObject *ladders(PyObject *self, PyObject *args) {
    PyObject *items, *offsets, *flag_texts;
    Py_ssize_t record_size;
    int indent;
    if (!PyArg_ParseTuple(args, "O!O!nO!i", &PyTuple_Type, &items, &PyTuple_Type, &offsets, &record_size,
                          &PyTuple_Type, &flag_texts, &indent))
        return NULL;
    if (PyTuple_GET_SIZE(offsets) != L_FIELDS || PyTuple_GET_SIZE(flag_texts) != 256 || indent < 0 ||
        indent > L_MAX_INDENT) {
        PyErr_SetString(PyExc_ValueError, "ladders: expected 16 offsets, 256 flag texts and 0 <= indent <= 64");
        return NULL;
    }
    LadderBatch b;
    memset(&b, 0, sizeof b);
    ladder_pieces(&b, indent);
    for (int f = 0; f < L_FIELDS; f++) {
        b.off[f] = PyLong_AsSsize_t(PyTuple_GET_ITEM(offsets, f));
        if (b.off[f] == -1 && PyErr_Occurred()) return NULL;
        if (b.off[f] < 0 || b.off[f] + L_WIDTH[f] > record_size) {
            PyErr_SetString(PyExc_ValueError, "ladders: a field offset outside the record");
            return NULL;
        }
    }
    if (utf8_of(flag_texts, b.flags) < 0) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    b.n = n;
    b.items = PyMem_Calloc((size_t)n + 1, sizeof(LadderJob));
    Py_buffer *views = PyMem_Calloc((size_t)n + 1, sizeof(Py_buffer));
    int *viewed = PyMem_Calloc((size_t)n + 1, sizeof(int));
    PyObject **held = PyMem_Calloc((size_t)n * L_NAMES + 1, sizeof(PyObject *));
    int n_held = 0;
    PyObject *result = NULL;
    if (!b.items || !views || !viewed || !held) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        int usable = ladder_item(PyTuple_GET_ITEM(items, k), record_size, &b.items[k], &views[k], &viewed[k],
                                 held, &n_held);
        if (usable < 0) goto done;
        if (!usable) b.items[k].ok = -1; /* left to orjson */
    }
    b.gil_held = !locale_writes_dot();
    Py_ssize_t longest_flags = 0;
    b.flags_plain = 1;
    for (int f = 0; f < 256; f++) {
        if (b.flags[f].n > longest_flags) longest_flags = b.flags[f].n;
        if (needs_escape(b.flags[f])) b.flags_plain = 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) { /* each text straight into its bytes object: no copy */
        LadderJob *l = &b.items[k];
        if (l->ok < 0) continue;
        l->row_room = ladder_row_room(&b, l, longest_flags);
        if (l->n > (PY_SSIZE_T_MAX / 2) / l->row_room) {
            l->ok = -1; /* absurdly long: orjson's */
            continue;
        }
        Py_ssize_t room = 2 + l->n * l->row_room + b.piece_len[P_END];
        l->text = PyBytes_FromStringAndSize(NULL, room);
        if (!l->text) goto done;
        l->out.buf = PyBytes_AS_STRING(l->text);
        l->out.cap = room;
        l->out.fixed = 1;
    }
    {
        LadderBatch *bp = &b;
        if (b.gil_held) {
            format_ladders(bp);
        } else {
            Py_BEGIN_ALLOW_THREADS
            format_ladders(bp);
            Py_END_ALLOW_THREADS
        }
    }
    result = PyTuple_New(n);
    for (Py_ssize_t k = 0; result && k < n; k++) {
        LadderJob *l = &b.items[k];
        if (l->ok == 1 && _PyBytes_Resize(&l->text, l->out.len) < 0) { /* l->text is NULL then */
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, k, l->ok == 1 ? l->text : Py_NewRef(Py_None));
        if (l->ok == 1) l->text = NULL; /* the tuple's now */
    }
done:
    for (Py_ssize_t k = 0; b.items && k < n; k++) Py_XDECREF(b.items[k].text);
    for (Py_ssize_t k = 0; views && viewed && k < n; k++)
        if (viewed[k]) PyBuffer_Release(&views[k]);
    for (int k = 0; k < n_held; k++) Py_DECREF(held[k]);
    PyMem_Free(b.items);
    PyMem_Free(views);
    PyMem_Free(viewed);
    PyMem_Free(held);
    return result;
}

/* reindent(data, start, stop, lead, tail) -> lead + data[start:stop].replace(b"\n", b"\n ") + tail, the
 * JSON writer's shift of an indented dump one space deeper, in one pass over the text (and one to count).
 * data, lead, tail: bytes. The GIL is kept: a piece takes ~1 ms, and a thread that lets go of the GIL
 * while the other one runs Python waits up to the switch interval (5 ms) to get it back. */
static Py_ssize_t count_newlines(const char *s, Py_ssize_t n) {
    Py_ssize_t count = 0;
    const char *end = s + n;
    while (s < end && (s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
        count++;
        s++;
    }
    return count;
}

static void copy_reindented(char *w, const char *s, Py_ssize_t n) {
    const char *end = s + n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl) {
            memcpy(w, s, (size_t)(end - s));
            return;
        }
        memcpy(w, s, (size_t)(nl - s + 1));
        w += nl - s + 1;
        *w++ = ' ';
        s = nl + 1;
    }
}

static PyObject *reindent(PyObject *self, PyObject *args) {
    PyObject *data, *lead, *tail;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "O!nnO!O!", &PyBytes_Type, &data, &start, &stop, &PyBytes_Type, &lead,
                          &PyBytes_Type, &tail))
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (start < 0) start = 0;
    if (start > size) start = size;
    if (stop > size) stop = size;
    if (stop < start) stop = start;
    const char *s = PyBytes_AS_STRING(data) + start; /* data is immutable and held by the call */
    Py_ssize_t n = stop - start, nl = PyBytes_GET_SIZE(lead), nt = PyBytes_GET_SIZE(tail);
    Py_ssize_t lines = count_newlines(s, n);
    PyObject *out = PyBytes_FromStringAndSize(NULL, nl + n + lines + nt);
    if (!out) return NULL;
    char *w = PyBytes_AS_STRING(out);
    memcpy(w, PyBytes_AS_STRING(lead), (size_t)nl);
    copy_reindented(w + nl, s, n);
    memcpy(w + nl + n + lines, PyBytes_AS_STRING(tail), (size_t)nt);
    return out;
}

/* repr(v) by the GIL-free path, for tests: the same text as repr() for every finite double. */
static PyObject *float_repr(PyObject *self, PyObject *arg) {
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    if (!isfinite(v) || !locale_writes_dot()) {
        PyErr_SetString(PyExc_ValueError, "float_repr: finite values and a locale that writes '.' only");
        return NULL;
    }
    Out o = {NULL, 0, 0, OK, 0};
    repr_nogil(&o, v);
    PyObject *r = NULL;
    if (o.err == ERR_MEMORY) PyErr_NoMemory();
    else if (o.err) PyErr_SetString(PyExc_ValueError, "float_repr: snprintf failed");
    else r = PyUnicode_FromStringAndSize(o.buf, o.len);
    PyMem_RawFree(o.buf);
    return r;
}

static PyMethodDef METHODS[] = {
    {"rows", rows, METH_VARARGS, "JSON text of connection rows from their columns (see the module comment)."},
    {"ladders", ladders, METH_VARARGS, "orjson's indented JSON text of ladder rows (see above ladders())."},
    {"reindent", reindent, METH_VARARGS, "lead + data[start:stop] with every line one space deeper + tail."},
    {"float_repr", float_repr, METH_O, "repr(float) by the GIL-free shortest-digits search (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_jsonrows", "Connection rows as JSON text, in C.", -1,
                                    METHODS};

PyMODINIT_FUNC PyInit__jsonrows(void) { return PyModule_Create(&MODULE); }
