"""Stage 00 quiz: how this course works.

The answers are stated in notebooks/00_welcome.ipynb.
"""

from slm_course.exercises.quizzes import Choice, Number, Quiz

QUIZ = Quiz("00_welcome", "How this course works", [
    Choice("`SLM_COURSE_PROFILE` is not set. Which profile runs?",
           ("the fast profile", "the full profile", "none: the notebook stops with an error"),
           "b", "The full profile runs by default; the fast one uses tiny sizes and step "
                "counts so that a notebook runs in seconds (CI sets it).") ,
    Choice("A dataset download is cut off half-way. What is left at the file's final path?",
           ("half of the file", "nothing: the download goes to a temporary file that is "
            "renamed into place only after its checksum matched", "an empty file"),
           "b", "Downloads are atomic: a temporary file is renamed into place only after its "
                "sha256 matched the registry, so the next run simply tries again."),
    Number("How many distinct characters (the vocabulary size) does Tiny Shakespeare have?",
           65, "Tiny Shakespeare has 65 distinct characters: letters, punctuation, "
               "space and newline; exercise 2 builds that vocabulary."),
])
