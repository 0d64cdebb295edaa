"""The data layer against a real HTTP server on 127.0.0.1: verified, atomic, mirror-aware.

Every test builds a tiny registry entry whose files the test itself writes, so nothing here
touches the real network. The last tests compare the real registry with the shared offline
copies when ``$SLM_COURSE_MIRROR`` names them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from slm_course import cli
from slm_course.data import (
    REGISTRY,
    Dataset,
    DatasetError,
    RemoteFile,
    fetch,
    file_digest,
    load_mnist_test,
    load_names_by_language,
    load_vision,
    read_idx,
    verify_dataset,
)
from slm_course.data import cache as fetch_module
from slm_course.data.registry import Archive

BODY = b"To be, or not to be, that is the question:\n" * 50
SHA = hashlib.sha256(BODY).hexdigest()


class Server:
    """Serves ``routes[path] = (status, body, declared_length)``; logs every request path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                status, body, declared = server.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(declared or len(body)))
                self.end_headers()
                self.wfile.write(body)  # then the handler returns and the connection closes

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("SLM_COURSE_MIRROR", "SLM_COURSE_OFFLINE", "SLM_COURSE_DATA"):
        monkeypatch.delenv(var, raising=False)
    fetch_module._verified.clear()  # each test starts as a fresh process would


def toy(server: Server, *paths: str, **spec) -> Dataset:
    urls = tuple(server.url + p for p in paths)
    spec.setdefault("sha256", SHA)
    spec.setdefault("size", len(BODY))
    return Dataset(name="toy", title="Toy", description="a test file", licence="MIT",
                   citation="-", homepage="-", files=(RemoteFile("toy.txt", urls, **spec),))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_good_download_is_verified_and_stored(server, tmp_path):
    server.routes["/a/toy.txt"] = (200, BODY, None)
    folder = fetch(toy(server, "/a/toy.txt"), cache=tmp_path, quiet=True)
    assert folder == tmp_path / "toy"
    assert (folder / "toy.txt").read_bytes() == BODY
    assert listing(folder) == ["toy.txt"], "no temporary file may be left behind"
    assert server.requests == ["/a/toy.txt"]


def test_a_404_mirror_is_skipped_for_the_next(server, tmp_path):
    server.routes["/b/toy.txt"] = (200, BODY, None)
    folder = fetch(toy(server, "/a/toy.txt", "/b/toy.txt"), cache=tmp_path, quiet=True)
    assert (folder / "toy.txt").read_bytes() == BODY
    assert server.requests == ["/a/toy.txt", "/b/toy.txt"], "mirrors are tried in order"


def test_a_corrupted_body_is_rejected_with_both_hashes(server, tmp_path):
    bad = BODY[:-2] + b"?\n"  # same size: only the checksum can tell
    server.routes["/a/toy.txt"] = (404, b"gone", None)
    server.routes["/b/toy.txt"] = (200, bad, None)
    with pytest.raises(DatasetError) as info:
        fetch(toy(server, "/a/toy.txt", "/b/toy.txt"), cache=tmp_path, quiet=True)
    message = str(info.value)
    assert "toy/toy.txt" in message
    assert "/a/toy.txt: HTTP 404" in message, "the summary says what each mirror answered"
    assert SHA in message and hashlib.sha256(bad).hexdigest() in message
    assert listing(tmp_path / "toy") == [], "nothing at the final path, no temp litter"


def test_a_wrong_size_is_named(server, tmp_path):
    server.routes["/a/toy.txt"] = (200, BODY + b"extra", None)
    with pytest.raises(DatasetError, match=f"{len(BODY) + 5:,} bytes, expected {len(BODY):,}"):
        fetch(toy(server, "/a/toy.txt"), cache=tmp_path, quiet=True)


def test_a_connection_cut_half_way_leaves_nothing(server, tmp_path):
    server.routes["/a/toy.txt"] = (200, BODY[: len(BODY) // 2], len(BODY))
    cut = f"closed after {len(BODY) // 2:,} of {len(BODY):,} bytes"
    with pytest.raises(DatasetError, match=cut):
        fetch(toy(server, "/a/toy.txt"), cache=tmp_path, quiet=True)
    assert listing(tmp_path / "toy") == [], "no final file and no temporary file"


def test_an_unknown_size_still_catches_a_cut_by_checksum(server, tmp_path):
    server.routes["/a/toy.txt"] = (200, BODY[:100], len(BODY))
    with pytest.raises(DatasetError, match="closed after 100 of"):
        fetch(toy(server, "/a/toy.txt", size=None), cache=tmp_path, quiet=True)
    assert listing(tmp_path / "toy") == []


def test_an_interrupted_download_leaves_nothing(server, tmp_path, monkeypatch):
    def half_then_interrupt(url, out, progress=False):
        out.write(BODY[:100])
        raise KeyboardInterrupt  # the learner pressed Ctrl-C (or the kernel was stopped)

    monkeypatch.setattr(fetch_module, "_download", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(toy(server, "/a/toy.txt"), cache=tmp_path, quiet=True)
    assert listing(tmp_path / "toy") == []


def test_a_cache_hit_makes_no_request(server, tmp_path):
    server.routes["/a/toy.txt"] = (200, BODY, None)
    ds = toy(server, "/a/toy.txt")
    fetch(ds, cache=tmp_path, quiet=True)
    fetch_module._verified.clear()  # as in a new process: the file is re-hashed, not fetched
    fetch(ds, cache=tmp_path, quiet=True)
    assert server.requests == ["/a/toy.txt"]


def test_a_corrupt_cached_file_is_moved_aside_and_refetched(server, tmp_path, capsys):
    server.routes["/a/toy.txt"] = (200, BODY, None)
    (tmp_path / "toy").mkdir()
    bad = BODY.replace(b"question", b"QUESTION")
    (tmp_path / "toy" / "toy.txt").write_bytes(bad)
    fetch(toy(server, "/a/toy.txt"), cache=tmp_path)
    assert (tmp_path / "toy" / "toy.txt").read_bytes() == BODY
    assert (tmp_path / "toy" / "toy.txt.corrupt").read_bytes() == bad, "the user's file is kept"
    err = capsys.readouterr().err
    assert "toy.txt.corrupt" in err and hashlib.sha256(bad).hexdigest() in err


def test_the_mirror_folder_is_used_before_the_network(server, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "toy.txt").write_bytes(BODY)
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(mirror))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    folder = fetch(toy(server, "/a/toy.txt"), cache=tmp_path / "cache", quiet=True)
    assert (folder / "toy.txt").read_bytes() == BODY
    assert server.requests == []


def test_a_bad_mirror_copy_falls_back_to_the_network(server, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "toy.txt").write_bytes(b"x" * len(BODY))
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(mirror))
    server.routes["/a/toy.txt"] = (200, BODY, None)
    folder = fetch(toy(server, "/a/toy.txt"), cache=tmp_path / "cache", quiet=True)
    assert (folder / "toy.txt").read_bytes() == BODY
    assert (mirror / "toy" / "toy.txt").read_bytes() == b"x" * len(BODY), "mirror untouched"


def test_offline_and_missing_says_what_to_do(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    with pytest.raises(DatasetError) as info:
        fetch(toy(server, "/a/toy.txt", "/b/toy.txt"), cache=tmp_path, quiet=True)
    message = str(info.value)
    assert f"{server.url}/a/toy.txt or {server.url}/b/toy.txt" in message
    assert "SLM_COURSE_MIRROR is not set" in message and "SLM_COURSE_OFFLINE" in message
    assert server.requests == []
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"nowhere/toy/toy.txt: not there"):
        fetch(toy(server, "/a/toy.txt"), cache=tmp_path, quiet=True)


def test_a_gzip_download_is_checked_then_stored_decompressed(server, tmp_path):
    packed = gzip.compress(BODY)
    server.routes["/a/toy.txt.gz"] = (200, packed, None)
    md5 = hashlib.md5(packed).hexdigest()
    folder = fetch(toy(server, "/a/toy.txt.gz", gunzip=True, download_md5=md5),
                   cache=tmp_path, quiet=True)
    assert (folder / "toy.txt").read_bytes() == BODY
    with pytest.raises(DatasetError, match="md5"):
        fetch(toy(server, "/a/toy.txt.gz", gunzip=True, download_md5="0" * 32),
              cache=tmp_path / "other", quiet=True)


def test_an_archive_is_unpacked_and_checked_by_structure(server, tmp_path):
    def two_files(folder: Path) -> None:
        if len(list(folder.glob("*.txt"))) != 2:
            raise DatasetError(f"{folder}: expected 2 files")

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data/names/A.txt", "Ab\nAc\n")
        archive.writestr("data/names/B.txt", "Bd\n")
        archive.writestr("data/other.txt", "not a member")
    server.routes["/data.zip"] = (200, buffer.getvalue(), None)
    ds = Dataset(name="zipped", title="Z", description="-", licence="-", citation="-",
                 homepage="-", archive=Archive((server.url + "/data.zip",), "data/names/*.txt"),
                 check_structure=two_files, pattern="*.txt")
    folder = fetch(ds, cache=tmp_path, quiet=True)
    assert listing(folder) == ["A.txt", "B.txt"]
    assert listing(tmp_path) == ["zipped"], "no staging folder left behind"
    (folder / "B.txt").unlink()  # now the structure is wrong: moved aside and fetched again
    fetch(ds, cache=tmp_path, quiet=True)
    assert listing(folder) == ["A.txt", "B.txt"]
    assert listing(tmp_path / "zipped.corrupt") == ["A.txt"]


def test_names_by_language_are_read_from_a_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror" / "names-by-language"
    mirror.mkdir(parents=True)
    languages = [f"L{i:02d}" for i in range(17)] + ["Portugese"]
    for language in languages:
        (mirror / f"{language}.txt").write_text(f"{language}a\n {language}b \n\n",
                                                encoding="utf-8")
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    names = load_names_by_language(cache=tmp_path / "cache")
    assert list(names) == sorted(names) and len(names) == 18
    assert names["Portuguese"] == ["Portugesea", "Portugeseb"], "spelling fixed, lines stripped"
    (mirror / "L00.txt").unlink()  # 17 files: the structure check refuses the copy
    with pytest.raises(DatasetError, match="17 language files, expected 18"):
        fetch("names-by-language", cache=tmp_path / "cache2", quiet=True)


def test_read_idx_matches_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape)
    (tmp_path / "img").write_bytes(header + images.tobytes())
    (tmp_path / "lab").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big")
                                   + labels.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "img"), read_image_file(tmp_path / "img"))
    np.testing.assert_array_equal(read_idx(tmp_path / "lab"), read_label_file(tmp_path / "lab"))
    (tmp_path / "img.gz").write_bytes(gzip.compress(header + images.tobytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "img.gz"), images)
    (tmp_path / "cut").write_bytes(header + images.tobytes()[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "cut")


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 array in the IDX format: magic (0, 0, 8, ndim), big-endian sizes, values."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("name, cls", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_load_vision_builds_torchvision_from_verified_files(tmp_path, monkeypatch, name, cls):
    """The loader path of both image sets (MNIST's training images cannot be downloaded on the
    build machine, so this small generated set is what proves MNIST's path there)."""
    rng = np.random.default_rng(1)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 6),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3)}
    mirror = tmp_path / "mirror" / name
    mirror.mkdir(parents=True)
    files = []
    for file_name, array in arrays.items():
        packed = gzip.compress(idx_bytes(array))
        (mirror / f"{file_name}.gz").write_bytes(packed)
        files.append(RemoteFile(f"{file_name}.gz", ("http://127.0.0.1:9/x",),
                                sha256=hashlib.sha256(packed).hexdigest()))
    tiny = Dataset(name=name, title="tiny", description="-", licence="-",
                   citation="-", homepage="-", files=tuple(files))
    monkeypatch.setitem(REGISTRY, name, tiny)
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    monkeypatch.setenv("SLM_COURSE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("SLM_COURSE_VISION", name)

    train = load_vision(train=True)  # the name comes from $SLM_COURSE_VISION
    assert type(train).__name__ == cls and len(train) == 6
    np.testing.assert_array_equal(np.asarray(train[0][0]), arrays["train-images-idx3-ubyte"][0])
    np.testing.assert_array_equal(train.targets.numpy(), arrays["train-labels-idx1-ubyte"])
    test = load_vision(name, train=False)
    np.testing.assert_array_equal(test.data.numpy(), arrays["t10k-images-idx3-ubyte"])

    raw = tmp_path / "cache" / name / cls / "raw"
    cut = raw / "train-images-idx3-ubyte"
    cut.write_bytes(cut.read_bytes()[:-10])  # a decompression cut short is made again
    np.testing.assert_array_equal(load_vision(train=True).data.numpy(),
                                  arrays["train-images-idx3-ubyte"])
    assert sorted(p.name for p in raw.iterdir()) == sorted(arrays), "no temp files left"
    with pytest.raises(DatasetError, match="unknown vision dataset 'cifar'"):
        load_vision("cifar")


def test_cli_list_names_every_dataset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_COURSE_DATA", str(tmp_path))
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REGISTRY) and "no " in out


def test_cli_verify_passes_a_good_copy_and_fails_a_corrupt_one(server, tmp_path, monkeypatch,
                                                              capsys):
    server.routes["/a/toy.txt"] = (200, BODY, None)
    ds = toy(server, "/a/toy.txt")
    monkeypatch.setitem(REGISTRY, "toy", ds)
    monkeypatch.setenv("SLM_COURSE_DATA", str(tmp_path))
    assert cli.main(["data", "fetch", "toy"]) == 0
    assert cli.main(["data", "verify", "toy"]) == 0
    assert "ok       toy" in capsys.readouterr().out
    path = tmp_path / "toy" / "toy.txt"
    path.write_bytes(BODY.replace(b"be", b"BE"))
    fetch_module._verified.clear()
    assert cli.main(["data", "verify", "toy"]) == 1
    out = capsys.readouterr().out
    assert "BAD" in out and SHA in out and "slm-course data fetch toy" in out
    assert path.exists(), "verify only reports; it never moves or deletes"
    path.unlink()
    assert cli.main(["data", "verify", "toy"]) == 1, "a named dataset that is missing fails"


# ----------------------------------------------------------------- the real registry
MIRROR = os.environ.get("SLM_COURSE_MIRROR", "").split(os.pathsep)[0]
needs_mirror = pytest.mark.skipif(not MIRROR, reason="SLM_COURSE_MIRROR is not set")


@needs_mirror
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_registry_matches_the_shared_copies(name):
    ds = REGISTRY[name]
    folders = [Path(MIRROR) / name] + [Path(p) for p in ds.system_dirs]
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        pytest.skip(f"no offline copy of {name}")
    if ds.files:
        for spec in ds.files:
            algorithm, expected = spec.checksum()
            assert file_digest(folder / spec.name, algorithm) == expected, spec.name
            assert (folder / spec.name).stat().st_size == spec.size, spec.name
            if spec.md5:
                assert file_digest(folder / spec.name, "md5") == spec.md5
    else:
        ds.check_structure(folder)
        assert {p.name: file_digest(p) for p in folder.glob(ds.pattern)} == ds.reference_sha256


@needs_mirror
def test_load_mnist_test_reads_the_real_test_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_COURSE_MIRROR", MIRROR)
    images, labels = load_mnist_test(cache=tmp_path)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    assert labels[:5].tolist() == [7, 2, 1, 0, 4], "the famous first five MNIST test digits"
    assert np.bincount(labels).tolist()[:2] == [980, 1135]  # published class counts


@needs_mirror
def test_verify_reports_the_real_datasets(tmp_path):
    status = verify_dataset("tinyshakespeare", cache=Path(MIRROR))
    assert status.verified, status.problems
    assert not verify_dataset("tinyshakespeare", cache=tmp_path).present
