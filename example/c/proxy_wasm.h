/*
 * proxy_wasm.h - pwcli's own minimal C binding of the proxy-wasm ABI
 * (versions 0.1.0, 0.2.0 and 0.2.1), for plugins compiled to wasm32-wasi.
 *
 * Written for pwcli from the proxy-wasm ABI specification; it is not any
 * SDK's header.  Every function below is a host import from module "env";
 * declaring a function does not import it: only functions a plugin actually
 * calls end up in the module's import section.
 *
 * Conventions: every pointer, size, id and enum is an i32 on the wire;
 * i64 only where noted.  "**data, *size" out-pairs are filled by the host
 * with a buffer it allocated through the plugin's exported allocator
 * (`malloc`); the plugin owns that buffer and must free() it.
 *
 * Besides the declarations, this header has small static-inline helpers:
 *   pw_logf()             log a printf-like formatted line (tiny formatter,
 *                         no stdio: %s %.*s %c %d %u %x %lld %llu %zu %%)
 *   pw_get_property()     read a property from NUL-joined path segments
 *   pw_pairs_decode()     decode the serialized header-pairs format
 *   pw_pairs_encode()     encode header pairs into that format
 *   pw_le_u32/pw_le_u64   little-endian readers
 * and PW_EXPORT(name) to export a callback under its ABI name.
 */
#ifndef PWCLI_PROXY_WASM_H
#define PWCLI_PROXY_WASM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PW_EXPORT(name) __attribute__((export_name(#name)))
#define PW_IMPORT(name) \
    __attribute__((import_module("env"), import_name(#name)))

/* The ABI marker: an empty exported function, never called. */
#define PW_ABI_VERSION(maj, min, patch)                                        \
    PW_EXPORT(proxy_abi_version_##maj##_##min##_##patch)                       \
    void proxy_abi_version_##maj##_##min##_##patch(void) {}

/* ------------------------------------------------------------------ enums */

typedef enum {
    PW_OK = 0,
    PW_NOT_FOUND = 1,
    PW_BAD_ARGUMENT = 2,
    PW_SERIALIZATION_FAILURE = 3,
    PW_PARSE_FAILURE = 4,
    PW_BAD_EXPRESSION = 5,
    PW_INVALID_MEMORY_ACCESS = 6,
    PW_EMPTY = 7,
    PW_CAS_MISMATCH = 8,
    PW_RESULT_MISMATCH = 9,
    PW_INTERNAL_FAILURE = 10,
    PW_BROKEN_CONNECTION = 11,
    PW_UNIMPLEMENTED = 12,
} pw_status_t;

typedef enum {
    PW_LOG_TRACE = 0,
    PW_LOG_DEBUG = 1,
    PW_LOG_INFO = 2,
    PW_LOG_WARN = 3,
    PW_LOG_ERROR = 4,
    PW_LOG_CRITICAL = 5,
} pw_log_level_t;

/* Spec actions; SDKs also return the richer Envoy filter statuses. */
typedef enum {
    PW_ACTION_CONTINUE = 0,
    PW_ACTION_PAUSE = 1,
} pw_action_t;

typedef enum {
    PW_HEADERS_CONTINUE = 0,
    PW_HEADERS_STOP_ITERATION = 1,
    PW_HEADERS_CONTINUE_AND_END_STREAM = 2,
    PW_HEADERS_STOP_ALL_ITERATION_AND_BUFFER = 3,
    PW_HEADERS_STOP_ALL_ITERATION_AND_WATERMARK = 4,
} pw_headers_status_t;

typedef enum {
    PW_DATA_CONTINUE = 0,
    PW_DATA_STOP_ITERATION_AND_BUFFER = 1,
    PW_DATA_STOP_ITERATION_AND_WATERMARK = 2,
    PW_DATA_STOP_ITERATION_NO_BUFFER = 3,
} pw_data_status_t;

typedef enum {
    PW_BUFFER_HTTP_REQUEST_BODY = 0,
    PW_BUFFER_HTTP_RESPONSE_BODY = 1,
    PW_BUFFER_DOWNSTREAM_DATA = 2,
    PW_BUFFER_UPSTREAM_DATA = 3,
    PW_BUFFER_HTTP_CALL_RESPONSE_BODY = 4,
    PW_BUFFER_GRPC_CALL_MESSAGE = 5,
    PW_BUFFER_VM_CONFIGURATION = 6,        /* 0.2.0+ */
    PW_BUFFER_PLUGIN_CONFIGURATION = 7,    /* 0.2.0+ */
    PW_BUFFER_FOREIGN_FUNCTION_ARGS = 8,   /* 0.2.0+ */
} pw_buffer_type_t;

typedef enum {
    PW_MAP_HTTP_REQUEST_HEADERS = 0,
    PW_MAP_HTTP_REQUEST_TRAILERS = 1,
    PW_MAP_HTTP_RESPONSE_HEADERS = 2,
    PW_MAP_HTTP_RESPONSE_TRAILERS = 3,
    PW_MAP_GRPC_CALL_INITIAL_METADATA = 4,
    PW_MAP_GRPC_CALL_TRAILING_METADATA = 5,
    PW_MAP_HTTP_CALL_RESPONSE_HEADERS = 6,
    PW_MAP_HTTP_CALL_RESPONSE_TRAILERS = 7,
} pw_map_type_t;

typedef enum {                      /* 0.2.0+ */
    PW_STREAM_HTTP_REQUEST = 0,
    PW_STREAM_HTTP_RESPONSE = 1,
    PW_STREAM_DOWNSTREAM = 2,
    PW_STREAM_UPSTREAM = 3,
} pw_stream_type_t;

typedef enum {
    PW_PEER_UNKNOWN = 0,
    PW_PEER_LOCAL = 1,
    PW_PEER_REMOTE = 2,
} pw_peer_type_t;

typedef enum {
    PW_METRIC_COUNTER = 0,
    PW_METRIC_GAUGE = 1,
    PW_METRIC_HISTOGRAM = 2,
} pw_metric_type_t;

/* ---------------------------------------------------- host imports (env) */

/* logging, clock, timers, lifecycle */
PW_IMPORT(proxy_log)
pw_status_t proxy_log(pw_log_level_t level, const char *msg, size_t msg_len);
PW_IMPORT(proxy_get_log_level) /* 0.2.1 only */
pw_status_t proxy_get_log_level(pw_log_level_t *level);
PW_IMPORT(proxy_get_current_time_nanoseconds)
pw_status_t proxy_get_current_time_nanoseconds(uint64_t *nanos);
PW_IMPORT(proxy_set_tick_period_milliseconds)
pw_status_t proxy_set_tick_period_milliseconds(uint32_t period_ms);
PW_IMPORT(proxy_done)
pw_status_t proxy_done(void);
PW_IMPORT(proxy_set_effective_context)
pw_status_t proxy_set_effective_context(uint32_t context_id);
PW_IMPORT(proxy_get_status)
pw_status_t proxy_get_status(uint32_t *code, char **msg, size_t *msg_len);
PW_IMPORT(proxy_get_configuration) /* 0.1.0 only */
pw_status_t proxy_get_configuration(char **data, size_t *size);

/* buffers */
PW_IMPORT(proxy_get_buffer_bytes)
pw_status_t proxy_get_buffer_bytes(pw_buffer_type_t type, size_t start,
                                   size_t max_size, char **data, size_t *size);
PW_IMPORT(proxy_get_buffer_status)
pw_status_t proxy_get_buffer_status(pw_buffer_type_t type, size_t *size,
                                    uint32_t *flags);
PW_IMPORT(proxy_set_buffer_bytes)
pw_status_t proxy_set_buffer_bytes(pw_buffer_type_t type, size_t start,
                                   size_t size, const char *data,
                                   size_t data_len);

/* header / trailer / metadata maps */
PW_IMPORT(proxy_get_header_map_size)
pw_status_t proxy_get_header_map_size(pw_map_type_t map, size_t *size);
PW_IMPORT(proxy_get_header_map_pairs)
pw_status_t proxy_get_header_map_pairs(pw_map_type_t map, char **data,
                                       size_t *size);
PW_IMPORT(proxy_set_header_map_pairs)
pw_status_t proxy_set_header_map_pairs(pw_map_type_t map, const char *data,
                                       size_t size);
PW_IMPORT(proxy_get_header_map_value)
pw_status_t proxy_get_header_map_value(pw_map_type_t map, const char *key,
                                       size_t key_len, char **value,
                                       size_t *value_len);
PW_IMPORT(proxy_add_header_map_value)
pw_status_t proxy_add_header_map_value(pw_map_type_t map, const char *key,
                                       size_t key_len, const char *value,
                                       size_t value_len);
PW_IMPORT(proxy_replace_header_map_value)
pw_status_t proxy_replace_header_map_value(pw_map_type_t map, const char *key,
                                           size_t key_len, const char *value,
                                           size_t value_len);
PW_IMPORT(proxy_remove_header_map_value)
pw_status_t proxy_remove_header_map_value(pw_map_type_t map, const char *key,
                                          size_t key_len);

/* stream control and local replies */
PW_IMPORT(proxy_continue_stream) /* 0.2.x */
pw_status_t proxy_continue_stream(pw_stream_type_t stream);
PW_IMPORT(proxy_close_stream) /* 0.2.x */
pw_status_t proxy_close_stream(pw_stream_type_t stream);
PW_IMPORT(proxy_continue_request) /* 0.1.0 only */
pw_status_t proxy_continue_request(void);
PW_IMPORT(proxy_continue_response) /* 0.1.0 only */
pw_status_t proxy_continue_response(void);
PW_IMPORT(proxy_clear_route_cache) /* 0.1.0 only */
pw_status_t proxy_clear_route_cache(void);
PW_IMPORT(proxy_send_local_response)
pw_status_t proxy_send_local_response(uint32_t status_code,
                                      const char *details, size_t details_len,
                                      const char *body, size_t body_len,
                                      const char *headers, size_t headers_len,
                                      int32_t grpc_status);

/* out-of-band calls */
PW_IMPORT(proxy_http_call)
pw_status_t proxy_http_call(const char *upstream, size_t upstream_len,
                            const char *headers, size_t headers_len,
                            const char *body, size_t body_len,
                            const char *trailers, size_t trailers_len,
                            uint32_t timeout_ms, uint32_t *call_id);
PW_IMPORT(proxy_grpc_call)
pw_status_t proxy_grpc_call(const char *upstream, size_t upstream_len,
                            const char *service, size_t service_len,
                            const char *method, size_t method_len,
                            const char *initial_md, size_t initial_md_len,
                            const char *message, size_t message_len,
                            uint32_t timeout_ms, uint32_t *call_id);
PW_IMPORT(proxy_grpc_stream)
pw_status_t proxy_grpc_stream(const char *upstream, size_t upstream_len,
                              const char *service, size_t service_len,
                              const char *method, size_t method_len,
                              const char *initial_md, size_t initial_md_len,
                              uint32_t *stream_id);
PW_IMPORT(proxy_grpc_send)
pw_status_t proxy_grpc_send(uint32_t stream_id, const char *msg,
                            size_t msg_len, uint32_t end_stream);
PW_IMPORT(proxy_grpc_cancel)
pw_status_t proxy_grpc_cancel(uint32_t call_or_stream_id);
PW_IMPORT(proxy_grpc_close)
pw_status_t proxy_grpc_close(uint32_t call_or_stream_id);

/* shared state */
PW_IMPORT(proxy_get_shared_data)
pw_status_t proxy_get_shared_data(const char *key, size_t key_len,
                                  char **value, size_t *value_len,
                                  uint32_t *cas);
PW_IMPORT(proxy_set_shared_data)
pw_status_t proxy_set_shared_data(const char *key, size_t key_len,
                                  const char *value, size_t value_len,
                                  uint32_t cas);
PW_IMPORT(proxy_register_shared_queue)
pw_status_t proxy_register_shared_queue(const char *name, size_t name_len,
                                        uint32_t *queue_id);
PW_IMPORT(proxy_resolve_shared_queue)
pw_status_t proxy_resolve_shared_queue(const char *vm_id, size_t vm_id_len,
                                       const char *name, size_t name_len,
                                       uint32_t *queue_id);
PW_IMPORT(proxy_enqueue_shared_queue)
pw_status_t proxy_enqueue_shared_queue(uint32_t queue_id, const char *value,
                                       size_t value_len);
PW_IMPORT(proxy_dequeue_shared_queue)
pw_status_t proxy_dequeue_shared_queue(uint32_t queue_id, char **value,
                                       size_t *value_len);

/* metrics (increment/record take an i64 by value) */
PW_IMPORT(proxy_define_metric)
pw_status_t proxy_define_metric(pw_metric_type_t type, const char *name,
                                size_t name_len, uint32_t *metric_id);
PW_IMPORT(proxy_increment_metric)
pw_status_t proxy_increment_metric(uint32_t metric_id, int64_t offset);
PW_IMPORT(proxy_record_metric)
pw_status_t proxy_record_metric(uint32_t metric_id, uint64_t value);
PW_IMPORT(proxy_get_metric)
pw_status_t proxy_get_metric(uint32_t metric_id, uint64_t *value);

/* properties and foreign functions */
PW_IMPORT(proxy_get_property)
pw_status_t proxy_get_property(const char *path, size_t path_len,
                               char **value, size_t *value_len);
PW_IMPORT(proxy_set_property)
pw_status_t proxy_set_property(const char *path, size_t path_len,
                               const char *value, size_t value_len);
PW_IMPORT(proxy_call_foreign_function)
pw_status_t proxy_call_foreign_function(const char *name, size_t name_len,
                                        const char *args, size_t args_len,
                                        char **results, size_t *results_len);

/* ---------------------------------------------------------------- helpers */

static inline uint32_t pw_le_u32(const void *p) {
    const unsigned char *b = (const unsigned char *)p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
           ((uint32_t)b[3] << 24);
}

static inline uint64_t pw_le_u64(const void *p) {
    const unsigned char *b = (const unsigned char *)p;
    return (uint64_t)pw_le_u32(b) | ((uint64_t)pw_le_u32(b + 4) << 32);
}

static inline void pw_put_le_u32(void *p, uint32_t v) {
    unsigned char *b = (unsigned char *)p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}

/* A growable byte string; starts in an inline buffer, moves to the heap. */
typedef struct {
    char *p;
    size_t len, cap;
    char inline_buf[256];
} pw_sbuf;

static inline void pw_sbuf_init(pw_sbuf *s) {
    s->p = s->inline_buf;
    s->len = 0;
    s->cap = sizeof s->inline_buf;
}

static inline void pw_sbuf_free(pw_sbuf *s) {
    if (s->p != s->inline_buf) free(s->p);
    pw_sbuf_init(s);
}

static inline void pw_sbuf_add(pw_sbuf *s, const char *data, size_t n) {
    if (s->len + n > s->cap) {
        size_t cap = s->cap * 2;
        while (cap < s->len + n) cap *= 2;
        char *np = (char *)malloc(cap);
        if (!np) return; /* out of memory: drop the text */
        memcpy(np, s->p, s->len);
        if (s->p != s->inline_buf) free(s->p);
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->len, data, n);
    s->len += n;
}

static inline void pw_sbuf_u64(pw_sbuf *s, uint64_t v, unsigned base) {
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    pw_sbuf_add(s, tmp + i, sizeof tmp - i);
}

static inline void pw_sbuf_i64(pw_sbuf *s, int64_t v) {
    if (v < 0) {
        pw_sbuf_add(s, "-", 1);
        pw_sbuf_u64(s, (uint64_t)0 - (uint64_t)v, 10);
    } else {
        pw_sbuf_u64(s, (uint64_t)v, 10);
    }
}

/* Tiny printf subset: %s (NULL -> "(null)"), %.*s (int len, const char *),
 * %c, %d, %u, %x, %ld/%lu, %lld/%llu/%llx, %zu, %%. No widths or padding. */
static inline void pw_sbuf_vfmt(pw_sbuf *s, const char *fmt, va_list ap) {
    while (*fmt) {
        const char *start = fmt;
        while (*fmt && *fmt != '%') fmt++;
        if (fmt > start) pw_sbuf_add(s, start, (size_t)(fmt - start));
        if (!*fmt) break;
        fmt++; /* skip '%' */
        int longs = 0, size_t_mod = 0, precision_arg = 0;
        if (fmt[0] == '.' && fmt[1] == '*') {
            precision_arg = 1;
            fmt += 2;
        }
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        if (*fmt == 'z') {
            size_t_mod = 1;
            fmt++;
        }
        char conv = *fmt ? *fmt++ : '\0';
        switch (conv) {
        case 's':
            if (precision_arg) {
                int n = va_arg(ap, int);
                const char *str = va_arg(ap, const char *);
                if (str && n > 0) pw_sbuf_add(s, str, (size_t)n);
            } else {
                const char *str = va_arg(ap, const char *);
                if (!str) str = "(null)";
                pw_sbuf_add(s, str, strlen(str));
            }
            break;
        case 'c': {
            char c = (char)va_arg(ap, int);
            pw_sbuf_add(s, &c, 1);
            break;
        }
        case 'd':
            if (longs >= 2) pw_sbuf_i64(s, va_arg(ap, long long));
            else if (longs == 1) pw_sbuf_i64(s, va_arg(ap, long));
            else pw_sbuf_i64(s, va_arg(ap, int));
            break;
        case 'u':
        case 'x': {
            unsigned base = conv == 'x' ? 16 : 10;
            if (longs >= 2) pw_sbuf_u64(s, va_arg(ap, unsigned long long), base);
            else if (longs == 1) pw_sbuf_u64(s, va_arg(ap, unsigned long), base);
            else if (size_t_mod) pw_sbuf_u64(s, va_arg(ap, size_t), base);
            else pw_sbuf_u64(s, va_arg(ap, unsigned), base);
            break;
        }
        case '%':
            pw_sbuf_add(s, "%", 1);
            break;
        default: /* unknown conversion: copy it verbatim */
            pw_sbuf_add(s, "%", 1);
            if (conv) pw_sbuf_add(s, &conv, 1);
            break;
        }
    }
}

static inline pw_status_t pw_log(pw_log_level_t level, const char *msg) {
    return proxy_log(level, msg, strlen(msg));
}

__attribute__((format(printf, 2, 3)))
static inline pw_status_t pw_logf(pw_log_level_t level, const char *fmt, ...) {
    pw_sbuf s;
    pw_sbuf_init(&s);
    va_list ap;
    va_start(ap, fmt);
    pw_sbuf_vfmt(&s, fmt, ap);
    va_end(ap);
    pw_status_t st = proxy_log(level, s.p, s.len);
    pw_sbuf_free(&s);
    return st;
}

/* Read a property.  Path segments are given as NUL-terminated strings ended
 * by a NULL argument, e.g. pw_get_property(&v, &n, "source", "address", NULL);
 * they are joined with 0x00 and sent without a trailing 0x00.  On PW_OK the
 * value (possibly NULL/0 when empty) belongs to the caller: free() it. */
static inline pw_status_t pw_get_property(char **value, size_t *value_len,
                                          ...) {
    pw_sbuf path;
    pw_sbuf_init(&path);
    va_list ap;
    va_start(ap, value_len);
    const char *seg;
    int first = 1;
    while ((seg = va_arg(ap, const char *)) != NULL) {
        if (!first) pw_sbuf_add(&path, "", 1); /* the 0x00 separator */
        pw_sbuf_add(&path, seg, strlen(seg));
        first = 0;
    }
    va_end(ap);
    *value = NULL;
    *value_len = 0;
    pw_status_t st = proxy_get_property(path.p, path.len, value, value_len);
    pw_sbuf_free(&path);
    return st;
}

/* One header pair; points into the decoded buffer (not NUL-terminated
 * copies, but the serialized format does put a 0x00 after each). */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} pw_pair;

/* Decode the pairs format:
 *   u32 N | N x (u32 key_len, u32 value_len) | N x (key 0x00 value 0x00)
 * into a malloc'ed array of N pw_pair (free() it; the pairs point into
 * `data`, so keep `data` alive).  Returns N, 0 for an empty map
 * (size 0, a lone 0x00 byte or a zero count), or -1 if malformed. */
static inline long pw_pairs_decode(const char *data, size_t size,
                                   pw_pair **out) {
    *out = NULL;
    if (!data || size < 4) return 0;
    uint32_t n = pw_le_u32(data);
    if (n == 0) return 0;
    if (n > (size - 4) / 8) return -1;
    pw_pair *pairs = (pw_pair *)malloc(n * sizeof(pw_pair));
    if (!pairs) return -1;
    const char *lens = data + 4;
    size_t off = 4 + (size_t)n * 8;
    for (uint32_t i = 0; i < n; i++) {
        size_t kl = pw_le_u32(lens + 8 * i), vl = pw_le_u32(lens + 8 * i + 4);
        if (kl > size - off || size - off - kl < 1) goto bad;
        pairs[i].key = data + off;
        pairs[i].key_len = kl;
        off += kl;
        if (data[off++] != '\0') goto bad;
        if (vl > size - off || size - off - vl < 1) goto bad;
        pairs[i].value = data + off;
        pairs[i].value_len = vl;
        off += vl;
        if (data[off++] != '\0') goto bad;
    }
    *out = pairs;
    return (long)n;
bad:
    free(pairs);
    return -1;
}

/* Encode n pairs into a malloc'ed buffer (free() it); *size gets its length. */
static inline char *pw_pairs_encode(const pw_pair *pairs, size_t n,
                                    size_t *size) {
    size_t total = 4 + 8 * n;
    for (size_t i = 0; i < n; i++)
        total += pairs[i].key_len + pairs[i].value_len + 2;
    char *buf = (char *)malloc(total);
    if (!buf) {
        *size = 0;
        return NULL;
    }
    pw_put_le_u32(buf, (uint32_t)n);
    size_t off = 4 + 8 * n;
    for (size_t i = 0; i < n; i++) {
        pw_put_le_u32(buf + 4 + 8 * i, (uint32_t)pairs[i].key_len);
        pw_put_le_u32(buf + 8 + 8 * i, (uint32_t)pairs[i].value_len);
        memcpy(buf + off, pairs[i].key, pairs[i].key_len);
        off += pairs[i].key_len;
        buf[off++] = '\0';
        memcpy(buf + off, pairs[i].value, pairs[i].value_len);
        off += pairs[i].value_len;
        buf[off++] = '\0';
    }
    *size = total;
    return buf;
}

/* Convenience wrappers taking NUL-terminated strings. */
static inline pw_status_t pw_add_header(pw_map_type_t map, const char *key,
                                        const char *value) {
    return proxy_add_header_map_value(map, key, strlen(key), value,
                                      strlen(value));
}

static inline pw_status_t pw_get_header(pw_map_type_t map, const char *key,
                                        char **value, size_t *value_len) {
    *value = NULL;
    *value_len = 0;
    return proxy_get_header_map_value(map, key, strlen(key), value, value_len);
}

#endif /* PWCLI_PROXY_WASM_H */
