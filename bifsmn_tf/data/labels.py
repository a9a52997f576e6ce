"""Words and label orders of Speech Commands and the BiFSMN tasks.

docs/design.md#splits-and-labels.
"""

from __future__ import annotations

KEYWORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

#: The 30 words of Speech Commands v0.01, alphabetical.
WORDS_V1: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
    "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
)  # fmt: skip

#: The 35 words of Speech Commands v0.02: v0.01 plus five new ones, alphabetical.
WORDS_V2: tuple[str, ...] = tuple(sorted(WORDS_V1 + ("backward", "follow", "forward", "learn", "visual")))

WORDS: dict[str, tuple[str, ...]] = {"v1": WORDS_V1, "v2": WORDS_V2}

UNKNOWN = "unknown"
SILENCE = "silence"

#: Label order of the 12-class tasks, exactly as the official code indexes them.
LABELS_12: tuple[str, ...] = (UNKNOWN, SILENCE) + KEYWORDS

#: Label order of V2-35: the 35 words alphabetically, no silence and no unknown.
LABELS_35: tuple[str, ...] = WORDS_V2

#: task name -> (dataset version, label order)
TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "v1-12": ("v1", LABELS_12),
    "v2-12": ("v2", LABELS_12),
    "v2-35": ("v2", LABELS_35),
}


def task_labels(task: str) -> tuple[str, ...]:
    """The label order of ``task`` (``v1-12``, ``v2-12`` or ``v2-35``)."""
    try:
        return TASKS[task][1]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}") from None
