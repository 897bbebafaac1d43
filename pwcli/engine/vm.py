"""The VM's life: instantiate the plugin, run its start-up, create and configure the root context,
call callbacks, record traps under the failure policy, and reload (``--failure-policy reload``).

The start-up order follows proxy-wasm-cpp-host's ``WasmBase::initialize``/``start`` and
``ContextBase::onStart``/``onConfigure``: ``_initialize``/``main`` (start-up exports), the root
context's ``proxy_on_context_create``, ``proxy_on_vm_start``, ``proxy_on_configure``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import runtimes
from ..errors import GuestTrap, PluginLoadError
from ..events import Failure
from ..host.contexts import RootContext, StreamContext
from ..host.host import Host
from ..host.imports import Imports
from ..host.spec import BufferType
from .callbacks import callback_args, callback_result
from .options import host_options

if TYPE_CHECKING:
    from .engine import Engine


class VmFailed(Exception):  # noqa: N818 - control flow: a callback trapped, the VM is down
    pass


class Vm:
    """One plugin VM at a time (a reload replaces it); ``failure`` set means it is down."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.runtime = runtimes.create(engine.options.runtime, **engine.options.runtime_kwargs())
        self.host: Host = None  # type: ignore[assignment]
        self.instance: Any = None
        self.imports: Imports | None = None
        self.root: RootContext = None  # type: ignore[assignment]
        self.generation = 0  # which VM is running: --failure-policy reload starts new ones
        self.failure: Failure | None = None  # the failure that took this VM down (or refused it)
        self.failures: list[Failure] = []  # every trap, in order
        self.refused: str | None = None
        self.fail_fast_hit = False

    @property
    def down(self) -> bool:
        return self.failure is not None

    # -- start-up ---------------------------------------------------------------------------
    def start(self) -> bool:
        """Instantiate, run start-up, create the root context, start and configure it."""
        e = self.e
        plugin = e.plugin
        self.host = host = Host(plugin.abi, host_options(e.inputs, e.options, e.trace), e.shared)
        host.now_ns = e.clock.now_ns
        host.events = e.events
        host.sink = e.sink
        lenient = plugin.lenient or bool(plugin.lenient_notes)
        self.imports = Imports(host, allocator=plugin.allocator, lenient=lenient)
        funcs = self.imports.build(plugin.info.imports, plugin.abi)
        self.generation += 1
        phase = "instantiate"  # a trap here comes from the module's wasm start function
        try:
            self.instance = None
            try:
                self.instance = self.runtime.load(
                    plugin.wasm, funcs, limits=e.options.limits, cache=e.options.cache
                )
            except PluginLoadError as exc:
                raise PluginLoadError(f"{plugin.path}: {exc}") from None
            self.imports.instance = self.instance
            host.restricted = "startup"
            for name in plugin.startup:
                phase = name
                ev = host.record("callback", name, {})
                try:
                    self.instance.call(name, *((0, 0) if name == "main" else ()))
                except GuestTrap:
                    ev.result = "trap"
                    raise
        except GuestTrap as trap:
            self.trapped(trap, phase, 0)
            return False
        finally:
            host.restricted = None
        root_id = e.new_context_id()
        self.root = RootContext(root_id)
        host.root = self.root
        host.contexts[root_id] = self.root
        vm_config, config = e.inputs.vm_configuration, e.inputs.configuration
        try:
            self.call(self.root, "proxy_on_context_create", root_id, 0)
            host.oob_buffers = {BufferType.VM_CONFIGURATION: vm_config}
            if self.call(self.root, "proxy_on_vm_start", root_id, len(vm_config)) == 0:
                return self._refuse("proxy_on_vm_start returned false: the VM refused to start",
                                    "proxy_on_vm_start")
            host.oob_buffers = {BufferType.PLUGIN_CONFIGURATION: config}
            if self.call(self.root, "proxy_on_configure", root_id, len(config)) == 0:
                return self._refuse(
                    "proxy_on_configure returned false: the plugin refused its configuration")
        except VmFailed:
            return False
        finally:
            host.oob_buffers = {}
        e.apply_effects()
        return True

    def _refuse(self, why: str, callback: str = "proxy_on_configure") -> bool:
        self.refused = why
        self.host.record("failure", "configuration_refused", {"reason": why}, ctx=self.root)
        self.failure = Failure("configuration_refused", callback, self.root.id, why)
        return False

    def reload(self) -> None:
        """--failure-policy reload: a fresh VM (same shared data) for the next stream.

        The streams still open on the failed VM stay failed (closed), as in Envoy."""
        failed = self.failure
        self.host.now_ns = self.e.clock.now_ns
        self.host.record("note", "vm_reload", {"after": failed.kind if failed else None})
        self.failure = None
        self.e.clock.drop_plugin_timers()
        self.start()

    # -- failures ---------------------------------------------------------------------------
    def trapped(self, trap: GuestTrap, callback: str, ctx: int, context: Any = None) -> Failure:
        options = self.e.options
        budget = options.limits.fuel if trap.kind == "timeout" and trap.out_of_fuel else None
        f = Failure(trap.kind, callback, ctx, trap.message, trap.frames, self.e.clock.now_ns,
                    trap.code, budget)
        self.failures.append(f)
        if self.failure is None or options.failure_policy != "reload":
            self.failure = f
        # The engine's own message differs between runtimes: it goes in the table, not the event.
        self.host.record("failure", trap.kind, {"callback": callback, "context_id": ctx},
                         ctx=context)
        if options.fail_fast:
            self.fail_fast_hit = True
        return f

    # -- calling the guest ------------------------------------------------------------------
    def call(self, ctx: Any, name: str, *args: int) -> int | None:
        """Call an exported callback for ``ctx``; None when the plugin does not export it.

        A trap records the failure (on the stream too) and raises VmFailed."""
        arity = self.e.plugin.arity.get(name)
        if arity is None or not self.instance.has_export(name):
            return None
        if arity != len(args):  # lenient mode: call by the export's declared arity
            args = (args + (0,) * arity)[:arity]
        host = self.host
        host.now_ns = self.e.clock.now_ns
        host.current = ctx
        host.effective = None
        host.callback = name
        if host.sink is not None:
            host.held = []  # a streamed callback line carries its result: hold what it does
        ev = host.record("callback", name, callback_args(name, args))
        try:
            try:
                result = self.instance.call(name, *args)
            except GuestTrap as trap:
                ev.result = "trap"
                host.current = host.effective = None
                f = self.trapped(trap, name, ctx.id, ctx)
                if isinstance(ctx, StreamContext):
                    ctx.result.failure = f
                raise VmFailed from None
            finally:
                host.callback = None
            host.current = host.effective = None
            ev.result = callback_result(name, result)
            return result
        finally:
            host.release()
