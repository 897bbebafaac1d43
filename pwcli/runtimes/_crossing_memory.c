/* pwcli.runtimes._crossing, linear memory: read, write, check and size the guest's memory.
 *
 * The memory never moves (memory_may_move is off): its base and size are re-read only when an
 * access goes past the known end, since the guest may have grown it. An access outside raises the
 * instance's OutOfBounds(ptr, size), as the pure path's memoryview accessors do.
 */
#include "_crossing.h"

void *current_context(Crossing *c) {
    return c->caller != NULL ? caller_context(c->caller) : c->store_ctx;
}

static void refresh(Crossing *c) {
    void *ctx = current_context(c);
    c->size = memory_data_size(ctx, c->memory);
    c->base = memory_data(ctx, c->memory);
}

/* 0 when [ptr, ptr + len) is inside the memory, else -1 with OutOfBounds(ptr, len) raised. */
static int in_bounds(Crossing *c, long long ptr, long long len) {
    if (ptr >= 0 && len >= 0 && (uint64_t)ptr + (uint64_t)len <= c->size) return 0;
    if (c->has_memory) refresh(c);
    if (ptr >= 0 && len >= 0 && (uint64_t)ptr + (uint64_t)len <= c->size) return 0;
    PyObject *exc = PyObject_CallFunction(c->out_of_bounds, "LL", ptr, len);
    if (exc != NULL) {
        PyErr_SetObject(c->out_of_bounds, exc);
        Py_DECREF(exc);
    }
    return -1;
}

static int two_ints(PyObject *const *args, Py_ssize_t nargs, long long *a, long long *b) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "two arguments expected");
        return -1;
    }
    *a = PyLong_AsLongLong(args[0]);
    if (*a == -1 && PyErr_Occurred()) return -1;
    *b = PyLong_AsLongLong(args[1]);
    if (*b == -1 && PyErr_Occurred()) return -1;
    return 0;
}

/* The pointer of a (ptr, value) call; -1 with an exception set when the call is malformed. */
static int pointer_and_value(PyObject *const *args, Py_ssize_t nargs, const char *usage,
                             long long *ptr) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    *ptr = PyLong_AsLongLong(args[0]);
    return *ptr == -1 && PyErr_Occurred() ? -1 : 0;
}

/* read(ptr, size) -> bytes */
PyObject *Crossing_read(Crossing *c, PyObject *const *args, Py_ssize_t nargs) {
    long long ptr, len;
    if (two_ints(args, nargs, &ptr, &len) < 0 || in_bounds(c, ptr, len) < 0) return NULL;
    return PyBytes_FromStringAndSize((const char *)c->base + ptr, (Py_ssize_t)len);
}

/* check(ptr, size): raise OutOfBounds unless the range is inside the memory */
PyObject *Crossing_check(Crossing *c, PyObject *const *args, Py_ssize_t nargs) {
    long long ptr, len;
    if (two_ints(args, nargs, &ptr, &len) < 0 || in_bounds(c, ptr, len) < 0) return NULL;
    Py_RETURN_NONE;
}

/* write(ptr, data) */
PyObject *Crossing_write(Crossing *c, PyObject *const *args, Py_ssize_t nargs) {
    long long ptr;
    if (pointer_and_value(args, nargs, "write(ptr, data)", &ptr) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) return NULL;
    int ok = in_bounds(c, ptr, (long long)view.len) == 0;
    if (ok) memcpy(c->base + ptr, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* write_u32(ptr, value): little-endian, value taken modulo 2**32 */
PyObject *Crossing_write_u32(Crossing *c, PyObject *const *args, Py_ssize_t nargs) {
    long long ptr;
    if (pointer_and_value(args, nargs, "write_u32(ptr, value)", &ptr) < 0) return NULL;
    unsigned long long v = PyLong_AsUnsignedLongLongMask(args[1]);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    if (in_bounds(c, ptr, 4) < 0) return NULL;
    uint8_t *p = c->base + ptr;
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    Py_RETURN_NONE;
}

/* size(): the memory's size in bytes now */
PyObject *Crossing_size(Crossing *c, PyObject *unused) {
    (void)unused;
    if (c->has_memory) refresh(c);
    return PyLong_FromUnsignedLongLong(c->size);
}

/* attach_memory(address, struct_size, out_of_bounds): the instance's exported memory */
PyObject *Crossing_attach_memory(Crossing *c, PyObject *args) {
    unsigned long long addr;
    Py_ssize_t size;
    PyObject *oob;
    if (!PyArg_ParseTuple(args, "KnO", &addr, &size, &oob)) return NULL;
    if (size <= 0 || (size_t)size > sizeof(c->memory)) {
        PyErr_SetString(PyExc_ValueError, "unexpected wasmtime_memory_t size");
        return NULL;
    }
    memcpy(c->memory, (const void *)(uintptr_t)addr, (size_t)size);
    Py_INCREF(oob);
    Py_XSETREF(c->out_of_bounds, oob);
    c->has_memory = 1;
    refresh(c);
    Py_RETURN_NONE;
}

