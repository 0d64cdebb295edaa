"""Stage 12 quiz: attention and sequence to sequence.

The answers are stated in notebooks/12_attention_seq2seq.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("12_attention_seq2seq", "Attention and sequence to sequence", [
    Number("q and k have d_k = 1024 independent entries of unit variance. What is the "
           "standard deviation of q . k?",
           32, "The variance is d_k = 1024, so the standard deviation is sqrt(1024) = 32; "
               "scores that far apart make the softmax nearly one-hot, hence the "
               "1/sqrt(d_k) scaling.", tol=1e-6),
    Choice("What does the attention heatmap look like for the task \"copy\" (output = "
           "input)?",
           ("uniform", "the main diagonal: output t looks at input t",
            "the anti-diagonal"),
           "b", "Each output position attends to the same input position."),
    Choice("Why must padding get attention weight exactly 0 rather than a small weight?",
           ("to save compute", "any positive weight mixes padding into the context, so the "
            "output would depend on how much padding the batch needed",
            "softmax cannot produce small weights"),
           "b", "With -infinity scores the output is the same alone or in any batch."),
])
