//! rust_tcp: a tiny proxy-wasm *network (TCP, L4)* plugin written directly
//! against the proxy-wasm ABI 0.1.0, with no SDK and no crates, so pwcli's
//! tests cover an old-ABI Rust module built for WASI.
//!
//! Build (see build.sh): Debian's rustc 1.63 with its wasm32 standard library,
//!
//!     rustc --edition 2021 --target wasm32-wasi --crate-type cdylib -O \
//!           -C strip=debuginfo -o ../rust_tcp.wasm src/lib.rs
//!
//! Behaviour (every log line is prefixed with "rust_tcp: "):
//! - _initialize (start-up export) runs the C constructors and logs once;
//! - on_vm_start reads the VM configuration with proxy_get_configuration and
//!   prints one line to stdout through Rust's std (WASI fd_write);
//! - on_configure reads the plugin configuration with proxy_get_configuration,
//!   logs it and defines the gauge metric "rust_bytes";
//! - on_new_connection logs and continues;
//! - on_downstream_data reads buffer 2, logs it and, if it contains "PING",
//!   replaces the whole data with "PONG";
//! - on_upstream_data reads buffer 3 and logs its size;
//! - both data callbacks record the total bytes seen (all connections) in
//!   "rust_bytes" with proxy_record_metric;
//! - the close callbacks log the peer type; on_done returns 1; on_log and
//!   on_delete log.

use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

// ---------------------------------------------------------------------------
// ABI constants

const STATUS_OK: u32 = 0;

const LOG_TRACE: u32 = 0;
const LOG_DEBUG: u32 = 1;
const LOG_INFO: u32 = 2;
const LOG_WARN: u32 = 3;

const BUFFER_DOWNSTREAM_DATA: u32 = 2;
const BUFFER_UPSTREAM_DATA: u32 = 3;

const METRIC_GAUGE: u32 = 1;

const ACTION_CONTINUE: u32 = 0;

// ---------------------------------------------------------------------------
// Host functions (module "env", proxy-wasm 0.1.0)

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_configuration(return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: i64) -> u32;
}

// ---------------------------------------------------------------------------
// Memory. The host calls proxy_on_memory_allocate for each **data/*size
// out-pair and hands ownership of the block to us; take() copies and frees it.
// (No `malloc` export: on wasm32-wasi that symbol belongs to wasi-libc.)

fn layout(size: usize) -> Layout {
    // Never zero-sized, so a zero-byte request still yields a unique pointer.
    Layout::from_size_align(size.max(1), 1).unwrap()
}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    unsafe { alloc(layout(size)) }
}

fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    unsafe {
        let out = std::slice::from_raw_parts(ptr, size).to_vec();
        dealloc(ptr, layout(size));
        out
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn log(level: u32, msg: &str) {
    unsafe {
        proxy_log(level, msg.as_ptr(), msg.len());
    }
}

fn get_configuration() -> (u32, Vec<u8>) {
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let status = unsafe { proxy_get_configuration(&mut ptr, &mut size) };
    (status, take(ptr, size))
}

fn get_buffer(buffer_type: u32, size: usize) -> (u32, Vec<u8>) {
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, 0, size, &mut ptr, &mut len) };
    (status, take(ptr, len))
}

fn peer_name(peer_type: u32) -> &'static str {
    match peer_type {
        0 => "unknown",
        1 => "local",
        2 => "remote",
        _ => "invalid",
    }
}

static BYTES_METRIC: AtomicU32 = AtomicU32::new(0);
static BYTES_METRIC_DEFINED: AtomicBool = AtomicBool::new(false);
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);

fn count_bytes(n: usize) {
    let total = TOTAL_BYTES.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
    if BYTES_METRIC_DEFINED.load(Ordering::Relaxed) {
        let status = unsafe { proxy_record_metric(BYTES_METRIC.load(Ordering::Relaxed), total as i64) };
        if status != STATUS_OK {
            log(LOG_WARN, &format!("rust_tcp: proxy_record_metric status {}", status));
        }
    }
}

// ---------------------------------------------------------------------------
// Callbacks (ABI 0.1.0)

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_1_0() {}

extern "C" {
    /// Synthesized by wasm-ld: runs the static constructors of wasi-libc
    /// (here: the eager copy of the WASI environment into `environ`).
    fn __wasm_call_ctors();
}

/// WASI *reactor* start-up export. rustc 1.63 does not link wasi-libc's
/// crt1-reactor.o for a cdylib, so we provide the same thing ourselves: run
/// the constructors once, then log. The host calls it once after
/// instantiation, before any proxy_on_* callback.
///
/// (A `_start` export instead would make wasm-ld treat the module as a WASI
/// "command" and wrap EVERY export in __wasm_call_ctors/__wasm_call_dtors,
/// re-reading the environment, even inside proxy_on_memory_allocate.)
#[no_mangle]
pub extern "C" fn _initialize() {
    unsafe { __wasm_call_ctors() };
    log(LOG_INFO, "rust_tcp: _initialize");
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    log(
        LOG_DEBUG,
        &format!("rust_tcp: context_create ctx={} parent={}", context_id, parent_context_id),
    );
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(root_context_id: u32, vm_configuration_size: u32) -> u32 {
    let (status, cfg) = get_configuration();
    log(
        LOG_INFO,
        &format!(
            "rust_tcp: vm_start root={} size={} status={} vm_configuration={:?}",
            root_context_id,
            vm_configuration_size,
            status,
            String::from_utf8_lossy(&cfg)
        ),
    );
    // Goes through Rust std -> WASI fd_write(1, ...).
    println!("rust_tcp: vm_start via WASI stdout");
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, configuration_size: u32) -> u32 {
    let (status, cfg) = get_configuration();
    log(
        LOG_INFO,
        &format!(
            "rust_tcp: configure root={} size={} status={} configuration={:?}",
            root_context_id,
            configuration_size,
            status,
            String::from_utf8_lossy(&cfg)
        ),
    );
    if !BYTES_METRIC_DEFINED.load(Ordering::Relaxed) {
        let name = "rust_bytes";
        let mut id: u32 = 0;
        let status = unsafe { proxy_define_metric(METRIC_GAUGE, name.as_ptr(), name.len(), &mut id) };
        if status == STATUS_OK {
            BYTES_METRIC.store(id, Ordering::Relaxed);
            BYTES_METRIC_DEFINED.store(true, Ordering::Relaxed);
        } else {
            log(LOG_WARN, &format!("rust_tcp: proxy_define_metric status {}", status));
        }
    }
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(context_id: u32) -> u32 {
    log(LOG_INFO, &format!("rust_tcp: new_connection ctx={}", context_id));
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_data(context_id: u32, data_size: u32, end_of_stream: u32) -> u32 {
    let size = data_size as usize;
    let (status, data) = get_buffer(BUFFER_DOWNSTREAM_DATA, size);
    log(
        LOG_INFO,
        &format!(
            "rust_tcp: downstream_data ctx={} size={} eos={} status={} data={:?}",
            context_id,
            data_size,
            end_of_stream,
            status,
            String::from_utf8_lossy(&data)
        ),
    );
    count_bytes(size);
    if data.windows(4).any(|w| w == b"PING") {
        let pong = b"PONG";
        let st = unsafe { proxy_set_buffer_bytes(BUFFER_DOWNSTREAM_DATA, 0, size, pong.as_ptr(), pong.len()) };
        log(
            LOG_INFO,
            &format!("rust_tcp: replaced downstream data with \"PONG\" ctx={} status={}", context_id, st),
        );
    }
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_data(context_id: u32, data_size: u32, end_of_stream: u32) -> u32 {
    let (status, data) = get_buffer(BUFFER_UPSTREAM_DATA, data_size as usize);
    log(
        LOG_INFO,
        &format!(
            "rust_tcp: upstream_data ctx={} size={} eos={} status={} read={}",
            context_id,
            data_size,
            end_of_stream,
            status,
            data.len()
        ),
    );
    count_bytes(data_size as usize);
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_connection_close(context_id: u32, peer_type: u32) {
    log(
        LOG_INFO,
        &format!("rust_tcp: downstream_connection_close ctx={} peer={}", context_id, peer_name(peer_type)),
    );
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_connection_close(context_id: u32, peer_type: u32) {
    log(
        LOG_INFO,
        &format!("rust_tcp: upstream_connection_close ctx={} peer={}", context_id, peer_name(peer_type)),
    );
}

#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    log(LOG_DEBUG, &format!("rust_tcp: done ctx={}", context_id));
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    log(
        LOG_INFO,
        &format!(
            "rust_tcp: log ctx={} total_bytes={}",
            context_id,
            TOTAL_BYTES.load(Ordering::Relaxed)
        ),
    );
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    log(LOG_TRACE, &format!("rust_tcp: delete ctx={}", context_id));
}
