"""Stage 06 quiz: multilayer perceptrons on MNIST.

The answers are stated in notebooks/06_mlp_mnist.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("06_mlp_mnist", "Multilayer perceptrons on MNIST", [
    Choice("What is the gradient of the mean softmax cross-entropy with respect to the "
           "logits, for a batch of N examples?",
           ("(p - y) / N: prediction minus one-hot target", "p * (1 - p) / N",
            "-log(p) / N"),
           "a", "The softmax and the log cancel to p - y per example; the mean divides by N, "
                "so one example pulls each logit by at most 1/N."),
    Choice("A training loop calls `loss.backward(); optimizer.step()` but never "
           "`zero_grad()`. What goes wrong?",
           ("nothing: PyTorch resets gradients itself", "gradients accumulate: step t uses "
            "the sum of the gradients of all t batches so far", "the loss becomes nan at once"),
           "b", "`.grad` accumulates. The first step is right; every later one is too large "
                "and points in a stale direction."),
    Choice("You tried 20 settings and kept the one with the best test accuracy. What is wrong "
           "with reporting that accuracy?",
           ("nothing", "it is optimistic: you selected on the test set; select on a "
            "validation split and use the test split once, for the final number",
            "it is pessimistic"),
           "b", "Choosing the best of 20 on the test set fits the test set's noise; the "
                "validation split is for choices, the test split for the final number only."),
    Number("Kaiming initialisation for a ReLU layer with n = 512 inputs draws weights with "
           "which standard deviation?",
           0.0625, "sigma = sqrt(2/n) = sqrt(2/512) = 0.0625 keeps each layer's output "
                   "variance from shrinking or growing through the ReLUs.", tol=1e-4),
])
