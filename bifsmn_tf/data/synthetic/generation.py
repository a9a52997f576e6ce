"""The set on disk: :func:`generate`, resumable, in parallel worker processes, with its manifest.

**Interruptions.** Work happens in ``OUT/.partial``: clips are written atomically and each
finished speaker is appended to a journal, so a rerun with the same settings resumes. At the end
the word folders, then the split lists, then ``synth.json`` are moved into ``OUT``:
``synth.json`` is written last, and a set without it is not complete.

**Workers.** Speech is synthesized only in spawned worker processes: the engines' native state
and memory (Kokoro: about 1 GB) never enter the calling process, which may be training a model.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing.connection
import os
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from bifsmn_tf import __version__
from bifsmn_tf.config import ConfigError
from bifsmn_tf.data import tts
from bifsmn_tf.data.audio import read_wav, write_wav
from bifsmn_tf.data.recognizer import RecognizerError, WordRecognizer
from bifsmn_tf.data.speech_commands import BACKGROUND_NOISE_DIR, TESTING_LIST, UNSEEN_WORDS_DIR, VALIDATION_LIST
from bifsmn_tf.data.synthetic.acoustics import NOISE_KINDS, background_noise
from bifsmn_tf.data.synthetic.config import SPLITS, SynthConfig, SynthError
from bifsmn_tf.data.synthetic.plan import Speaker, Stream, plan_speakers, rng, speaker_takes
from bifsmn_tf.data.synthetic.rendering import ClipRenderer
from bifsmn_tf.data.tts_engine import EngineError
from bifsmn_tf.data.tts_native import zeroed_large_allocations
from bifsmn_tf.fileio import OutputPathError, atomic_write_text, check_output

#: Bump whenever the same config would produce different files.
#: 2: no espeak-ng variants with breath noise (not reproducible); 3: Kokoro's share 0.25 -> 0.1.
GENERATOR_VERSION = 3

SYNTH_JSON = "synth.json"
PARTIAL_DIR = ".partial"
_PLAN_JSON = "plan.json"
_JOURNAL = "speakers.jsonl"
#: Training speakers whose voices talk over each other in the babble recording.
_BABBLE_TALKERS = 6


@dataclasses.dataclass(frozen=True)
class SynthResult:
    """What :func:`generate` did.

    Attributes:
        root: The set's root.
        status: ``created``, ``resumed`` or ``already complete``.
        engines: The engines that spoke.
        counts: Clips in all and per split, speakers, and takes left out (``synth.json``'s
            ``counts``).
    """

    root: Path
    status: str
    engines: tuple[str, ...]
    counts: dict[str, int]


def default_jobs() -> int:
    """Every core this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def generate(
    out_dir: str | Path, config: SynthConfig = SynthConfig(), jobs: int | None = None, progress: bool = True
) -> SynthResult:
    """Make the synthetic set of ``config`` in ``out_dir``, or resume or confirm it there.

    ``out_dir`` must be new, empty, or a set (complete or interrupted) made by this function;
    an interrupted run with other settings is discarded.

    Args:
        out_dir: The set's root.
        config: What to make (resolved here if its engines are not named).
        jobs: Worker processes, at most one per core (:func:`default_jobs`, the default): each
            holds its own engines, and a typo of 400 would exhaust the memory.
        progress: Show a progress bar.

    Returns:
        Where the set is, what was done, and its counts.

    Raises:
        SynthError: Before anything is written, naming what is wrong (engine not installed or
            failing, directory not writable or holding something else); or a write failed (a
            full disk): the speakers finished so far are kept, and a rerun resumes.
    """
    out_dir = Path(out_dir)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise SynthError(f"jobs must be at least 1, got {jobs}")
    config = config.resolve()
    try:  # before the workers: a pool that cannot write wastes their start-up
        check_output(out_dir, directory=True, what="--out")
    except OutputPathError as err:
        raise SynthError(str(err)) from None
    # "spawn": the caller may have started threads (TensorFlow), which fork does not survive.
    pool = ProcessPoolExecutor(
        min(jobs, default_jobs(), config.clips_per_word),
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(config.to_dict(),),
    )
    try:
        try:
            engines = pool.submit(_describe_engines).result()
        except (EngineError, RecognizerError) as err:
            raise SynthError(str(err)) from None
        plan = {
            "generator_version": GENERATOR_VERSION,
            "config": config.to_dict(),
            "engines": {name: e["description"] for name, e in engines.items()},
        }
        status = _prepare(out_dir, plan)
        partial = out_dir / PARTIAL_DIR
        if status != "already complete" and not (partial / SYNTH_JSON).exists():
            speakers = plan_speakers(
                config,
                {name: e["voices"] for name, e in engines.items()},
                {name: e["description"]["share"] for name, e in engines.items()},
            )
            try:
                _write_background(pool, partial, speakers)
                clips, rejected = _render(pool, partial, config, speakers, progress)
                _write_manifest(partial, plan, speakers, clips, rejected)
            except OSError as err:  # raised here or in a worker
                raise SynthError(
                    f"{out_dir}: cannot write there ({err.strerror or err}); make room (or mend the "
                    "directory) and run the same command again: it resumes"
                ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if status != "already complete":
        _move_into_place(out_dir)
    manifest = json.loads((out_dir / SYNTH_JSON).read_text())
    return SynthResult(out_dir, status, tuple(config.engines), manifest["counts"])


# --- the run's state on disk -------------------------------------------------------------------


def _prepare(out_dir: Path, plan: dict) -> str:
    """Check ``out_dir`` and open ``.partial`` in it; returns the run's status."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir}: exists and is not a directory")
    partial = out_dir / PARTIAL_DIR
    if (out_dir / SYNTH_JSON).is_file():
        made = _with_defaults(_read_json(out_dir / SYNTH_JSON))
        if {k: made.get(k) for k in plan} != plan:
            raise SynthError(
                f"{out_dir}: already holds a synthetic set made with other settings or engine "
                f"versions ({_difference(made, plan)}); choose another --out or delete this one"
            )
        if partial.exists():  # interrupted after the manifest was moved: only tidying is left
            shutil.rmtree(partial)
        return "already complete"
    if (partial / _PLAN_JSON).is_file():
        if _read_json(partial / _PLAN_JSON) == plan:
            return "resumed"
        if any(p.name != PARTIAL_DIR for p in out_dir.iterdir()):
            raise SynthError(
                f"{out_dir}: holds an interrupted synthetic set made with other settings, and "
                "other files; choose another --out or delete this one"
            )
        shutil.rmtree(partial)
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        names = sorted(p.name for p in out_dir.iterdir())
        raise SynthError(
            f"{out_dir}: not empty ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}) and "
            "not a synthetic set; synth writes only into a new or empty directory"
        )
    existed = out_dir.exists()
    try:
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_text(partial / _PLAN_JSON, json.dumps(plan, indent=1, sort_keys=True) + "\n")
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise SynthError(f"{out_dir}: cannot write there ({err.strerror or err})") from None
    return "created"


def _with_defaults(made: dict) -> dict:
    """``made`` with its config completed by the defaults of settings added since it was made."""
    try:
        return {**made, "config": SynthConfig.from_dict(made["config"]).to_dict()}
    except (KeyError, TypeError, ConfigError, SynthError):
        return made  # not a config of ours: it compares unequal as it is


def _read_json(path: Path) -> dict:
    """The JSON object at ``path``, or a :class:`SynthError` saying how to start afresh."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SynthError(f"{path}: unreadable ({err}); delete the directory and run again") from None


def _difference(made: dict, plan: dict) -> str:
    """Which settings of the set ``made`` differ from those of ``plan``, for an error message."""
    config_made, config_now = made.get("config", {}), plan["config"]
    keys = sorted(k for k in config_now if config_made.get(k) != config_now[k])
    if made.get("generator_version") != plan["generator_version"]:
        keys.append("generator_version")
    if made.get("engines") != plan["engines"]:
        keys.append("engines")
    return "differs in " + ", ".join(keys)


def _write_background(pool: ProcessPoolExecutor, partial: Path, speakers: Sequence[Speaker]) -> None:
    """Make the background recordings that are not on disk yet (one worker task per kind).

    Babble talkers are the first training speakers, so no held-out voice is heard in training.
    """
    training = [s for s in speakers if s.split == "training"]
    talkers = [(s.engine, s.voice) for s in (training * _BABBLE_TALKERS)[:_BABBLE_TALKERS]]
    missing = [k for k in NOISE_KINDS if not (partial / BACKGROUND_NOISE_DIR / f"{k}.wav").is_file()]
    recordings = [pool.submit(_make_background, kind, talkers) for kind in missing]
    for kind, recording in zip(missing, recordings, strict=True):
        write_wav(partial / BACKGROUND_NOISE_DIR / f"{kind}.wav", recording.result())


def _render(
    pool: ProcessPoolExecutor, partial: Path, config: SynthConfig, speakers: Sequence[Speaker], progress: bool
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Render every speaker not yet in the journal; returns the record of every clip written and
    of every take left out, by path."""
    from tqdm import tqdm

    journal = partial / _JOURNAL
    done = _read_journal(journal, partial)
    clips = {path: record for entry in done.values() for path, record in entry["clips"].items()}
    rejected = {path: record for entry in done.values() for path, record in entry["rejected"].items()}
    todo = [s for s in speakers if s.id not in done]
    total = sum(len(speaker_takes(config, s)) for s in speakers)
    with (
        tqdm(total=total, initial=len(clips) + len(rejected), unit="clip", desc="synth", disable=not progress) as bar,
        open(journal, "a", encoding="utf-8") as log,
    ):
        for future in as_completed([pool.submit(_render_one_speaker, s, partial) for s in todo]):
            entry = future.result()
            log.write(json.dumps(entry, sort_keys=True) + "\n")
            log.flush()
            clips.update(entry["clips"])
            rejected.update(entry["rejected"])
            bar.update(len(entry["clips"]) + len(entry["rejected"]))
    return clips, rejected


def _read_journal(journal: Path, partial: Path) -> dict[str, dict]:
    """Speakers finished by an earlier run, by id: journal lines whose every clip is on disk.

    Also removes the temporary files of writes that a killed run left half done.
    """
    for stray in partial.glob("*/.*.tmp*"):
        stray.unlink()
    done = {}
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run may be cut short
            if all((partial / path).is_file() for path in entry["clips"]):
                done[entry["speaker"]] = entry
    return done


def _write_manifest(
    partial: Path, plan: dict, speakers: Sequence[Speaker], clips: dict[str, dict], rejected: dict[str, dict]
) -> None:
    """The split lists and synth.json, inside ``.partial`` until everything is moved."""
    # The unseen words are the test speakers' but not the test split's: they stay off its list.
    layout = {p: r for p, r in clips.items() if not p.startswith(f"{UNSEEN_WORDS_DIR}/")}
    by_split = {s: sorted(p for p, r in layout.items() if r["split"] == s) for s in SPLITS}
    atomic_write_text(partial / VALIDATION_LIST, "".join(f"{p}\n" for p in by_split["validation"]))
    atomic_write_text(partial / TESTING_LIST, "".join(f"{p}\n" for p in by_split["testing"]))
    seconds = plan["config"]["background_seconds"]
    manifest = {
        **plan,
        "generator": f"bifsmn_tf.data.synthetic (bifsmn-tf {__version__})",
        "complete": True,
        "counts": {
            "clips": len(clips),
            **{s: len(by_split[s]) for s in SPLITS},
            "speakers": len(speakers),
            "rejected": len(rejected),
            "unseen_words": len(clips) - len(layout),
        },
        "background_noise": {
            kind: {"file": f"{BACKGROUND_NOISE_DIR}/{kind}.wav", "seconds": seconds} for kind in NOISE_KINDS
        },
        "speakers": {s.id: s.to_dict() for s in speakers},
        "clips": dict(sorted(clips.items())),
        "rejected": dict(sorted(rejected.items())),
    }
    atomic_write_text(partial / SYNTH_JSON, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _move_into_place(out_dir: Path) -> None:
    """Word folders and noise first, then the lists, then synth.json: each state on the way is
    either incomplete without lists or complete but for synth.json, which a rerun adds."""
    partial = out_dir / PARTIAL_DIR
    folders = sorted(p.name for p in partial.iterdir() if p.is_dir())
    for name in (*folders, VALIDATION_LIST, TESTING_LIST, SYNTH_JSON):
        if (partial / name).exists():
            os.replace(partial / name, out_dir / name)
    shutil.rmtree(partial)


# --- worker processes ------------------------------------------------------------------------

_worker_config: SynthConfig | None = None


def _start_worker(config: dict) -> None:
    """Set up a worker process for the set of ``config`` (a :meth:`SynthConfig.to_dict`)."""
    global _worker_config
    # Before the worker's heap has a history: Pico's output depends on it otherwise.
    zeroed_large_allocations()
    _worker_config = SynthConfig.from_dict(config)
    # A worker whose parent was killed would wait for work forever: it holds its own task
    # queue's write end, so the queue never reports end of file.
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def _exit_with_parent() -> None:
    """End this worker as soon as its parent process ends."""
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


def _describe_engines() -> dict[str, dict]:
    """Load every engine of the config: what synth.json records, and the voice names.
    Loads the recognizer too if the config checks words, so that it fails before any work."""
    if _worker_config.check_words:
        WordRecognizer(_worker_config.word_list)
    engines = {name: tts.load_engine(name) for name in _worker_config.engines}
    return {name: {"description": e.describe(), "voices": e.voices()} for name, e in engines.items()}


def _make_background(kind: str, talkers: Sequence[tuple[str, str]]) -> np.ndarray:
    """The background recording of ``kind``; ``talkers`` are the babble's (engine, voice) pairs."""
    config = _worker_config
    draw = rng(config.seed, Stream.BACKGROUND, NOISE_KINDS.index(kind))
    voices = [(tts.load_engine(engine), voice) for engine, voice in talkers] if kind == "babble" else []
    return background_noise(kind, config.background_seconds, draw, voices)


@lru_cache(maxsize=1)
def _renderer(partial: Path) -> ClipRenderer:
    """This worker's renderer, made once, at its first speaker: it loads every engine."""
    # Clips mix in crops of the recordings as written, so a resumed run hears the same noise.
    bank = {k: read_wav(partial / BACKGROUND_NOISE_DIR / f"{k}.wav") for k in NOISE_KINDS}
    return ClipRenderer(_worker_config, bank)


def _render_one_speaker(speaker: Speaker, partial: Path) -> dict[str, Any]:
    """The speaker's journal entry: its id, and its clips' and left-out takes' records by path."""
    renderer = _renderer(partial)
    entry: dict[str, Any] = {"speaker": speaker.id, "clips": {}, "rejected": {}}
    takes = speaker_takes(renderer.config, speaker)
    rendered = renderer.render_speaker(speaker, [word for word, _ in takes])
    for (_, path), (_, samples, record) in zip(takes, rendered, strict=True):
        if samples is None:
            entry["rejected"][path] = record
        else:
            write_wav(partial / path, samples)
            entry["clips"][path] = record
    return entry
