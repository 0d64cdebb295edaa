"""The grader's child process: run a learner's cells, then the course's own checks.

Started by :mod:`slm_course.exercises.grade` as ``python -m slm_course.exercises.runner JOB``
inside a scratch folder (see :mod:`slm_course.exercises.sandbox`). In order:

1. Import the check functions named by the mentor's exercise notebook and keep references
   to them, and take a fingerprint of the check machinery (every function and class in
   ``slm_course``, ``numpy``, ``torch.nn``, ``torch.testing``, ``builtins``, ``math``).
2. Install the audit hook, then run the learner's code cells one by one in an IPython shell
   (a cell that raises is recorded and the run goes on).
3. For each exercise, in a fresh namespace: the captured check function and only the objects
   the mentor's check cell names, taken from the learner's namespace. The check cell's
   source is the mentor's. Before and after each check the fingerprint is compared: a
   notebook that replaced part of the machinery fails every check from then on, saying what
   it replaced.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import json
import os
import sys
import types
from typing import Any

from slm_course.exercises.sandbox import Events, install_guard

_WATCHED = ("slm_course", "numpy", "builtins", "math", "torch", "torch.nn", "torch.testing",
            "torch.linalg", "torch.nn.functional")


def _watched(name: str) -> bool:
    return (name in _WATCHED or name.startswith(("slm_course.", "numpy.", "torch.nn.",
                                                 "torch.testing.")))


def _fingerprint(value: Any) -> tuple | None:
    if isinstance(value, types.FunctionType):
        return (id(value), id(value.__code__), id(value.__defaults__),
                id(value.__kwdefaults__), id(value.__closure__))
    if isinstance(value, type):
        return (id(value),) + tuple(
            (k, id(v), id(getattr(v, "__code__", None))) for k, v in list(vars(value).items())
            if callable(v) or isinstance(v, (staticmethod, classmethod, property)))
    if isinstance(value, (types.BuiltinFunctionType, types.ModuleType)) or callable(value):
        return (id(value),)
    return None


def snapshot() -> dict[str, tuple[Any, dict[str, tuple]]]:
    """Fingerprints of every callable in the watched modules that are loaded now."""
    snap = {}
    for name, module in list(sys.modules.items()):
        if module is None or not _watched(name):
            continue
        prints = {}
        for key, value in list(vars(module).items()):
            fp = _fingerprint(value)
            if fp is not None:
                prints[key] = fp
        snap[name] = (module, prints)
    return snap


def tampered(snap: dict[str, tuple[Any, dict[str, tuple]]]) -> str:
    """'' if the machinery is as it was; otherwise what changed, e.g. 'numpy.allclose'."""
    for name, (module, prints) in snap.items():
        if sys.modules.get(name) is not module:
            return f"sys.modules[{name!r}]"
        current = vars(module)
        for key, fp in prints.items():
            if key not in current:
                return f"{name}.{key}"
            if _fingerprint(current[key]) != fp and not _library_wrapper(current[key], fp):
                return f"{name}.{key}"
    return ""


def _library_wrapper(new: Any, old: tuple) -> bool:
    """True if ``new`` is PyTorch's own wrapper around the original (``torch._dynamo``
    wraps ``torch.manual_seed`` and others when it is first imported)."""
    import torch  # only called when a torch module was fingerprinted, so torch is loaded

    wrapped = getattr(new, "__wrapped__", None)
    code = getattr(new, "__code__", None)
    return (wrapped is not None and id(wrapped) == old[0] and code is not None
            and code.co_filename.startswith(os.path.dirname(torch.__file__)))


def borrowed(obj: Any, name: str, course_dir: str, depth: int = 0) -> str:
    """Say how ``obj`` (the learner's ``name``) comes from the course package, or ''."""
    if depth > 3:
        return ""
    module = getattr(obj, "__module__", "") or ""
    qual = getattr(obj, "__qualname__", getattr(obj, "__name__", name))
    if isinstance(module, str) and module.startswith("slm_course"):
        return f"`{name}` is {module}.{qual}, imported from the course instead of written"
    wrapped = getattr(obj, "__wrapped__", None) or getattr(obj, "func", None)
    if wrapped is not None and wrapped is not obj and callable(wrapped):
        found = borrowed(wrapped, name, course_dir, depth + 1)
        if found:
            return found
    if isinstance(obj, type):
        for base in obj.__mro__[1:]:
            if (base.__module__ or "").startswith("slm_course") and base.__name__ == name:
                return f"`{name}` subclasses the course's {base.__module__}.{name}"
        for attr, value in list(vars(obj).items()):
            if isinstance(value, types.FunctionType):
                found = _borrowed_function(value, name, course_dir, attr)
                if found:
                    return found
        return ""
    if isinstance(obj, types.FunctionType):
        return _borrowed_function(obj, name, course_dir)
    return ""


def _borrowed_function(fn: types.FunctionType, name: str, course_dir: str,
                       method: str = "") -> str:
    where = f"`{name}`" + (f".{method}" if method else "")
    code = fn.__code__
    if code.co_filename.startswith(course_dir):
        return f"{where} is the course's own code ({code.co_filename})"
    names: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    values = [fn.__globals__.get(n) for n in names]
    values += [cell.cell_contents for cell in (fn.__closure__ or ())
               if _has_contents(cell)]
    for value in values:
        if value is None or value is fn:
            continue
        mod = getattr(value, "__module__", "") or ""
        if (callable(value) and isinstance(mod, str) and mod.startswith("slm_course")
                and getattr(value, "__name__", "") == name):
            return f"{where} calls the course's {mod}.{name} instead of computing it"
        if (isinstance(value, types.ModuleType) and value.__name__.startswith("slm_course")
                and name in names and hasattr(value, name)):
            return f"{where} calls the course's {value.__name__}.{name} instead of computing it"
    return ""


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


class _Capped(io.StringIO):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, text: str) -> int:
        if self.tell() < self.limit:
            super().write(text[: self.limit - self.tell()])
        return len(text)


def _reason(err: BaseException) -> tuple[str, str]:
    """(one-line reason, longer message) for an exception raised by a check."""
    text = str(err).strip()
    if isinstance(err, KeyboardInterrupt):
        return "the check ran past its time limit and was interrupted", ""
    if isinstance(err, SystemExit):
        return f"your code called sys.exit({err.code!r}) during the check", ""
    first = text.splitlines()[0] if text else ""
    if type(err).__name__ == "CheckFailed":
        return first.lstrip("✗ ").strip()[:300], text[:2000]
    return f"{type(err).__name__}: {first}"[:300], text[:2000]


def main(job_path: str) -> None:
    events = Events()
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    os.remove(job_path)

    # 1. pristine imports, before any learner code runs
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="nocolor", autoindent=False)
    checks: dict[str, Any] = {}
    for module_name, names in job["check_imports"]:
        module = importlib.import_module(module_name)
        for n in names:
            checks[n] = getattr(module, n)
    snap = snapshot()
    course_dir = job["course_dir"]

    # 2. the learner's cells, contained
    install_guard(hidden=job["hidden"], read_only=job["read_only"])
    skip = set(job["skip_cells"])
    for index, source in job["cells"]:
        if index in skip:
            continue
        events.emit(ev="start", step=f"cell {index}")
        result = shell.run_cell(source, store_history=False, silent=False)
        err = result.error_in_exec or result.error_before_exec
        events.emit(ev="end", step=f"cell {index}",
                    error=f"{type(err).__name__}: {err}"[:300] if err else "")
    user_ns = shell.user_ns

    # 3. the mentor's checks, in a fresh namespace
    skip_checks = set(job["skip_checks"])
    changed = tampered(snap)
    for check in job["checks"]:
        key = check["key"]
        if key in skip_checks:
            continue
        events.emit(ev="start", step=f"check {key}")
        passed, reason, message = _run_check(check, checks, user_ns, snap, changed,
                                             course_dir)
        events.emit(ev="result", key=key, passed=passed, reason=reason, message=message)
        events.emit(ev="end", step=f"check {key}")
        changed = changed or tampered(snap)
    events.emit(ev="done")
    sys.stdout.flush()
    os._exit(0)  # no atexit handlers from the learner's code


def _run_check(check: dict, checks: dict[str, Any], user_ns: dict, snap: dict,
               changed: str, course_dir: str) -> tuple[bool, str, str]:
    if changed:
        return False, (f"your notebook replaced {changed}, part of the course's check "
                       f"machinery, so no check can be trusted"), ""
    ns: dict[str, Any] = {"__builtins__": builtins, "__name__": "__grader__"}
    ns.update(checks)
    for name in check["needs"]:
        if name not in user_ns:
            return False, (f"`{name}` is not defined in your notebook: this check needs it "
                           f"(was it renamed or deleted, or did its cell fail?)"), ""
        ns[name] = user_ns[name]
    for name in check["targets"]:
        found = borrowed(ns[name], name, course_dir)
        if found:
            return False, found, ""
    out = _Capped(4000)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(check["source"], f"<check {check['key']}>", "exec"), ns)
    except BaseException as err:  # noqa: BLE001 - the learner's code may raise anything
        reason, message = _reason(err)
        return False, reason, message or out.getvalue()[:2000]
    after = tampered(snap)
    if after:
        return False, (f"while this check ran, your code replaced {after}, part of the "
                       f"course's check machinery"), ""
    return True, "passed", out.getvalue()[:2000]


if __name__ == "__main__":
    main(sys.argv[1])
