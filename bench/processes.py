"""Child processes of a benchmark run: redis-server, the no-op gRPC backend, the gateway under
``twistd``, the ``ocpp`` peer and load generators. All on loopback, all stopped at the end.

Every child gets a raised open-files limit and dies with the benchmark (``PR_SET_PDEATHSIG``), so
an interrupted run leaves nothing behind; :class:`Processes` stops them in reverse order.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TWISTD = str(Path(sys.executable).with_name("twistd"))
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
REACTOR = "--reactor=" + os.environ.get("BENCH_REACTOR", "epoll")

#: seconds a child gets to start, and to stop after SIGTERM before it is killed
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class BenchError(RuntimeError):
    """A child failed or did not answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


#: CPU placement (``--pin``): the process under test (gateway or peer) on the first CPU, every
#: other child (load generators, backend, redis) on the rest, so that the measured process
#: neither competes with its load nor migrates between cores mid-window
MEASURED_CPUS: set[int] | None = None
OTHER_CPUS: set[int] | None = None


def pin_cpus(enabled: bool) -> None:
    global MEASURED_CPUS, OTHER_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if enabled and len(cpus) >= 2:
        MEASURED_CPUS, OTHER_CPUS = {cpus[0]}, set(cpus[1:])
        os.sched_setaffinity(0, OTHER_CPUS)  # the benchmark itself (it publishes fan-outs)
    else:
        MEASURED_CPUS = OTHER_CPUS = None


def _child_setup(cpus: set[int] | None = None) -> None:  # in the child, between fork and exec
    if cpus:
        os.sched_setaffinity(0, cpus)
    raise_open_files_limit()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of a process's main thread ("main") and of its other live threads by name."""
    out: dict[str, float] = {}
    process_name = Path(f"/proc/{pid}/comm").read_text().strip()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        if task.name == str(pid):
            key = "main"
        else:  # Python threads keep the process's name; C libraries name theirs
            key = "python threads" if name == process_name else name
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


class Child:
    """A started child process; its output goes to a log file in the run directory."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        logdir: Path,
        *,
        control: bool = False,
        env: dict[str, str] | None = None,
        measured: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = logdir / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.control = control
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.PIPE if control else subprocess.DEVNULL,
            stdout=subprocess.PIPE if control else self._log,
            stderr=self._log,
            preexec_fn=functools.partial(_child_setup, MEASURED_CPUS if measured else OTHER_CPUS),
        )
        self.pid = self.process.pid
        if control:
            threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)

    def thread_cpu(self) -> dict[str, float]:
        return thread_cpu_seconds(self.pid)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, what: str) -> BenchError:
        return BenchError(f"{self.name}: {what}\n--- {self.log_path} ---\n{self.tail()}")

    # --- JSON-lines control (load generators, backend, peer) ------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self.fail("exited") from None

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the child prints (other lines are ignored)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.fail(f"no answer within {timeout:g} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise self.fail("exited")
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.send(message)
        reply = self.receive(timeout)
        if "error" in reply:
            raise self.fail(f"{message.get('cmd')}: {reply['error']}")
        return reply

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.alive():
            try:
                if self.control and self.process.stdin is not None:
                    self.process.stdin.close()  # control children exit at end of input
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout)
            except (subprocess.TimeoutExpired, OSError):
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        self._log.close()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self.stop()


class Processes:
    """Every child of a run, stopped in reverse start order (also on errors and Ctrl-C)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.children: list[Child] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], **kwargs: Any) -> Child:
        child = Child(name, argv, self.logdir, **kwargs)
        self.children.append(child)
        return child

    def stop(self, child: Child, kill: bool = False) -> None:
        if kill:
            child.kill()
        else:
            child.stop()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        while self.children:
            child = self.children.pop()
            try:
                child.stop()
            except Exception:  # keep stopping the others
                child.process.kill()

    # --- the parts ------------------------------------------------------------------------------

    def redis(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not installed")
        port = free_port()
        data = self.logdir / "redis"
        data.mkdir(exist_ok=True)
        child = self.start(
            "redis",
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(data),
            ],
        )  # fmt: skip
        redis = Redis(port, child)
        redis.wait_ready()
        return redis

    def python(
        self, name: str, module: str, *args: str, control: bool = True, measured: bool = False
    ) -> Child:
        return self.start(name, [PYTHON, "-m", module, *args], control=control, measured=measured)

    def ready(self, child: Child, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Wait for a child's ``{"ready": …}`` line."""
        reply = child.receive(timeout)
        if not reply.get("ready"):
            raise child.fail(f"unexpected first line {reply}")
        return reply

    def gateway(self, name: str, port: int, args: list[str], source: str | None = None) -> Child:
        """``twistd -n ocppcable`` on the epoll reactor; ``source`` runs the gateway code of
        another checkout (its directory goes first on PYTHONPATH), for before/after runs."""
        argv = [TWISTD, "-n", "--pidfile=", REACTOR, "ocppcable", *args]
        argv += ["--host=127.0.0.1", f"--port={port}"]
        env = {"PYTHONPATH": source} if source else None
        return self.start(name, argv, env=env, measured=True)


def wait_http_ok(child: Child, url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise child.fail("exited while starting")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise child.fail(f"{url} not OK within {timeout:g} s")


class Redis:
    """A private redis-server; a raw RESP connection is enough to publish."""

    def __init__(self, port: int, child: Child) -> None:
        self.port = port
        self.child = child
        self.url = f"redis://127.0.0.1:{port}"
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def _connect(self) -> None:
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader = self._sock.makefile("rb")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise self.child.fail("exited while starting")
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                self.close()
                time.sleep(0.05)
        raise self.child.fail("not answering PING")

    @staticmethod
    def encode(*args: str | bytes) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def send(self, *args: str | bytes) -> None:
        """Send a command without waiting for its reply (read it later with :meth:`reply`)."""
        self._connect()
        assert self._sock is not None
        self._sock.sendall(self.encode(*args))

    def reply(self) -> Any:
        line = self._reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise BenchError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._reader.read(n + 2)[:-2].decode()
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise BenchError(f"unexpected redis reply {line!r}")

    def command(self, *args: str | bytes) -> Any:
        self.send(*args)
        return self.reply()

    def subscribers(self, channel: str) -> int:
        return int(self.command("PUBSUB", "NUMSUB", channel)[1])

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None


def run_figure(
    name: str, args: Any, measure: Callable[[Processes, Any, str | None], dict[str, Any]]
) -> tuple[dict[str, Any], Path] | None:
    """A figure's run: CPUs pinned, open-files limit raised, ``measure(processes, args,
    gateway_src)`` in processes logging to a temporary directory, its results written to
    ``args.json`` (default ``bench/results-NAME.json``). None (said on stderr) if it failed."""
    pin_cpus(True)
    raise_open_files_limit()
    out = Path(args.json) if args.json else ROOT / "bench" / f"results-{name}.json"
    source = str(Path(args.gateway_src).resolve()) if args.gateway_src else None
    logdir = Path(tempfile.mkdtemp(prefix=f"ocppcable-{name}-"))
    try:
        with Processes(logdir) as ps:
            results = measure(ps, args, source)
    except BenchError as e:
        print(f"benchmark failed: {e}\nlogs in {logdir}", file=sys.stderr)
        return None
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results, out
