"""Stage 15 quiz: BERT: masked language modelling and fine-tuning.

The answers are stated in notebooks/15_bert.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("15_bert", "BERT: masked language modelling and fine-tuning", [
    Choice("Why does the 80/10/10 rule leave 10% of the selected tokens unchanged and replace "
           "10% with random tokens, instead of always using [MASK]?",
           ("to make training faster", "fine-tuning inputs never contain [MASK]; random and "
            "unchanged targets make every position a possible target, so every token's "
            "representation must stay useful", "to add noise that regularises the "
            "embeddings only"),
           "b", "If targets were always at [MASK], the model could learn good predictions "
                "only there and ignore ordinary positions."),
    Choice("The MLM loss averages over the masked positions only. What would go wrong if it "
           "averaged over every position, with targets equal to the inputs?",
           ("nothing", "most positions show the answer in the input: the model would learn "
            "to copy its input, and the masked positions would barely count",
            "the loss would be infinite"),
           "b", "Copying the input is an easy, useless task."),
    Number("BERT masks about 15% of a window of T tokens; a GPT predicts a target at every "
           "position. About how many times as many targets per window does the GPT learn "
           "from (one decimal)?",
           6.7, "T targets against about 0.15 T: 1 / 0.15 = 6.7, so on a small budget the GPT "
                "sees 6 to 7 times as many targets.", tol=0.2),
    Choice("Why can BERT not generate text left to right the way the GPT of stage 14 does?",
           ("its vocabulary is too small", "its prediction at a position uses the tokens on "
            "both sides, and when generating, the right side does not exist yet",
            "it has no output layer"),
           "b", "Sampling needs p(x) = prod_t p(x_t | x_<t), which a bidirectional encoder "
                "does not give."),
])
