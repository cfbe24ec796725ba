/* JSON text of connection rows, straight from the columns of a resetlens.tcp.conntable.ConnectionTable.
 *
 * The JSON writer's pure-Python path formats one f-string per row; a 1 GB capture has ~150 k rows and
 * that costs ~0.3 s. This builds the same text in C (floats in Python's repr, strings escaped as JSON).
 *
 * rows(columns, vantages, history, orig, resp, uids) -> bytes (UTF-8)
 *   columns:  tuple of 14 C-contiguous buffers, one value per row, in this order and these types:
 *             idx i8, vantage u2, ts f8, duration f8, orig_p u2, resp_p u2, state u1,
 *             orig_bytes i8, resp_bytes i8, orig_pkts i8, resp_pkts i8, first_frame i8, last_frame i8,
 *             (a 14th slot is reserved: pass an empty bytes object)
 *   vantages: list of str, indexed by the vantage column
 *   history, orig, resp: list of str, one per row
 *   uids:     None (uid = "C{idx+1}@{vantage}") or a list of str, one per row
 * Rows are separated by ",\n  "; no leading indent or trailing separator. Non-finite floats are the
 * caller's business (it checks first): they would come out as Python's repr, which JSON does not allow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* Column order of the `columns` tuple. */
enum { C_IDX, C_VANTAGE, C_TS, C_DURATION, C_ORIG_P, C_RESP_P, C_STATE, C_ORIG_BYTES, C_RESP_BYTES,
       C_ORIG_PKTS, C_RESP_PKTS, C_FIRST_FRAME, C_LAST_FRAME, C_RESERVED, N_COLUMNS };
/* Bytes per value of each column. */
static const Py_ssize_t WIDTH[N_COLUMNS] = {8, 2, 8, 8, 2, 2, 1, 8, 8, 8, 8, 8, 8, 0};

static const char *STATE_CODES[] = {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                                    "SH", "SHR", "OTH"};
#define N_STATES 13

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} Out;

static int out_reserve(Out *o, Py_ssize_t more) {
    if (o->len + more <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 1 << 16;
    while (cap < o->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) { PyErr_NoMemory(); return -1; }
        cap *= 2;
    }
    char *b = PyMem_Realloc(o->buf, (size_t)cap);
    if (!b) { PyErr_NoMemory(); return -1; }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static int out_raw(Out *o, const char *s, Py_ssize_t n) {
    if (out_reserve(o, n) < 0) return -1;
    memcpy(o->buf + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

#define OUT_LIT(o, s) out_raw((o), (s), (Py_ssize_t)(sizeof(s) - 1))

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

static int out_float(Out *o, double v) {
    int fast = fast_repr(o, v);
    if (fast != 0) return fast < 0 ? -1 : 0;
    char *s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);  /* exactly repr(float) */
    if (!s) return -1;
    int rc = out_raw(o, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

/* A str as a JSON string: quotes, backslash and control characters escaped, the rest as UTF-8
 * (lone surrogates, which UTF-8 cannot carry, are refused by PyUnicode_AsUTF8AndSize: the caller falls
 * back to the general path). */
static int out_json_str(Out *o, PyObject *str) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(str, &n);
    if (!s) return -1;
    if (out_reserve(o, 2 + 6 * n) < 0) return -1;
    char *d = o->buf + o->len;
    *d++ = '"';
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
    *d++ = '"';
    o->len = d - o->buf;
    return 0;
}

static int out_json_inner(Out *o, PyObject *str) {  /* a JSON string's contents, without the quotes */
    Py_ssize_t before = o->len;
    if (out_json_str(o, str) < 0) return -1;
    memmove(o->buf + before, o->buf + before + 1, (size_t)(o->len - before - 2));
    o->len -= 2;
    return 0;
}

static PyObject *rows(PyObject *self, PyObject *args) {
    PyObject *columns, *vantages, *history, *orig, *resp, *uids;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O", &PyTuple_Type, &columns, &PyList_Type, &vantages, &PyList_Type,
                          &history, &PyList_Type, &orig, &PyList_Type, &resp, &uids))
        return NULL;
    if (PyTuple_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "rows: expected 14 columns");
        return NULL;
    }
    if (uids != Py_None && !PyList_Check(uids)) {
        PyErr_SetString(PyExc_TypeError, "rows: uids must be None or a list");
        return NULL;
    }
    Py_buffer views[N_COLUMNS];
    int got = 0;
    PyObject *result = NULL;
    Out o = {NULL, 0, 0};
    Py_ssize_t n = PyList_GET_SIZE(history);
    for (; got < N_COLUMNS; got++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(columns, got), &views[got], PyBUF_C_CONTIGUOUS) < 0) goto done;
        if (WIDTH[got] && views[got].len != n * WIDTH[got]) {
            PyErr_Format(PyExc_ValueError, "rows: column %d has %zd bytes, expected %zd", got, views[got].len,
                         n * WIDTH[got]);
            got++;
            goto done;
        }
    }
    if (PyList_GET_SIZE(orig) != n || PyList_GET_SIZE(resp) != n || (uids != Py_None && PyList_GET_SIZE(uids) != n)) {
        PyErr_SetString(PyExc_ValueError, "rows: lists of different lengths");
        goto done;
    }
    if (out_reserve(&o, n * 448) < 0) goto done;  /* a typical row is ~310 bytes: one allocation, no regrowth */
    const int64_t *idx = views[C_IDX].buf;
    const uint16_t *vant = views[C_VANTAGE].buf;
    const double *ts = views[C_TS].buf, *dur = views[C_DURATION].buf;
    const uint16_t *op = views[C_ORIG_P].buf, *rp = views[C_RESP_P].buf;
    const uint8_t *state = views[C_STATE].buf;
    const int64_t *ob = views[C_ORIG_BYTES].buf, *rb = views[C_RESP_BYTES].buf;
    const int64_t *opk = views[C_ORIG_PKTS].buf, *rpk = views[C_RESP_PKTS].buf;
    const int64_t *ff = views[C_FIRST_FRAME].buf, *lf = views[C_LAST_FRAME].buf;
    Py_ssize_t nv = PyList_GET_SIZE(vantages);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (vant[i] >= nv || state[i] >= N_STATES) {
            PyErr_SetString(PyExc_ValueError, "rows: vantage or state index out of range");
            goto done;
        }
        PyObject *vname = PyList_GET_ITEM(vantages, vant[i]);
        if (i && OUT_LIT(&o, ",\n  ") < 0) goto done;
        if (OUT_LIT(&o, "{\"vantage\":") < 0 || out_json_str(&o, vname) < 0) goto done;
        if (OUT_LIT(&o, ",\"ts\":") < 0 || out_float(&o, ts[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"orig_h\":") < 0 || out_json_str(&o, PyList_GET_ITEM(orig, i)) < 0) goto done;
        if (OUT_LIT(&o, ",\"orig_p\":") < 0 || out_int(&o, op[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"resp_h\":") < 0 || out_json_str(&o, PyList_GET_ITEM(resp, i)) < 0) goto done;
        if (OUT_LIT(&o, ",\"resp_p\":") < 0 || out_int(&o, rp[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"conn_state\":\"") < 0) goto done;
        if (out_raw(&o, STATE_CODES[state[i]], (Py_ssize_t)strlen(STATE_CODES[state[i]])) < 0) goto done;
        if (OUT_LIT(&o, "\",\"history\":") < 0 || out_json_str(&o, PyList_GET_ITEM(history, i)) < 0) goto done;
        if (OUT_LIT(&o, ",\"duration\":") < 0 || out_float(&o, dur[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"orig_bytes\":") < 0 || out_int(&o, ob[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"resp_bytes\":") < 0 || out_int(&o, rb[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"uid\":") < 0) goto done;
        if (uids == Py_None) {
            if (OUT_LIT(&o, "\"C") < 0 || out_int(&o, idx[i] + 1) < 0 || OUT_LIT(&o, "@") < 0) goto done;
            if (out_json_inner(&o, vname) < 0 || OUT_LIT(&o, "\"") < 0) goto done;
        } else if (out_json_str(&o, PyList_GET_ITEM(uids, i)) < 0) {
            goto done;
        }
        if (OUT_LIT(&o, ",\"orig_pkts\":") < 0 || out_int(&o, opk[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"resp_pkts\":") < 0 || out_int(&o, rpk[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"first_frame\":") < 0 || out_int(&o, ff[i]) < 0) goto done;
        if (OUT_LIT(&o, ",\"last_frame\":") < 0 || out_int(&o, lf[i]) < 0) goto done;
        if (OUT_LIT(&o, "}") < 0) goto done;
    }
    result = PyBytes_FromStringAndSize(o.buf ? o.buf : "", o.len);  /* UTF-8, as written to the file */
done:
    for (int k = 0; k < got; k++) PyBuffer_Release(&views[k]);
    PyMem_Free(o.buf);
    return result;
}

static PyMethodDef METHODS[] = {
    {"rows", rows, METH_VARARGS, "JSON text of connection rows from their columns (see the module comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_jsonrows", "Connection rows as JSON text, in C.", -1,
                                    METHODS};

PyMODINIT_FUNC PyInit__jsonrows(void) { return PyModule_Create(&MODULE); }
