"""Small datasets in the official Speech Commands layout, generated for tests and benchmarks.

Every word gets a tone of its own frequency (``word_frequency``), so a test can tell from the
audio alone which folder a clip came from and check that labels follow the audio.
"""

from __future__ import annotations

import http.server
import tarfile
import threading
from pathlib import Path

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE, write_wav
from bifsmn_tf.data.labels import KEYWORDS, WORDS
from bifsmn_tf.data.speech_commands import (
    BACKGROUND_NOISE_DIR,
    CLIP_SAMPLES,
    CLIP_SECONDS,
    TESTING_LIST,
    VALIDATION_LIST,
    clip_path,
)


def word_frequency(word: str) -> float:
    """The tone frequency of ``word``'s clips: 40 Hz steps from 300 Hz, in WORDS_V2 order."""
    return 300.0 + 40.0 * WORDS["v2"].index(word) if word in WORDS["v2"] else 2000.0


def tone(frequency: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def make_tree(
    root: Path,
    version: str = "v2",
    *,
    clips_per_word: int = 4,
    noise_seconds: float = 10.0,
    noise_files: int = 2,
) -> Path:
    """Write ``<root>/<word>/<hash>_nohash_<k>.wav`` for every word of ``version``.

    Clip 0 of each word is listed in ``validation_list.txt``, clip 1 in ``testing_list.txt``,
    the rest are training. Clips last between 0.5 and 1 s, so padding is exercised.
    """
    rng = np.random.default_rng(0)
    validation, testing = [], []
    for word in WORDS[version]:
        for k in range(clips_per_word):
            name = clip_path(word, f"{k:04x}beef", k)
            seconds = CLIP_SECONDS * (0.5 + 0.5 * k / max(1, clips_per_word - 1))
            write_wav(root / name, tone(word_frequency(word), seconds))
            (validation if k == 0 else testing if k == 1 else []).append(name)
    for i in range(noise_files):
        noise = 0.3 * rng.standard_normal(int(noise_seconds * SAMPLE_RATE)).astype(np.float32)
        write_wav(root / BACKGROUND_NOISE_DIR / f"noise_{i}.wav", noise)
    (root / BACKGROUND_NOISE_DIR / "README.md").write_text("generated noise\n")
    (root / VALIDATION_LIST).write_text("\n".join(validation) + "\n")
    (root / TESTING_LIST).write_text("\n".join(testing) + "\n")
    return root


def make_test_set_tree(root: Path, *, clips_per_folder: int = 2) -> Path:
    """The layout of ``speech_commands_test_set_v0.0x``: 10 keywords, _silence_, _unknown_."""
    rng = np.random.default_rng(1)
    for word in KEYWORDS:
        for k in range(clips_per_folder):
            write_wav(root / clip_path(word, f"{k:04x}cafe", k), tone(word_frequency(word), CLIP_SECONDS))
    for k in range(clips_per_folder):
        noise = 0.05 * rng.standard_normal(CLIP_SAMPLES).astype(np.float32)
        write_wav(root / "_silence_" / f"silence_{k}.wav", noise)
        write_wav(root / clip_path("_unknown_", f"{k:04x}cafe", k), tone(2000.0, CLIP_SECONDS))
    return root


def make_archive(tree: Path, archive: Path) -> Path:
    """Pack ``tree`` like the official archives: members ``./word/file.wav``, gzip-compressed."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=f"./{path.relative_to(tree).as_posix()}", recursive=False)
    return archive


class ArchiveServer:
    """Files over HTTP on 127.0.0.1 with Range support, and faults scripted per request.

    ``faults`` is consumed one entry per GET: ``None`` (serve normally), ``"corrupt"`` (flip
    bytes in the middle of the body), ``"ignore_range"`` (answer 200 with the whole file), or
    ``("drop", n)`` (announce the full length, send ``n`` bytes, close the connection).
    ``requests`` records ``(path, Range header)`` of every GET.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: list = []
        self.requests: list[tuple[str, str | None]] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, name: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                requested_range = self.headers.get("Range")
                server.requests.append((name, requested_range))
                fault = server.faults.pop(0) if server.faults else None
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                if fault == "corrupt":
                    middle = len(data) // 2
                    data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
                start = 0
                if requested_range and fault != "ignore_range":
                    start = int(requested_range.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if isinstance(fault, tuple) and fault[0] == "drop":
                    self.wfile.write(body[: fault[1]])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        return Handler
