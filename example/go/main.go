// Command go_wasip1 is a tiny proxy-wasm HTTP plugin written directly against
// the proxy-wasm ABI 0.2.0 (no SDK), for Go 1.24+ with GOOS=wasip1.
//
// Build (see build.sh):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ../go_wasip1.wasm
//
// It exists so that pwcli's tests cover what the Go runtime needs from a host:
// the `_initialize` reactor start-up, `proxy_on_memory_allocate`, and the WASI
// calls the runtime makes (fd_write for fmt/os.Stderr, clock_time_get for
// time.Now, random_get for crypto/rand, poll_oneoff/sched_yield, ...).
//
// Behaviour:
//   - proxy_on_configure: reads the plugin configuration (buffer 7) and prints
//     "go_wasip1: configuration: <cfg>" to stdout with fmt.Println.
//   - proxy_on_request_headers: reads ":path", CAS-increments shared data
//     "go_hits", increments counter metric "go_requests", adds request headers
//     "x-go-hits: <n>" and "x-go-rand: <8 hex digits>", logs via proxy_log.
//   - proxy_on_response_headers: adds response header "x-go: 1" and prints a
//     line to stderr with fmt.Fprintln(os.Stderr, ...).
//
// Every callback returns CONTINUE (0) / true (1) as the ABI expects.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"
	"unsafe"
)

// main is not run for -buildmode=c-shared: the host calls _initialize, which
// initialises the runtime and package variables; then it calls our exports.
func main() {}

// ---------------------------------------------------------------------------
// ABI constants

const (
	statusOK          = 0
	statusNotFound    = 1
	statusCasMismatch = 8

	logTrace = 0
	logDebug = 1
	logInfo  = 2
	logWarn  = 3

	mapRequestHeaders  = 0
	mapResponseHeaders = 2

	bufferPluginConfiguration = 7
	bufferVMConfiguration     = 6

	metricCounter = 0

	actionContinue = 0
)

// ---------------------------------------------------------------------------
// Host functions (module "env"). Pointers into linear memory are passed as
// unsafe.Pointer (lowered to i32); out-params the host writes are uint32 (4
// bytes, little endian), never Go pointers (8 bytes on GOARCH=wasm).

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg unsafe.Pointer, msgLen uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(bufferType, start, maxSize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(mapType uint32, key unsafe.Pointer, keyLen uint32, retVal unsafe.Pointer, retLen unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(mapType uint32, key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) uint32

//go:wasmimport env proxy_get_shared_data
func proxyGetSharedData(key unsafe.Pointer, keyLen uint32, retVal unsafe.Pointer, retLen unsafe.Pointer, retCas unsafe.Pointer) uint32

//go:wasmimport env proxy_set_shared_data
func proxySetSharedData(key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32, cas uint32) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(metricType uint32, name unsafe.Pointer, nameLen uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(metricID uint32, delta int64) uint32

// ---------------------------------------------------------------------------
// Memory: the host calls proxy_on_memory_allocate for every **data/*size
// out-pair, then writes into the buffer. The slice is kept in `pinned` so the
// GC cannot reclaim it before we read it; take() unpins it, and any buffer the
// host allocated but we never consumed is dropped at the start of the next
// callback (sweep).

var pinned = map[uint32][]byte{}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	n := size
	if n == 0 {
		n = 1
	}
	buf := make([]byte, n)
	p := uint32(uintptr(unsafe.Pointer(&buf[0])))
	pinned[p] = buf
	return p
}

// take returns a copy of the host-written buffer at (p, n) and unpins it.
func take(p, n uint32) []byte {
	if p == 0 || n == 0 {
		delete(pinned, p)
		return nil
	}
	buf, ok := pinned[p]
	delete(pinned, p)
	if !ok || uint32(len(buf)) < n {
		// Not a buffer we handed out: the host broke the ABI contract.
		logf(logWarn, "go_wasip1: host returned unknown buffer %#x/%d", p, n)
		return nil
	}
	out := make([]byte, n)
	copy(out, buf[:n])
	return out
}

func sweep() {
	for k := range pinned {
		delete(pinned, k)
	}
}

// ---------------------------------------------------------------------------
// Helpers

func strPtr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

func logf(level uint32, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	proxyLog(level, strPtr(msg), uint32(len(msg)))
}

func getBuffer(bufferType, size uint32) (string, uint32) {
	var p, n uint32
	st := proxyGetBufferBytes(bufferType, 0, size, unsafe.Pointer(&p), unsafe.Pointer(&n))
	return string(take(p, n)), st
}

func getHeader(mapType uint32, key string) (string, uint32) {
	var p, n uint32
	st := proxyGetHeaderMapValue(mapType, strPtr(key), uint32(len(key)), unsafe.Pointer(&p), unsafe.Pointer(&n))
	return string(take(p, n)), st
}

func addHeader(mapType uint32, key, value string) uint32 {
	return proxyAddHeaderMapValue(mapType, strPtr(key), uint32(len(key)), strPtr(value), uint32(len(value)))
}

// incrementShared does a CAS increment of a decimal counter in shared data.
func incrementShared(key string) (uint64, uint32) {
	var st uint32
	for attempt := 0; attempt < 5; attempt++ {
		var p, n, cas uint32
		st = proxyGetSharedData(strPtr(key), uint32(len(key)), unsafe.Pointer(&p), unsafe.Pointer(&n), unsafe.Pointer(&cas))
		raw := string(take(p, n))
		var cur uint64
		switch st {
		case statusOK:
			cur, _ = strconv.ParseUint(raw, 10, 64)
		case statusNotFound:
			cur, cas = 0, 0
		default:
			return 0, st
		}
		next := strconv.FormatUint(cur+1, 10)
		st = proxySetSharedData(strPtr(key), uint32(len(key)), strPtr(next), uint32(len(next)), cas)
		if st == statusOK {
			return cur + 1, st
		}
		if st != statusCasMismatch {
			return 0, st
		}
	}
	return 0, st
}

// ---------------------------------------------------------------------------
// Callbacks

//go:wasmexport proxy_abi_version_0_2_0
func proxyAbiVersion() {}

var requestsMetric uint32
var requestsMetricDefined bool

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(ctx, parent uint32) {
	sweep()
	logf(logDebug, "go_wasip1: context_create ctx=%d parent=%d", ctx, parent)
}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(root, size uint32) uint32 {
	sweep()
	cfg, _ := getBuffer(bufferVMConfiguration, size)
	logf(logInfo, "go_wasip1: vm_start root=%d vm_configuration=%q", root, cfg)
	return 1
}

//go:wasmexport proxy_on_configure
func proxyOnConfigure(root, size uint32) uint32 {
	sweep()
	cfg, st := getBuffer(bufferPluginConfiguration, size)
	if st != statusOK && size != 0 {
		logf(logWarn, "go_wasip1: proxy_get_buffer_bytes(7) status %d", st)
	}
	fmt.Println("go_wasip1: configuration:", cfg)
	return 1
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(ctx, numHeaders, endOfStream uint32) uint32 {
	sweep()
	path, st := getHeader(mapRequestHeaders, ":path")
	if st != statusOK {
		path = "-"
	}

	hits, hst := incrementShared("go_hits")
	if hst != statusOK {
		logf(logWarn, "go_wasip1: shared data go_hits status %d", hst)
	}

	if !requestsMetricDefined {
		name := "go_requests"
		if proxyDefineMetric(metricCounter, strPtr(name), uint32(len(name)), unsafe.Pointer(&requestsMetric)) == statusOK {
			requestsMetricDefined = true
		}
	}
	if requestsMetricDefined {
		proxyIncrementMetric(requestsMetric, 1)
	}

	addHeader(mapRequestHeaders, "x-go-hits", strconv.FormatUint(hits, 10))

	var rb [4]byte
	if _, err := rand.Read(rb[:]); err != nil {
		logf(logWarn, "go_wasip1: crypto/rand: %v", err)
	}
	rnd := hex.EncodeToString(rb[:])
	addHeader(mapRequestHeaders, "x-go-rand", rnd)

	now := time.Now().Unix()
	logf(logInfo, "go_wasip1: request ctx=%d headers=%d eos=%d path=%s hits=%d rand=%s", ctx, numHeaders, endOfStream, path, hits, rnd)
	logf(logInfo, "go_wasip1: time.Now unix=%d", now)
	return actionContinue
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(ctx, numHeaders, endOfStream uint32) uint32 {
	sweep()
	addHeader(mapResponseHeaders, "x-go", "1")
	fmt.Fprintln(os.Stderr, "go_wasip1: response ctx="+strconv.FormatUint(uint64(ctx), 10)+" headers="+strconv.FormatUint(uint64(numHeaders), 10))
	return actionContinue
}

//go:wasmexport proxy_on_done
func proxyOnDone(ctx uint32) uint32 {
	sweep()
	return 1
}

//go:wasmexport proxy_on_log
func proxyOnLog(ctx uint32) {
	sweep()
	logf(logTrace, "go_wasip1: log ctx=%d", ctx)
}

//go:wasmexport proxy_on_delete
func proxyOnDelete(ctx uint32) {
	sweep()
	logf(logDebug, "go_wasip1: delete ctx=%d", ctx)
}
