"""slm_course: the verified reference code behind the slm-course notebooks.

Each module holds one idea of one stage; the notebooks import it and the tests prove it
against an oracle (a PyTorch built-in, finite differences, a closed form, a published number).
"""

__version__ = "0.1.0"
