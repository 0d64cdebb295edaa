"""Stage 05 quiz: the perceptron and backpropagation.

The answers are stated in notebooks/05_perceptron_backprop.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("05_perceptron_backprop", "The perceptron and backpropagation", [
    Choice("Why does the perceptron rule treat a score of exactly 0 as a mistake?",
           ("to break ties at random", "from w = 0, b = 0 every score is 0: with `< 0` "
            "nothing would ever count as a mistake and nothing would be learned",
            "it makes the updates smaller"),
           "b", "Starting from w = 0 every score is 0; treating 0 as a mistake makes the "
                "first updates happen (and a point on the line is not classified)."),
    Choice("For y = x @ W + b over a batch, what is dL/db?",
           ("grad_out summed over the batch (axis 0)", "grad_out averaged over the features",
            "x.T @ grad_out"),
           "a", "The same b is added to every row, so each example contributes its own "
                "dL/dy_n and contributions to a shared parameter add up."),
    Number("A tanh unit receives x = 8. What is its local derivative 1 - tanh(8)^2 (one "
           "significant figure is enough)?",
           4.5e-7, "1 - tanh^2(8) is about 5e-7: the unit is saturated and almost no "
                   "gradient flows through it.", rel=0.15),
])
