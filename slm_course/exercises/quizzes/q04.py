"""Stage 04 quiz: optimization.

The answers are stated in notebooks/04_optimization.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("04_optimization", "Optimization", [
    Number("A quadratic's Hessian has eigenvalues 50 and 0.5. What is the largest learning "
           "rate for which gradient descent converges?",
           0.04, "GD multiplies each eigen-coordinate by (1 - lr * lambda); it is stable only "
                 "for lr < 2/L = 2/50 = 0.04.", tol=1e-9),
    Number("You make the batch 4 times larger. By what factor does the standard deviation of "
           "the gradient estimate shrink?",
           2, "The variance falls like sigma^2/B, 4 times; the standard deviation 2 times, "
              "while a step costs 4 times as much.", tol=1e-9),
    Choice("What does AdamW do differently from an L2 penalty added to the loss inside Adam?",
           ("it decays every weight by (1 - lr * wd) regardless of its gradients",
            "it uses no second-moment estimate", "it decays only the biases"),
           "a", "With L2 inside Adam the penalty's gradient is divided by the gradient RMS, so "
                "weights with large gradients are regularised least; AdamW's decoupled decay "
                "shrinks every weight by the same factor."),
])
