"""JupyterLab settings for the course: no "official Jupyter news?" pop-up over the lesson.

JupyterLab 4 asks on its first start whether to fetch news from the Jupyter feed; the toast
covers the notebook a learner has just opened. ``./course lab`` runs this module before it
starts JupyterLab; it writes the answer "no" into the environment's settings overrides
(``<prefix>/share/jupyter/lab/settings/overrides.json``), keeping whatever else is there. A
learner can still turn news on in Settings > Notifications.

    python -m slm_course.cli.lab_settings [PREFIX]     (default: this Python's sys.prefix)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PLUGIN = "@jupyterlab/apputils-extension:notification"
# JupyterLab 4.x schema: "fetchNews" is a string, "true" | "false" | "none" (= ask).
COURSE_OVERRIDES = {PLUGIN: {"fetchNews": "false", "checkForUpdates": False}}


def overrides_path(prefix: str | Path | None = None) -> Path:
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def write_overrides(prefix: str | Path | None = None) -> Path:
    """Merge the course's settings into ``overrides.json`` under ``prefix``; return its path."""
    path = overrides_path(prefix)
    current: dict = {}
    if path.is_file():
        try:
            current = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); fix or delete it, then run "
                             "./course lab again") from err
    for plugin, values in COURSE_OVERRIDES.items():
        current.setdefault(plugin, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


if __name__ == "__main__":
    write_overrides(sys.argv[1] if len(sys.argv) > 1 else None)
