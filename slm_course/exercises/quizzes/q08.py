"""Stage 08 quiz: text as data and n-gram models.

The answers are stated in notebooks/08_text_as_data.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("08_text_as_data", "Text as data and n-gram models", [
    Number("A model has perplexity 8 on some text. What is its mean negative log-likelihood "
           "in bits?",
           3, "Perplexity 8 = as unsure as a uniform choice among 8 tokens; mean NLL = ln 8 = "
              "2.08 nats = log2 8 = 3 bits.", tol=1e-6),
    Choice("The unsmoothed bigram model scores 2.454 nats on its training names but infinity "
           "on the dev names. Why?",
           ("the dev names are longer", "some bigrams of the dev names never occur in "
            "training, so their probability is 0 and -log 0 is infinite",
            "a bug in the log"),
           "b", "Maximum likelihood gives unseen pairs probability 0. Smoothing (add-k, "
                "interpolation) or a regularised learned model fixes it."),
    Choice("Why does every name get a `.` at both ends?",
           ("to separate names in a file", "so that the start and the end of a name are "
            "ordinary bigrams: the model learns first letters and when to stop",
            "to make all names the same length"),
           "b", "The row of `.` is the distribution of first letters, its column how likely "
                "each character is to end a name; without it the model could not start a "
                "name nor ever stop."),
])
