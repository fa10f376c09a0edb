"""The session recorder: round trip, a real SIGKILL, torn tails, garbage files, cost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest

from master_console.recording import (
    _FRAME,
    FORMAT_NAME,
    MAGIC,
    Recorder,
    load_recording,
)

ROOT = Path(__file__).resolve().parent.parent
POSE = [0.01, -0.02, 0.03, 0.0, 0.0, 0.0, 1.0]


def _record_every_kind(r: Recorder, n: int) -> None:
    for i in range(n):
        t = 1_000_000 * i
        pose = np.array(POSE) + i * 1e-3
        r.record("input", t, pose=pose, jaw=0.1 * i, clutch=i % 2 == 0, present=True)
        r.record("filtered", t + 1, pos=pose[:3])
        r.record("command", t + 2, seq=i, pose=pose, jaw=0.1 * i, clutch=True, present=True)
        r.record(
            "state",
            t + 3,
            seq=i,
            send_ns=t - 5,
            ack_seq=i - 1,
            measured_cp=pose.tolist(),
            setpoint_cp=POSE,
            measured_cf=[0.0, 0.5, i, 0.0, 0.0, 0.0],
            jaw=np.float32(0.25),
            flags=["clamped_speed", "watchdog"][: i % 3],
        )
        r.record("link", t + 4, stats={"rtt_p50_ms": 1.5 + i, "loss": i, "health": "OK"})
        r.record("event", t + 5, text=f"event {i} ü")
        r.record("video", t + 6, seq=i, capture_ns=t, width=4, height=2, jpeg=bytes([i, 0, 255]))
        r.record("future_kind", t + 7, anything={"a": [1, "x"]}, n=np.int64(i))


def test_round_trip_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "s.tsrec"
    n = 5
    with Recorder(path, metadata={"config": {"rate_hz": 1000}}, record_video=True) as r:
        _record_every_kind(r, n)
    assert r.stats.records_written == 8 * n and r.stats.records_dropped == 0
    assert r.stats.bytes_written == path.stat().st_size

    rec = load_recording(path)
    assert rec.header["format"] == FORMAT_NAME and rec.header["version"] == 1
    assert rec.metadata == {"config": {"rate_hz": 1000}}
    assert rec.kinds() == [
        "input",
        "filtered",
        "command",
        "state",
        "link",
        "event",
        "video",
        "future_kind",
    ]
    assert rec.records_read == 8 * n and not rec.truncated and rec.closed_cleanly
    assert rec.end is not None and rec.end["records_written"] == 8 * n

    poses = np.array([np.array(POSE) + i * 1e-3 for i in range(n)])
    t = np.arange(n, dtype=np.int64) * 1_000_000
    a = rec.arrays("input")
    assert next(iter(a)) == "t" and a["t"].dtype == np.int64
    np.testing.assert_array_equal(a["t"], t)
    np.testing.assert_array_equal(a["pose"], poses)
    np.testing.assert_array_equal(a["jaw"], 0.1 * np.arange(n))
    np.testing.assert_array_equal(a["clutch"], np.arange(n) % 2 == 0)
    assert a["clutch"].dtype == bool

    np.testing.assert_array_equal(rec.arrays("filtered")["pos"], poses[:, :3])
    c = rec.arrays("command")
    np.testing.assert_array_equal(c["seq"], np.arange(n))
    np.testing.assert_array_equal(c["t"], t + 2)

    s = rec.arrays("state")
    assert next(iter(s)) == "t"
    np.testing.assert_array_equal(s["measured_cp"], poses)
    assert s["setpoint_cp"].shape == (n, 7) and s["measured_cf"].shape == (n, 6)
    np.testing.assert_array_equal(s["measured_cf"][:, 2], np.arange(n))
    np.testing.assert_array_equal(s["jaw"], np.full(n, np.float32(0.25)))
    assert s["flags"] == [["clamped_speed", "watchdog"][: i % 3] for i in range(n)]

    link = rec.arrays("link")
    np.testing.assert_array_equal(link["stats.rtt_p50_ms"], 1.5 + np.arange(n))
    assert link["stats.health"] == ["OK"] * n

    assert rec.events == [(1_000_000 * i + 5, f"event {i} ü") for i in range(n)]
    frames = list(rec.video_frames())
    assert [f.seq for f in frames] == list(range(n))
    assert frames[3].jpeg == bytes([3, 0, 255]) and (frames[3].width, frames[3].height) == (4, 2)

    fut = rec.records("future_kind")
    assert fut[2] == {"k": "future_kind", "t": 2_000_007, "anything": {"a": [1, "x"]}, "n": 2}
    assert rec.arrays("nothing")["t"].shape == (0,)


def test_video_only_when_enabled_and_missing_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.tsrec"
    with Recorder(path) as r:
        r.record("video", 1, seq=0, capture_ns=0, width=1, height=1, jpeg=b"x")
        r.record("x", 1, a=1.0)
        r.record("x", 2, b="s")
    assert r.stats.video_skipped == 1
    rec = load_recording(path)
    assert list(rec.video_frames()) == [] and rec.kinds() == ["x"]
    x = rec.arrays("x")
    np.testing.assert_array_equal(x["a"], [1.0, np.nan])
    assert x["b"] == [None, "s"]


def test_reserved_names_and_closed(tmp_path: Path) -> None:
    r = Recorder(tmp_path / "s.tsrec")
    with pytest.raises(ValueError):
        r.record("header", 0)
    with pytest.raises(ValueError):
        r.record("event", 0, t=5)
    with pytest.raises(TypeError):
        r.record("event", 0, text=object())
    r.close()
    r.close()  # idempotent
    with pytest.raises(RuntimeError):
        r.record("event", 0, text="late")
    with pytest.raises(FileExistsError):
        Recorder(tmp_path / "s.tsrec")
    Recorder(tmp_path / "s.tsrec", overwrite=True).close()


def test_header_only_file(tmp_path: Path) -> None:
    path = tmp_path / "h.tsrec"
    r = Recorder(path, metadata={"machine": "test"})
    try:
        rec = load_recording(path)  # nothing written yet but the header: still a recording
        assert rec.records_read == 0 and rec.kinds() == [] and not rec.truncated
        assert rec.metadata == {"machine": "test"} and not rec.closed_cleanly
        assert rec.arrays("input")["t"].size == 0 and rec.events == []
    finally:
        r.close()


def test_bounded_memory_counts_drops(tmp_path: Path) -> None:
    path = tmp_path / "d.tsrec"
    with Recorder(path, flush_interval_ms=10_000, max_pending=100) as r:
        for i in range(250):
            r.record("input", i, n=i)
        assert r.stats.records_dropped == 150 and r.stats.records_pending == 100
    assert r.stats.records_written == 100
    rec = load_recording(path)
    np.testing.assert_array_equal(rec.arrays("input")["n"], np.arange(100))
    assert rec.end is not None and rec.end["records_dropped"] == 150


def test_flushes_without_close(tmp_path: Path) -> None:
    path = tmp_path / "f.tsrec"
    with Recorder(path, flush_interval_ms=20) as r:
        r.record("event", 1, text="hello")
        deadline = time.monotonic() + 2.0
        while load_recording(path).records_read < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert load_recording(path).events == [(1, "hello")]


def _frame_offsets(data: bytes) -> list[int]:
    """Start offsets of the frames in a recording, by walking the length prefixes."""
    offsets, pos = [], len(MAGIC)
    while pos + _FRAME.size <= len(data):
        length, _ = _FRAME.unpack_from(data, pos)
        if pos + _FRAME.size + length > len(data):
            break
        offsets.append(pos)
        pos += _FRAME.size + length
    return offsets


def test_torn_tail_at_every_offset(tmp_path: Path) -> None:
    path = tmp_path / "t.tsrec"
    with Recorder(path) as r:
        for i in range(20):
            r.record("command", i, seq=i, pose=POSE, jaw=0.5, clutch=True, present=True)
        r.record("event", 99, text="last one, a little longer than the others")
    data = path.read_bytes()
    offsets = _frame_offsets(data)
    last_start, end_start = offsets[-2], offsets[-1]  # the event, then the end record
    torn = tmp_path / "torn.tsrec"
    for cut in range(last_start, end_start):
        torn.write_bytes(data[:cut])
        rec = load_recording(torn)
        assert rec.records_read == 20 and rec.kinds() == ["command"]
        np.testing.assert_array_equal(rec.arrays("command")["seq"], np.arange(20))
        assert rec.truncated == (cut > last_start)
        assert rec.bytes_read == last_start
    torn.write_bytes(data[:end_start])
    rec = load_recording(torn)
    assert rec.events[-1][0] == 99 and not rec.truncated and not rec.closed_cleanly


def test_corrupt_byte_stops_reading(tmp_path: Path) -> None:
    path = tmp_path / "c.tsrec"
    with Recorder(path) as r:
        for i in range(10):
            r.record("filtered", i, pos=[0.0, 0.0, float(i)])
    data = bytearray(path.read_bytes())
    offsets = _frame_offsets(bytes(data))
    data[offsets[6] + _FRAME.size + 3] ^= 0xFF  # inside the payload of the 6th record
    path.write_bytes(bytes(data))
    rec = load_recording(path)
    assert rec.records_read == 5 and rec.truncated


@pytest.mark.parametrize(
    "content",
    [
        b"",
        os.urandom(4096),
        msgpack.packb({"k": "header", "t": 0, "format": FORMAT_NAME}),
        MAGIC,
        MAGIC + b"\x05\x00",
        MAGIC + os.urandom(100),
    ],
    ids=["empty", "random", "other-msgpack", "magic-only", "torn-header", "magic-garbage"],
)
def test_garbage_files_raise_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "g.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a telesurgery recording"):
        load_recording(path)


def test_wrong_header_kind_rejected(tmp_path: Path) -> None:
    payload = msgpack.packb({"k": "input", "t": 0})
    path = tmp_path / "w.bin"
    path.write_bytes(MAGIC + _FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(ValueError, match="not a telesurgery recording"):
        load_recording(path)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from master_console.recording import Recorder
    r = Recorder(sys.argv[1], flush_interval_ms=float(sys.argv[2]))
    pose = [0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0]
    print("READY", flush=True)
    t0 = time.monotonic_ns()
    n = 0
    while True:
        now = time.monotonic_ns()
        while n <= (now - t0) // 1_000_000:  # 1 kHz against absolute deadlines
            r.record("input", time.monotonic_ns(), n=n, pose=pose, jaw=0.5, clutch=True,
                     present=True, pad=[float(n)] * 12)
            n += 1
            if n % 10 == 0:
                sys.stdout.write(f"{n} {time.monotonic_ns()}\\n")
                sys.stdout.flush()
        time.sleep(0.0002)
    """
)


@pytest.mark.slow
def test_sigkill_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "k.tsrec"
    flush_ms = 50.0
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(flush_ms)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.5)
        t_kill = time.monotonic_ns()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=5) == -signal.SIGKILL
        progress = [tuple(map(int, line.split())) for line in proc.stdout.read().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # records known (from the child's own reports) to be recorded a flush interval before the kill
    cutoff = t_kill - int(flush_ms * 1e6)
    expected = max((n for n, t in progress if t <= cutoff), default=0)
    assert expected >= 100, f"child recorded too little before the kill: {progress[-3:]}"

    rec = load_recording(path)
    a = rec.arrays("input")
    got = len(a["n"])
    np.testing.assert_array_equal(a["n"], np.arange(got))  # contiguous, nothing torn inside
    assert got >= 0.9 * expected, (got, expected)
    print(f"SIGKILL: {got} records read, {expected} expected, truncated={rec.truncated}")
    assert np.all(np.diff(a["t"]) >= 0) and a["t"][-1] <= t_kill
    last = rec.records("input")[-1]
    assert len(last["pose"]) == 7 and len(last["pad"]) == 12 and last["present"] is True
    assert not rec.closed_cleanly
    size = path.stat().st_size
    assert rec.truncated == (rec.bytes_read < size)
    assert size - rec.bytes_read < 1000  # at most one torn record was left


def test_record_cost_sanity(tmp_path: Path) -> None:
    pose = np.array(POSE)
    with Recorder(tmp_path / "p.tsrec") as r:
        t0 = time.perf_counter()
        for i in range(10_000):
            r.record(
                "command",
                i,
                seq=i,
                pose=pose,
                jaw=0.5,
                clutch=True,
                present=True,
                extra=[0.0] * 12,
            )
        elapsed = time.perf_counter() - t0
    assert r.stats.records_written == 10_000
    assert elapsed < 0.5, f"10,000 record() calls took {elapsed:.3f} s"
