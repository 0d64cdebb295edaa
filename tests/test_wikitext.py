"""WikiText-2 (raw): the registry entry, its per-source verification, the loader, its own
train/valid split in ``lm_data``, and the ``wikitext2-bpe-cpu`` preset end to end.

The real files cannot be downloaded here, so every test writes a small set in the same format:
the three splits ``wiki.{train,valid,test}.raw`` with the real line counts (most lines short
or blank), as a mirror folder of extracted files and as ``wikitext-2-raw-v1.zip`` served from
``file://`` URLs. Downloads go through the real code path (urllib), checksums and all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
import torch

from slm_course.cli import main
from slm_course.cli.presets import get_preset
from slm_course.data import REGISTRY, DatasetError, fetch, load_wikitext2, verify_dataset
from slm_course.data import cache as cache_module
from slm_course.data.registry import WIKITEXT2_LINES, Archive, count_lines
from slm_course.helpers.run_log import LOG_NAME
from slm_course.lm_data import LMData, load_corpus, load_splits, prepare_lm_data, split_text
from slm_course.tokenizers import CharTokenizer

WORDS = ["the", "river", "was", "built", "in", "1850", "@-@", "city", ",", ".", "Málaga", "of"]
ONLY_IN_VALID, ONLY_IN_TEST = "zyzzyva", "quokka"


def fake_split(name: str, special: str = "") -> bytes:
    """A split shaped like the real one: " \\n" blank lines, " = Heading = " lines and short
    paragraphs, with exactly the real number of lines. ``special`` is a word repeated in it."""
    lines = []
    for i in range(WIKITEXT2_LINES[name]):
        if i % 2 == 0:
            lines.append(" ")
        elif i % 40 == 1:
            lines.append(f" = Article {i // 40} = ")
        else:
            words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(2 + i % 3)]
            lines.append(" " + " ".join(words + ([special] if special and i % 5 == 0 else [])))
    return ("\n".join(lines) + "\n").encode("utf-8")


def fake_files() -> dict[str, bytes]:
    return {"wiki.train.raw": fake_split("wiki.train.raw"),
            "wiki.valid.raw": fake_split("wiki.valid.raw", ONLY_IN_VALID),
            "wiki.test.raw": fake_split("wiki.test.raw", ONLY_IN_TEST)}


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def write_zip(path: Path, files: dict[str, bytes], extra: str = "") -> Path:
    """The layout of wikitext-2-raw-v1.zip: a folder entry and its three members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("wikitext-2-raw/", "")
        for name, data in files.items():
            archive.writestr(f"wikitext-2-raw/{name}", data)
        if extra:
            archive.writestr("wikitext-2-raw/README", extra)
    return path


def published(path: Path) -> tuple[int, str]:
    return path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return fake_files()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("SLM_COURSE_MIRROR", "SLM_COURSE_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLM_COURSE_DATA", str(tmp_path / "cache"))
    cache_module._verified.clear()


@pytest.fixture
def mirror(tmp_path, monkeypatch, files) -> Path:
    """Offline, with $SLM_COURSE_MIRROR holding wikitext-2/ (the extracted files)."""
    write_folder(tmp_path / "mirror" / "wikitext-2", files)
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    return tmp_path / "mirror" / "wikitext-2"


def with_urls(monkeypatch, urls: tuple[str, ...], checksums: dict) -> None:
    """The registry entry with its URLs (and their checksums) replaced by local ones."""
    real = REGISTRY["wikitext-2"]
    archive = Archive(urls, real.archive.members, checksums=checksums)
    monkeypatch.setitem(REGISTRY, "wikitext-2", dataclasses.replace(real, archive=archive))


# ---------------------------------------------------------------- the registry entry
def test_the_registry_entry_keys_each_checksum_to_its_url():
    ds = REGISTRY["wikitext-2"]
    assert ds.title == "WikiText-2 (raw)" and ds.licence == "CC BY-SA 3.0"
    assert "Pointer Sentinel Mixture Models" in ds.citation and "Merity" in ds.citation
    mirror = "https://huggingface.co/datasets/ggml-org/ci/resolve/main/wikitext-2-raw-v1.zip"
    assert mirror in ds.archive.urls and "https://wikitext.smerity.com/wikitext-2-raw-v1.zip" \
        in ds.archive.urls
    assert ds.archive.checksum(mirror) == (
        4_721_645, "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11")
    assert ds.archive.checksum("https://elsewhere.example/wikitext-2-raw-v1.zip") is None
    assert set(ds.reference_sha256) == set(WIKITEXT2_LINES)
    with pytest.raises(ValueError, match="not among its urls"):
        Archive(("https://a/x.zip",), "*", checksums={"https://b/x.zip": (1, "0" * 64)})
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        Archive(("https://a/x.zip",), "*", checksums={"https://a/x.zip": (1, "ABC")})


def test_count_lines_counts_newlines_and_a_last_unterminated_line():
    assert [count_lines(b""), count_lines(b"a\n"), count_lines(b"a\nb"),
            count_lines(b" \n\n")] == [0, 1, 2, 2]
    assert count_lines("a\u2028b\n".encode()) == 1, "only \\n ends a line, as in the files"


# ---------------------------------------------------------------- the loader
def test_the_loader_reads_the_mirror_folder(mirror, files, tmp_path, capsys):
    splits = load_wikitext2()
    assert list(splits) == ["train", "valid", "test"]
    for split, text in splits.items():
        assert text == files[f"wiki.{split}.raw"].decode("utf-8"), split
        assert count_lines(text.encode()) == WIKITEXT2_LINES[f"wiki.{split}.raw"]
    cached = tmp_path / "cache" / "wikitext-2"
    assert sorted(p.name for p in cached.iterdir()) == sorted(WIKITEXT2_LINES)
    status = verify_dataset("wikitext-2")
    assert status.verified and status.notes == [
        "0 of 3 files are byte-identical to the course's reference copy (the structure is what "
        "is verified; these hashes are for information)"], "a fake copy: structure only"
    assert main(["data", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "wikitext-2" in line]
    assert len(listed) == 1 and "yes" in listed[0] and "WikiText-2 (raw)" in listed[0]
    assert "CC BY-SA 3.0" in listed[0]


def test_offline_without_a_copy_says_how_to_provide_one(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    with pytest.raises(DatasetError) as info:
        load_wikitext2()
    message = str(info.value)
    assert "SLM_COURSE_OFFLINE=1 forbids downloading it from https://wikitext.smerity.com/" \
           "wikitext-2-raw-v1.zip or https://huggingface.co/datasets/ggml-org/" in message
    assert f"{tmp_path / 'empty' / 'wikitext-2'}: not there" in message
    assert "<mirror>/wikitext-2/<file>: the files wikitext-2-raw/wiki.*.raw of the zip" in message


def test_fetch_all_offline_reports_wikitext2_like_the_others(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    assert main(["data", "fetch", "--all"]) == 1  # nothing is in that mirror
    out = capsys.readouterr().out
    assert "FAILED  wikitext-2: wikitext-2/ is not in the cache" in out
    assert "Traceback" not in out and "FAILED  names:" in out, "every dataset was tried"


def test_fetch_all_copies_it_from_the_mirror(mirror, monkeypatch, capsys):
    assert main(["data", "fetch", "wikitext-2"]) == 0
    assert "ok      wikitext-2:" in capsys.readouterr().out
    assert main(["data", "verify", "wikitext-2"]) == 0


# ---------------------------------------------------------------- structure checks
def cut(data: bytes) -> bytes:
    return data[:data.rindex(b"\n", 0, -1) + 1]  # the last line lost


@pytest.mark.parametrize("name, change, message", [
    ("wiki.valid.raw", None, "wiki.valid.raw is missing: WikiText-2 needs all three splits"),
    ("wiki.test.raw", lambda d: b"", "wiki.test.raw is empty"),
    ("wiki.test.raw", lambda d: b" \n" * 4_358, "wiki.test.raw is empty"),
    ("wiki.valid.raw", lambda d: d[:100] + b"\xe9" + d[101:],
     "wiki.valid.raw is not UTF-8 text (byte 100 is 0xe9)"),
    ("wiki.train.raw", cut, "wiki.train.raw has 36,717 lines, expected 36,718"),
    ("wiki.train.raw", lambda d: d + b" = More = \n", "has 36,719 lines, expected 36,718"),
])
def test_a_bad_copy_in_the_mirror_is_refused(mirror, name, change, message):
    path = mirror / name
    if change is None:
        path.unlink()
    else:
        path.write_bytes(change(path.read_bytes()))
    with pytest.raises(DatasetError) as info:
        load_wikitext2()
    text = str(info.value)
    assert message in text and "not in the cache" in text, text
    assert not (Path(cache_module.cache_root()) / "wikitext-2").exists(), "nothing installed"


def test_a_bad_copy_in_the_cache_is_moved_aside_and_fetched_again(mirror, files, tmp_path):
    load_wikitext2()
    cached = tmp_path / "cache" / "wikitext-2" / "wiki.valid.raw"
    cached.write_bytes(cut(files["wiki.valid.raw"]))
    assert load_wikitext2()["valid"] == files["wiki.valid.raw"].decode()
    assert (tmp_path / "cache" / "wikitext-2.corrupt" / "wiki.valid.raw").read_bytes() == \
        cut(files["wiki.valid.raw"]), "kept for inspection, never used"


# ---------------------------------------------------------------- per-source checksums
def test_the_zip_from_a_url_with_a_published_checksum_is_checked_first(files, tmp_path,
                                                                      monkeypatch):
    good = write_zip(tmp_path / "a" / "wikitext-2-raw-v1.zip", files)
    url = good.as_uri()
    with_urls(monkeypatch, (url,), {url: published(good)})
    splits = load_wikitext2()
    assert splits["test"] == files["wiki.test.raw"].decode()
    cached = tmp_path / "cache" / "wikitext-2"
    assert sorted(p.name for p in cached.iterdir()) == sorted(WIKITEXT2_LINES), "flattened"


def test_the_checksum_belongs_to_its_url_and_structure_checks_the_other(files, tmp_path,
                                                                       monkeypatch, capsys):
    # a and b serve the same zip: the data with one more file, structurally fine, but not the
    # bytes published for a (whose size happens to match).
    pinned = write_zip(tmp_path / "pin" / "wikitext-2-raw-v1.zip", files)
    served_by_a = write_zip(tmp_path / "a" / "wikitext-2-raw-v1.zip", files, extra="mirror")
    other = write_zip(tmp_path / "b" / "wikitext-2-raw-v1.zip", files, extra="mirror")
    assert other.read_bytes() == served_by_a.read_bytes()
    a, b = served_by_a.as_uri(), other.as_uri()
    for_a = (served_by_a.stat().st_size, published(pinned)[1])
    with_urls(monkeypatch, (a, b), {a: for_a})  # b has no published checksum
    splits = load_wikitext2()
    assert splits["valid"] == files["wiki.valid.raw"].decode(), "b's copy, checked by structure"
    err = capsys.readouterr().err
    assert f"downloading {a}" in err and "its sha256 does not match the one published for " \
                                         "this URL" in err
    assert hashlib.sha256(pinned.read_bytes()).hexdigest() in err
    assert f"downloading {b}" in err and "(structure verified)" in err


def test_a_url_with_a_checksum_refuses_other_bytes_and_says_both(files, tmp_path, monkeypatch):
    good = write_zip(tmp_path / "good" / "wikitext-2-raw-v1.zip", files)
    size, sha = published(good)
    same_size = good.read_bytes()
    position = same_size.index(b"wikitext-2-raw/wiki.test.raw") + 20  # a byte of a file name
    bad = tmp_path / "bad" / "wikitext-2-raw-v1.zip"
    bad.parent.mkdir()
    bad.write_bytes(same_size[:position] + b"X" + same_size[position + 1:])
    short = tmp_path / "short" / "wikitext-2-raw-v1.zip"
    short.parent.mkdir()
    short.write_bytes(same_size[:-100])
    with_urls(monkeypatch, (bad.as_uri(), short.as_uri()),
              {bad.as_uri(): (size, sha), short.as_uri(): (size, sha)})
    with pytest.raises(DatasetError) as info:
        load_wikitext2()
    text = str(info.value)
    assert f"{bad.as_uri()}: the zip is corrupt: its sha256 does not match" in text
    assert f"expected sha256: {sha}" in text
    assert f"{short.as_uri()}: the zip has {size - 100:,} bytes, expected {size:,}" in text
    assert not (tmp_path / "cache" / "wikitext-2").exists(), "nothing installed"


def test_a_zip_without_a_checksum_is_still_checked_by_structure(files, tmp_path, monkeypatch):
    broken = dict(files, **{"wiki.valid.raw": b""})
    url = write_zip(tmp_path / "a" / "wikitext-2-raw-v1.zip", broken).as_uri()
    with_urls(monkeypatch, (url,), {})
    with pytest.raises(DatasetError, match=re.escape(f"{url}: the copy/wiki.valid.raw is empty")):
        load_wikitext2()


# ---------------------------------------------------------------- lm_data: its own split
def test_lm_data_uses_wikitexts_own_train_and_valid_splits(mirror, files):
    train, valid = (files[f"wiki.{s}.raw"].decode() for s in ("train", "valid"))
    assert load_splits("wikitext-2", val_fraction=0.5) == (train, valid), "val_fraction unused"
    assert load_corpus("wikitext-2") == "".join(f.decode() for f in files.values())
    data = prepare_lm_data("wikitext-2", "bpe", bpe_vocab_size=300)
    assert (data.train_chars, data.val_chars) == (len(train), len(valid))
    assert data.tokenizer.decode(data.val.tolist()) == valid, "the valid split, whole"
    assert data.tokenizer.decode(data.train.tolist()) == train
    assert not any(ONLY_IN_VALID[:3] in data.tokenizer.vocab[i].decode("utf-8", "replace")
                   for i in range(256, data.vocab_size)), "merges come from train only"
    chars = prepare_lm_data("wikitext-2", "char")
    assert set(chars.tokenizer.chars) == set(train + valid), "alphabet: train and valid"
    assert ONLY_IN_TEST not in chars.tokenizer.decode(chars.train.tolist() + chars.val.tolist())


def test_a_single_text_is_still_split_90_10_as_before(tmp_path):
    text = "".join(f"line {i}: to be, or not to be\n" for i in range(400))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    data = prepare_lm_data(str(corpus), "char")
    before = LMData.from_text(text, CharTokenizer.from_text(text), 0.1)  # the old formula
    assert torch.equal(data.train, before.train) and torch.equal(data.val, before.val)
    assert data.tokenizer.chars == before.tokenizer.chars
    assert load_splits(str(corpus)) == split_text(text, 0.1)
    with pytest.raises(ValueError, match="use one of tinyshakespeare, wikitext-2 or the path"):
        load_corpus("wikitext-3")


# ---------------------------------------------------------------- the preset, end to end
def test_the_preset_is_the_cpu_recipe_on_wikitext2_bpe(capsys):
    preset, cpu = get_preset("wikitext2-bpe-cpu"), get_preset("shakespeare-bpe-cpu")
    assert (preset.train.dataset, preset.train.tokenizer) == ("wikitext-2", "bpe")
    assert 1024 <= preset.train.bpe_vocab_size <= 2048
    assert preset.model == cpu.model
    assert dataclasses.replace(preset.train, dataset=cpu.train.dataset,
                               bpe_vocab_size=cpu.train.bpe_vocab_size) == cpu.train
    assert main(["train", "--list"]) == 0
    assert "wikitext2-bpe-cpu: the CPU model on WikiText-2 (raw)" in capsys.readouterr().out


def test_the_preset_trains_and_reports_the_whole_valid_split(mirror, files, tmp_path, capsys,
                                                             one_thread):
    out = tmp_path / "run"
    code = main(["train", "--preset", "wikitext2-bpe-cpu", "--max_steps=4",
                 "--warmup_steps=1", "--eval_interval=2", "--eval_batches=1",
                 "--batch_size=4", "--block_size=16", "--n_layer=1", "--n_head=2",
                 "--n_embd=16", "--bpe_vocab_size=300", "--progress=false",
                 "--num_threads=1", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    final = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()][-1]
    assert final["kind"] == "final" and final["step"] == 4
    # the tokens of WikiText-2's valid split, not of 10% of a concatenation
    ckpt_data = prepare_lm_data("wikitext-2", "bpe", bpe_vocab_size=300)
    assert final["val_tokens"] == len(ckpt_data.val)
    valid = files["wiki.valid.raw"].decode()
    assert final["val_loss_per_char"] == pytest.approx(
        final["val_loss_full_split"] * len(ckpt_data.val) / len(valid))
    assert 0 < final["val_loss_full_split"] < 10
    assert f"whole validation split ({len(ckpt_data.val):,} tokens)" in printed.out
    assert "data: wikitext-2 (bpe tokens)" in printed.out


def test_the_preset_offline_without_the_data_fails_with_the_fix(tmp_path, monkeypatch,
                                                                 capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    assert main(["train", "--preset", "wikitext2-bpe-cpu", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "forbids downloading it" in err and "SLM_COURSE_MIRROR" in err
    assert "Traceback" not in err
    with pytest.raises(DatasetError):
        fetch("wikitext-2", quiet=True)
