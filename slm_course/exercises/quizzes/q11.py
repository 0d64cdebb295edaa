"""Stage 11 quiz: LSTM and GRU language models.

The answers are stated in notebooks/11_lstm_language_models.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("11_lstm_language_models", "LSTM and GRU language models", [
    Choice("Along the LSTM's memory path c_t = f_t * c_{t-1} + i_t * g_t, what is "
           "dc_t / dc_{t-1}?",
           ("diag(f_t): scaled only by the forget gate", "W_hh times tanh'",
            "always the identity"),
           "a", "No weight matrix and no squashing on that path: the gradient survives as "
                "long as the forget gate stays near 1."),
    Choice("Why must the hidden state carried between chunks (truncated BPTT) be detached?",
           ("to save the values", "without the detach every backward pass would reach back "
            "to the start of training: the graph, memory and time grow with every batch",
            "it changes the forward pass"),
           "b", "Detaching keeps the values and cuts the graph, so backpropagation reaches "
                "only T steps back."),
    Choice("Clipping by global norm rescales the whole gradient by one factor. What does "
           "that preserve?",
           ("each entry's sign only", "the direction of the gradient", "nothing"),
           "b", "Only the length changes, so the update still points downhill for all "
                "parameters together."),
    Number("Truncated BPTT with chunks of T = 100: how many steps back does the gradient "
           "flow at most?",
           100, "Backpropagation stops at the chunk boundary (the carried state is detached), "
                "even though the carried state can remember further back."),
])
