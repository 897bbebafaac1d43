/*
 * myproject.c - pwcli's example HTTP plugin, proxy-wasm ABI 0.2.1.
 *
 * Modelled on the example plugin of the original C++ proxy-wasm-cli: it logs
 * every callback, dumps request/response headers, reads two connection
 * properties, adds a request header "A: B2" and a response header
 * "X-Wasm-custom: FOO".  Built as a WASI reactor (see build.sh); the host
 * allocates guest memory through the exported `malloc`.
 *
 * Log lines (all at INFO; <...> are values):
 *   root context <id> created
 *   onVmStart <root> vm_config_size=<n>
 *   vm configuration: <text>                      (only if n > 0)
 *   onConfigure <root> plugin_config_size=<n>
 *   plugin configuration: <text>                  (only if n > 0)
 *   called WASM plugin onCreate <ctx> from client <source.address> port <source.port>
 *   onRequestHeaders <ctx> headers=<n> end_of_stream=<0|1>
 *   <name> -> <value>                             (one per header pair)
 *   UA -> <value>            or   UA -> <none>
 *   now_ns -> <current time in ns>
 *   onResponseHeaders <ctx> headers=<n> end_of_stream=<0|1>
 *   <name> -> <value>                             (one per header pair)
 *   onRequestBody <ctx> size=<n> end_of_stream=<0|1>
 *   onResponseBody <ctx> size=<n> end_of_stream=<0|1>
 *   onDone <ctx>
 *   onLog <ctx>
 *   onDelete <ctx>
 * Host-call failures are logged at WARN as "<what> failed: status=<n>".
 */
#include "proxy_wasm.h"

PW_ABI_VERSION(0, 2, 1)

static void log_buffer(const char *label, pw_buffer_type_t type, size_t size) {
    char *data = NULL;
    size_t len = 0;
    pw_status_t st = proxy_get_buffer_bytes(type, 0, size, &data, &len);
    if (st != PW_OK) {
        pw_logf(PW_LOG_WARN, "get %s failed: status=%d", label, (int)st);
        return;
    }
    pw_logf(PW_LOG_INFO, "%s: %.*s", label, (int)len, data);
    free(data);
}

PW_EXPORT(proxy_on_vm_start)
uint32_t proxy_on_vm_start(uint32_t root_id, size_t vm_config_size) {
    pw_logf(PW_LOG_INFO, "onVmStart %u vm_config_size=%zu", root_id,
            vm_config_size);
    if (vm_config_size > 0)
        log_buffer("vm configuration", PW_BUFFER_VM_CONFIGURATION,
                   vm_config_size);
    return 1;
}

PW_EXPORT(proxy_on_configure)
uint32_t proxy_on_configure(uint32_t root_id, size_t plugin_config_size) {
    pw_logf(PW_LOG_INFO, "onConfigure %u plugin_config_size=%zu", root_id,
            plugin_config_size);
    if (plugin_config_size > 0)
        log_buffer("plugin configuration", PW_BUFFER_PLUGIN_CONFIGURATION,
                   plugin_config_size);
    return 1;
}

/* source.port: 8-byte little-endian integer (Envoy convention); a decimal
 * ASCII string is accepted too.  Returns -1 if absent or undecodable. */
static int64_t decode_port(const char *v, size_t n) {
    if (n == 8) return (int64_t)pw_le_u64(v);
    if (n == 0 || n > 19) return -1;
    int64_t port = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        port = port * 10 + (v[i] - '0');
    }
    return port;
}

PW_EXPORT(proxy_on_context_create)
void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
    if (parent_id == 0) {
        pw_logf(PW_LOG_INFO, "root context %u created", context_id);
        return;
    }
    char *addr = NULL, *port = NULL;
    size_t addr_len = 0, port_len = 0;
    if (pw_get_property(&addr, &addr_len, "source", "address", NULL) != PW_OK) {
        addr = NULL; /* nothing of ours to free */
        addr_len = 0;
    }
    int64_t port_num = -1;
    if (pw_get_property(&port, &port_len, "source", "port", NULL) == PW_OK) {
        port_num = decode_port(port, port_len);
        free(port);
    }

    const char *a = addr_len ? addr : "<none>";
    int a_len = addr_len ? (int)addr_len : 6;
    if (port_num >= 0)
        pw_logf(PW_LOG_INFO,
                "called WASM plugin onCreate %u from client %.*s port %lld",
                context_id, a_len, a, (long long)port_num);
    else
        pw_logf(PW_LOG_INFO,
                "called WASM plugin onCreate %u from client %.*s port <none>",
                context_id, a_len, a);
    free(addr);
}

static void log_header_pairs(pw_map_type_t map) {
    char *data = NULL;
    size_t size = 0;
    pw_status_t st = proxy_get_header_map_pairs(map, &data, &size);
    if (st != PW_OK) {
        pw_logf(PW_LOG_WARN, "get_header_map_pairs(%d) failed: status=%d",
                (int)map, (int)st);
        return;
    }
    pw_pair *pairs = NULL;
    long n = pw_pairs_decode(data, size, &pairs);
    if (n < 0)
        pw_logf(PW_LOG_WARN, "get_header_map_pairs(%d) failed: malformed",
                (int)map);
    for (long i = 0; i < n; i++)
        pw_logf(PW_LOG_INFO, "%.*s -> %.*s", (int)pairs[i].key_len,
                pairs[i].key, (int)pairs[i].value_len, pairs[i].value);
    free(pairs);
    free(data);
}

PW_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, uint32_t num_headers,
                                  uint32_t end_of_stream) {
    pw_logf(PW_LOG_INFO, "onRequestHeaders %u headers=%u end_of_stream=%u",
            context_id, num_headers, end_of_stream);
    log_header_pairs(PW_MAP_HTTP_REQUEST_HEADERS);

    char *ua = NULL;
    size_t ua_len = 0;
    pw_status_t st =
        pw_get_header(PW_MAP_HTTP_REQUEST_HEADERS, "user-agent", &ua, &ua_len);
    if (st == PW_OK) {
        pw_logf(PW_LOG_INFO, "UA -> %.*s", (int)ua_len, ua);
        free(ua);
    } else if (st == PW_NOT_FOUND) {
        pw_log(PW_LOG_INFO, "UA -> <none>");
    } else {
        pw_logf(PW_LOG_WARN, "get user-agent failed: status=%d", (int)st);
    }

    uint64_t now = 0;
    st = proxy_get_current_time_nanoseconds(&now);
    if (st == PW_OK)
        pw_logf(PW_LOG_INFO, "now_ns -> %llu", (unsigned long long)now);
    else
        pw_logf(PW_LOG_WARN, "get_current_time failed: status=%d", (int)st);

    st = pw_add_header(PW_MAP_HTTP_REQUEST_HEADERS, "A", "B2");
    if (st != PW_OK)
        pw_logf(PW_LOG_WARN, "add_header A failed: status=%d", (int)st);
    return PW_HEADERS_CONTINUE;
}

PW_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, uint32_t num_headers,
                                   uint32_t end_of_stream) {
    pw_logf(PW_LOG_INFO, "onResponseHeaders %u headers=%u end_of_stream=%u",
            context_id, num_headers, end_of_stream);
    log_header_pairs(PW_MAP_HTTP_RESPONSE_HEADERS);
    pw_status_t st =
        pw_add_header(PW_MAP_HTTP_RESPONSE_HEADERS, "X-Wasm-custom", "FOO");
    if (st != PW_OK)
        pw_logf(PW_LOG_WARN, "add_header X-Wasm-custom failed: status=%d",
                (int)st);
    return PW_HEADERS_CONTINUE;
}

PW_EXPORT(proxy_on_request_body)
uint32_t proxy_on_request_body(uint32_t context_id, size_t body_size,
                               uint32_t end_of_stream) {
    pw_logf(PW_LOG_INFO, "onRequestBody %u size=%zu end_of_stream=%u",
            context_id, body_size, end_of_stream);
    return PW_DATA_CONTINUE;
}

PW_EXPORT(proxy_on_response_body)
uint32_t proxy_on_response_body(uint32_t context_id, size_t body_size,
                                uint32_t end_of_stream) {
    pw_logf(PW_LOG_INFO, "onResponseBody %u size=%zu end_of_stream=%u",
            context_id, body_size, end_of_stream);
    return PW_DATA_CONTINUE;
}

PW_EXPORT(proxy_on_done)
uint32_t proxy_on_done(uint32_t context_id) {
    pw_logf(PW_LOG_INFO, "onDone %u", context_id);
    return 1;
}

PW_EXPORT(proxy_on_log)
void proxy_on_log(uint32_t context_id) {
    pw_logf(PW_LOG_INFO, "onLog %u", context_id);
}

PW_EXPORT(proxy_on_delete)
void proxy_on_delete(uint32_t context_id) {
    pw_logf(PW_LOG_INFO, "onDelete %u", context_id);
}
