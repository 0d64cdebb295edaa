"""Challenge leaderboards: a vision classifier and a character language model.

``slm-course challenge vision submissions/ --out board/``
    Each submission is a Python file (or a folder holding ``submission.py`` and its weight
    files) defining a class ``Model`` (or exactly one class with a ``predict`` method)::

        class Model:
            def __init__(self): ...              # load weights from files next to this one
            def predict(self, image) -> int: ... # image: float32 (28, 28) in [0, 1]
            # optional, faster: def predict_batch(self, images) -> list[int]  # (N, 28, 28)

    It is scored on the 10,000 test images (MNIST, or Fashion-MNIST with
    ``--dataset fashion-mnist``), ranked by accuracy. The labels never enter the submission's
    process: it gets the images, returns predictions, and the grader counts.

``slm-course challenge lm submissions/ --out board/``
    Lowest validation loss on Tiny Shakespeare, characters, under a parameter and time
    budget. The class ``Model`` has::

        def __init__(self, vocab: str): ...      # the 65 characters; id i is vocab[i]
        def fit(self, train_text: str, seconds: float) -> None: ...   # optional: train here
        def log_probs(self, ids) -> array:       # ids int64 (B, T) -> (B, T, 65) log-probs
                                                 # of the next character at each position

    Its parameters (every ``torch.nn.Module`` and array it holds) must number at most
    ``--max-params``; ``fit`` and scoring together must finish within ``--timeout``. The
    validation text is sent only after ``fit`` returned, cut into windows of ``--block`` + 1
    characters that do not overlap, so the last target of a window is never an input; a few
    windows are sent twice with their second half scrambled, and a model whose predictions
    for the first half change (it looked ahead) is disqualified. The loss is the mean
    negative log-likelihood over every predicted character of the whole split.

Both run each submission like the grader does (:mod:`slm_course.exercises.sandbox`): a scratch
folder with only that submission, limits, the audit hook; the datasets are hidden from it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slm_course.exercises.grade import COURSE_DIR, REPO_DIR
from slm_course.exercises.sandbox import Limits, run_contained

KINDS = ("vision", "lm")
_PROBES = 8


@dataclass
class Entry:
    """One submission's line on the leaderboard."""

    name: str
    path: str
    score: float | None      # accuracy (vision) or validation loss (lm); None if it failed
    detail: str
    seconds: float


def collect_submissions(paths: list[Path]) -> list[Path]:
    """``*.py`` files and folders holding ``submission.py``; a folder of those is expanded."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file() or (path / "submission.py").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if (p.suffix == ".py" and p.is_file())
                            or (p / "submission.py").is_file())
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    if not found:
        raise FileNotFoundError("no submissions: pass .py files, or folders holding "
                                "submission.py, or a folder of those")
    return found


# ------------------------------------------------------------------ the mentor's side

def run_challenge(kind: str, paths: list[Path], *, timeout: float = 300,
                  dataset: str = "mnist", max_params: int = 1_000_000, block: int = 256,
                  memory_mb: int = 6144, max_mb: float = 20.0, jobs: int = 1,
                  limit: int | None = None) -> list[Entry]:
    """Score every submission; return the leaderboard, best first."""
    if kind not in KINDS:
        raise ValueError(f"unknown challenge {kind!r}: choose one of {KINDS}")
    submissions = collect_submissions(paths)
    limits = Limits(step_s=timeout, total_s=timeout + 30, memory_mb=memory_mb)
    if kind == "vision":
        images, labels = _vision_test(dataset)
        if limit:
            images, labels = images[:limit], labels[:limit]
        data: Any = (images, labels)
    else:
        data = _lm_data(block, limit)
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path) -> Entry:
        return _score(kind, path, data, limits, max_params=max_params, block=block,
                      max_mb=max_mb)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        entries = list(pool.map(one, submissions))
    better = (lambda e: -e.score) if kind == "vision" else (lambda e: e.score)
    return sorted([e for e in entries if e.score is not None], key=better) + \
        [e for e in entries if e.score is None]


def _vision_test(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "mnist":
        from slm_course.data.vision import load_mnist_test

        images, labels = load_mnist_test()
    elif dataset == "fashion-mnist":
        from slm_course.data.vision import load_vision

        test = load_vision("fashion-mnist", train=False)
        images, labels = test.data.numpy(), test.targets.numpy()
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use mnist or fashion-mnist")
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


def _lm_data(block: int, limit: int | None) -> dict:
    from slm_course.lm_data import load_splits

    train, val = load_splits("tinyshakespeare")
    vocab = "".join(sorted(set(train + val)))
    stoi = {c: i for i, c in enumerate(vocab)}
    ids = np.array([stoi[c] for c in val], dtype=np.int64)
    n = (len(ids)) // (block + 1)
    windows = ids[: n * (block + 1)].reshape(n, block + 1)  # (W, T+1), no overlap
    if limit:
        windows = windows[:limit]
    return {"train": train, "vocab": vocab, "windows": windows}


def _score(kind: str, path: Path, data: Any, limits: Limits, *, max_params: int,
           block: int, max_mb: float) -> Entry:
    name = path.stem if path.is_file() else path.name
    size = (path.stat().st_size if path.is_file()
            else sum(p.stat().st_size for p in path.rglob("*") if p.is_file()))
    if size > max_mb * 2**20:
        return Entry(name, str(path), None, f"the submission is {size / 2**20:.1f} MB, "
                     f"more than the {max_mb:g} MB allowed", 0.0)
    scratch = Path(tempfile.mkdtemp(prefix="slm-challenge-"))
    holding = Path(tempfile.mkdtemp(prefix="slm-challenge-held-"))  # hidden from the child
    started = time.monotonic()
    try:
        if path.is_file():
            shutil.copyfile(path, scratch / "submission.py")
        else:
            shutil.copytree(path, scratch, dirs_exist_ok=True, symlinks=False)
        rng = np.random.default_rng(0)
        job: dict[str, Any] = {"kind": kind, "max_params": max_params, "seconds": limits.step_s,
                               **_protected(path, holding)}
        if kind == "vision":
            np.save(scratch / "images.npy", data[0])
        else:
            (scratch / "train.txt").write_text(data["train"], encoding="utf-8")
            job["vocab"] = data["vocab"]
            windows = data["windows"]
            x = windows[:, :-1]
            probes = rng.choice(len(x), size=min(_PROBES, len(x)), replace=False)
            scrambled = x[probes].copy()
            half = block // 2
            scrambled[:, half:] = rng.integers(0, len(data["vocab"]), scrambled[:, half:].shape)
            sent = np.concatenate([x, scrambled])
            order = rng.permutation(len(sent))
            np.save(holding / "windows.npy", sent[order])  # moved into place after fit
        (scratch / "job.json").write_text(json.dumps(job), encoding="utf-8")

        def on_event(event: dict) -> None:  # the windows arrive only after fit returned
            if event.get("ev") == "fitted" and (holding / "windows.npy").exists():
                shutil.move(holding / "windows.npy", scratch / "windows.npy")

        outcome = run_contained([sys.executable, "-m", "slm_course.exercises.challenge",
                                 "job.json"], cwd=scratch, limits=limits, on_event=on_event)
        seconds = time.monotonic() - started
        result = next((e for e in outcome.events if e.get("ev") == "result"), None)
        if result is None or not result.get("ok"):
            why = (result or {}).get("error") or outcome.why_stopped or "no result"
            return Entry(name, str(path), None, str(why)[:300], seconds)
        if kind == "vision":
            return _vision_entry(name, path, scratch, data[1], seconds)
        return _lm_entry(name, path, scratch, result, windows, probes, order, half, seconds)
    finally:
        shutil.rmtree(holding, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _vision_entry(name: str, path: Path, scratch: Path, labels: np.ndarray,
                  seconds: float) -> Entry:
    try:
        pred = np.load(scratch / "predictions.npy", allow_pickle=False)
        pred = np.asarray(pred).astype(np.int64).ravel()
    except (OSError, ValueError, TypeError) as err:
        return Entry(name, str(path), None, f"unreadable predictions: {err}", seconds)
    if pred.shape != labels.shape:
        return Entry(name, str(path), None, f"{pred.size} predictions for {labels.size} "
                     f"images", seconds)
    acc = float((pred == labels).mean())
    return Entry(name, str(path), acc, f"{int((pred == labels).sum())}/{labels.size} right",
                 seconds)


def _lm_entry(name: str, path: Path, scratch: Path, result: dict, windows: np.ndarray,
              probes: np.ndarray, order: np.ndarray, half: int, seconds: float) -> Entry:
    try:
        lp = np.load(scratch / "log_probs.npy", allow_pickle=False).astype(np.float64)
    except (OSError, ValueError) as err:
        return Entry(name, str(path), None, f"unreadable log-probs: {err}", seconds)
    n, block = windows.shape[0], windows.shape[1] - 1
    if lp.ndim != 3 or lp.shape[:2] != (len(order), block):
        return Entry(name, str(path), None, f"log_probs has shape {lp.shape}, expected "
                     f"({len(order)}, {block}, V)", seconds)
    if not np.isfinite(lp).all() or np.abs(np.log(np.exp(lp).sum(-1))).max() > 1e-3:
        return Entry(name, str(path), None, "log_probs are not normalised log-probabilities "
                     "(each row must satisfy logsumexp = 0)", seconds)
    back = np.empty_like(lp)
    back[order] = lp                        # undo the shuffle: rows 0..n-1 real, then probes
    real, probe = back[:n], back[n:]
    if not np.allclose(real[probes, :half], probe[:, :half], atol=1e-4):
        return Entry(name, str(path), None, "disqualified: its predictions for a position "
                     "depend on later characters (it looks ahead)", seconds)
    targets = windows[:, 1:]
    nll = -np.take_along_axis(real, targets[..., None], axis=-1).mean()
    return Entry(name, str(path), float(nll),
                 f"{result.get('params', 0):,} parameters, {n * block:,} characters",
                 seconds)


def _protected(path: Path, holding: Path) -> dict[str, list[str]]:
    from slm_course.data.cache import cache_root, mirror_dirs

    folder = Path(path).resolve().parent
    hidden = [str(REPO_DIR / "solutions"), str(cache_root()), str(REPO_DIR / "datasets"),
              str(holding)]
    hidden += [str(p) for p in mirror_dirs()]
    if not str(COURSE_DIR).startswith(str(folder)):
        hidden.append(str(folder))
    return {"hidden": hidden, "read_only": [str(REPO_DIR), str(folder)]}


def write_leaderboard(entries: list[Entry], out_dir: Path, kind: str) -> list[Path]:
    """leaderboard.md and leaderboard.csv in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = "accuracy" if kind == "vision" else "val loss (nats/char)"
    lines = [f"# Leaderboard: {kind} challenge", "",
             f"| rank | submission | {metric} | detail | seconds |", "|---|---|---|---|---|"]
    for rank, e in enumerate(entries, start=1):
        value = "-" if e.score is None else (f"{e.score:.2%}" if kind == "vision"
                                             else f"{e.score:.4f}")
        lines.append(f"| {rank if e.score is not None else '-'} | {e.name} | {value} | "
                     f"{e.detail.replace('|', '/')} | {e.seconds:.0f} |")
    md, table = out_dir / "leaderboard.md", out_dir / "leaderboard.csv"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with table.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["rank", *asdict(entries[0])] if entries else ["rank"])
        w.writeheader()
        for rank, e in enumerate(entries, start=1):
            w.writerow({"rank": rank if e.score is not None else "", **asdict(e)})
    return [md, table]


# ------------------------------------------------------------------ the submission's side

def _child(job_path: str) -> None:
    from slm_course.exercises.sandbox import Events, install_guard

    events = Events()
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    os.remove(job_path)
    install_guard(hidden=job["hidden"], read_only=job["read_only"])
    sys.path.insert(0, os.getcwd())
    try:
        events.emit(ev="start", step="load")
        model = _load_model(job)
        events.emit(ev="end", step="load")
        if job["kind"] == "vision":
            images = np.load("images.npy").astype(np.float32) / 255.0  # (N, 28, 28)
            os.remove("images.npy")
            events.emit(ev="start", step="predict")
            if hasattr(model, "predict_batch"):
                pred = np.asarray(model.predict_batch(images)).astype(np.int64).ravel()
            else:
                pred = np.array([int(model.predict(img)) for img in images], dtype=np.int64)
            np.save("predictions.npy", pred)
            events.emit(ev="result", ok=True)
        else:
            params = _count_params(model)
            if params > job["max_params"]:
                raise ValueError(f"the model has {params:,} parameters, more than the "
                                 f"{job['max_params']:,} allowed")
            text = Path("train.txt").read_text(encoding="utf-8")
            if hasattr(model, "fit"):
                events.emit(ev="start", step="fit")
                model.fit(text, float(job["seconds"]))
            params = _count_params(model)
            if params > job["max_params"]:
                raise ValueError(f"after fit the model has {params:,} parameters, more than "
                                 f"the {job['max_params']:,} allowed")
            events.emit(ev="fitted")
            for _ in range(200):  # the grader moves the windows in after "fitted"
                if Path("windows.npy").exists():
                    break
                time.sleep(0.05)
            windows = np.load("windows.npy")
            out = [np.asarray(model.log_probs(windows[i:i + 32]), dtype=np.float32)
                   for i in range(0, len(windows), 32)]
            np.save("log_probs.npy", np.concatenate(out))
            events.emit(ev="result", ok=True, params=params)
    except KeyboardInterrupt:  # the grader's interrupt at the time limit
        events.emit(ev="result", ok=False,
                    error=f"ran past the time limit of {job['seconds']:g} s")
    except BaseException as err:  # noqa: BLE001 - the submission may raise anything
        events.emit(ev="result", ok=False, error=f"{type(err).__name__}: {err}"[:300])
    events.emit(ev="done")
    os._exit(0)


def _load_model(job: dict) -> Any:
    spec = importlib.util.spec_from_file_location("submission", "submission.py")
    if spec is None or spec.loader is None:
        raise ValueError("submission.py cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    method = "predict" if job["kind"] == "vision" else "log_probs"
    cls = getattr(module, "Model", None)
    if cls is None:
        found = [v for v in vars(module).values() if isinstance(v, type)
                 and getattr(v, "__module__", "") == "submission" and hasattr(v, method)]
        if len(found) != 1:
            raise ValueError(f"define a class Model with a {method} method "
                             f"(found {len(found)} candidate classes)")
        cls = found[0]
    return cls() if job["kind"] == "vision" else cls(job["vocab"])


def _count_params(model: Any) -> int:
    """Parameters of every nn.Module, tensor and array the model holds (one level deep)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    seen: set[int] = set()
    total = 0
    values = [model] + list(getattr(model, "__dict__", {}).values())
    for value in values:
        if id(value) in seen:
            continue
        seen.add(id(value))
        if torch is not None and isinstance(value, torch.nn.Module):
            for p in list(value.parameters()) + list(value.buffers()):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        elif torch is not None and isinstance(value, torch.Tensor) or isinstance(value,
                                                                                 np.ndarray):
            total += int(math.prod(value.shape))
    return total


# ------------------------------------------------------------------ the command line

def add_arguments(parser: Any) -> None:
    parser.add_argument("kind", choices=KINDS, help="vision: predict(image) -> int on the "
                        "10,000 test images; lm: validation loss on Tiny Shakespeare")
    parser.add_argument("submissions", type=Path, nargs="+",
                        help=".py files, folders holding submission.py, or a folder of those")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"),
                        help="vision: the test set (default mnist)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds per submission, 1 to 3600 (default 300)")
    parser.add_argument("--max-params", type=int, default=1_000_000,
                        help="lm: the parameter budget (default 1,000,000)")
    parser.add_argument("--block", type=int, default=256,
                        help="lm: characters of context per window (default 256)")
    parser.add_argument("--max-mb", type=float, default=20.0,
                        help="the largest submission, code and weights (default 20 MB)")
    parser.add_argument("--memory-mb", type=int, default=6144,
                        help="address-space limit per submission (default 6144)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="submissions scored at once (default 1: fair timings)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write leaderboard.md and leaderboard.csv here")


def run(args: Any) -> int:
    from slm_course.exercises.sandbox import check_timeout

    check_timeout(args.timeout)
    if args.block < 1 or args.max_params < 1:
        raise ValueError("--block and --max-params must be positive")
    entries = run_challenge(args.kind, args.submissions, timeout=args.timeout,
                            dataset=args.dataset, max_params=args.max_params,
                            block=args.block, memory_mb=args.memory_mb, max_mb=args.max_mb,
                            jobs=args.jobs)
    for rank, e in enumerate(entries, start=1):
        value = "failed" if e.score is None else f"{e.score:.4f}"
        print(f"{rank:>3}  {e.name:<24} {value:>8}  {e.detail}")
    if args.out is not None:
        for path in write_leaderboard(entries, args.out, args.kind):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    _child(sys.argv[1])
