"""Stage 03 quiz: probability and information.

The answers are stated in notebooks/03_probability_information.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("03_probability_information", "Probability and information", [
    Number("A model gives probability 0.25 to the correct next token every time. What is its "
           "perplexity?",
           4, "Cross-entropy is -ln 0.25 = ln 4 = 1.386 nats, and perplexity e^(ln 4) = 4: as "
              "unsure as a fair choice among 4 tokens.", tol=1e-6),
    Number("Same model: what is its cross-entropy in nats (to 2 decimals)?",
           1.386, "-ln 0.25 = ln 4 = 1.386 nats per token.", tol=0.01),
    Choice("What does sampling at temperature 0.5 do?",
           ("sharpens the distribution (lower entropy) and keeps the ranking of the tokens",
            "flattens the distribution (higher entropy)",
            "changes which token is most likely"),
           "a", "Dividing the logits by 0.5 doubles the gaps between them: the distribution "
                "gets sharper; z/tau is increasing in z, so the ranking does not change."),
])
