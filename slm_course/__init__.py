"""slm_course: the verified reference code behind the slm-course notebooks.

Each teaching module holds one idea of one stage and sits at the top of the package
(``from slm_course.attention import ...``); the notebooks import it and the tests prove it
against an oracle (a PyTorch built-in, finite differences, a closed form, a published number).
Plumbing lives below: ``helpers`` (workload, seeding, device, checkpoints, plots, ...),
``cli`` (the ``slm-course`` command and its presets), ``data`` and ``exercises``.

:data:`STAGES` maps each stage to the modules it teaches; a test keeps it true.
"""

__version__ = "0.1.0"

# stage number -> (title, modules it teaches, relative to slm_course)
STAGES: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("welcome and set-up check", ("helpers.setup_check", "data")),
    1: ("linear algebra refresher", ("linalg",)),
    2: ("calculus and autograd", ("calculus", "autograd", "autograd_nn")),
    3: ("probability and information", ("probability",)),
    4: ("optimization", ("optim",)),
    5: ("perceptron and backpropagation", ("perceptron", "numpy_nn")),
    6: ("multilayer perceptrons on MNIST", ("mlp",)),
    7: ("convolutional networks", ("cnn",)),
    8: ("text as data", ("tokenizers", "tokenizers.base", "tokenizers.char", "tokenizers.bpe",
                         "tokenizers.words", "ngram", "mlp_lm")),
    9: ("word embeddings", ("word2vec",)),
    10: ("RNN text classification", ("rnn", "text_classifiers")),
    11: ("LSTM and GRU language models", ("lstm",)),
    12: ("attention and seq2seq", ("attention", "seq2seq")),
    13: ("the transformer", ("transformer",)),
    14: ("GPT, the small language model", ("lm_data", "gpt", "gpt_ladder", "train", "generate")),
    15: ("BERT: masked language modelling and fine-tuning", ("bert",)),
    16: ("fine-tuning the SLM: LoRA, instruction tuning, DPO", ("lora", "instruct", "dpo")),
    17: ("inference: KV cache, quantization, export", ("quantize", "export")),
    18: ("from GPT-2 to a modern small LM", ("modern", "muon")),
}
