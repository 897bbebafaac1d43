/* pwcli.runtimes._crossing: what the crossing's two C files share (see _crossing.c).
 *
 * Wasmtime's C API as its headers declare it (wasmtime/func.h, wasmtime/store.h,
 * wasmtime/memory.h, wasm.h), reached through function pointers bound at run time, and the
 * crossing's own types.
 */
#ifndef PWCLI_CROSSING_H
#define PWCLI_CROSSING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef union {          /* wasmtime_val_raw_t: 16 bytes */
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
    uint8_t v128[16];
    void *funcref;
} raw_t;

typedef struct {         /* wasmtime_func_t */
    uint64_t store_id;
    void *private_;
} func_t;

typedef void *(*callback_t)(void *env, void *caller, raw_t *args, size_t nargs);

extern void *(*call_unchecked)(void *ctx, const func_t *f, raw_t *args, size_t n, void **trap);
extern void *(*caller_context)(void *caller);
extern void *(*trap_new)(const char *msg, size_t len);
extern void *(*define_unchecked)(void *linker, const char *module, size_t module_len,
                                 const char *name, size_t name_len, const void *type,
                                 callback_t cb, void *env, void (*finalizer)(void *));
extern void *(*set_fuel)(void *ctx, uint64_t fuel);
extern void *(*get_fuel)(void *ctx, uint64_t *fuel);
extern void (*set_epoch_deadline)(void *ctx, uint64_t ticks);
extern uint8_t *(*memory_data)(void *ctx, const void *memory);
extern size_t (*memory_data_size)(void *ctx, const void *memory);

#define MAX_SLOTS 32     /* arguments or results of one call */

typedef struct {
    PyObject_HEAD
    double deadline;      /* time.monotonic() after which the running call is interrupted; 0: none */
    unsigned long long epoch;  /* epochs the watchdog has added to the engine */
} Deadline;


typedef struct Crossing Crossing;

typedef struct {
    Crossing *owner;
    PyObject *fn;
    int nparams;
    char params[MAX_SLOTS];
    char result;          /* 0: none */
} HostFn;

typedef struct {
    func_t func;
    int nparams;
    int nslots;
    char params[MAX_SLOTS];
    char result;
} GuestFn;

struct Crossing {
    PyObject_HEAD
    void *store_ctx;
    void *caller;         /* the caller of the running host function, or NULL */
    PyThreadState *tstate;
    int depth;            /* guest calls in progress: > 0 inside a host function */
    unsigned long long fuel_start;
    unsigned long long fuel_used;
    unsigned long long seen_epoch;
    double wall;          /* seconds; 0: no wall-clock guard */
    Deadline *deadline;
    PyObject *pending;    /* the exception a host function raised, for Python to translate */
    PyObject *funcs;      /* name -> capsule of a GuestFn */
    PyObject *on_trap;    /* on_trap(is_error, address) -> the exception to raise */
    PyObject *on_missing; /* on_missing(name): export(name, ...) it, or raise KeyError */
    HostFn **hosts;
    Py_ssize_t nhosts;
    /* Linear memory, which never moves (memory_may_move is off): base and size are re-read only
     * when an access goes past the known end, since the guest may have grown it. */
    uint64_t memory[4];   /* wasmtime_memory_t, copied */
    int has_memory;
    uint8_t *base;
    uint64_t size;
    PyObject *out_of_bounds;  /* the exception class of an access outside the memory */
};

/* _crossing_memory.c: linear memory, and the context guest code runs in now. */
void *current_context(Crossing *c);
PyObject *Crossing_read(Crossing *c, PyObject *const *args, Py_ssize_t nargs);
PyObject *Crossing_check(Crossing *c, PyObject *const *args, Py_ssize_t nargs);
PyObject *Crossing_write(Crossing *c, PyObject *const *args, Py_ssize_t nargs);
PyObject *Crossing_write_u32(Crossing *c, PyObject *const *args, Py_ssize_t nargs);
PyObject *Crossing_size(Crossing *c, PyObject *unused);
PyObject *Crossing_attach_memory(Crossing *c, PyObject *args);

#endif
