"""Stage 17 quiz: inference: the KV cache, quantization, export.

The answers are stated in notebooks/17_inference.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("17_inference", "Inference: the KV cache, quantization, export", [
    Number("A model has 24 layers and width 2048, and serves 16 sequences of 4096 tokens in "
           "bfloat16. How large is its KV cache, in GiB?",
           12, "2 (keys and values) * 24 layers * 16 sequences * 4096 tokens * 2048 numbers * "
               "2 bytes = 12 GiB, more than the weights of a 1B-parameter model.", tol=0.1),
    Choice("Why does int8 per-row quantization of a matrix whose rows differ in scale by 100x "
           "lose far less than per-tensor quantization?",
           ("it uses more bits", "each row's step is its own max/127; per tensor, the small "
            "rows are rounded with a step 100x larger than they need and most become 0",
            "per-row quantization is exact"),
           "b", "One scale per row adapts the step to each row's range."),
    Choice("Why can a model with learned absolute positions not keep its KV cache when the "
           "context window slides?",
           ("the cache is too large", "each cached key was computed with its token's old "
            "position (and, higher up, from tokens that have left the window), so the window "
            "must be recomputed", "the tokenizer changes"),
           "b", "After the slide the model expects different numbers for every cached "
                "position."),
])
