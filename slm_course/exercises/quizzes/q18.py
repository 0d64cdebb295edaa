"""Stage 18 quiz: from GPT-2 to a modern small LM, and a CPU speedrun.

The answers are stated in notebooks/18_modern_lm.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("18_modern_lm", "From GPT-2 to a modern small LM", [
    Choice("RMSNorm drops LayerNorm's mean subtraction. What does a token's vector keep after "
           "RMSNorm that it loses after LayerNorm?",
           ("its mean (scaled): RMSNorm only rescales", "its length",
            "nothing: they compute the same thing"),
           "a", "LayerNorm removes the mean; RMSNorm divides by the root mean square only, so "
                "a vector with a large mean keeps it, scaled."),
    Choice("Why does RoPE rotate the queries and keys but not the values?",
           ("to save compute", "positions matter in which tokens attend to which, the scores "
            "q . k, which the rotations make depend on m - n; rotating the values would only "
            "scramble what is copied", "the values have no head dimension"),
           "b", "The values are what is read out; the positions belong in the scores."),
    Number("A model has 8 query heads and 2 key/value heads. By what factor does its KV cache "
           "shrink compared with 8 key/value heads?",
           4, "Only 2 of 8 heads are stored: a factor of 4. With C = 512 and head width 64, "
              "c_attn maps C to (8 + 2*2) * 64 = 768 outputs instead of 1536."),
    Choice("On a fixed time budget, why can a smaller model beat a larger one?",
           ("smaller models are always better", "it takes more steps, and so sees more "
            "tokens, in the same time: until a model has seen enough text for its size, more "
            "steps reduce the loss more than more parameters", "larger models overfit "
            "immediately"),
           "b", "The speedrun trades size for steps on a fixed clock."),
])
