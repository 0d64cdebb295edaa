"""Stage 01 quiz: linear algebra.

The answers are stated in notebooks/01_linear_algebra.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("01_linear_algebra", "Linear algebra", [
    Number("A is 3x5 and B is 5x2. How many multiply-adds does the triple loop "
           "`matmul_loops(A, B)` do?",
           30, "n*k*m = 3*5*2 = 30 multiply-adds; AB is 3x2, and BA is not defined (inner "
               "dimensions 2 and 3 differ)."),
    Choice("A projection matrix satisfies P @ P = P. What can its eigenvalues be?",
           ("only 0 and 1", "only -1 and 1", "any real number"),
           "a", "If Pv = lv then l^2 v = P^2 v = Pv = lv, so l is 0 or 1: directions in the "
                "subspace are kept, directions orthogonal to it are removed."),
    Number("kappa(A) = 1e12 and float64 rounding is about 1e-16. About how many correct "
           "significant digits can you expect in x from `np.linalg.solve(A, b)`?",
           4, "The relative error can reach kappa * eps = 1e12 * 1e-16 = 1e-4: about 4 "
              "correct digits, whatever the method; `solve` reaches that limit, `inv` does "
              "worse.", tol=1),
])
