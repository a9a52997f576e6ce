"""Words besides Speech Commands' that the synthetic set's speakers may say.

A keyword spotter meets every word of a language, and a set whose non-keywords are Speech Commands'
20 other words measures only those: the demo's models took about a fifth of words they never heard
for keywords at the threshold that takes a twentieth of the 20 (BENCHMARKS.md, "Words no model
heard"). Two disjoint lists, neither holding a word of Speech Commands v0.02:

- :data:`TRAINING_NEGATIVES`, said by training speakers only (``negatives_per_speaker``): near
  misses of the keywords and common words, labelled ``unknown`` like the 20 (they are ordinary
  word folders);
- :data:`UNSEEN_WORDS`, said by test speakers only (``unseen_words_per_speaker``), kept out of
  the Speech Commands layout (:data:`~bifsmn_tf.data.speech_commands.UNSEEN_WORDS_DIR`): how
  often a model takes words it never heard for keywords.

Homophones of the keywords ("know", "write") are left out: their audio is the keyword's, and
labelling it ``unknown`` teaches a contradiction.
"""

from __future__ import annotations

#: Words that differ from a keyword in a sound or two, by the keyword they are near.
_NEAR_MISSES: dict[str, tuple[str, ...]] = {
    "yes": ("yeah", "yet", "yell", "less", "guess", "mess"),
    "no": ("now", "though", "low", "so", "snow", "note", "nose"),
    "up": ("cup", "pup", "top", "hop", "ups"),
    "down": ("town", "gown", "done", "dawn", "crown", "round"),
    "left": ("lift", "laughed", "loft", "theft"),
    "right": ("light", "white", "bright", "ride", "night", "rice"),
    "on": ("an", "in", "won", "don", "gone", "john", "own"),
    "off": ("of", "cough", "often", "awe"),
    "stop": ("shop", "stock", "step", "spot", "stab"),
    "go": ("goal", "ghost", "glow", "grow", "dough", "toe", "coat"),
}

_COMMON = (
    "the and what when where this that water music please thanks hello okay maybe later coffee time "
    "phone play call open close turn home today morning people little good back come think want look "
    "make take give find tell work seem feel keep begin show hear run move live believe bring happen "
    "sit stand lose pay meet include continue set understand watch create speak read spend offer "
    "remember love consider appear buy wait serve send expect build stay fall cut reach remain suggest "
    "raise pass sell require report decide pull window paper table evening weather number money family "
    "student country problem question"
).split()

#: Said by training speakers besides the set's words; sorted.
TRAINING_NEGATIVES: tuple[str, ...] = tuple(sorted({w for ws in _NEAR_MISSES.values() for w in ws} | set(_COMMON)))

#: Said by test speakers only, never in training; sorted.
UNSEEN_WORDS: tuple[str, ...] = tuple(
    sorted(
        (
            "apple banana garden river mountain kitchen doctor teacher purple orange minute hour "
            "island market pocket rabbit turtle monkey pencil ticket button bottle basket candle "
            "silver golden butter pepper hammer ladder letter city village forest ocean summer "
            "winter autumn tomorrow yesterday tonight always never sometimes quickly slowly sorry "
            "hungry tired nobody someone anything nothing everything enough almost really very much "
            "many cookie pizza salad dinner lunch breakfast movie story picture travel airport "
            "station engine yep nope nor sip bus dune loud clown laugh wide wife onion stuff goat "
            "boat soap under wrong toast pop lot"
        ).split()
    )
)
