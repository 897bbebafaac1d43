/* pwcli.runtimes._crossing: the two crossings between Python and Wasmtime, in C.
 *
 * The Wasmtime backend (wasmtime.py) crosses into the guest for every callback and back into Python
 * for every host call. Through ctypes each crossing converts its arguments through ctypes objects and
 * takes the GIL with PyGILState_Ensure; here a host function is an unchecked C callback that calls
 * the Python function with the wasm arguments as ints, and a guest call packs its arguments on the C
 * stack; linear memory is read and written in _crossing_memory.c. Nothing of proxy-wasm is here:
 * which function is called, what it does and how a trap is reported stay in Python. Without this
 * module (no compiler, or PWCLI_PURE=1) wasmtime_crossing.py does the same through ctypes.
 *
 * The functions come from the wasmtime wheel's own library (dlopen of the path wasmtime-py loaded),
 * declared in _crossing.h as in Wasmtime's C API headers: wasmtime_func_call_unchecked,
 * wasmtime_caller_context, wasmtime_linker_define_func_unchecked, wasmtime_trap_new,
 * wasmtime_context_set_fuel / get_fuel, wasmtime_context_set_epoch_deadline, wasmtime_memory_data
 * and _data_size. pyproject pins the wasmtime major version these declarations follow.
 */
#include "_crossing.h"

void *(*call_unchecked)(void *ctx, const func_t *f, raw_t *args, size_t n, void **trap);
void *(*caller_context)(void *caller);
void *(*trap_new)(const char *msg, size_t len);
void *(*define_unchecked)(void *linker, const char *module, size_t module_len, const char *name,
                          size_t name_len, const void *type, callback_t cb, void *env,
                          void (*finalizer)(void *));
void *(*set_fuel)(void *ctx, uint64_t fuel);
void *(*get_fuel)(void *ctx, uint64_t *fuel);
void (*set_epoch_deadline)(void *ctx, uint64_t ticks);
uint8_t *(*memory_data)(void *ctx, const void *memory);
size_t (*memory_data_size)(void *ctx, const void *memory);

/* Value kinds, one letter each: i32, i64, f32, f64. */
static int kind_of(const char *t) {
    if (!strcmp(t, "i32")) return 'i';
    if (!strcmp(t, "i64")) return 'I';
    if (!strcmp(t, "f32")) return 'f';
    if (!strcmp(t, "f64")) return 'F';
    return 0;
}

static PyObject *to_python(int kind, const raw_t *v) {
    switch (kind) {
    case 'i': return PyLong_FromUnsignedLong((uint32_t)v->i32);
    case 'I': return PyLong_FromLongLong(v->i64);
    case 'f': return PyFloat_FromDouble(v->f32);
    default: return PyFloat_FromDouble(v->f64);
    }
}

/* An int is taken modulo 2**32 or 2**64, as the ctypes path masks it. */
static int from_python(int kind, PyObject *o, raw_t *v) {
    if (kind == 'i' || kind == 'I') {
        unsigned long long x = PyLong_AsUnsignedLongLongMask(o);
        if (x == (unsigned long long)-1 && PyErr_Occurred()) return -1;
        if (kind == 'i') v->i32 = (int32_t)(uint32_t)x;
        else v->i64 = (int64_t)x;
        return 0;
    }
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    if (kind == 'f') v->f32 = (float)d;
    else v->f64 = d;
    return 0;
}

/* -- the watchdog's state: read by the C call, advanced by the Python watchdog thread -------- */

static PyMemberDef deadline_members[] = {
    {"deadline", T_DOUBLE, offsetof(Deadline, deadline), 0, "interrupt the call after this"},
    {"epoch", T_ULONGLONG, offsetof(Deadline, epoch), 0, "epochs added to the engine"},
    {NULL},
};

static PyTypeObject DeadlineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pwcli.runtimes._crossing.Deadline",
    .tp_basicsize = sizeof(Deadline),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The wall-clock guard's shared state (one per engine).",
    .tp_members = deadline_members,
    .tp_new = PyType_GenericNew,
};

/* -- one instance's crossings ------------------------------------------------------------------ */

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A host function failed: keep its exception for Python and hand the guest a trap. */
static void *pending_trap(Crossing *c) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    Py_XSETREF(c->pending, value);
    const char *msg = NULL;
    Py_ssize_t len = 0;
    PyObject *text = value ? PyObject_Str(value) : NULL;
    if (text != NULL) msg = PyUnicode_AsUTF8AndSize(text, &len);
    if (msg == NULL || len == 0) {
        PyErr_Clear();
        msg = "host function failed";
        len = (Py_ssize_t)strlen(msg);
    }
    if (len > 200) len = 200;
    void *trap = trap_new(msg, (size_t)len);
    Py_XDECREF(text);
    return trap;
}

static void *trampoline(void *env, void *caller, raw_t *args, size_t nargs) {
    (void)nargs;
    HostFn *h = env;
    Crossing *c = h->owner;
    PyEval_RestoreThread(c->tstate);
    void *prev = c->caller;
    c->caller = caller;
    PyObject *argv[MAX_SLOTS];
    void *trap = NULL;
    int n = 0;
    for (; n < h->nparams; n++) {
        argv[n] = to_python(h->params[n], &args[n]);
        if (argv[n] == NULL) break;
    }
    PyObject *r = n == h->nparams ? PyObject_Vectorcall(h->fn, argv, n, NULL) : NULL;
    for (int i = 0; i < n; i++) Py_DECREF(argv[i]);
    if (r == NULL) {
        trap = pending_trap(c);
    } else {
        if (h->result && from_python(h->result, r, &args[0]) < 0) trap = pending_trap(c);
        Py_DECREF(r);
    }
    c->caller = prev;
    c->tstate = PyEval_SaveThread();
    return trap;
}

static PyObject *guest_call(Crossing *c, GuestFn *g, PyObject *const *args, Py_ssize_t nargs) {
    raw_t buf[MAX_SLOTS];
    if (nargs != g->nparams) {
        PyErr_Format(PyExc_TypeError, "the export takes %d arguments (%zd given)", g->nparams, nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (from_python(g->params[i], args[i], &buf[i]) < 0) return NULL;
    void *trap = NULL, *err;
    if (c->depth > 0) {  /* the allocator, re-entered from a host function: the caller's context */
        void *ctx = caller_context(c->caller);
        c->depth++;
        c->tstate = PyEval_SaveThread();
        err = call_unchecked(ctx, &g->func, buf, (size_t)g->nslots, &trap);
        PyEval_RestoreThread(c->tstate);
        c->depth--;
    } else {
        void *ctx = c->store_ctx;
        Deadline *d = c->deadline;
        if (c->seen_epoch != d->epoch) {
            c->seen_epoch = d->epoch;
            set_epoch_deadline(ctx, 1);
        }
        set_fuel(ctx, c->fuel_start);
        if (c->wall > 0) d->deadline = monotonic() + c->wall;
        c->depth = 1;
        c->tstate = PyEval_SaveThread();
        err = call_unchecked(ctx, &g->func, buf, (size_t)g->nslots, &trap);
        PyEval_RestoreThread(c->tstate);
        c->depth = 0;
        d->deadline = 0;
        uint64_t left = 0;
        get_fuel(ctx, &left);
        if (c->fuel_start > left) c->fuel_used += c->fuel_start - left;
    }
    if (err != NULL || trap != NULL) {
        PyObject *exc = PyObject_CallFunction(c->on_trap, "iK", err != NULL,
                                              (unsigned long long)(uintptr_t)(err ? err : trap));
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (!g->result) Py_RETURN_NONE;
    return to_python(g->result, &buf[0]);
}

/* call(name, *args): the export's result, or None. */
static PyObject *Crossing_call(Crossing *c, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call(name, *args)");
        return NULL;
    }
    PyObject *cap = PyDict_GetItemWithError(c->funcs, args[0]);
    if (cap == NULL) {
        if (PyErr_Occurred()) return NULL;
        PyObject *r = PyObject_CallOneArg(c->on_missing, args[0]);
        if (r == NULL) return NULL;
        Py_DECREF(r);
        cap = PyDict_GetItemWithError(c->funcs, args[0]);
        if (cap == NULL) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, args[0]);
            return NULL;
        }
    }
    GuestFn *g = PyCapsule_GetPointer(cap, NULL);
    if (g == NULL) return NULL;
    return guest_call(c, g, args + 1, nargs - 1);
}

static void free_guest(PyObject *cap) {
    PyMem_Free(PyCapsule_GetPointer(cap, NULL));
}

static int kinds(PyObject *seq, char *out, int *count) {
    PyObject *fast = PySequence_Fast(seq, "a sequence of value types");
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > MAX_SLOTS) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many values for the C crossing");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *t = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        out[i] = t ? (char)kind_of(t) : 0;
        if (!out[i]) {
            Py_DECREF(fast);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "unsupported value type");
            return -1;
        }
    }
    *count = (int)n;
    Py_DECREF(fast);
    return 0;
}

/* export(name, func_address, params, results): make the export callable through call(). */
static PyObject *Crossing_export(Crossing *c, PyObject *args) {
    PyObject *name, *params, *results;
    unsigned long long addr;
    if (!PyArg_ParseTuple(args, "UKOO", &name, &addr, &params, &results)) return NULL;
    GuestFn *g = PyMem_Calloc(1, sizeof(GuestFn));
    if (g == NULL) return PyErr_NoMemory();
    char res[MAX_SLOTS];
    int nres = 0;
    if (kinds(params, g->params, &g->nparams) < 0 || kinds(results, res, &nres) < 0) {
        PyMem_Free(g);
        return NULL;
    }
    g->result = nres ? res[0] : 0;  /* the first result only, as the ctypes crossing */
    g->nslots = g->nparams > nres ? g->nparams : (nres ? nres : 1);
    memcpy(&g->func, (const void *)(uintptr_t)addr, sizeof(func_t));
    PyObject *cap = PyCapsule_New(g, NULL, free_guest);
    if (cap == NULL) {
        PyMem_Free(g);
        return NULL;
    }
    int rc = PyDict_SetItem(c->funcs, name, cap);
    Py_DECREF(cap);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* define(linker, module, name, functype, fn, params, results): link fn as an unchecked import. */
static PyObject *Crossing_define(Crossing *c, PyObject *args) {
    unsigned long long linker, ftype;
    const char *module, *name;
    Py_ssize_t mlen, nlen;
    PyObject *fn, *params, *results;
    if (!PyArg_ParseTuple(args, "Ks#s#KOOO", &linker, &module, &mlen, &name, &nlen, &ftype, &fn,
                          &params, &results))
        return NULL;
    HostFn *h = PyMem_Calloc(1, sizeof(HostFn));
    if (h == NULL) return PyErr_NoMemory();
    char res[MAX_SLOTS];
    int nres = 0;
    if (kinds(params, h->params, &h->nparams) < 0 || kinds(results, res, &nres) < 0) {
        PyMem_Free(h);
        return NULL;
    }
    HostFn **grown = PyMem_Realloc(c->hosts, sizeof(HostFn *) * (size_t)(c->nhosts + 1));
    if (grown == NULL) {
        PyMem_Free(h);
        return PyErr_NoMemory();
    }
    c->hosts = grown;
    h->result = nres ? res[0] : 0;
    h->owner = c;
    Py_INCREF(fn);
    h->fn = fn;
    c->hosts[c->nhosts++] = h;
    void *err = define_unchecked((void *)(uintptr_t)linker, module, (size_t)mlen, name,
                                 (size_t)nlen, (const void *)(uintptr_t)ftype, trampoline, h, NULL);
    if (err != NULL) {
        PyErr_Format(PyExc_RuntimeError, "wasmtime refused host function %s.%s", module, name);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* context(): the context guest code runs in now (the caller's inside a host function). */
static PyObject *Crossing_context(Crossing *c, PyObject *unused) {
    (void)unused;
    void *ctx = current_context(c);
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)ctx);
}

/* enter(): the thread is about to run guest code through wasmtime-py (instantiation). */
static PyObject *Crossing_enter(Crossing *c, PyObject *unused) {
    (void)unused;
    c->tstate = PyThreadState_Get();
    c->depth++;
    Py_RETURN_NONE;
}

static PyObject *Crossing_leave(Crossing *c, PyObject *unused) {
    (void)unused;
    c->depth--;
    c->caller = NULL;
    Py_RETURN_NONE;
}

static PyObject *Crossing_take_pending(Crossing *c, PyObject *unused) {
    (void)unused;
    PyObject *p = c->pending;
    c->pending = NULL;
    if (p == NULL) Py_RETURN_NONE;
    return p;
}

static int Crossing_init(Crossing *c, PyObject *args, PyObject *kw) {
    static char *names[] = {"store_context", "deadline", "fuel", "wall", "on_trap", "on_missing",
                            NULL};
    unsigned long long ctx, fuel;
    double wall;
    PyObject *deadline, *on_trap, *on_missing;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "KO!KdOO", names, &ctx, &DeadlineType, &deadline,
                                     &fuel, &wall, &on_trap, &on_missing))
        return -1;
    Py_INCREF(on_missing);
    Py_XSETREF(c->on_missing, on_missing);
    c->store_ctx = (void *)(uintptr_t)ctx;
    c->fuel_start = fuel;
    c->wall = wall;
    c->seen_epoch = ((Deadline *)deadline)->epoch;
    Py_INCREF(deadline);
    Py_XSETREF(c->deadline, (Deadline *)deadline);
    Py_INCREF(on_trap);
    Py_XSETREF(c->on_trap, on_trap);
    if (c->funcs == NULL && (c->funcs = PyDict_New()) == NULL) return -1;
    c->tstate = PyThreadState_Get();
    return 0;
}

static int Crossing_traverse(Crossing *c, visitproc visit, void *arg) {
    Py_VISIT(c->pending);
    Py_VISIT(c->funcs);
    Py_VISIT(c->on_trap);
    Py_VISIT(c->on_missing);
    Py_VISIT(c->out_of_bounds);
    Py_VISIT(c->deadline);
    for (Py_ssize_t i = 0; i < c->nhosts; i++) Py_VISIT(c->hosts[i]->fn);
    return 0;
}

static int Crossing_clear(Crossing *c) {
    Py_CLEAR(c->pending);
    Py_CLEAR(c->funcs);
    Py_CLEAR(c->on_trap);
    Py_CLEAR(c->on_missing);
    Py_CLEAR(c->out_of_bounds);
    Py_CLEAR(c->deadline);
    for (Py_ssize_t i = 0; i < c->nhosts; i++) Py_CLEAR(c->hosts[i]->fn);
    return 0;
}

static void Crossing_dealloc(Crossing *c) {
    PyObject_GC_UnTrack(c);
    Crossing_clear(c);
    /* Guest code only runs through this object (call) or while its owner holds it (instantiation),
     * so no host function is called once it is gone, even if the store lives on. */
    for (Py_ssize_t i = 0; i < c->nhosts; i++) PyMem_Free(c->hosts[i]);
    PyMem_Free(c->hosts);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *Crossing_fuel_used(Crossing *c, void *unused) {
    (void)unused;
    return PyLong_FromUnsignedLongLong(c->fuel_used);
}

static PyObject *Crossing_depth(Crossing *c, void *unused) {
    (void)unused;
    return PyLong_FromLong(c->depth);
}

static PyGetSetDef crossing_getset[] = {
    {"fuel_used", (getter)Crossing_fuel_used, NULL, "fuel consumed by top-level calls", NULL},
    {"depth", (getter)Crossing_depth, NULL, "guest calls in progress", NULL},
    {NULL},
};

static PyMethodDef crossing_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Crossing_call, METH_FASTCALL,
     "call(name, *args): call an export made callable by export()"},
    {"export", (PyCFunction)Crossing_export, METH_VARARGS, NULL},
    {"define", (PyCFunction)Crossing_define, METH_VARARGS, NULL},
    {"context", (PyCFunction)Crossing_context, METH_NOARGS, NULL},
    {"attach_memory", (PyCFunction)Crossing_attach_memory, METH_VARARGS, NULL},
    {"read", (PyCFunction)(void (*)(void))Crossing_read, METH_FASTCALL, "read(ptr, size)"},
    {"write", (PyCFunction)(void (*)(void))Crossing_write, METH_FASTCALL, "write(ptr, data)"},
    {"write_u32", (PyCFunction)(void (*)(void))Crossing_write_u32, METH_FASTCALL, NULL},
    {"check", (PyCFunction)(void (*)(void))Crossing_check, METH_FASTCALL, "check(ptr, size)"},
    {"size", (PyCFunction)Crossing_size, METH_NOARGS, "the memory's size in bytes"},
    {"enter", (PyCFunction)Crossing_enter, METH_NOARGS, NULL},
    {"leave", (PyCFunction)Crossing_leave, METH_NOARGS, NULL},
    {"take_pending", (PyCFunction)Crossing_take_pending, METH_NOARGS, NULL},
    {NULL},
};

static PyTypeObject CrossingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pwcli.runtimes._crossing.Crossing",
    .tp_basicsize = sizeof(Crossing),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One Wasmtime instance's crossings: host functions in, guest calls out.",
    .tp_methods = crossing_methods,
    .tp_getset = crossing_getset,
    .tp_init = (initproc)Crossing_init,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)Crossing_traverse,
    .tp_clear = (inquiry)Crossing_clear,
    .tp_dealloc = (destructor)Crossing_dealloc,
};

/* bind(library_path): find the C API functions in the wheel's library. */
static PyObject *bind(PyObject *self, PyObject *arg) {
    (void)self;
    const char *path = PyUnicode_AsUTF8(arg);
    if (path == NULL) return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        PyErr_Format(PyExc_OSError, "cannot open %s: %s", path, dlerror());
        return NULL;
    }
#define FIND(var, sym)                                                                  \
    if ((*(void **)&var = dlsym(lib, sym)) == NULL) {                                   \
        PyErr_Format(PyExc_OSError, "%s has no %s", path, sym);                         \
        return NULL;                                                                    \
    }
    FIND(call_unchecked, "wasmtime_func_call_unchecked");
    FIND(caller_context, "wasmtime_caller_context");
    FIND(trap_new, "wasmtime_trap_new");
    FIND(define_unchecked, "wasmtime_linker_define_func_unchecked");
    FIND(set_fuel, "wasmtime_context_set_fuel");
    FIND(get_fuel, "wasmtime_context_get_fuel");
    FIND(set_epoch_deadline, "wasmtime_context_set_epoch_deadline");
    FIND(memory_data, "wasmtime_memory_data");
    FIND(memory_data_size, "wasmtime_memory_data_size");
#undef FIND
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_O, "bind(library_path): use the C API of this Wasmtime library"},
    {NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "pwcli.runtimes._crossing",
    .m_doc = "The Wasmtime backend's crossings in C (host functions and guest calls).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__crossing(void) {
    if (PyType_Ready(&DeadlineType) < 0 || PyType_Ready(&CrossingType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Deadline", (PyObject *)&DeadlineType) < 0 ||
        PyModule_AddObjectRef(m, "Crossing", (PyObject *)&CrossingType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
