/*
 * abi010.c - pwcli's example plugin for proxy-wasm ABI 0.1.0.
 *
 * Exercises what only 0.1.0 has or what a host must emulate for it:
 *   - 2-parameter header callbacks (ctx, num_headers);
 *   - proxy_get_configuration() to read the plugin configuration;
 *   - pausing a request (returns 1 from on_request_headers), then resuming it
 *     from proxy_on_tick via proxy_set_effective_context(ctx) +
 *     proxy_continue_request(), adding "x-resumed-by: tick" to the paused
 *     request's headers first;
 *   - a counter metric "c_abi010_requests" incremented once per request.
 *
 * Log lines (INFO unless noted; <...> are values):
 *   c_abi010 root context <id> created
 *   c_abi010 context <ctx> created parent=<root>
 *   c_abi010 onVmStart <root> vm_config_size=<n>
 *   c_abi010 onConfigure <root> config_size=<n>
 *   c_abi010 configuration: <text>        (or "c_abi010 configuration: <empty>")
 *   c_abi010 metric c_abi010_requests defined
 *   c_abi010 onRequestHeaders <ctx> headers=<n> -> pause, tick 10ms
 *   c_abi010 onTick <root>
 *   c_abi010 resumed <ctx> (x-resumed-by: tick)
 *   c_abi010 tick period -> 0
 *   c_abi010 onResponseHeaders <ctx> headers=<n>
 *   c_abi010 onDone <ctx>
 *   c_abi010 onLog <ctx>
 *   c_abi010 onDelete <ctx>
 * Host-call failures are logged at WARN: "c_abi010 <call> failed: status=<n>".
 */
#include "proxy_wasm.h"

PW_ABI_VERSION(0, 1, 0)

#define TAG "c_abi010 "
#define MAX_PENDING 64

static uint32_t requests_metric;
static int metric_defined;
static uint32_t pending[MAX_PENDING]; /* paused stream contexts, 0 = free */
static int num_pending;

static void warn_status(const char *call, pw_status_t st) {
    pw_logf(PW_LOG_WARN, TAG "%s failed: status=%d", call, (int)st);
}

PW_EXPORT(proxy_on_context_create)
void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
    if (parent_id == 0) {
        pw_logf(PW_LOG_INFO, TAG "root context %u created", context_id);
    } else {
        pw_logf(PW_LOG_INFO, TAG "context %u created parent=%u", context_id,
                parent_id);
    }
}

PW_EXPORT(proxy_on_vm_start)
uint32_t proxy_on_vm_start(uint32_t root_id, size_t vm_config_size) {
    pw_logf(PW_LOG_INFO, TAG "onVmStart %u vm_config_size=%zu", root_id,
            vm_config_size);
    return 1;
}

PW_EXPORT(proxy_on_configure)
uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
    pw_logf(PW_LOG_INFO, TAG "onConfigure %u config_size=%zu", root_id,
            config_size);
    char *data = NULL;
    size_t size = 0;
    pw_status_t st = proxy_get_configuration(&data, &size);
    if (st != PW_OK) {
        warn_status("get_configuration", st);
    } else {
        if (size)
            pw_logf(PW_LOG_INFO, TAG "configuration: %.*s", (int)size, data);
        else
            pw_log(PW_LOG_INFO, TAG "configuration: <empty>");
        free(data);
    }

    if (!metric_defined) {
        static const char name[] = "c_abi010_requests";
        st = proxy_define_metric(PW_METRIC_COUNTER, name, sizeof name - 1,
                                 &requests_metric);
        if (st != PW_OK) {
            warn_status("define_metric", st);
        } else {
            metric_defined = 1;
            pw_log(PW_LOG_INFO, TAG "metric c_abi010_requests defined");
        }
    }
    return 1;
}

static int remember(uint32_t context_id) {
    for (int i = 0; i < MAX_PENDING; i++) {
        if (pending[i] == 0) {
            pending[i] = context_id;
            num_pending++;
            return 1;
        }
    }
    return 0;
}

static void forget(uint32_t context_id) {
    for (int i = 0; i < MAX_PENDING; i++) {
        if (pending[i] == context_id) {
            pending[i] = 0;
            num_pending--;
        }
    }
}

/* ABI 0.1.0: (context_id, num_headers), no end_of_stream. */
PW_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, uint32_t num_headers) {
    if (metric_defined) {
        pw_status_t st = proxy_increment_metric(requests_metric, 1);
        if (st != PW_OK) warn_status("increment_metric", st);
    }
    if (!remember(context_id)) {
        pw_logf(PW_LOG_WARN,
                TAG "onRequestHeaders %u headers=%u -> too many paused, continue",
                context_id, num_headers);
        return PW_ACTION_CONTINUE;
    }
    pw_logf(PW_LOG_INFO, TAG "onRequestHeaders %u headers=%u -> pause, tick 10ms",
            context_id, num_headers);
    pw_status_t st = proxy_set_tick_period_milliseconds(10);
    if (st != PW_OK) warn_status("set_tick_period_milliseconds", st);
    return PW_ACTION_PAUSE;
}

PW_EXPORT(proxy_on_tick)
void proxy_on_tick(uint32_t root_id) {
    pw_logf(PW_LOG_INFO, TAG "onTick %u", root_id);
    for (int i = 0; i < MAX_PENDING; i++) {
        uint32_t ctx = pending[i];
        if (ctx == 0) continue;
        pending[i] = 0;
        num_pending--;
        pw_status_t st = proxy_set_effective_context(ctx);
        if (st != PW_OK) {
            warn_status("set_effective_context", st);
            continue;
        }
        /* The request is paused in its headers phase: still mutable. */
        st = pw_add_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-resumed-by", "tick");
        if (st != PW_OK) warn_status("add_header_map_value", st);
        st = proxy_continue_request();
        if (st != PW_OK) {
            warn_status("continue_request", st);
            continue;
        }
        pw_logf(PW_LOG_INFO, TAG "resumed %u (x-resumed-by: tick)", ctx);
    }
    if (num_pending == 0) {
        /* Back to the root context, whose timer this is. */
        pw_status_t st = proxy_set_effective_context(root_id);
        if (st != PW_OK) warn_status("set_effective_context", st);
        st = proxy_set_tick_period_milliseconds(0);
        if (st != PW_OK) warn_status("set_tick_period_milliseconds", st);
        pw_log(PW_LOG_INFO, TAG "tick period -> 0");
    }
}

PW_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, uint32_t num_headers) {
    pw_logf(PW_LOG_INFO, TAG "onResponseHeaders %u headers=%u", context_id,
            num_headers);
    return PW_ACTION_CONTINUE;
}

PW_EXPORT(proxy_on_done)
uint32_t proxy_on_done(uint32_t context_id) {
    pw_logf(PW_LOG_INFO, TAG "onDone %u", context_id);
    return 1;
}

PW_EXPORT(proxy_on_log)
void proxy_on_log(uint32_t context_id) {
    pw_logf(PW_LOG_INFO, TAG "onLog %u", context_id);
}

PW_EXPORT(proxy_on_delete)
void proxy_on_delete(uint32_t context_id) {
    forget(context_id);
    pw_logf(PW_LOG_INFO, TAG "onDelete %u", context_id);
}
