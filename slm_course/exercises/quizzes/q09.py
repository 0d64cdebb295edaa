"""Stage 09 quiz: word embeddings.

The answers are stated in notebooks/09_word_embeddings.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("09_word_embeddings", "Word embeddings", [
    Number("With t = 1e-3, what fraction of the occurrences of a word with frequency "
           "f = 0.01 does subsampling keep (keep = min(1, sqrt(t/f) + t/f); 2 decimals)?",
           0.416, "sqrt(0.1) + 0.1 = 0.416: about 42% are kept; a word with f = 0.001 is "
                  "always kept.", tol=0.01),
    Number("To what power are the unigram counts raised to make word2vec's noise "
           "distribution?",
           0.75, "count^(3/4): flatter than the unigram distribution, so rarer, more "
                 "informative noise words are drawn more often.", tol=1e-9),
    Choice("\"love\" and \"hate\" come out as nearest neighbours. Is that a bug?",
           ("yes: opposites must be far apart", "no: skip-gram measures substitutability "
            "in context, and opposites fill the same slots", "yes: the window is too small"),
           "b", "\"I love thee\" / \"I hate thee\": embeddings capture relatedness in "
                "context, not synonymy."),
])
