"""./course lab switches off JupyterLab's "get notified about official Jupyter news?" pop-up.

The overrides file it writes is merged, not clobbered, and a real JupyterLab serves the
setting from it: fetchNews is "false" (never ask, never fetch) instead of "none" (ask).
"""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import ROOT

from slm_course.cli.lab_settings import PLUGIN, overrides_path, write_overrides


def test_overrides_are_merged_into_an_existing_file(tmp_path):
    path = overrides_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "x"},
                                PLUGIN: {"doNotDisturbMode": True}}))
    assert write_overrides(tmp_path) == path
    data = json.loads(path.read_text())
    assert data["@jupyterlab/apputils-extension:themes"] == {"theme": "x"}, "others kept"
    assert data[PLUGIN] == {"doNotDisturbMode": True, "fetchNews": "false",
                            "checkForUpdates": False}


def test_a_broken_overrides_file_is_reported_not_overwritten(tmp_path):
    path = overrides_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        write_overrides(tmp_path)
    assert path.read_text() == "{not json"


def test_the_course_script_writes_the_overrides_before_starting_lab():
    script = (ROOT / "course").read_text()
    lab = script.split("  lab)", 1)[1].split(";;", 1)[0]
    assert lab.index("slm_course.cli.lab_settings") < lab.index("exec jupyter lab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_reads_fetch_news_false_from_the_overrides(tmp_path):
    settings_dir = overrides_path(tmp_path).parent
    write_overrides(tmp_path)
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={ROOT}", "--allow-root",
           f"--LabApp.app_settings_dir={settings_dir}",
           f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answer = None
        url = f"http://127.0.0.1:{port}/lab/api/settings/{PLUGIN}"
        for _ in range(120):  # up to 60 s on a busy 2-core machine
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    answer = json.load(resp)
                break
            except OSError:
                time.sleep(0.5)
        assert answer is not None, "JupyterLab did not answer within 60 s"
        fetch_news = answer["schema"]["properties"]["fetchNews"]["default"]
        assert fetch_news == "false", (
            f"JupyterLab would ask about news (fetchNews default {fetch_news!r}): the "
            "overrides file was not read; has the plugin id or the key changed?")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
