"""Exercises: checks a learner calls in a notebook, and the tools mentors use.

* ``slm_course.exercises.stageNN``: the check functions of stage NN, e.g.
  ``check_perceptron_update(my_fn)``. A check prints a pass line, or raises
  :class:`CheckFailed` saying what it expected, what came back, and a hint.
* ``slm_course.exercises.notebooks``: builds ``exercises/`` from ``solutions/``.
* ``slm_course.exercises.grade``: grades a learner's notebook with the course's own checks,
  in a contained child process (``runner``, ``sandbox``); ``report``: a class report.
* ``slm_course.exercises.quizzes``: one short quiz per stage, graded like the exercises.
* ``slm_course.exercises.challenge``: leaderboards for a vision and a language-model challenge.
"""

from slm_course.exercises.checking import CheckFailed

__all__ = ["CheckFailed"]
