"""Stage 13 quiz: the transformer.

The answers are stated in notebooks/13_transformer.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("13_transformer", "The transformer", [
    Choice("Why does a decoder-only language model need the causal mask during training?",
           ("to save memory", "without it position i could attend to token i+1, the token "
            "it must predict, and learn to copy it", "to make attention faster"),
           "b", "At generation time that token does not exist yet, so a model trained "
                "without the mask would fail."),
    Choice("Multi-head attention with H = 4 heads has as many parameters as one head of the "
           "same width. What does it gain?",
           ("nothing", "H different attention patterns per layer: each head has its own "
            "queries and keys", "a longer context"),
           "b", "One head can track the previous token while another finds a match; one "
                "wide head gives a single weighted average."),
    Choice("What does LayerNorm output for a token whose C features are all equal?",
           ("zeros", "beta, the learned offset (x - mean is 0)", "nan"),
           "b", "x - mu = 0, so the output is beta; epsilon keeps 0/0 from becoming nan."),
    Number("One attention head over T = 256 tokens: how many entries does its score matrix "
           "have?",
           65536, "T x T = 256 * 256 = 65,536: attention's cost grows with T^2."),
])
