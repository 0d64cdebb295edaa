"""Challenge leaderboards: tiny submissions that are good, bad, hanging, crashing or cheating."""

import csv
import math
import textwrap

import numpy as np
import pytest

from slm_course.data.vision import load_mnist_test
from slm_course.exercises.challenge import run_challenge, write_leaderboard

GOOD_VISION = """
import numpy as np
from pathlib import Path

class Model:
    def __init__(self):
        self.centroids = np.load(Path(__file__).with_name("centroids.npy"))  # (10, 784)

    def predict(self, image):
        d = ((self.centroids - image.reshape(1, -1)) ** 2).sum(axis=1)
        return int(d.argmin())
"""
BAD_VISION = "class Model:\n    def predict(self, image):\n        return 0\n"
HANGING = "class Model:\n    def predict(self, image):\n        while True:\n            pass\n"
CRASHING = "class Model:\n    def __init__(self):\n        raise RuntimeError('my bug')\n"
PEEKING = """
class Model:
    def __init__(self):  # the labels, through the course's own loader
        from slm_course.data.vision import load_mnist_test
        self.labels = load_mnist_test()[1]
    def predict(self, image):
        return 0
"""


def _write(folder, name, source):
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vision")
    images, labels = load_mnist_test()
    good = tmp / "good"
    good.mkdir()
    (good / "submission.py").write_text(GOOD_VISION)
    flat = images[:2000].reshape(-1, 784).astype(np.float32) / 255
    np.save(good / "centroids.npy", np.stack([flat[labels[:2000] == k].mean(0)
                                              for k in range(10)]))
    for name, src in (("bad", BAD_VISION), ("hanging", HANGING), ("crashing", CRASHING),
                      ("peeking", PEEKING)):
        _write(tmp, name, src)
    entries = run_challenge("vision", [tmp], timeout=8, limit=1000, jobs=3)
    return {e.name: e for e in entries}, entries, tmp


def test_vision_scores_and_ranks(board):
    by_name, entries, _ = board
    assert by_name["good"].score > 0.7, by_name["good"]
    labels = load_mnist_test()[1][:1000]
    assert by_name["bad"].score == pytest.approx(float((labels == 0).mean()))
    assert [e.name for e in entries[:2]] == ["good", "bad"]


def test_vision_failures_are_entries_not_crashes(board):
    by_name, _, _ = board
    assert by_name["hanging"].score is None and "time limit" in by_name["hanging"].detail
    assert by_name["crashing"].score is None and "my bug" in by_name["crashing"].detail
    assert by_name["peeking"].score is None, "the labels must not be readable"
    assert "Error" in by_name["peeking"].detail


def test_leaderboard_files(board, tmp_path):
    _, entries, _ = board
    md, table = write_leaderboard(entries, tmp_path, "vision")
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [r["name"] for r in rows][:2] == ["good", "bad"] and rows[0]["rank"] == "1"
    assert rows[-1]["rank"] == ""  # failed entries are listed without a rank
    assert "| 1 | good |" in md.read_text()


UNIFORM = """
import numpy as np
class Model:
    def __init__(self, vocab):
        self.v = len(vocab)
    def log_probs(self, ids):
        return np.full(ids.shape + (self.v,), -np.log(self.v))
"""
UNIGRAM = """
import numpy as np
class Model:
    def __init__(self, vocab):
        self.vocab = vocab
        self.table = np.zeros(len(vocab))
    def fit(self, text, seconds):
        counts = np.array([text.count(c) for c in self.vocab], dtype=float) + 1
        self.table = np.log(counts / counts.sum())
    def log_probs(self, ids):
        return np.broadcast_to(self.table, ids.shape + (len(self.vocab),)).copy()
"""
LOOKAHEAD = """
import numpy as np
class Model:
    def __init__(self, vocab):
        self.v = len(vocab)
    def log_probs(self, ids):
        out = np.full(ids.shape + (self.v,), np.log(0.01 / (self.v - 1)))
        nxt = np.roll(ids, -1, axis=1)
        np.put_along_axis(out, nxt[..., None], np.log(0.99), axis=-1)
        return out
"""
TOO_BIG = UNIFORM.replace("self.v = len(vocab)", "self.v = len(vocab)\n"
                          "        self.w = np.zeros(2_000_000)")


def test_lm_challenge(tmp_path):
    for name, src in (("uniform", UNIFORM), ("unigram", UNIGRAM), ("lookahead", LOOKAHEAD),
                      ("too_big", TOO_BIG)):
        _write(tmp_path, name, src)
    entries = run_challenge("lm", [tmp_path], timeout=60, block=64, limit=40, jobs=2)
    by_name = {e.name: e for e in entries}
    assert by_name["uniform"].score == pytest.approx(math.log(65), abs=1e-4)
    assert 2.5 < by_name["unigram"].score < math.log(65), by_name["unigram"]
    assert [e.name for e in entries[:2]] == ["unigram", "uniform"]
    assert by_name["lookahead"].score is None and "looks ahead" in by_name["lookahead"].detail
    assert by_name["too_big"].score is None and "parameters" in by_name["too_big"].detail
