"""Stage 10 quiz: RNN text classification.

The answers are stated in notebooks/10_rnn_classification.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("10_rnn_classification", "RNN text classification", [
    Choice("A classifier reaches 90% accuracy where one class is 88% of the examples. Which "
           "metric shows whether the small classes are found at all?",
           ("accuracy", "macro-F1 (the per-class F1 averaged over classes)", "the loss"),
           "b", "Predicting only the big class already gives 88% accuracy; macro-F1 weighs "
                "every class the same and exposes it."),
    Choice("Naive Bayes with smoothing alpha = 0 meets a test name containing an n-gram seen "
           "in training only for other languages. What happens?",
           ("nothing special", "log P = -infinity for every language that never saw it: one "
            "unseen n-gram vetoes a language", "the posterior becomes uniform"),
           "b", "theta = 0 gives log 0 = -inf; add-alpha smoothing keeps every n-gram "
                "possible."),
    Choice("A padded batch of names runs through `nn.GRU` without packing or masking, and "
           "the classifier reads the last time step. What goes wrong?",
           ("nothing", "for the shorter names the last state has also read the padding, so "
            "the prediction depends on the padding", "the GRU raises an error"),
           "b", "Read the state at each name's own last character (pack or mask), or the "
                "state after the name is polluted by padding steps."),
    Number("A class has precision 0.5 and recall 1.0. What is its F1 (2 decimals)?",
           0.667, "F1 is the harmonic mean 2PR / (P + R) = 2 * 0.5 * 1 / 1.5 = 0.67; "
                  "macro-F1 averages it over the classes.", tol=0.01),
])
