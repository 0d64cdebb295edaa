"""Stage 02 quiz: calculus and automatic differentiation.

The answers are stated in notebooks/02_calculus_autograd.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("02_calculus_autograd", "Calculus and automatic differentiation", [
    Choice("Why does every backward rule use `+=` rather than `=`?",
           ("it is faster", "a value used in several places receives one gradient "
            "contribution per use, and the chain rule adds them", "PyTorch requires it"),
           "b", "For y = x * x, x is used twice; with `=` the second contribution would "
                "overwrite the first and x.grad would be x instead of 2x."),
    Number("A model has 1,000,000 parameters and one scalar loss. How many reverse-mode "
           "(backward) passes give the full gradient?",
           1, "Reverse mode costs one backward pass per output; forward mode would need one "
              "pass per input (a million), central differences two million evaluations."),
    Choice("Halving the step h makes your central-difference estimate worse. What does that "
           "tell you?",
           ("h is too large: truncation error dominates", "h is already below the optimum: "
            "round-off error (about eps/h) dominates, so increase h",
            "the function is not differentiable"),
           "b", "Truncation error shrinks like h^2 but round-off grows like eps/h; below the "
                "balance point (about 1e-5 in float64) a smaller h only magnifies rounding."),
])
