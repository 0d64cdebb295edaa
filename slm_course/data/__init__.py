"""The course's datasets: a registry, verified downloads into a cache, and loaders.

    from slm_course.data import load_tinyshakespeare, load_names, load_mnist_test
    text = load_tinyshakespeare()           # str, 1,115,394 characters
    wiki = load_wikitext2()                 # {"train": str, "valid": str, "test": str}

Settings (environment variables):

* ``SLM_COURSE_DATA``: the cache folder (default: the checkout's ``datasets/``, else
  ``~/.cache/slm-course``); each dataset lives in ``<cache>/<name>/``.
* ``SLM_COURSE_MIRROR``: a folder with the same layout, searched before the network.
* ``SLM_COURSE_OFFLINE=1``: never use the network.
* ``SLM_COURSE_VISION``: ``mnist`` (default) or ``fashion-mnist`` for :func:`load_vision`.

From a shell: ``slm-course data list | fetch NAME... | fetch --all | verify``.

Stage 00 introduces it (the set-up check fetches and verifies every dataset); every stage
loads its data through it.
"""

from slm_course.data.cache import (
    DatasetStatus,
    cache_root,
    fetch,
    file_digest,
    is_offline,
    mirror_dirs,
    verify_dataset,
)
from slm_course.data.registry import REGISTRY, Dataset, DatasetError, RemoteFile, get_dataset
from slm_course.data.text import (
    load_names,
    load_names_by_language,
    load_tinyshakespeare,
    load_wikitext2,
)
from slm_course.data.vision import load_mnist_test, load_vision, read_idx, vision_name

__all__ = [
    "REGISTRY", "Dataset", "DatasetError", "DatasetStatus", "RemoteFile", "cache_root",
    "fetch", "file_digest", "get_dataset", "is_offline", "load_mnist_test", "load_names",
    "load_names_by_language", "load_tinyshakespeare", "load_vision", "load_wikitext2",
    "mirror_dirs", "read_idx", "verify_dataset", "vision_name",
]
