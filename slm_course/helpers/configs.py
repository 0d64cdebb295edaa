"""Build a config dataclass from a plain dict (a checkpoint, a preset, a JSON file)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def config_from_dict(cls: type[Any], data: dict[str, Any]) -> Any:
    """Build the dataclass ``cls`` from a dict; an unknown key is an error naming the valid ones."""
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(valid)}")
    return cls(**data)
