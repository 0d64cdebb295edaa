"""Stage 14 quiz: GPT.

The answers are stated in notebooks/14_gpt.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("14_gpt", "GPT", [
    Number("An untrained GPT over a 65-character vocabulary: about what is its initial "
           "cross-entropy in nats (2 decimals)?",
           4.174, "Near-zero logits give a near-uniform prediction, whose cross-entropy is "
                  "ln V = ln 65 = 4.17. A start at 10 would point to a bad initialisation or "
                  "wrong targets.", tol=0.01),
    Number("A BPE model reaches 3.3 nats per token at 1.85 characters per token. How many "
           "nats per character is that (2 decimals)?",
           1.784, "3.3 / 1.85 = 1.78 nats per character: better than a character model's 1.9. "
                  "Compare models per character, not per token.", tol=0.01),
    Choice("Why are the validation batches fixed rather than drawn at random at each "
           "evaluation?",
           ("to save time", "so that two evaluations differ only because the model changed",
            "because the validation split is small"),
           "b", "Random batches add noise of their own, which can hide a real improvement or "
                "fake one."),
])
