"""Stage 16 quiz: fine-tuning: LoRA, instruction tuning, DPO.

The answers are stated in notebooks/16_finetuning.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("16_finetuning", "Fine-tuning: LoRA, instruction tuning, DPO", [
    Number("A layer is 768 x 768. How many numbers does LoRA with rank r = 8 train for it?",
           12288, "r * (in + out) = 8 * 1536 = 12,288 numbers, against 589,824 for the full "
                  "layer: about 2%."),
    Choice("Why does LoRA initialise B to zero and A at random?",
           ("so that the update BA is zero at the start (training starts from the pretrained "
            "model exactly) while B's gradient, which goes through A, is not zero",
            "to save memory", "both at zero would work just as well"),
           "a", "Both random would perturb the model at step 0; both zero would leave every "
                "gradient zero forever."),
    Choice("What goes wrong if the prompt tokens are not masked out of the instruction-tuning "
           "loss?",
           ("nothing", "the model spends capacity learning to predict the questions, which "
            "are given at test time, and the long prompts dominate the loss",
            "the model can no longer read the prompt"),
           "b", "Mask the prompt's targets (IGNORE_INDEX) so that only the answers are "
                "learned."),
    Number("In DPO, what is the loss (in nats, 2 decimals) when the policy equals the "
           "reference model?",
           0.693, "Every margin is zero, so the loss is -log sigmoid(0) = ln 2 = 0.69. The "
                  "reference anchors the policy: the reward is the change in log-probability "
                  "relative to where the model started.", tol=0.01),
])
