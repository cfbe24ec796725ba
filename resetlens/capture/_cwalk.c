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

static int push(offsets_t *o, int64_t v) {
    if (o->n == o->cap) {
        Py_ssize_t cap = o->cap ? o->cap * 2 : 4096;
        int64_t *grown = PyMem_Realloc(o->data, (size_t)cap * sizeof(int64_t));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        o->data = grown;
        o->cap = cap;
    }
    o->data[o->n++] = v;
    return 0;
}

static PyObject *as_bytes(offsets_t *o) {
    PyObject *out = PyBytes_FromStringAndSize((const char *)o->data, o->n * (Py_ssize_t)sizeof(int64_t));
    PyMem_Free(o->data);
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
    int absurd = 0;
    while (off + hdr <= limit) {
        uint32_t cap = rd32(buf + off + 8, little);
        if ((Py_ssize_t)cap > maxcap) {
            absurd = 1;
            break;
        }
        Py_ssize_t nxt = off + hdr + (Py_ssize_t)cap;
        if (nxt > limit) break;
        if (push(&offs, off) < 0) {
            PyBuffer_Release(&view);
            PyMem_Free(offs.data);
            return NULL;
        }
        off = nxt;
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
        if (push(&offs, at) < 0) goto fail;
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
    PyMem_Free(offs.data);
    Py_DECREF(others);
    return NULL;
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Record offsets of a classic pcap block."},
    {"walk_pcapng", walk_pcapng, METH_VARARGS, "Packet block offsets of a pcapng block."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cwalk", "C record walk", -1, methods};

PyMODINIT_FUNC PyInit__cwalk(void) { return PyModule_Create(&module); }
