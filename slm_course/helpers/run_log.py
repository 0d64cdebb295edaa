"""A run's log: one JSON object a line in ``log.jsonl``, appended as training goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOG_NAME = "log.jsonl"


def log_event(out_dir: Path | None, event: dict[str, Any]) -> None:
    """Append ``event`` as one JSON line to ``out_dir/log.jsonl`` (nothing if out_dir is None)."""
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


class JsonlLog:
    """A training-loop callback that logs every "step" and "eval" report to ``log.jsonl``."""

    def __init__(self, out_dir: str | Path, fresh: bool = True):
        self.out_dir = Path(out_dir)
        if fresh and (self.out_dir / LOG_NAME).exists():
            (self.out_dir / LOG_NAME).unlink()  # a fresh run starts a fresh log

    def __call__(self, kind: str, state: Any) -> None:
        if kind == "step":
            log_event(self.out_dir, {"kind": "step", "step": state.step,
                                     "loss": state.last_loss, "lr": state.lrs[-1],
                                     "items_per_second": state.items_per_second})
        elif kind == "eval" and state.history:
            log_event(self.out_dir, {"kind": "eval", **state.history[-1]})
