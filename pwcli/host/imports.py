"""The adapter between guest memory and ``Host``: the only proxy-wasm code that touches pointers.

``Imports.build(module_imports)`` returns the ``HostFunction`` list a backend links. Each function
reads its ``(ptr, len)`` arguments from linear memory, calls the ``Host`` method of the same name and
writes results back, allocating through the guest's ``malloc`` / ``proxy_on_memory_allocate``.
A bad pointer or length never raises: the plugin gets INVALID_MEMORY_ACCESS.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import GuestTrap
from ..runtimes.base import HostFunction, OutOfBounds
from ..wasm import Import
from .codec import decode_pairs, encode_pairs
from .host import Host
from .spec import HOST_FUNCTIONS, WASI_FUNCTIONS, WASI_MODULES, WASI_NOT_IN_ENVOY, Status
from .wasi import Wasi

INVALID = Status.INVALID_MEMORY_ACCESS
_OK = int(Status.OK)  # a plain int: an IntEnum member lookup is slow on the hot path
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# What proxy-wasm-cpp-host allows while the guest allocator or start-up code runs.
ALLOWED_IN_ALLOCATOR = frozenset({"proxy_log", "fd_write", "clock_time_get", "poll_oneoff"})
ALLOWED_IN_STARTUP = frozenset({"proxy_log", "emscripten_notify_memory_growth", *WASI_FUNCTIONS})


class AllocationFailed(Exception):  # noqa: N818
    pass


class Imports:
    """Builds the import table for one instance; ``instance`` is attached once it exists."""

    def __init__(self, host: Host, *, allocator: str | None, lenient: bool = False) -> None:
        self.host = host
        self.allocator = allocator
        self.lenient = lenient
        self._instance: Any = None
        # The memory's bound methods, looked up once when the instance is attached: every host
        # call goes through them. Before that, through the attribute (which fails as it should).
        self.read: Callable[[int, int], bytes] = lambda p, n: self._instance.memory.read(p, n)
        self.write: Callable[[int, bytes], None] = lambda p, d: self._instance.memory.write(p, d)
        self.write_u32: Callable[[int, int], None] = lambda p, v: self.write(
            p, _U32.pack(v & 0xFFFFFFFF))
        self._check: Callable[[int, int], object] = lambda p, n: self.read(p, n)
        self._call: Callable[..., int | None] = lambda *a: self._instance.call(*a)
        self.wasi = Wasi(host, self)

    @property
    def instance(self) -> Any:
        return self._instance

    @instance.setter
    def instance(self, instance: Any) -> None:
        self._instance = instance
        if instance is not None:
            mem = instance.memory
            self.read = mem.read
            self.write = mem.write
            self._call = instance.call
            fast = getattr(mem, "write_u32", None)
            if fast is not None:
                self.write_u32 = fast
            self._check = getattr(mem, "check", None) or mem.read

    def write_u64(self, ptr: int, value: int) -> None:
        self.write(ptr, _U64.pack(value & 0xFFFFFFFFFFFFFFFF))

    def alloc(self, size: int) -> int:
        if self.allocator is None:
            raise AllocationFailed("the plugin exports no allocator")
        host = self.host
        saved = host.restricted
        host.restricted = "allocator"
        try:
            ptr = self._call(self.allocator, size)
        finally:
            host.restricted = saved
        if not ptr:
            raise AllocationFailed(f"{self.allocator}({size}) returned {ptr}")
        try:
            self._check(ptr, size)  # in bounds (the memory re-checks its size if needed)
        except OutOfBounds:
            raise AllocationFailed(f"{self.allocator}({size}) returned {ptr}") from None
        return int(ptr)

    def out_bytes(self, data: bytes, ptr_ptr: int, size_ptr: int) -> None:
        """Hand ``data`` to the guest: allocate, copy, write pointer and size."""
        if not data:
            self.write_u32(ptr_ptr, 0)
            self.write_u32(size_ptr, 0)
            return
        # Check the out-addresses first, so a bad one does not leak a guest allocation.
        check = self._check
        check(ptr_ptr, 4)
        check(size_ptr, 4)
        n = len(data)
        ptr = self.alloc(n)
        self.write(ptr, data)
        write_u32 = self.write_u32
        write_u32(ptr_ptr, ptr)
        write_u32(size_ptr, n)

    def pairs(self, ptr: int, size: int) -> list[tuple[bytes, bytes]] | None:
        return decode_pairs(self.read(ptr, size)) if size else []

    # -- building ---------------------------------------------------------------------------
    def build(self, imports: Sequence[Import], version: str) -> list[HostFunction]:
        out = []
        seen = set()
        for imp in imports:
            if imp.kind != "func" or imp.type is None or (imp.module, imp.name) in seen:
                continue  # a module may import the same function twice (Go imports fd_write so)
            seen.add((imp.module, imp.name))
            fn = self._function(imp, version)
            out.append(HostFunction(imp.module, imp.name, imp.type.params, imp.type.results, fn))
        return out

    def _function(self, imp: Import, version: str) -> Callable[..., int | None]:
        if imp.module == "env" and imp.name in HOST_FUNCTIONS:
            spec = HOST_FUNCTIONS[imp.name]
            if version in spec.versions and imp.type is not None and (
                imp.type.params == spec.signature.params
                and imp.type.results == spec.signature.results
            ):
                return self._guard(imp.name, getattr(self, "_" + imp.name))
        elif imp.module in WASI_MODULES and imp.name in WASI_FUNCTIONS:
            sig = WASI_FUNCTIONS[imp.name]
            if imp.type is not None and imp.type.params == sig.params and imp.type.results == sig.results:
                return self._guard(imp.name, getattr(self.wasi, imp.name), wasi=True)
        # Refused at load unless --lenient (plugin.check_imports): a stub that says so.
        return self._stub(imp)

    def _stub(self, imp: Import) -> Callable[..., int | None]:
        host = self.host
        has_result = bool(imp.type and imp.type.results)
        wasi = imp.module in WASI_MODULES

        def stub(*args: int) -> int | None:
            host.record(
                "hostcall", f"{imp.module}.{imp.name}", {"args": list(args)}, "UNIMPLEMENTED (stub)"
            )
            if not has_result:
                return None
            return 52 if wasi else int(Status.UNIMPLEMENTED)  # ENOSYS / UNIMPLEMENTED

        return stub

    def _guard(
        self, name: str, fn: Callable[..., int | None], wasi: bool = False
    ) -> Callable[..., int | None]:
        host = self.host
        lenient = self.lenient
        allowed = {"allocator": ALLOWED_IN_ALLOCATOR, "startup": ALLOWED_IN_STARTUP}
        fault = 21 if wasi else int(INVALID)  # WASI EFAULT / INVALID_MEMORY_ACCESS

        def guarded(*args: int) -> int | None:
            if host.restricted is not None and name not in allowed[host.restricted]:
                if not lenient:
                    raise GuestTrap(
                        "restricted_callback",
                        f"{name} is not allowed while the {host.restricted} runs "
                        "(Envoy's restricted_callback)",
                    )
                host.record("note", "restricted_callback_allowed",
                            {"function": name, "during": host.restricted, "by": "--lenient"})
            mark = len(host.events)
            try:
                return fn(*args)
            except (OutOfBounds, AllocationFailed) as exc:
                why = "allocation failed" if isinstance(exc, AllocationFailed) else "bad pointer"
                result = "INVALID_MEMORY_ACCESS" if not wasi else "FAULT"
                # The host may have recorded the call before its answer could be written back:
                # that event now carries the status the plugin really got.
                done = [e for e in host.events[mark:] if e.kind == "hostcall" and e.name == name]
                if done:
                    done[-1].args = {**done[-1].args, "error": why}
                    done[-1].result = result
                else:
                    host.record("hostcall", name, {"args": list(args), "error": why}, result)
                return fault

        return guarded

    # -- env.proxy_* ------------------------------------------------------------------------
    def _proxy_log(self, level: int, ptr: int, size: int) -> int:
        return self.host.proxy_log(level, self.read(ptr, size))

    def _proxy_get_log_level(self, level_ptr: int) -> int:
        self.read(level_ptr, 4)
        status, level = self.host.proxy_get_log_level()
        self.write_u32(level_ptr, level)
        return status

    def _proxy_get_current_time_nanoseconds(self, out: int) -> int:
        self.read(out, 8)
        status, now = self.host.proxy_get_current_time_nanoseconds()
        self.write_u64(out, now)
        return status

    def _proxy_set_tick_period_milliseconds(self, period: int) -> int:
        return self.host.proxy_set_tick_period_milliseconds(period)

    def _proxy_done(self) -> int:
        return self.host.proxy_done()

    def _proxy_set_effective_context(self, ctx: int) -> int:
        return self.host.proxy_set_effective_context(ctx)

    def _proxy_get_status(self, code_ptr: int, msg_ptr: int, size_ptr: int) -> int:
        self.read(code_ptr, 4)
        status, code, msg = self.host.proxy_get_status()
        if status == _OK:
            self.write_u32(code_ptr, code)
            self.out_bytes(msg, msg_ptr, size_ptr)
        return status

    def _proxy_get_configuration(self, ptr_ptr: int, size_ptr: int) -> int:
        status, data = self.host.proxy_get_configuration()
        if status == _OK:
            self.out_bytes(data, ptr_ptr, size_ptr)
        return status

    def _proxy_get_buffer_bytes(
        self, btype: int, start: int, max_size: int, ptr_ptr: int, size_ptr: int
    ) -> int:
        status, data = self.host.proxy_get_buffer_bytes(btype, start, max_size)
        if status == _OK:
            self.out_bytes(data, ptr_ptr, size_ptr)
        return status

    def _proxy_get_buffer_status(self, btype: int, size_ptr: int, flags_ptr: int) -> int:
        self.read(size_ptr, 4)
        self.read(flags_ptr, 4)
        status, size, flags = self.host.proxy_get_buffer_status(btype)
        if status == _OK:
            self.write_u32(size_ptr, size)
            self.write_u32(flags_ptr, flags)
        return status

    def _proxy_set_buffer_bytes(self, btype: int, start: int, size: int, ptr: int, n: int) -> int:
        return self.host.proxy_set_buffer_bytes(btype, start, size, self.read(ptr, n))

    def _proxy_get_header_map_size(self, mtype: int, size_ptr: int) -> int:
        self.read(size_ptr, 4)
        status, size = self.host.proxy_get_header_map_size(mtype)
        if status == _OK:
            self.write_u32(size_ptr, size)
        return status

    def _proxy_get_header_map_pairs(self, mtype: int, ptr_ptr: int, size_ptr: int) -> int:
        status, pairs = self.host.proxy_get_header_map_pairs(mtype)
        if status == _OK:
            self.out_bytes(encode_pairs(pairs), ptr_ptr, size_ptr)
        return status

    def _proxy_set_header_map_pairs(self, mtype: int, ptr: int, size: int) -> int:
        return self.host.proxy_set_header_map_pairs(mtype, self.pairs(ptr, size))

    def _proxy_get_header_map_value(
        self, mtype: int, kptr: int, klen: int, vptr_ptr: int, vlen_ptr: int
    ) -> int:
        status, value = self.host.proxy_get_header_map_value(mtype, self.read(kptr, klen))
        if status == _OK:
            self.out_bytes(value, vptr_ptr, vlen_ptr)
        return status

    def _proxy_add_header_map_value(self, mtype: int, kp: int, kl: int, vp: int, vl: int) -> int:
        return self.host.proxy_add_header_map_value(mtype, self.read(kp, kl), self.read(vp, vl))

    def _proxy_replace_header_map_value(
        self, mtype: int, kp: int, kl: int, vp: int, vl: int
    ) -> int:
        return self.host.proxy_replace_header_map_value(
            mtype, self.read(kp, kl), self.read(vp, vl)
        )

    def _proxy_remove_header_map_value(self, mtype: int, kp: int, kl: int) -> int:
        return self.host.proxy_remove_header_map_value(mtype, self.read(kp, kl))

    def _proxy_continue_stream(self, stype: int) -> int:
        return self.host.proxy_continue_stream(stype)

    def _proxy_close_stream(self, stype: int) -> int:
        return self.host.proxy_close_stream(stype)

    def _proxy_continue_request(self) -> int:
        return self.host.proxy_continue_request()

    def _proxy_continue_response(self) -> int:
        return self.host.proxy_continue_response()

    def _proxy_clear_route_cache(self) -> int:
        return self.host.proxy_clear_route_cache()

    def _proxy_send_local_response(
        self, status: int, dp: int, dl: int, bp: int, bl: int, hp: int, hl: int, grpc: int
    ) -> int:
        details, body = self.read(dp, dl), self.read(bp, bl)
        return self.host.proxy_send_local_response(status, details, body, self.pairs(hp, hl), grpc)

    def _proxy_http_call(
        self, up: int, ul: int, hp: int, hl: int, bp: int, bl: int, tp: int, tl: int,
        timeout: int, token_ptr: int,
    ) -> int:
        upstream, body = self.read(up, ul), self.read(bp, bl)
        headers, trailers = self.pairs(hp, hl), self.pairs(tp, tl)
        self.read(token_ptr, 4)
        status, token = self.host.proxy_http_call(upstream, headers, body, trailers, timeout)
        if status == _OK:
            self.write_u32(token_ptr, token)
        return status

    def _proxy_grpc_call(
        self, up: int, ul: int, sp: int, sl: int, mp: int, ml: int, ip: int, il: int,
        msgp: int, msgl: int, timeout: int, token_ptr: int,
    ) -> int:
        args = (self.read(up, ul), self.read(sp, sl), self.read(mp, ml), self.pairs(ip, il))
        message = self.read(msgp, msgl)
        self.read(token_ptr, 4)
        status, token = self.host.proxy_grpc_call(*args, message, timeout)
        if status == _OK:
            self.write_u32(token_ptr, token)
        return status

    def _proxy_grpc_stream(
        self, up: int, ul: int, sp: int, sl: int, mp: int, ml: int, ip: int, il: int,
        token_ptr: int,
    ) -> int:
        args = (self.read(up, ul), self.read(sp, sl), self.read(mp, ml), self.pairs(ip, il))
        self.read(token_ptr, 4)
        status, token = self.host.proxy_grpc_stream(*args)
        if status == _OK:
            self.write_u32(token_ptr, token)
        return status

    def _proxy_grpc_send(self, token: int, ptr: int, size: int, end: int) -> int:
        return self.host.proxy_grpc_send(token, self.read(ptr, size), end)

    def _proxy_grpc_cancel(self, token: int) -> int:
        return self.host.proxy_grpc_cancel(token)

    def _proxy_grpc_close(self, token: int) -> int:
        return self.host.proxy_grpc_close(token)

    def _proxy_get_shared_data(
        self, kp: int, kl: int, vptr_ptr: int, vlen_ptr: int, cas_ptr: int
    ) -> int:
        key = self.read(kp, kl)
        self.read(cas_ptr, 4)
        status, value, cas = self.host.proxy_get_shared_data(key)
        if status == _OK:
            self.out_bytes(value, vptr_ptr, vlen_ptr)
            self.write_u32(cas_ptr, cas)
        return status

    def _proxy_set_shared_data(self, kp: int, kl: int, vp: int, vl: int, cas: int) -> int:
        return self.host.proxy_set_shared_data(self.read(kp, kl), self.read(vp, vl), cas)

    def _proxy_register_shared_queue(self, np_: int, nl: int, id_ptr: int) -> int:
        name = self.read(np_, nl)
        self.read(id_ptr, 4)
        status, qid = self.host.proxy_register_shared_queue(name)
        if status == _OK:
            self.write_u32(id_ptr, qid)
        return status

    def _proxy_resolve_shared_queue(self, vp: int, vl: int, np_: int, nl: int, id_ptr: int) -> int:
        vm_id, name = self.read(vp, vl), self.read(np_, nl)
        self.read(id_ptr, 4)
        status, qid = self.host.proxy_resolve_shared_queue(vm_id, name)
        if status == _OK:
            self.write_u32(id_ptr, qid)
        return status

    def _proxy_enqueue_shared_queue(self, qid: int, ptr: int, size: int) -> int:
        return self.host.proxy_enqueue_shared_queue(qid, self.read(ptr, size))

    def _proxy_dequeue_shared_queue(self, qid: int, ptr_ptr: int, size_ptr: int) -> int:
        status, value = self.host.proxy_dequeue_shared_queue(qid)
        if status == _OK:
            self.out_bytes(value, ptr_ptr, size_ptr)
        return status

    def _proxy_define_metric(self, mtype: int, np_: int, nl: int, id_ptr: int) -> int:
        name = self.read(np_, nl)
        self.read(id_ptr, 4)
        status, mid = self.host.proxy_define_metric(mtype, name)
        if status == _OK:
            self.write_u32(id_ptr, mid)
        return status

    def _proxy_increment_metric(self, mid: int, delta: int) -> int:
        return self.host.proxy_increment_metric(mid, delta)

    def _proxy_record_metric(self, mid: int, value: int) -> int:
        return self.host.proxy_record_metric(mid, value)

    def _proxy_get_metric(self, mid: int, out: int) -> int:
        self.read(out, 8)
        status, value = self.host.proxy_get_metric(mid)
        if status == _OK:
            self.write_u64(out, value)
        return status

    def _proxy_get_property(self, pp: int, pl: int, vptr_ptr: int, vlen_ptr: int) -> int:
        status, value = self.host.proxy_get_property(self.read(pp, pl))
        if status == _OK:
            self.out_bytes(value, vptr_ptr, vlen_ptr)
        return status

    def _proxy_set_property(self, pp: int, pl: int, vp: int, vl: int) -> int:
        return self.host.proxy_set_property(self.read(pp, pl), self.read(vp, vl))

    def _proxy_call_foreign_function(
        self, np_: int, nl: int, ap: int, al: int, rptr_ptr: int, rlen_ptr: int
    ) -> int:
        status, out = self.host.proxy_call_foreign_function(self.read(np_, nl), self.read(ap, al))
        if status == _OK:
            self.out_bytes(out, rptr_ptr, rlen_ptr)
        return status

    def _emscripten_notify_memory_growth(self, index: int) -> None:
        return None

    def _pthread_equal(self, a: int, b: int) -> int:
        return self.host.pthread_equal(a, b)


def refused_imports(imports: Sequence[Import], version: str) -> list[str]:
    """Imports Envoy would not link for this ABI version: each as one readable reason."""
    out = []
    for imp in imports:
        if imp.kind != "func":
            if imp.kind == "memory":
                out.append(f"{imp.module}.{imp.name} (an imported memory: Envoy links none)")
            else:
                out.append(f"{imp.module}.{imp.name} (an imported {imp.kind}: Envoy links none)")
            continue
        if imp.module == "env":
            spec = HOST_FUNCTIONS.get(imp.name)
            if spec is None:
                out.append(f"env.{imp.name} (not a proxy-wasm host function)")
            elif version not in spec.versions:
                vers = ", ".join(sorted(spec.versions))
                out.append(f"env.{imp.name} (ABI {vers} only; the module declares {version})")
            elif imp.type is not None and (
                imp.type.params != spec.signature.params or imp.type.results != spec.signature.results
            ):
                out.append(
                    f"env.{imp.name} (imported as {_sig(imp)}, the host provides {spec.signature})"
                )
        elif imp.module in WASI_MODULES:
            sig = WASI_FUNCTIONS.get(imp.name)
            if sig is None:
                why = "not linked by proxy-wasm-cpp-host" if imp.name in WASI_NOT_IN_ENVOY else (
                    "not a WASI preview1 function"
                )
                out.append(f"{imp.module}.{imp.name} ({why})")
            elif imp.type is not None and (imp.type.params != sig.params or imp.type.results != sig.results):
                out.append(f"{imp.module}.{imp.name} (imported as {_sig(imp)}, the host provides {sig})")
        else:
            out.append(f"{imp.module}.{imp.name} (unknown import module {imp.module!r})")
    return out


def _sig(imp: Import) -> str:
    assert imp.type is not None
    return " ".join(imp.type.params) + " -> " + " ".join(imp.type.results)
