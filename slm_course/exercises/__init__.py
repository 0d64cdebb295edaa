"""Exercises: checks a learner calls in a notebook, and the tools mentors use.

* ``slm_course.exercises.stageNN``: the check functions of stage NN, e.g.
  ``check_perceptron_update(my_fn)``. A check prints a pass line, or raises
  :class:`CheckFailed` saying what it expected, what came back, and a hint.
* ``slm_course.exercises.notebooks``: builds ``exercises/`` from ``solutions/``.
* ``slm_course.exercises.grade``: runs a learner's notebook safely and counts passed checks.
"""

from slm_course.exercises.checking import CheckFailed

__all__ = ["CheckFailed"]
