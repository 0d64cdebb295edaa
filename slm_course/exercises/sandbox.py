"""Run untrusted learner code in a contained child process, with limits.

The grader and the challenges both start a child Python process for each submission:

* in a scratch folder (a fresh temporary directory that holds only that one submission), in
  its own process group, with a fresh environment;
* with resource limits: address space (``RLIMIT_AS``), size of any file written
  (``RLIMIT_FSIZE``), no core dumps;
* with a wall-clock limit per step (a cell, a check) and per submission: an overdue step gets
  SIGINT (a KeyboardInterrupt, like Jupyter's interrupt button), and if it is still running
  after a grace period the whole process group gets SIGKILL, so a cell that ignores SIGINT
  cannot hang the grader;
* its printed output is drained and truncated (the first ``output_kb`` kilobytes are kept);
* inside the child an audit hook (:func:`install_guard`) refuses to start processes, to send
  signals to other processes, and to open, list, rename or delete anything under the
  protected folders (``solutions/``, the submissions folder, and writes anywhere in the
  course).

The child reports progress as JSON lines on a separate pipe, each carrying a nonce it was
given, so that ordinary printing cannot be mistaken for a result.

What this is NOT: a security sandbox. The child runs as the mentor's user, can read the
mentor's files outside the protected folders, and code that uses ``ctypes`` or reads the
grader's own memory can get around the audit hook. Against a determined attacker, run the
grader as a separate user, in a container or a VM without network.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_TIMEOUT_S = 3600  # the largest --timeout accepted: 0 or a negative number is an error


@dataclass(frozen=True)
class Limits:
    """Limits for one contained run. Times in seconds, sizes in megabytes / kilobytes."""

    step_s: float = 120.0        # one cell, or one check
    total_s: float = 900.0       # the whole submission, all restarts included
    memory_mb: int = 6144        # address space; PyTorch alone maps about 3 GB
    file_mb: int = 64            # the largest file the child may write
    output_kb: int = 64          # printed output kept for the report
    grace_s: float = 5.0         # between SIGINT and SIGKILL

    def __post_init__(self) -> None:
        for name in ("step_s", "total_s"):
            value = getattr(self, name)
            if not 0 < value <= MAX_TIMEOUT_S * 10:
                raise ValueError(f"{name}={value}: a time limit must be positive (at most "
                                 f"{MAX_TIMEOUT_S * 10} s); there is no 'no limit'")
        if self.memory_mb < 256 or self.file_mb < 1 or self.output_kb < 1:
            raise ValueError(f"limits too small to run anything: {self}")


def check_timeout(seconds: float) -> float:
    """Validate a ``--timeout``: positive and at most :data:`MAX_TIMEOUT_S`."""
    if not 0 < seconds <= MAX_TIMEOUT_S:
        raise ValueError(f"--timeout {seconds}: give a number of seconds between 1 and "
                         f"{MAX_TIMEOUT_S}; 0 does not mean 'no limit' (a grader must finish)")
    return seconds


@dataclass
class Outcome:
    """What came back from one contained run."""

    events: list[dict] = field(default_factory=list)
    output: str = ""
    returncode: int | None = None
    finished: bool = False            # the child sent its final "done" event
    stuck_step: str | None = None     # the step that was running when the child stopped
    why_stopped: str = ""             # "timeout", "killed after timeout", "died (...)", ...
    seconds: float = 0.0


def _limit_child(limits: Limits) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A small, predictable environment for the child: no secrets from the mentor's shell."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "SLM_COURSE_MIRROR", "SLM_COURSE_OFFLINE",
            "SLM_COURSE_VISION", "SLM_COURSE_PROFILE", "SLM_COURSE_DATA", "VIRTUAL_ENV",
            "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", PYTHONHASHSEED="0",
               TQDM_DISABLE="1")
    env.update(extra or {})
    return env


def run_contained(argv: list[str], *, cwd: Path, limits: Limits,
                  env: dict[str, str] | None = None, stdin_data: bytes | None = None,
                  on_event: Callable[[dict], None] | None = None,
                  deadline: float | None = None) -> Outcome:
    """Run ``argv`` (a Python child that writes JSON events to fd ``$SLM_EVENTS_FD``).

    The nonce in ``$SLM_EVENTS_NONCE`` must be in every event; other lines are ignored. A
    ``{"ev": "start", "step": ...}`` event starts the per-step clock, ``{"ev": "end"}`` stops
    it, ``{"ev": "done"}`` says the child finished its work.
    """
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    deadline = min(deadline or float("inf"), started + limits.total_s)
    proc = subprocess.Popen(
        argv, cwd=cwd, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
        env=child_env({**(env or {}), "SLM_EVENTS_FD": str(write_fd),
                       "SLM_EVENTS_NONCE": nonce}),
        start_new_session=True, preexec_fn=_limit_child(limits))
    os.close(write_fd)
    out = Outcome()
    kept: list[bytes] = []
    budget = [limits.output_kb * 1024]
    dropped = [0]

    def drain() -> None:  # keep the first output_kb, read and drop the rest
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            if budget[0] > 0:
                kept.append(chunk[: budget[0]])
            dropped[0] += max(0, len(chunk) - budget[0])
            budget[0] -= len(chunk)

    state = {"step": None, "since": time.monotonic(), "done": False}
    lock = threading.Lock()

    def read_events() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            for raw in pipe:
                if len(raw) > 1_000_000:
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(event, dict) or event.pop("nonce", None) != nonce:
                    continue
                with lock:
                    out.events.append(event)
                    if event.get("ev") == "start":
                        state["step"], state["since"] = event.get("step"), time.monotonic()
                    elif event.get("ev") == "end":
                        state["step"] = None
                    elif event.get("ev") == "done":
                        state["done"] = True
                if on_event is not None:
                    on_event(event)

    readers = [threading.Thread(target=drain, daemon=True),
               threading.Thread(target=read_events, daemon=True)]
    for t in readers:
        t.start()
    if stdin_data is not None:
        threading.Thread(target=_feed, args=(proc, stdin_data), daemon=True).start()
    interrupted_at: float | None = None
    while proc.poll() is None:
        time.sleep(0.05)
        now = time.monotonic()
        with lock:
            step, since = state["step"], state["since"]
        if now >= deadline:
            out.why_stopped, out.stuck_step = "the time limit for the whole submission", step
            _kill(proc)
            break
        if step is not None and now - since > limits.step_s:
            if interrupted_at is None:
                interrupted_at = now
                _signal(proc, signal.SIGINT)
            elif now - interrupted_at > limits.grace_s:
                out.why_stopped = (f"{step} ran past its {limits.step_s:g} s limit and "
                                   f"ignored the interrupt; it was killed")
                out.stuck_step = step
                _kill(proc)
                break
        elif interrupted_at is not None and step is None:
            interrupted_at = None
    _kill(proc)  # the process group: anything the child left behind goes too
    proc.wait()
    for t in readers:
        t.join(timeout=5)
    out.returncode = proc.returncode
    out.finished = state["done"]
    out.seconds = time.monotonic() - started
    if not out.finished and not out.why_stopped:
        with lock:
            out.stuck_step = state["step"]
        code = proc.returncode
        out.why_stopped = (f"the process was killed by signal {-code}" if code and code < 0
                           else f"the process exited with status {code}")
    text = b"".join(kept).decode("utf-8", "replace")
    if dropped[0]:
        text += f"\n[... {dropped[0]:,} more bytes of output were dropped ...]\n"
    out.output = text
    return out


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:
        pass


def _signal(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------- the child's side

_SPAWN_EVENTS = ("os.fork", "os.forkpty", "os.system", "os.posix_spawn", "os.spawn",
                 "os.exec", "subprocess.Popen", "pty.spawn", "os.startfile")
_PATH_EVENTS = ("open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.rmdir",
                "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate",
                "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move", "glob.glob",
                "os.walk", "os.chdir")
_WRITE_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                 "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree",
                 "shutil.move")
_DENIED_SYMBOLS = {b"fork", b"vfork", b"clone", b"clone3", b"system", b"popen", b"execv",
                   b"execve", b"execvp", b"execl", b"posix_spawn", b"posix_spawnp", b"kill",
                   b"killpg", b"unlink", b"rename", b"open", b"openat", b"fopen", b"syscall"}


def install_guard(*, hidden: list[str], read_only: list[str]) -> None:
    """Install an audit hook in *this* process (the child). It cannot be removed.

    ``hidden``: folders that may not be opened, listed or changed at all.
    ``read_only``: folders that may be read but not written, renamed or deleted.
    """
    hidden_roots = [os.path.realpath(p) for p in hidden]
    ro_roots = [os.path.realpath(p) for p in read_only]
    me = os.getpid()

    def under(path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_SPAWN_EVENTS):
            raise PermissionError(f"the grader does not let submissions start processes "
                                  f"({event})")
        if event in ("os.kill", "os.killpg", "signal.pthread_kill") and (
                event != "os.kill" or args[0] != me):
            raise PermissionError("the grader does not let submissions signal processes")
        if event == "ctypes.dlsym" and len(args) > 1:
            name = args[1] if isinstance(args[1], bytes) else str(args[1]).encode()
            if name in _DENIED_SYMBOLS:
                raise PermissionError(f"the grader does not let submissions call {name!r}")
        if event in _PATH_EVENTS and args:
            for raw in args[:2] if event in ("os.rename", "shutil.move", "os.link",
                                             "os.symlink", "shutil.copyfile") else args[:1]:
                if raw is None or isinstance(raw, int):
                    continue
                try:
                    path = os.path.realpath(os.fsdecode(raw))
                except (TypeError, ValueError):
                    continue
                if under(path, hidden_roots):
                    raise PermissionError(f"{path}: the grader does not let submissions "
                                          f"read this folder")
                writing = event in _WRITE_EVENTS or (event == "open" and _opens_for_writing(args))
                if writing and under(path, ro_roots):
                    raise PermissionError(f"{path}: the grader does not let submissions "
                                          f"change the course or other submissions")

    sys.addaudithook(hook)


def _opens_for_writing(args: tuple) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return bool(isinstance(flags, int)
                and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))


class Events:
    """The child's side of the event pipe (fd and nonce from the environment)."""

    def __init__(self) -> None:
        self._fd = int(os.environ["SLM_EVENTS_FD"])
        self._nonce = os.environ.pop("SLM_EVENTS_NONCE")
        os.environ.pop("SLM_EVENTS_FD", None)

    def emit(self, **event: object) -> None:
        event["nonce"] = self._nonce
        data = (json.dumps(event, default=str) + "\n").encode()
        while data:
            data = data[os.write(self._fd, data):]


def scratch_copy(source: Path, scratch: Path, name: str | None = None) -> Path:
    """Copy one submission file into the (empty) scratch folder; return the copy's path."""
    target = scratch / (name or source.name)
    target.write_bytes(Path(source).read_bytes())
    return target
