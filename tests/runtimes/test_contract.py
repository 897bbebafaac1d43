"""The backend contract (pwcli.runtimes.base) on every available backend, with tiny WAT guests.

Each test runs on wasmtime, WAMR and WasmEdge alike (the ``runtime`` fixture): calls and results,
linear memory and its bounds, every trap kind with its canonical name, host functions that re-enter
the guest, exceptions that cross the guest, ``GuestExit``, the budget, the wall-clock guard and the
memory cap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import wasmtime

from pwcli import runtimes
from pwcli.errors import BackendError, GuestExit, GuestTrap, PluginLoadError
from pwcli.runtimes.base import HostFunction, Limits, OutOfBounds

MiB = 1 << 20
LIMITS = Limits(fuel=1_000_000, max_memory=4 * MiB, wall_seconds=30.0)


def wasm(body: str, memory: str = '(memory (export "memory") 1 64)') -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {body} {memory})"))


def load(
    runtime: str,
    body: str,
    imports: Sequence[HostFunction] = (),
    *,
    limits: Limits = LIMITS,
    memory: str = '(memory (export "memory") 1 64)',
) -> Any:
    return runtimes.create(runtime).load(wasm(body, memory), list(imports), limits=limits)


def host(
    name: str, params: Sequence[str], results: Sequence[str], fn: Callable[..., int | None]
) -> HostFunction:
    return HostFunction("env", name, tuple(params), tuple(results), fn)


def trap(inst: Any, name: str, *args: int) -> GuestTrap:
    with pytest.raises(GuestTrap) as info:
        inst.call(name, *args)
    return info.value


# -- calls ----------------------------------------------------------------------------------
def test_call_passes_and_returns_i32_unsigned_and_i64_signed(runtime: str) -> None:
    inst = load(
        runtime,
        """
      (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
      (func (export "neg") (param i64) (result i64) i64.const 0 local.get 0 i64.sub)
      (func (export "minus1") (result i32) i32.const -1)
      (func (export "nothing"))
      (func (export "two") (result i32 i32) i32.const 7 i32.const 8)
    """,
    )
    assert inst.call("add", 2, 40) == 42
    assert inst.call("add", 0xFFFFFFFF, 2) == 1
    assert inst.call("minus1") == 0xFFFFFFFF
    assert inst.call("neg", 5) == -5
    assert inst.call("neg", -(1 << 40)) == 1 << 40
    assert inst.call("nothing") is None
    assert inst.call("two") == 7  # the first result
    assert (
        inst.has_export("add") and not inst.has_export("absent") and not inst.has_export("memory")
    )


def test_unknown_export_is_a_key_error(runtime: str) -> None:
    inst = load(runtime, '(func (export "f"))')
    with pytest.raises(KeyError):
        inst.call("absent")


# -- memory ---------------------------------------------------------------------------------
def test_memory_read_write_size_and_bounds(runtime: str) -> None:
    inst = load(
        runtime,
        """
      (data (i32.const 16) "hello")
      (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u)
      (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
    """,
    )
    mem = inst.memory
    assert mem.size() == 65536
    assert mem.read(16, 5) == b"hello"
    mem.write(100, b"\x07\x08")
    assert inst.call("load8", 101) == 8
    assert mem.read(65535, 1) == b"\x00" and mem.read(65536, 0) == b""
    for ptr, size in ((65535, 2), (65536, 1), (0xFFFFFFFF, 1), (0, 0x10001)):
        with pytest.raises(OutOfBounds):
            mem.read(ptr, size)
    with pytest.raises(OutOfBounds):
        mem.write(65534, b"abc")
    assert inst.call("grow", 2) == 1
    assert mem.size() == 3 * 65536
    mem.write(3 * 65536 - 1, b"\x2a")
    assert inst.call("load8", 3 * 65536 - 1) == 42
    assert mem.read(16, 5) == b"hello"  # still the same memory after it grew (and maybe moved)


def test_a_module_without_memory_grow_keeps_its_declared_size(runtime: str) -> None:
    inst = load(runtime, '(func (export "f"))', memory='(memory (export "memory") 3)')
    assert inst.memory.size() == 3 * 65536
    inst.memory.write(3 * 65536 - 4, b"abcd")
    assert inst.memory.read(3 * 65536 - 4, 4) == b"abcd"


def test_host_function_sees_memory_the_guest_grew_before_calling_it(runtime: str) -> None:
    seen: list[bytes] = []
    inst = None

    def look(ptr: int) -> None:
        seen.append(inst.memory.read(ptr, 3))

    inst = load(
        runtime,
        """
      (import "env" "look" (func $look (param i32)))
      (func (export "f")
        (drop (memory.grow (i32.const 5)))
        (i32.store (i32.const 0x50000) (i32.const 0x636261))
        (call $look (i32.const 0x50000)))
    """,
        [host("look", ["i32"], [], look)],
    )
    inst.memory.read(0, 4)  # cache the view of the one-page memory first
    inst.call("f")
    assert seen == [b"abc"]


# -- traps ----------------------------------------------------------------------------------
TRAPS = {
    "unreachable": ("unreachable", "unreachable"),
    "oob_load": ("i32.const 65535 i32.load drop", "memory_out_of_bounds"),
    "oob_store": ("i32.const -4 i32.const 1 i32.store", "memory_out_of_bounds"),
    "div_zero": ("i32.const 1 i32.const 0 i32.div_u drop", "integer_divide_by_zero"),
    "overflow": ("i32.const 0x80000000 i32.const -1 i32.div_s drop", "integer_overflow"),
    "bad_conversion": ("f32.const nan i32.trunc_f32_s drop", "bad_conversion_to_integer"),
    "table_oob": ("i32.const 5 call_indirect (type $v)", "table_out_of_bounds"),
    "null_entry": ("i32.const 1 call_indirect (type $v)", "indirect_call_to_null"),
    "bad_signature": ("i32.const 1 i32.const 0 call_indirect (type $i)", "bad_signature"),
    "stack_overflow": ("call $recurse", "stack_overflow"),
}


@pytest.mark.parametrize("case", list(TRAPS))
def test_every_trap_has_its_canonical_kind(runtime: str, case: str) -> None:
    code, kind = TRAPS[case]
    inst = load(
        runtime,
        f"""
      (type $v (func))
      (type $i (func (param i32)))
      (table 2 funcref)
      (elem (i32.const 0) $nop)
      (func $nop)
      (func $recurse call $recurse)
      (func (export "go") {code})
      (func (export "ok") (result i32) i32.const 5)
    """,
    )
    t = trap(inst, "go")
    assert t.kind == kind, t
    assert inst.call("ok") == 5  # a trap is not sticky: the instance still works


def test_stack_overflow_then_the_instance_still_recurses_normally(runtime: str) -> None:
    inst = load(
        runtime,
        """
      (func $down (export "down") (param i32) (result i32)
        local.get 0 i32.eqz if (result i32) i32.const 0 else
        local.get 0 i32.const 1 i32.sub call $down i32.const 1 i32.add end)
      (func $forever (export "forever") call $forever)
    """,
    )
    for _ in range(3):  # the depth count starts afresh after every overflow
        assert trap(inst, "forever").kind == "stack_overflow"
        assert inst.call("down", 500) == 500


def test_a_trap_in_the_start_function_is_a_guest_trap_at_load(runtime: str) -> None:
    with pytest.raises(GuestTrap) as info:
        load(runtime, '(func $s unreachable) (start $s) (func (export "f"))')
    assert info.value.kind == "unreachable"


# -- host functions -------------------------------------------------------------------------
def test_host_functions_get_unsigned_i32_and_signed_i64_and_return_values(runtime: str) -> None:
    got: list[tuple[int, ...]] = []

    def h(a: int, b: int, c: float, d: float) -> int:
        got.append((a, b, c, d))
        return -1  # masked to the i32 result

    def h64(a: int) -> int:
        return a * 2

    inst = load(
        runtime,
        """
      (import "env" "h" (func $h (param i32 i64 f32 f64) (result i32)))
      (import "env" "h64" (func $h64 (param i64) (result i64)))
      (func (export "f") (result i32)
        (call $h (i32.const -2) (i64.const -3) (f32.const 1.5) (f64.const 2.25)))
      (func (export "g") (result i64) (call $h64 (i64.const -21)))
    """,
        [host("h", ["i32", "i64", "f32", "f64"], ["i32"], h), host("h64", ["i64"], ["i64"], h64)],
    )
    assert inst.call("f") == 0xFFFFFFFF
    assert got == [(0xFFFFFFFE, -3, 1.5, 2.25)]
    assert inst.call("g") == -42


REENTRANT = """
  (import "env" "outer" (func $outer (param i32) (result i32)))
  (global $heap (mut i32) (i32.const 0x1000))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add global.set $heap
    (drop (memory.grow (i32.const 1)))  ;; every allocation grows memory: the base may move
    local.get $p)
  (func (export "boom") (param i32) (result i32) unreachable)
  (func (export "run") (param i32) (result i32) (call $outer (local.get 0)))
"""


def test_a_host_function_re_enters_the_guest_and_writes_into_what_it_allocated(
    runtime: str,
) -> None:
    inst = None

    def outer(n: int) -> int:
        ptr = inst.call("malloc", n)
        inst.memory.write(ptr, b"x" * n)
        inner = inst.call("malloc", 4)  # twice: nested buffers per depth
        inst.memory.write(inner, b"abcd")
        return ptr

    inst = load(runtime, REENTRANT, [host("outer", ["i32"], ["i32"], outer)])
    ptr = inst.call("run", 8)
    assert ptr == 0x1000
    assert inst.memory.read(0x1000, 12) == b"xxxxxxxxabcd"
    assert inst.memory.size() == 3 * 65536
    assert inst.call("run", 2) == 0x100C  # and again


class PwcliBug(Exception):
    pass


def test_a_python_exception_in_a_host_function_comes_out_as_itself(runtime: str) -> None:
    def outer(n: int) -> int:
        raise PwcliBug(f"bug {n}")

    inst = load(runtime, REENTRANT, [host("outer", ["i32"], ["i32"], outer)])
    with pytest.raises(PwcliBug, match="bug 3"):
        inst.call("run", 3)
    assert inst.call("malloc", 1) == 0x1000  # the instance still works


def test_a_host_function_returning_none_for_an_i32_is_a_bug_that_comes_out(runtime: str) -> None:
    inst = load(runtime, REENTRANT, [host("outer", ["i32"], ["i32"], lambda n: None)])
    with pytest.raises(TypeError):
        inst.call("run", 3)


def test_a_guest_trap_raised_by_a_host_function_comes_out_as_itself(runtime: str) -> None:
    mine = GuestTrap("restricted_callback", "not now")

    def outer(n: int) -> int:
        raise mine

    inst = load(runtime, REENTRANT, [host("outer", ["i32"], ["i32"], outer)])
    with pytest.raises(GuestTrap) as info:
        inst.call("run", 1)
    assert info.value is mine and info.value.kind == "restricted_callback"


def test_a_trap_in_a_nested_call_propagates_through_the_host_function(runtime: str) -> None:
    inst = None

    def outer(n: int) -> int:
        return inst.call("boom", n)

    inst = load(runtime, REENTRANT, [host("outer", ["i32"], ["i32"], outer)])
    assert trap(inst, "run", 1).kind == "unreachable"
    assert inst.call("malloc", 1) == 0x1000


def test_guest_exit_is_proc_exit_with_its_code(runtime: str) -> None:
    def proc_exit(code: int) -> None:
        raise GuestExit(code)

    inst = load(
        runtime,
        """
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (func (export "f") (call $exit (i32.const 7)) unreachable)
    """,
        [HostFunction("wasi_snapshot_preview1", "proc_exit", ("i32",), (), proc_exit)],
    )
    t = trap(inst, "f")
    assert (t.kind, t.code, t.message) == ("proc_exit", 7, "proc_exit(7)")


# -- limits ---------------------------------------------------------------------------------
SPIN = """
  (import "env" "tick" (func $tick))
  (func (export "spin") (loop $l br $l))
  (func (export "spin_calling") (loop $l call $tick br $l))
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    local.get $i)
"""


def test_the_budget_stops_a_runaway_loop_deterministically_per_call(runtime: str) -> None:
    inst = load(
        runtime,
        SPIN,
        [host("tick", [], [], lambda: None)],
        limits=Limits(fuel=100_000, max_memory=4 * MiB, wall_seconds=30.0),
    )
    for _ in range(3):
        t = trap(inst, "spin")
        assert (t.kind, t.out_of_fuel) == ("timeout", True)
        assert "the per-call budget of 100000 fuel units ran out" in t.message
    assert inst.call("count", 1000) == 1000  # a fresh budget for every top-level call
    assert trap(inst, "count", 1_000_000).kind == "timeout"


@pytest.mark.parametrize("export", ["spin", "spin_calling"])
def test_the_wall_clock_guard_stops_an_unmetered_loop(runtime: str, export: str) -> None:
    inst = load(
        runtime,
        SPIN,
        [host("tick", [], [], lambda: None)],
        limits=Limits(fuel=None, max_memory=4 * MiB, wall_seconds=0.1),
    )
    t = trap(inst, export)
    assert (t.kind, t.out_of_fuel) == ("timeout", False)
    assert "the wall-clock guard of 0.1 s ran out" in t.message
    assert inst.call("count", 10) == 10  # and the instance goes on


def test_the_memory_cap_refuses_memory_grow(runtime: str) -> None:
    inst = load(
        runtime,
        '(func (export "grow") (param i32) (result i32) local.get 0 memory.grow)',
        memory='(memory (export "memory") 1)',
        limits=Limits(fuel=None, max_memory=3 * 65536, wall_seconds=None),
    )
    assert inst.call("grow", 2) == 1
    assert inst.call("grow", 1) == 0xFFFFFFFF  # -1: refused
    assert inst.memory.size() == 3 * 65536


def test_a_module_above_the_memory_cap_is_a_memory_limit_trap_at_load(runtime: str) -> None:
    with pytest.raises(GuestTrap) as info:
        load(
            runtime,
            '(func (export "f"))',
            memory='(memory (export "memory") 128)',
            limits=Limits(max_memory=4 * MiB),
        )
    assert info.value.kind == "memory_limit"


def test_fuel_consumed_grows_with_work(runtime: str) -> None:
    inst = load(runtime, SPIN, [host("tick", [], [], lambda: None)])
    before = inst.fuel_consumed()
    inst.call("count", 1000)
    used = inst.fuel_consumed() - before
    if runtime == "wamr":
        assert used == 0  # WAMR's metering does not report consumption
    else:
        assert used > 1000


# -- loading --------------------------------------------------------------------------------
def test_an_import_nobody_provides_is_refused_at_load(runtime: str) -> None:
    with pytest.raises(PluginLoadError, match="env::nothere"):
        load(runtime, '(import "env" "nothere" (func (param i32))) (func (export "f"))')


def test_an_import_of_the_wrong_type_is_refused_at_load(runtime: str) -> None:
    with pytest.raises(PluginLoadError):
        load(
            runtime,
            '(import "env" "h" (func (param i32))) (func (export "f"))',
            [host("h", ["i64"], [], lambda x: None)],
        )


def test_a_module_without_memory_export_is_refused(runtime: str) -> None:
    with pytest.raises(PluginLoadError, match="memory"):
        load(runtime, '(func (export "f"))', memory="(memory 1)")


def test_the_same_import_name_with_two_signatures_in_two_instances(runtime: str) -> None:
    a = load(
        runtime,
        '(import "env" "same" (func $s (param i32) (result i32)))'
        '(func (export "f") (result i32) (call $s (i32.const 1)))',
        [host("same", ["i32"], ["i32"], lambda x: x + 10)],
    )
    b = load(
        runtime,
        '(import "env" "same" (func $s (param i64) (result i64)))'
        '(func (export "f") (result i64) (call $s (i64.const 2)))',
        [host("same", ["i64"], ["i64"], lambda x: x + 20)],
    )
    assert (a.call("f"), b.call("f")) == (11, 22)


def test_two_instances_dispatch_host_calls_to_their_own_functions(runtime: str) -> None:
    body = '(import "env" "id" (func $id (result i32))) (func (export "f") (result i32) call $id)'
    a = load(runtime, body, [host("id", [], ["i32"], lambda: 1)])
    b = load(runtime, body, [host("id", [], ["i32"], lambda: 2)])
    assert (a.call("f"), b.call("f"), a.call("f")) == (1, 2, 1)


def test_describe_reports_version_location_and_features(runtime: str) -> None:
    info = runtimes.describe(runtime)
    assert info.available and info.version and info.location
    for feature in ("simd", "tail_call", "bulk_memory", "reference_types"):
        assert feature in info.features


# -- a missing library ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,env", [("wamr", "PWCLI_WAMR_LIB"), ("wasmedge", "PWCLI_WASMEDGE_LIB")]
)
def test_a_missing_library_is_one_clear_backend_error(
    monkeypatch: pytest.MonkeyPatch, name: str, env: str
) -> None:
    monkeypatch.setenv(env, "/nonexistent/lib.so")
    with pytest.raises(BackendError) as info:
        runtimes.create(name)
    text = str(info.value)
    assert "\n" not in text
    assert f"${env}=/nonexistent/lib.so" in text and "not found" in text
    assert "install" in text
    described = runtimes.describe(name)
    assert not described.available and described.detail == text


def test_a_module_needing_a_feature_the_library_lacks_names_it() -> None:
    from pwcli.runtimes.nativelib import feature_error

    err = feature_error(
        "WAMR",
        "WASM module load failed: unsupported opcode fd 0c",
        {"simd": False, "tail_call": True},
        lambda f: "build WAMR with WAMR_BUILD_SIMD=1",
    )
    assert str(err).startswith(
        "the module needs SIMD (simd128), which this WAMR library lacks "
        "(build WAMR with WAMR_BUILD_SIMD=1)"
    )


def test_trap_frames_are_innermost_first_with_function_names(runtime: str) -> None:
    inst = load(runtime, """
      (func $inner unreachable)
      (func $middle call $inner)
      (func $outer (export "go") call $middle)
    """)
    t = trap(inst, "go")
    names = [f.split(" @ ")[0] for f in t.frames]
    if runtime == "wamr" and not runtimes.describe("wamr").features.get("call_stack"):
        assert names == []  # a WAMR built without DUMP_CALL_STACK has no backtraces
    else:
        assert names == ["inner", "middle", "outer"]
