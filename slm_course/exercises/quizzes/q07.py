"""Stage 07 quiz: convolution and CNNs.

The answers are stated in notebooks/07_cnn.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("07_cnn", "Convolution and CNNs", [
    Number("A conv layer has 64 input channels, 128 filters of 3x3 and a bias. How many "
           "parameters does it have?",
           73856, "128 * 64 * 3 * 3 + 128 = 73,856, whatever the image size: the same filters "
                  "slide over every position."),
    Number("What is the output height of a 5x5 convolution with stride 2 and padding 2 on a "
           "28x28 input?",
           14, "floor((28 + 2*2 - 5) / 2) + 1 = floor(27/2) + 1 = 14."),
    Choice("In max-pooling's backward pass, what gradient does a value that was not the "
           "maximum of its window receive?",
           ("zero", "the window's gradient divided by the window size",
            "the same gradient as the maximum"),
           "a", "A small change of a non-maximal value does not change the maximum, so the "
                "loss does not depend on it locally: its gradient is 0."),
])
