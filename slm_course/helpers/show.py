"""Show reference code inside a notebook instead of pasting a second copy of it."""

from __future__ import annotations

import inspect
from typing import Any


def source_of(obj: Any) -> str:
    """Return the source code of a function, class or module from ``slm_course``."""
    try:
        return inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"cannot show the source of {obj!r}: {err}") from err


def show_source(obj: Any) -> None:
    """Display the source of ``obj``, syntax-highlighted in Jupyter, plain in a terminal."""
    code = source_of(obj)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(code)
        return
    if get_ipython() is None:
        print(code)
    else:
        display(Markdown(f"```python\n{code}```"))
