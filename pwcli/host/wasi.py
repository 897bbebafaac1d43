"""WASI preview1 as proxy-wasm-cpp-host provides it, sandboxed and deterministic.

No preopened directories, no files, no sockets; the environment is only what ``--env`` gives; clocks
are the virtual clock; ``random_get`` is a PRNG seeded by ``--seed``. Served under both
``wasi_snapshot_preview1`` and ``wasi_unstable``. Like ``imports.py`` this is pointer code: it reads
and writes guest memory through the adapter.
"""

from __future__ import annotations

import random
import struct
from typing import Protocol

from ..errors import GuestExit
from .host import Host
from .spec import Errno, LogLevel


class GuestMemory(Protocol):
    """The guest memory accessors WASI needs (``imports.Imports`` provides them)."""

    def read(self, ptr: int, size: int) -> bytes: ...
    def write(self, ptr: int, data: bytes) -> None: ...
    def write_u32(self, ptr: int, value: int) -> None: ...
    def write_u64(self, ptr: int, value: int) -> None: ...


SUCCESS, BADF, INVAL, NOTSUP, NOSYS = Errno.SUCCESS, Errno.BADF, Errno.INVAL, Errno.NOTSUP, 52
STDIO = (1, 2)
RANDOM_MAX = 65536  # cpp-host: random_get of more than 64 KiB is EINVAL


class Wasi:
    def __init__(self, host: Host, mem: GuestMemory) -> None:
        self.host = host
        self.mem = mem
        self.rng = random.Random(host.opts.seed)
        env = host.opts.environment
        self.environ = [f"{k}={v}".encode() + b"\0" for k, v in env.items()]

    def _rec(self, name: str, args: dict[str, object], errno: int, value: object = None) -> int:
        result: object = Errno(errno).name if errno in Errno._value2member_map_ else errno
        if errno == NOSYS:
            result = "NOSYS"
        if value is not None:
            result = {"errno": result, "value": value}
        self.host.record("hostcall", name, args, result)
        return errno

    # -- args and environment ---------------------------------------------------------------
    def args_sizes_get(self, count_ptr: int, size_ptr: int) -> int:
        self.mem.write_u32(count_ptr, 0)
        self.mem.write_u32(size_ptr, 0)
        return self._rec("args_sizes_get", {}, SUCCESS)

    def args_get(self, argv: int, buf: int) -> int:
        return self._rec("args_get", {}, SUCCESS)

    def environ_sizes_get(self, count_ptr: int, size_ptr: int) -> int:
        self.mem.write_u32(count_ptr, len(self.environ))
        self.mem.write_u32(size_ptr, sum(len(e) for e in self.environ))
        return self._rec("environ_sizes_get", {}, SUCCESS, len(self.environ))

    def environ_get(self, environ_ptr: int, buf: int) -> int:
        pos = buf
        for i, entry in enumerate(self.environ):
            self.mem.write(pos, entry)
            self.mem.write_u32(environ_ptr + 4 * i, pos)
            pos += len(entry)
        return self._rec("environ_get", {}, SUCCESS)

    # -- clocks and randomness --------------------------------------------------------------
    def clock_res_get(self, clock: int, out: int) -> int:
        if clock not in (0, 1):
            return self._rec("clock_res_get", {"clock": clock}, NOTSUP)
        self.mem.write_u64(out, 1)
        return self._rec("clock_res_get", {"clock": clock}, SUCCESS)

    def clock_time_get(self, clock: int, precision: int, out: int) -> int:
        if clock == 0:
            value = self.host.wall_ns()
        elif clock == 1:
            # Virtual monotonic time, from 1 ns: Go's runtime aborts on a zero clock at start-up.
            value = self.host.now_ns + 1
        else:
            return self._rec("clock_time_get", {"clock": clock}, NOTSUP)
        self.mem.write_u64(out, value)
        name = "realtime" if clock == 0 else "monotonic"
        return self._rec("clock_time_get", {"clock": name}, SUCCESS, value)

    def random_get(self, buf: int, size: int) -> int:
        if size > RANDOM_MAX:
            return self._rec("random_get", {"size": size}, INVAL)
        self.mem.write(buf, self.rng.randbytes(size))
        return self._rec("random_get", {"size": size}, SUCCESS)

    def sched_yield(self) -> int:
        return self._rec("sched_yield", {}, SUCCESS)

    def poll_oneoff(self, in_: int, out: int, nsubs: int, nevents_ptr: int) -> int:
        self.mem.write_u32(nevents_ptr, 0)  # cpp-host: no real sleeping, no events
        return self._rec("poll_oneoff", {"subscriptions": nsubs}, SUCCESS)

    def proc_exit(self, code: int) -> None:
        self.host.record("hostcall", "proc_exit", {"code": code}, None)
        raise GuestExit(code)

    # -- stdout / stderr --------------------------------------------------------------------
    def _gather(self, iovs: int, count: int) -> bytes:
        if count > 1024:
            raise _Inval()
        raw = self.mem.read(iovs, 8 * count)
        parts = []
        for i in range(count):
            ptr, size = struct.unpack_from("<II", raw, 8 * i)
            parts.append(self.mem.read(ptr, size))
        return b"".join(parts)

    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int, name: str = "fd_write") -> int:
        if fd not in STDIO:
            return self._rec(name, {"fd": fd}, BADF)
        try:
            data = self._gather(iovs, count)
        except _Inval:
            return self._rec(name, {"fd": fd}, INVAL)
        self.mem.write_u32(nwritten, len(data))
        self._emit(fd, data)
        return SUCCESS

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> int:
        return self.fd_write(fd, iovs, count, nwritten, "fd_pwrite")

    def _emit(self, fd: int, data: bytes) -> None:
        # One log entry per write, as Envoy's fd_write (proxy-wasm-cpp-host's wasi fd_write calls
        # Context::log with what was written; stdout at info, stderr at error); pwcli drops one
        # trailing newline so the report stays one line per entry.
        if data:
            level = LogLevel.INFO if fd == 1 else LogLevel.ERROR
            self.host.log(level, data.removesuffix(b"\n").decode("utf-8", "backslashreplace"))

    # -- files: nothing to open (the stubs cpp-host answers with) ---------------------------
    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> int:
        return self._rec("fd_read", {"fd": fd}, NOSYS)

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> int:
        return self._rec("fd_pread", {"fd": fd}, NOSYS)

    def fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        return self._rec("fd_seek", {"fd": fd}, SUCCESS)  # cpp-host: logs an error, answers 0

    def fd_close(self, fd: int) -> int:
        return self._rec("fd_close", {"fd": fd}, SUCCESS)  # cpp-host: logs an error, answers 0

    def fd_fdstat_get(self, fd: int, out: int) -> int:
        if fd not in STDIO:
            return self._rec("fd_fdstat_get", {"fd": fd}, BADF)
        # filetype character device, no flags, rights_base FD_WRITE (64), no inheriting rights
        self.mem.write(out, struct.pack("<BxHxxxxQQ", 2, 0, 64, 0))
        return self._rec("fd_fdstat_get", {"fd": fd}, SUCCESS)

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        return self._rec("fd_fdstat_set_flags", {"fd": fd}, NOSYS)

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> int:
        return self._rec("fd_fdstat_set_rights", {"fd": fd}, SUCCESS if fd in STDIO else BADF)

    def fd_prestat_get(self, fd: int, out: int) -> int:
        return self._rec("fd_prestat_get", {"fd": fd}, BADF)  # no preopened directories

    def fd_prestat_dir_name(self, fd: int, path: int, size: int) -> int:
        return self._rec("fd_prestat_dir_name", {"fd": fd}, NOSYS)

    def fd_filestat_get(self, fd: int, out: int) -> int:
        return self._rec("fd_filestat_get", {"fd": fd}, BADF)

    def fd_advise(self, fd: int, offset: int, size: int, advice: int) -> int:
        return self._rec("fd_advise", {"fd": fd}, SUCCESS)

    def _stdio_ok(self, name: str, fd: int) -> int:
        return self._rec(name, {"fd": fd}, SUCCESS if fd in STDIO else BADF)

    def fd_allocate(self, fd: int, offset: int, size: int) -> int:
        return self._stdio_ok("fd_allocate", fd)

    def fd_datasync(self, fd: int) -> int:
        return self._stdio_ok("fd_datasync", fd)

    def fd_sync(self, fd: int) -> int:
        return self._stdio_ok("fd_sync", fd)

    def fd_filestat_set_size(self, fd: int, size: int) -> int:
        return self._stdio_ok("fd_filestat_set_size", fd)

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> int:
        return self._stdio_ok("fd_filestat_set_times", fd)

    def fd_tell(self, fd: int, out: int) -> int:
        if fd not in STDIO:
            return self._rec("fd_tell", {"fd": fd}, BADF)
        self.mem.write_u64(out, 0)
        return self._rec("fd_tell", {"fd": fd}, SUCCESS)

    def fd_readdir(self, fd: int, buf: int, size: int, cookie: int, used: int) -> int:
        self.mem.write_u32(used, 0)
        return self._rec("fd_readdir", {"fd": fd}, Errno.NOTDIR)

    def fd_renumber(self, fd: int, to: int) -> int:
        return self._rec("fd_renumber", {"fd": fd}, NOTSUP if fd in STDIO else BADF)

    def _path(self, ptr: int, size: int) -> str:
        return self.mem.read(ptr, min(size, 4096)).decode("utf-8", "backslashreplace")

    def path_open(
        self, fd: int, dirflags: int, path: int, size: int, oflags: int, base: int, inh: int,
        fdflags: int, out: int,
    ) -> int:
        return self._rec("path_open", {"path": self._path(path, size)}, Errno.NOENT)

    def path_filestat_get(self, fd: int, flags: int, path: int, size: int, out: int) -> int:
        return self._rec("path_filestat_get", {"path": self._path(path, size)}, NOTSUP)

    def path_create_directory(self, fd: int, path: int, size: int) -> int:
        return self._rec("path_create_directory", {"path": self._path(path, size)}, NOTSUP)

    def path_remove_directory(self, fd: int, path: int, size: int) -> int:
        return self._rec("path_remove_directory", {"path": self._path(path, size)}, NOTSUP)

    def path_unlink_file(self, fd: int, path: int, size: int) -> int:
        return self._rec("path_unlink_file", {"path": self._path(path, size)}, NOTSUP)

    def path_rename(self, fd: int, op: int, ol: int, fd2: int, np_: int, nl: int) -> int:
        return self._rec("path_rename", {"path": self._path(op, ol)}, NOTSUP)

    def path_readlink(self, fd: int, path: int, size: int, buf: int, blen: int, used: int) -> int:
        self.mem.write_u32(used, 0)
        return self._rec("path_readlink", {"path": self._path(path, size)}, NOTSUP)

    def path_filestat_set_times(
        self, fd: int, flags: int, path: int, size: int, atim: int, mtim: int, fst: int
    ) -> int:
        return self._rec("path_filestat_set_times", {"path": self._path(path, size)}, NOTSUP)

    # -- sockets: none ------------------------------------------------------------------------
    def sock_accept(self, fd: int, flags: int, out: int) -> int:
        self.mem.write_u32(out, 0)
        return self._rec("sock_accept", {"fd": fd}, NOTSUP)

    def sock_recv(self, fd: int, iovs: int, n: int, flags: int, len_ptr: int, fl_ptr: int) -> int:
        self.mem.write_u32(len_ptr, 0)
        self.mem.write_u32(fl_ptr, 0)
        return self._rec("sock_recv", {"fd": fd}, NOTSUP)

    def sock_send(self, fd: int, iovs: int, n: int, flags: int, len_ptr: int) -> int:
        self.mem.write_u32(len_ptr, 0)
        return self._rec("sock_send", {"fd": fd}, NOTSUP)

    def sock_shutdown(self, fd: int, how: int) -> int:
        return self._rec("sock_shutdown", {"fd": fd}, NOTSUP)


class _Inval(Exception):
    pass
