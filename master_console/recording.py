"""The console's session recorder: crash-safe, incremental, cheap on the 1 kHz path.

File format (version 1), all integers little-endian::

    file   := MAGIC frame*
    MAGIC  := b"\\x89TSREC\\r\\n"                       (8 bytes)
    frame  := length:u32 crc:u32 payload[length]     (crc = zlib.crc32(payload))
    payload:= a msgpack map (bin type for bytes, str for text)

``0 < length <= MAX_RECORD_BYTES``.  Every payload is a map with at least ``"k"`` (kind, str)
and ``"t"`` (int, nanoseconds on the console's clock, ``time.monotonic_ns()`` /
``time.perf_counter_ns()`` as the caller uses them).  The first frame is the header::

    {"k": "header", "t": monotonic_ns, "format": "telesurgery-recording", "version": 1,
     "created_unix_ns": int, "created_monotonic_ns": int, "created_perf_counter_ns": int,
     "host": str, "pid": int, "python": str, "flush_interval_ms": float,
     "record_video": bool, "metadata": {...}}

and a cleanly closed file ends with ``{"k": "end", "t": ..., "records_written": n,
"records_dropped": n}``.  Everything in between is what :meth:`Recorder.record` was given:
``{"k": kind, "t": t_ns, **fields}``.  Kinds used by the console (fields besides ``k``/``t``):

- ``input``: pose[7] (m, quaternion x y z w), jaw (rad), clutch, present (bool)
- ``filtered``: pos[3] (m)
- ``command``: seq, pose[7], jaw, clutch, present
- ``state``: (``t`` = receive time) seq, send_ns (arm clock), ack_seq, ack_send_ns (console
  clock: when the acknowledged command was sent), ack_rx_ns (arm clock: when the arm received
  it), measured_cp[7], setpoint_cp[7], measured_cf[6], jaw, flags (list of str), task (dict of
  the arm's ``task_*`` counters; empty without a task)
- ``task``: info (the arm's ``TaskInfo`` as a dict: name, goal, points, values), recorded once
  at the start of a session whose arm runs a training task
- ``link``: stats (a dict of link statistics)
- ``event``: text
- ``video``: seq, capture_ns, width, height, jpeg (bytes); recorded only with ``record_video``

Other kinds are stored as given.  The reader stops at the first frame that is short, has a bad
length or CRC, or does not decode: a torn tail left by a killed process is ignored, never an
error.  The OS buffer is written (``os.write``) every ``flush_interval_ms``, so a killed process
loses at most what was recorded in the last interval; ``close()`` may also ``fsync``.
"""

from __future__ import annotations

import os
import platform
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_RECORD_BYTES",
    "Recorder",
    "RecorderStats",
    "Recording",
    "VideoFrame",
    "load_recording",
]

MAGIC = b"\x89TSREC\r\n"
FORMAT_NAME = "telesurgery-recording"
FORMAT_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024 * 1024
_FRAME = struct.Struct("<II")
_RESERVED_KINDS = frozenset({"header", "end"})


def _default(obj: Any) -> Any:
    """msgpack fallback: numpy arrays and scalars, tuples-likes become plain Python values."""
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot record a value of type {type(obj).__name__}")


def _new_packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, default=_default)


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class RecorderStats:
    records_written: int  # records handed to the OS (header and end record not counted)
    records_dropped: int  # records refused because the writer was behind (or after an error)
    records_pending: int  # records waiting for the writer
    bytes_written: int  # bytes in the file, magic and header included
    video_skipped: int  # video records ignored because record_video is off
    error: str | None  # the writer's I/O error, if one happened


class Recorder:
    """Writes a session recording; ``record()`` only packs and appends to a buffer.

    A background thread writes the buffer to the file every ``flush_interval_ms`` (sooner when
    more than ``wake_bytes`` are waiting).  When ``max_pending`` records (or
    ``max_pending_bytes``) are waiting, further records are dropped and counted: the caller is
    never blocked.  Fields are packed at the call, so the caller may reuse its arrays at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: dict[str, Any] | None = None,
        flush_interval_ms: float = 100.0,
        max_pending: int = 100_000,
        record_video: bool = False,
        *,
        max_pending_bytes: int = 256 * 1024 * 1024,
        wake_bytes: int = 4 * 1024 * 1024,
        fsync_on_close: bool = True,
        overwrite: bool = False,
    ) -> None:
        if not flush_interval_ms > 0:
            raise ValueError(f"flush_interval_ms must be > 0, got {flush_interval_ms}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.path = Path(path)
        self.flush_interval_ms = float(flush_interval_ms)
        self.max_pending = int(max_pending)
        self.max_pending_bytes = int(max_pending_bytes)
        self.wake_bytes = int(wake_bytes)
        self.record_video = bool(record_video)
        self.fsync_on_close = fsync_on_close

        header = {
            "k": "header",
            "t": time.monotonic_ns(),
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created_unix_ns": time.time_ns(),
            "created_monotonic_ns": time.monotonic_ns(),
            "created_perf_counter_ns": time.perf_counter_ns(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "flush_interval_ms": self.flush_interval_ms,
            "record_video": self.record_video,
            "metadata": dict(metadata or {}),
        }
        head = MAGIC + _frame(_new_packer().pack(header))  # TypeError here: bad metadata

        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            self._write_all(head)
        except BaseException:
            os.close(self._fd)
            raise
        self._bytes_written = len(head)

        self._lock = threading.Lock()
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._local = threading.local()
        self._written = 0
        self._dropped = 0
        self._video_skipped = 0
        self._error: BaseException | None = None
        self._closed = False
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, name=f"recorder:{self.path.name}", daemon=True
        )
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------

    def record(self, kind: str, t_ns: int, **fields: Any) -> None:
        """Queue one record ``{"k": kind, "t": t_ns, **fields}``; never does file I/O."""
        if kind in _RESERVED_KINDS or "k" in fields or "t" in fields:
            raise ValueError(f"reserved kind or field in record({kind!r}, ...)")
        if kind == "video" and not self.record_video:
            self._video_skipped += 1
            return
        if self._closed:
            raise RuntimeError("recorder is closed")
        try:
            packer = self._local.packer
        except AttributeError:
            packer = self._local.packer = _new_packer()
        fields["k"] = kind
        fields["t"] = t_ns
        payload = packer.pack(fields)
        n = len(payload)
        if n > MAX_RECORD_BYTES:
            raise ValueError(f"record of {n} bytes exceeds {MAX_RECORD_BYTES}")
        with self._lock:
            if (
                len(self._buf) >= self.max_pending
                or self._buf_bytes + n > self.max_pending_bytes
                or self._error is not None
            ):
                self._dropped += 1
                return
            self._buf.append(payload)
            self._buf_bytes += n
            wake = self._buf_bytes >= self.wake_bytes
        if wake:
            self._wake.set()

    @property
    def stats(self) -> RecorderStats:
        with self._lock:
            pending = len(self._buf)
        err = self._error
        return RecorderStats(
            records_written=self._written,
            records_dropped=self._dropped,
            records_pending=pending,
            bytes_written=self._bytes_written,
            video_skipped=self._video_skipped,
            error=None if err is None else f"{type(err).__name__}: {err}",
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, fsync: bool | None = None) -> None:
        """Write what is pending and the end record, join the writer, optionally fsync.

        Raises ``OSError`` if the writer had failed (after closing the file).
        """
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake.set()
        self._thread.join()
        try:
            if self._error is None:
                end = {
                    "k": "end",
                    "t": time.monotonic_ns(),
                    "records_written": self._written,
                    "records_dropped": self._dropped,
                }
                try:
                    data = _frame(_new_packer().pack(end))
                    self._write_all(data)
                    self._bytes_written += len(data)
                    if self.fsync_on_close if fsync is None else fsync:
                        os.fsync(self._fd)
                except OSError as e:
                    self._error = e
        finally:
            os.close(self._fd)
        if self._error is not None:
            raise OSError(f"recording {self.path} failed: {self._error}") from self._error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: a forgotten recorder still flushes its data
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    # -- the writer thread -------------------------------------------------------------------

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _drain(self) -> None:
        with self._lock:
            if not self._buf:
                return
            buf, self._buf = self._buf, []
            self._buf_bytes = 0
        parts = []
        for payload in buf:
            parts.append(_FRAME.pack(len(payload), zlib.crc32(payload)))
            parts.append(payload)
        data = b"".join(parts)
        try:
            self._write_all(data)
        except OSError as e:
            with self._lock:
                self._error = e
                self._dropped += len(buf)
            return
        self._bytes_written += len(data)
        self._written += len(buf)

    def _run(self) -> None:
        interval = self.flush_interval_ms / 1000.0
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._error is None:
                self._drain()
            if self._stop:
                if self._error is None:
                    self._drain()
                return


# -- reading ------------------------------------------------------------------------------


class VideoFrame(NamedTuple):
    t: int
    seq: int
    capture_ns: int
    width: int
    height: int
    jpeg: bytes


def _column(values: list[Any]) -> Any:
    """Numeric scalars -> 1-D array; equal-length numeric lists -> 2-D array; else a list."""
    try:
        arr = np.array(values)
    except (ValueError, OverflowError, TypeError):  # ragged lists, huge ints
        return values
    if arr.dtype.kind in "biuf" and (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] > 0)):
        return arr
    if arr.dtype == object and arr.ndim == 1:  # numeric with some missing -> float with NaN
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int | float) for v in present):
            try:
                return np.array([np.nan if v is None else v for v in values], dtype=float)
            except OverflowError:
                return values
    return values


def _columns(prefix: str, rows: list[dict[str, Any] | None], out: dict[str, Any]) -> None:
    names: dict[Any, None] = {}
    for r in rows:
        if r is not None:
            names.update(dict.fromkeys(r))
    for name in names:
        values = [None if r is None else r.get(name) for r in rows]
        key = f"{prefix}{name}"
        if any(isinstance(v, dict) for v in values):
            if all(v is None or isinstance(v, dict) for v in values):
                _columns(key + ".", values, out)
                continue
            out[key] = values
        else:
            out[key] = _column(values)


class Recording:
    """A loaded recording.  Build it with :func:`load_recording`."""

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        records: dict[str, list[dict[str, Any]]],
        end: dict[str, Any] | None,
        bytes_read: int,
        file_size: int,
    ) -> None:
        self.path = path
        self.header = header
        self.metadata: dict[str, Any] = header.get("metadata", {})
        self._records = records
        self.end = end
        self.bytes_read = bytes_read
        self.file_size = file_size
        self.records_read = sum(len(v) for v in records.values())

    @property
    def truncated(self) -> bool:
        """True when bytes after the last complete record were ignored (a torn tail)."""
        return self.bytes_read < self.file_size

    @property
    def closed_cleanly(self) -> bool:
        """True when the recorder's end record is present."""
        return self.end is not None

    def kinds(self) -> list[str]:
        """The kinds present, in order of first appearance."""
        return list(self._records)

    def count(self, kind: str) -> int:
        return len(self._records.get(kind, ()))

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The raw records of one kind, as decoded (``k`` and ``t`` included)."""
        return list(self._records.get(kind, ()))

    def arrays(self, kind: str) -> dict[str, Any]:
        """Each field of ``kind`` stacked over its records, ``"t"`` first.

        Numeric scalars become 1-D arrays (int64, float64 — NaN where a record lacks the field —
        or bool), equal-length non-empty numeric lists become 2-D arrays (N, width), nested dicts
        are flattened to ``"outer.inner"`` names, anything else (strings, lists of strings,
        bytes, ragged lists) stays a list, with ``None`` where a record lacks the field.
        """
        recs = self._records.get(kind, [])
        if not recs:
            return {"t": np.empty(0, dtype=np.int64)}
        out: dict[str, Any] = {"t": _column([r["t"] for r in recs])}
        _columns("", [{k: v for k, v in r.items() if k not in ("k", "t")} for r in recs], out)
        return out

    @property
    def events(self) -> list[tuple[int, str]]:
        """``(t, text)`` of every ``event`` record, in file order."""
        return [(r["t"], r.get("text", "")) for r in self._records.get("event", [])]

    def video_frames(self) -> Iterator[VideoFrame]:
        for r in self._records.get("video", []):
            yield VideoFrame(
                t=r["t"],
                seq=r.get("seq", -1),
                capture_ns=r.get("capture_ns", 0),
                width=r.get("width", 0),
                height=r.get("height", 0),
                jpeg=r.get("jpeg", b""),
            )

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self._records.items())
        tail = ", truncated" if self.truncated else ""
        return f"Recording({str(self.path)!r}, {counts}{tail})"


def _decode(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("k"), str):
        return None
    if not isinstance(obj.get("t"), int) or isinstance(obj.get("t"), bool):
        return None
    return obj


def _frames(data: bytes | memoryview, pos: int) -> Iterator[tuple[dict[str, Any], int]]:
    """Yield (record, end offset) for each valid frame from ``pos``; stop at the first bad one."""
    size = len(data)
    mv = memoryview(data)
    while pos + _FRAME.size <= size:
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        if length == 0 or length > MAX_RECORD_BYTES or start + length > size:
            return
        payload = mv[start : start + length]
        if zlib.crc32(payload) != crc:
            return
        rec = _decode(payload)
        if rec is None:
            return
        pos = start + length
        yield rec, pos


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Read every complete record of a recording; a torn tail is ignored (``truncated``).

    Raises ``ValueError("not a telesurgery recording: ...")`` for a file that is empty, has no
    magic, or lacks a complete header record.
    """
    p = Path(path)
    data = p.read_bytes()
    if not data:
        raise ValueError(f"not a telesurgery recording: {p} is empty")
    if len(data) < len(MAGIC) or not data.startswith(MAGIC):
        raise ValueError(f"not a telesurgery recording: {p} does not start with the magic bytes")
    frames = _frames(data, len(MAGIC))
    first = next(frames, None)
    if first is None:
        raise ValueError(f"not a telesurgery recording: {p} has no complete header record")
    header, pos = first
    if header.get("k") != "header" or header.get("format") != FORMAT_NAME:
        raise ValueError(f"not a telesurgery recording: {p} has no valid header record")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"unsupported telesurgery recording version {version!r} in {p}")
    records: dict[str, list[dict[str, Any]]] = {}
    end = None
    for rec, pos in frames:  # noqa: B007 - pos is read after the loop
        if rec["k"] == "end":
            end = rec
            continue
        records.setdefault(rec["k"], []).append(rec)
    return Recording(p, header, records, end, bytes_read=pos, file_size=len(data))
