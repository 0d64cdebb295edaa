"""Every dataset the course uses: where it comes from, how to verify it, its licence.

A :class:`Dataset` lives in ``<cache>/<name>/`` and is made of :class:`RemoteFile` entries
(downloaded one by one, each verified by checksum) or of the members of an :class:`Archive`
(a zip). No checksum of an archive's members is published, so they are verified by their
structure; a downloaded zip is also checked against the checksum published for the URL it
came from, where there is one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(RuntimeError):
    """A dataset is missing, corrupt or cannot be fetched. The message says how to fix it."""


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's first choice
    "http://yann.lecun.com/exdb/mnist/",  # the original home
)
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset, stored as ``<cache>/<dataset>/<name>``.

    ``urls`` are tried in order. ``sha256`` (or ``md5`` where that is the only published
    checksum) is the hash of the *stored* file. With ``gunzip=True`` each URL serves
    ``<name>.gz``-style gzip data that is decompressed before it is stored; its published
    hash, if any, is ``download_md5``.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    gunzip: bool = False
    download_md5: str | None = None

    def checksum(self) -> tuple[str, str] | None:
        """``(algorithm, hex digest)`` of the stored file, preferring sha256; None if unknown."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None


@dataclass(frozen=True)
class Archive:
    """A zip file whose members matching ``members`` (a glob such as ``data/names/*.txt``)
    become the dataset's files (flattened into ``<cache>/<dataset>/``).

    ``checksums`` maps a URL to the ``(size in bytes, sha256)`` of the zip *as published for
    that URL*: two hosts may serve different bytes for the same data, so a checksum is never
    applied to a URL it was not published for. A download from a URL listed there is checked
    against it before it is unpacked; every copy, from any source, is then checked by the
    dataset's ``check_structure``.
    """

    urls: tuple[str, ...]
    members: str
    checksums: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stray = sorted(set(self.checksums) - set(self.urls))
        if stray:
            raise ValueError(f"archive checksums given for {stray}, which are not among its "
                             f"urls {list(self.urls)}: a checksum belongs to the URL it was "
                             f"published for")
        for url, (size, sha256) in self.checksums.items():
            if not (isinstance(size, int) and size > 0
                    and re.fullmatch(r"[0-9a-f]{64}", sha256)):
                raise ValueError(f"archive checksum for {url} must be (size > 0, 64 lowercase "
                                 f"hex digits of sha256), got {(size, sha256)!r}")

    def checksum(self, url: str) -> tuple[int, str] | None:
        """``(size, sha256)`` of the zip published for ``url``; None if none was published."""
        return self.checksums.get(url)


@dataclass(frozen=True)
class Dataset:
    """A dataset of the course: what it is, where it comes from and how it is verified."""

    name: str
    title: str
    description: str
    licence: str
    citation: str
    homepage: str
    files: tuple[RemoteFile, ...] = ()
    archive: Archive | None = None
    # For datasets without a published checksum: raises DatasetError if the folder is wrong.
    check_structure: Callable[[Path], None] | None = None
    # A folder pattern (e.g. "*.txt") naming the files of an archive dataset.
    pattern: str = "*"
    # Folders outside the cache that may hold the files under the same names (searched
    # after $SLM_COURSE_MIRROR, before the network), e.g. a Linux distribution's package.
    system_dirs: tuple[str, ...] = ()
    # Checksums of one known copy, for information only (shown by `slm-course data verify`).
    reference_sha256: dict[str, str] = field(default_factory=dict)
    size: int = 0  # bytes on disk, approximate, for `slm-course data list`

    def __post_init__(self) -> None:
        if bool(self.files) == bool(self.archive):
            raise ValueError(f"dataset {self.name!r}: give either files or an archive")
        if self.archive and self.check_structure is None:
            raise ValueError(f"dataset {self.name!r}: an archive needs check_structure, "
                             f"since no checksum of its members is published")
        unverified = [f.name for f in self.files if f.checksum() is None]
        if unverified and self.check_structure is None:
            raise ValueError(f"dataset {self.name!r}: files {unverified} have no checksum; "
                             f"give sha256/md5 or a check_structure function")


def _mnist_files(names_md5_size: dict[str, tuple[str, int]], gunzip: bool,
                 sha256: dict[str, str] | None = None) -> tuple[RemoteFile, ...]:
    files = []
    for gz_name, (md5, size) in names_md5_size.items():
        urls = tuple(m + gz_name for m in MNIST_MIRRORS)
        if gunzip:
            stored = gz_name.removesuffix(".gz")
            files.append(RemoteFile(stored, urls, sha256=(sha256 or {})[stored],
                                    size=size, gunzip=True, download_md5=md5))
        else:
            files.append(RemoteFile(gz_name, urls, md5=md5, size=size))
    return tuple(files)


def _check_names_by_language(folder: Path) -> None:
    files = sorted(folder.glob("*.txt"))
    if len(files) != NAMES_BY_LANGUAGE_COUNT:
        raise DatasetError(
            f"{folder} holds {len(files)} language files, expected {NAMES_BY_LANGUAGE_COUNT} "
            f"(one <Language>.txt per language); run `slm-course data fetch names-by-language`")
    for path in files:
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError as err:
            raise DatasetError(f"{path} is not UTF-8 text ({err}); move it away and run "
                               f"`slm-course data fetch names-by-language`") from err
        if not any(lines):
            raise DatasetError(f"{path} holds no names; move it away and run "
                               f"`slm-course data fetch names-by-language`")


NAMES_BY_LANGUAGE_COUNT = 18

# WikiText-2 (raw): its three splits and their line counts (a line ends with "\n"; about a
# third are blank). The counts are those of the Hugging Face dataset card (Salesforce/wikitext,
# wikitext-2-raw-v1: 36,718 / 3,760 / 4,358 rows, one row per line) and of torchtext's
# WikiText2 (NUM_LINES, the same articles tokenized).
WIKITEXT2_LINES = {"wiki.train.raw": 36_718, "wiki.valid.raw": 3_760, "wiki.test.raw": 4_358}
WIKITEXT2_ZIP = "wikitext-2-raw-v1.zip"
WIKITEXT2_URLS = (
    "https://wikitext.smerity.com/" + WIKITEXT2_ZIP,  # Salesforce's home for WikiText
    "https://huggingface.co/datasets/ggml-org/ci/resolve/main/" + WIKITEXT2_ZIP,  # llama.cpp's
)
# (bytes, sha256) of the zip as pinned by public projects for each URL (see datasets/README.md).
WIKITEXT2_ZIP_CHECKSUM = (4_721_645,
                          "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11")


def count_lines(data: bytes) -> int:
    """Lines of a text file's bytes: one per ``\\n``, plus a last line without one."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _check_wikitext2(folder: Path) -> None:
    fix = "move it away and run `slm-course data fetch wikitext-2`"
    for name, expected in WIKITEXT2_LINES.items():
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{path} is missing: WikiText-2 needs all three splits "
                               f"({', '.join(WIKITEXT2_LINES)}); run "
                               f"`slm-course data fetch wikitext-2`")
        data = path.read_bytes()
        if not data.strip():
            raise DatasetError(f"{path} is empty; {fix}")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DatasetError(f"{path} is not UTF-8 text (byte {err.start:,} is "
                               f"0x{data[err.start]:02x}); {fix}") from None
        lines = count_lines(data)
        if lines != expected:
            raise DatasetError(f"{path} has {lines:,} lines, expected {expected:,}: a cut or "
                               f"different copy; {fix}")


_MNIST_CITATION = ("Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied "
                   "to document recognition. Proc. IEEE 86(11), 1998.")

REGISTRY: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="tinyshakespeare",
        title="Tiny Shakespeare",
        description="40,000 lines of Shakespeare's plays in one file: 1,115,394 characters, "
                    "65 distinct. The corpus of char-rnn, nanoGPT and stages 08-15.",
        licence="public domain",
        citation="A. Karpathy. The Unreasonable Effectiveness of Recurrent Neural Networks, "
                 "2015 (char-rnn).",
        homepage="https://github.com/karpathy/char-rnn",
        files=(RemoteFile(
            "input.txt",
            ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
             "tinyshakespeare/input.txt",),
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394),),
        size=1_115_394,
    ),
    Dataset(
        name="names",
        title="Names",
        description="32,033 lowercase first names (a-z), one per line: the data of makemore.",
        licence="MIT",
        citation="A. Karpathy. makemore, 2022. https://github.com/karpathy/makemore",
        homepage="https://github.com/karpathy/makemore",
        files=(RemoteFile(
            "names.txt",
            ("https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",),
            sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
            size=228_145),),
        size=228_145,
    ),
    Dataset(
        name="names-by-language",
        title="Surnames by language of origin",
        description="20,050 surnames in 18 files, one per language: the data of PyTorch's "
                    "'classifying names with a character-level RNN' tutorial.",
        licence="BSD-3-Clause",
        citation="S. Robertson. NLP From Scratch: Classifying Names with a Character-Level "
                 "RNN. PyTorch tutorials, 2017.",
        homepage="https://pytorch.org/tutorials/intermediate/char_rnn_classification_tutorial.html",
        archive=Archive(("https://download.pytorch.org/tutorial/data.zip",), "data/names/*.txt"),
        check_structure=_check_names_by_language,
        pattern="*.txt",
        reference_sha256={
            "Arabic.txt": "ff39e5539dfb3c575e9f569a95528d25f07f551e467a3b1954c64e3f879a15b9",
            "Chinese.txt": "a4b144873952657b3ab3b9475840ef931dc7c51e28c14cde705963f2b4bea455",
            "Czech.txt": "b1622f610d5d90a1d49f255ab84091d8f9f7b5480029a8ac4ddecd1ac6ee2d72",
            "Dutch.txt": "804895bfcfc9dbcf58213dfad80ea93e4d1ebad0cf0655514034f280520874f1",
            "English.txt": "9f4ced672c3f309d497352268cc901325c097592ffd212386d1805fe3c1e442f",
            "French.txt": "613e37ec1a0e40d3611593d9bc5580bc9099f0d3991e25d48834dfb8239120a5",
            "German.txt": "1ddaf5c94e29379739a279721404a2f4d1a33b8d92366a3245a5aee45e519c00",
            "Greek.txt": "ffa076a4ae930098231ad85826c2adae3d47d13edddf723c3a44da2415fef922",
            "Irish.txt": "d14e7478ba0eb2273ccad8c5b2730b70121914827dfea7be42af0e7878f1d7e3",
            "Italian.txt": "969845ed05da45528a6e1ca4c5ea2b3db84280bd706b5f275e656618771ddbe1",
            "Japanese.txt": "e3db6080fd9e5f943242d73b9507b0e0e93ef9695e7a1437556672b2487dd3f6",
            "Korean.txt": "67836224c23c792933b0275de7704bc74dcf1dbbd2ac697f372868fcc3ed347d",
            "Polish.txt": "48d7c0edb1d5d9833038d7b867a528abb5f6ef5fcece8418a329fb43f79b2315",
            "Portugese.txt": "7fda866f280a625a35faff0657d953df14f7912c895897616e6387ca0242559d",
            "Russian.txt": "73a5f32c8ddd38876b73b075f1570576b93d3e6d28b8c7d5e86862a637d24c7a",
            "Scottish.txt": "1811eb5ee9919bf04b8aa6e6f373e05b84a23ebef01fa0dd2a19ab84ccea6c63",
            "Spanish.txt": "23b662e8cdef27f1226df50f3633d55cfe3eefdf0eb8061d0f2d1f676b910c1a",
            "Vietnamese.txt": "64ba9e8c494374c3fc81aed6eb0ea4557a843196f81176fed563fb44b02ecb07",
        },
        size=163_853,
    ),
    Dataset(
        name="wikitext-2",
        title="WikiText-2 (raw)",
        description="Wikipedia's Good and Featured articles in three splits: train (36,718 "
                    "lines, 10.9 MB), valid (3,760 lines) and test (4,358 lines); the raw "
                    "version keeps every word (no <unk>). The members "
                    "wikitext-2-raw/wiki.{train,valid,test}.raw of wikitext-2-raw-v1.zip; a "
                    "standard language-modelling benchmark.",
        licence="CC BY-SA 3.0",
        citation="S. Merity, C. Xiong, J. Bradbury, R. Socher. Pointer Sentinel Mixture "
                 "Models. arXiv:1609.07843, 2016.",
        homepage="https://blog.salesforceairesearch.com/the-wikitext-long-term-dependency-"
                 "language-modeling-dataset/",
        archive=Archive(WIKITEXT2_URLS, "wikitext-2-raw/wiki.*.raw",
                        checksums={url: WIKITEXT2_ZIP_CHECKSUM for url in WIKITEXT2_URLS}),
        check_structure=_check_wikitext2,
        pattern="wiki.*.raw",
        # the members of the zip above, as published with it (information only)
        reference_sha256={
            "wiki.train.raw": "6707892fa3788b5ab9ed78ab5ff37d9fe825f6011a2ad4fcd6a6d467f0e7da57",
            "wiki.valid.raw": "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7",
            "wiki.test.raw": "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08",
        },
        size=13_378_183,
    ),
    Dataset(
        name="mnist-t10k",
        title="MNIST test split",
        description="The 10,000 test images (28x28, uint8) and labels of MNIST, stored "
                    "uncompressed. Enough to evaluate a classifier and to look at digits.",
        licence="CC BY-SA 3.0",
        citation=_MNIST_CITATION,
        homepage="http://yann.lecun.com/exdb/mnist/",
        files=_mnist_files(
            {"t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 7_840_016),
             "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 10_008)},
            gunzip=True,
            sha256={"t10k-images-idx3-ubyte":
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                    "t10k-labels-idx1-ubyte":
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"}),
        size=7_850_024,
    ),
    Dataset(
        name="mnist",
        title="MNIST",
        description="70,000 handwritten digits, 28x28 grey, 10 classes (60,000 train, "
                    "10,000 test): the four gzip IDX files read by torchvision's MNIST.",
        licence="CC BY-SA 3.0",
        citation=_MNIST_CITATION,
        homepage="http://yann.lecun.com/exdb/mnist/",
        files=_mnist_files(
            {"train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
             "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28_881),
             "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1_648_877),
             "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4_542)},
            gunzip=False),
        size=11_594_722,
    ),
    Dataset(
        name="fashion-mnist",
        title="Fashion-MNIST",
        description="70,000 pictures of clothes, 28x28 grey, 10 classes (60,000 train, "
                    "10,000 test): a drop-in, harder replacement for MNIST.",
        licence="MIT",
        citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for "
                 "Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017.",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        files=tuple(RemoteFile(name, (FASHION_MNIST_MIRROR + name,), sha256=sha, md5=md5,
                               size=size) for name, sha, md5, size in (
            ("train-images-idx3-ubyte.gz",
             "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
             "cf8536b0aa1a6ac5fa3f23001093305c", 26_421_856),
            ("train-labels-idx1-ubyte.gz",
             "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
             "10bea18fdb374794d4bb42e356e600c9", 29_491),
            ("t10k-images-idx3-ubyte.gz",
             "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
             "f78720b4224f21cce2f2ccf2d7a94c9a", 4_422_079),
            ("t10k-labels-idx1-ubyte.gz",
             "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
             "0d30e22e447f3c33dab9ed536400ac01", 5_125),
        )),
        # Debian/Ubuntu: `apt-get install dataset-fashion-mnist` installs the four files here.
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        size=30_878_551,
    ),
)}


def get_dataset(name: str) -> Dataset:
    """Return the registry entry called ``name``; a DatasetError lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"no dataset called {name!r}; the course knows "
                           f"{', '.join(sorted(REGISTRY))} (see `slm-course data list`)") from None
