"""The surgeon's display: config, rendering, and the display process behind a DisplayFeed."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from pathlib import Path

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
import simplejpeg
import zmq
from matplotlib.backend_bases import CloseEvent
from matplotlib.backend_bases import KeyEvent as MplKeyEvent
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from master_console import display as disp
from master_console.display import (
    LAYOUT,
    ConsoleView,
    DisplayConfig,
    DisplayFeed,
    KeyEvent,
    normalize_key,
    render_snapshot,
    telemetry_from,
)
from network.link import ConsoleLink, LinkConfig
from network.monitor import Health
from network.protocol import IDENTITY_POSE, JointState, State

W, H = 1280, 720


def red_on_blue_jpeg(width: int = 640, height: int = 480) -> bytes:
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 2] = 255  # blue
    half = height * 5 // 24  # a 200 px square in a 480 px frame
    cy, cx = height // 2, width // 2
    img[cy - half : cy + half, cx - half : cx + half] = (255, 0, 0)
    return simplejpeg.encode_jpeg(img, quality=95, colorspace="RGB")


LOST = {
    "health": "LOST",
    "health_reasons": ["rx silence 412.5 ms > 200.0 ms"],
    "rtt_p50_ms": 21.0,
    "rtt_p99_ms": 35.5,
    "force_n": [1.0, -2.0, 0.5],
    "clutch": False,
    "operator_present": True,
    "armed": False,
    "lost": True,
    "flags": ["watchdog_hold"],
}


def _rgb(png: np.ndarray, fx: float, fy: float, r: int = 4) -> np.ndarray:
    """The median colour of a small patch at figure fractions (fx, fy), 0..1 floats."""
    h, w = png.shape[:2]
    x, y = int(fx * w), int((1.0 - fy) * h)
    return np.median(png[y - r : y + r + 1, x - r : x + r + 1, :3].reshape(-1, 3), axis=0)


def is_red(c: np.ndarray) -> bool:
    return bool(c[0] > 0.4 and c[0] > 2.5 * c[1] and c[0] > 2.5 * c[2])


def is_blue(c: np.ndarray) -> bool:
    return bool(c[2] > 0.4 and c[2] > 2.5 * c[0] and c[2] > 2.5 * c[1])


def video_has_frame(png: np.ndarray) -> bool:
    """The red square and the blue around it, inside the video panel (away from overlays)."""
    left, bottom, width, height = LAYOUT["video"]
    cx, cy = left + width / 2, bottom + height / 2
    below = cy - 0.12 * height  # under the centre, where a status text would be
    side = 0.45 * height * (H / W)  # 0.45 panel heights to the side, in figure-x fractions
    return (
        is_red(_rgb(png, cx, below))
        and is_blue(_rgb(png, cx - side, below))
        and is_blue(_rgb(png, cx + side, below))
    )


def banner_is_red(png: np.ndarray) -> bool:
    _, bottom, _, height = LAYOUT["banner"]
    return is_red(_rgb(png, 0.62, bottom + 0.93 * height, r=2))


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "fullscreen"),
        ("refresh_hz", 0.0),
        ("refresh_hz", float("nan")),
        ("snapshot_every_s", -1.0),
        ("keep_snapshots", -1),
        ("keep_snapshots", 2.5),
        ("max_force_n", 0.0),
        ("width_px", 10),
        ("snapshot_dir", ""),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        DisplayConfig(**{field: value})


def test_config_from_dict() -> None:
    cfg = DisplayConfig.from_dict({"mode": "headless", "refresh_hz": 10, "snapshot_dir": "/x"})
    assert cfg.mode == "headless" and cfg.refresh_hz == 10.0 and cfg.snapshot_dir == "/x"
    assert DisplayConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"'refresh_rate'; valid keys: mode, refresh_hz"):
        DisplayConfig.from_dict({"refresh_rate": 10})
    with pytest.raises(ValueError, match="max_force_n"):
        DisplayConfig.from_dict({"max_force_n": "ten"})


def test_auto_mode_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert disp.resolve_mode("auto") == "headless"
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(disp, "_has_module", lambda name: name == "tkinter")
    assert disp.resolve_mode("auto") == "window"
    monkeypatch.setattr(disp, "_has_module", lambda name: False)
    assert disp.resolve_mode("auto") == "headless"
    assert disp.resolve_mode("off") == "off"


# ---------------------------------------------------------------------------------------------
# rendering, no process
# ---------------------------------------------------------------------------------------------
def test_render_snapshot_shows_video_and_lost(tmp_path: Path) -> None:
    path = tmp_path / "lost.png"
    texts = render_snapshot(path, red_on_blue_jpeg(), LOST)
    png = matplotlib.image.imread(path)
    assert png.shape[:2] == (H, W)
    assert video_has_frame(png)
    assert banner_is_red(png)
    assert texts["banner"].startswith("LINK LOST")
    assert "rx silence" in texts["reasons"]
    assert texts["video_lost"] == "LINK LOST"
    assert texts["force"] == "2.3 N"
    assert texts["link.rtt"] == "21.0 / 35.5 ms"
    assert texts["flags"] == "watchdog hold"
    assert texts["pill.clutch"] == "CLUTCH OUT"
    assert texts["link.jitter"] == "n/a"  # missing keys render as n/a
    assert not list(tmp_path.glob(".*"))  # the temporary file is gone


def test_render_without_video_or_telemetry(tmp_path: Path) -> None:
    texts = render_snapshot(tmp_path / "empty.png", None, {})
    assert texts["video"] == "NO VIDEO"
    assert texts["banner"] == "LINK n/a"
    assert texts["force"] == "n/a"
    assert texts["pill.clutch"] == "CLUTCH n/a"
    # garbage values are shown as n/a, never raise
    bad = {"health": 3, "force_n": ["a", None], "rtt_p50_ms": float("inf"), "flags": 7}
    texts = render_snapshot(tmp_path / "bad.png", b"not a jpeg", bad)
    assert texts["banner"] == "LINK n/a" and texts["force"] == "n/a"
    assert texts["video"] == "NO VIDEO"
    assert texts["link.rtt"] == "n/a / n/a ms"
    png = matplotlib.image.imread(tmp_path / "bad.png")
    assert not banner_is_red(png)


def test_blitting_draws_what_a_full_draw_draws() -> None:
    """The window's drawing path (blit the panels that changed), checked on an Agg canvas."""
    frame = simplejpeg.decode_jpeg(red_on_blue_jpeg(), colorspace="RGB")
    blit = ConsoleView()
    blit.enable_blit()
    blit.fig.canvas.draw()
    for telemetry in ({"health": "OK", "force_n": [0.1, 0, 0]}, LOST, {"health": "DEGRADED"}):
        blit.set_frame(frame)
        blit.update(telemetry, have_video=True, video_age_s=0.0, wall_time=0.0)
        if blit.needs_full_draw:
            blit.needs_full_draw = False
            blit.fig.canvas.draw()
        else:
            blit.blit(list(blit.panels))
        assert blit.blit(list(blit.panels)) == []  # nothing changed since: nothing redrawn
        full = ConsoleView()
        full.set_frame(frame)
        full.update(telemetry, have_video=True, video_age_s=0.0, wall_time=0.0)
        full.fig.canvas.draw()
        diff = np.abs(blit.rgba().astype(int) - full.rgba().astype(int)).max(axis=2) > 40
        assert diff.mean() < 0.002, telemetry


def test_telemetry_from_real_link_and_state() -> None:
    link = ConsoleLink(LinkConfig(endpoint="inproc://display-test"))
    try:
        st = State(
            seq=5,
            send_ns=1,
            ack_seq=0,
            ack_send_ns=0,
            ack_rx_ns=0,
            operating_state="ENABLED",
            is_homed=True,
            is_busy=False,
            measured_cp=IDENTITY_POSE,
            setpoint_cp=IDENTITY_POSE,
            measured_js=JointState(),
            measured_cf=(3.0, 4.0, 0.0, 0.1, 0.2, 0.3),
            measured_jaw=0.25,
            safety_flags=("workspace_clamped",),
        )
        flags = {
            "clutch": True,
            "operator_present": True,
            "armed": True,
            "lost": False,
            "commands_applied": 12,
            "loop_lateness_p99_us": 80.0,
            "not_a_key": 1,
        }
        t = telemetry_from(link, st, flags)
    finally:
        link.close()
    assert t["health"] == "LOST"  # nothing received yet
    assert t["health_reasons"] == ["rx: nothing received yet"]
    assert t["force_n"] == [3.0, 4.0, 0.0] and t["torque_nm"] == [0.1, 0.2, 0.3]
    assert t["flags"] == ["workspace_clamped"] and t["operating_state"] == "ENABLED"
    assert t["clutch"] is True and t["commands_applied"] == 12 and "not_a_key" not in t
    assert set(t) <= set(disp.TELEMETRY_KEYS)
    view = ConsoleView()
    view.update(t)
    texts = view.texts()
    assert texts["force"] == "5.0 N" and texts["link.rtt"] == "n/a / n/a ms"
    assert texts["flags"] == "workspace clamped"


def test_telemetry_source_refreshes_link_stats_sparingly() -> None:
    calls = {"stats": 0}

    class FakeLink:  # the two ConsoleLink methods TelemetrySource uses, counted
        latest_state = None
        welcome = None

        def __init__(self) -> None:
            self.real = ConsoleLink(LinkConfig(endpoint="inproc://display-source"))
            self.level = self.real.health()

        def health(self) -> object:
            return self.level

        def stats(self) -> object:
            calls["stats"] += 1
            return self.real.stats()

    link = FakeLink()
    try:
        source = disp.TelemetrySource(link, stats_every_s=60.0)  # type: ignore[arg-type]
        for _ in range(100):
            t = source(None, {"clutch": True})
        assert calls["stats"] == 1 and t["health"] == "LOST" and t["clutch"] is True
        link.level = Health.OK  # the level changed: fresh stats at once
        source()
        assert calls["stats"] == 2
    finally:
        link.real.close()


def test_key_names() -> None:
    assert normalize_key(" ") == "space"
    assert normalize_key("escape") == "escape"
    assert normalize_key("F12") == "f12"
    assert normalize_key("A") == "A"  # shift+a stays distinguishable
    assert normalize_key(None) is None


def test_off_and_unstarted_feeds_do_nothing() -> None:
    feed = DisplayFeed(DisplayConfig(mode="off"))
    feed.stop()  # before start: fine
    with feed:
        assert not feed.alive and feed.pid is None
        assert feed.publish_telemetry({"health": "OK"}) is False
        assert feed.publish_video(b"x", 1, 1, 0) is False
        assert feed.keys() == []
    feed.stop()


class FakeWindowCanvas(FigureCanvasAgg):
    """An Agg canvas standing in for a GUI window: ``flush_events`` delivers queued GUI events
    (key presses and releases, closing) to the handlers, as a toolkit's event loop would."""

    def __init__(self, figure: Figure, events: queue.Queue) -> None:
        super().__init__(figure)
        self.events = events
        self.blits = 0

    def flush_events(self) -> None:
        while True:
            try:
                name, key = self.events.get_nowait()
            except queue.Empty:
                return
            if name == "close_event":
                self.callbacks.process(name, CloseEvent(name, self))
            else:
                self.callbacks.process(name, MplKeyEvent(name, self, key))

    def blit(self, bbox: object = None) -> None:
        self.blits += 1


def test_window_mode_blits_forwards_keys_and_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window loop, run in a thread on a stand-in canvas (there is no display here)."""
    gui: queue.Queue = queue.Queue()
    cfg = DisplayConfig(mode="window", snapshot_dir=str(tmp_path), snapshot_every_s=60.0)
    feed = DisplayFeed(cfg)
    proc = disp._DisplayProcess(cfg, feed._bind_all(), None)

    def make_window_figure(backend: str) -> Figure:
        fig = Figure(figsize=(W / 100, H / 100), dpi=100)
        FakeWindowCanvas(fig, gui)
        return fig

    monkeypatch.setattr(proc, "make_window_figure", make_window_figure)
    monkeypatch.setattr(disp, "_has_module", lambda name: name == "tkinter")
    thread = threading.Thread(target=proc.run, daemon=True)
    thread.start()
    jpeg = red_on_blue_jpeg()
    got: list[KeyEvent] = []
    deadline = time.monotonic() + 15.0

    def pump(until: object) -> None:
        while not until() and time.monotonic() < deadline:  # type: ignore[operator]
            feed.publish_video(jpeg, 640, 480, time.monotonic_ns())
            feed.publish_telemetry(LOST)
            got.extend(feed.keys())
            time.sleep(0.02)

    try:
        assert feed.wait_ready(10.0)
        assert feed.mode == "window" and feed.backend == "tkagg"
        assert proc.view is not None
        canvas = proc.view.fig.canvas
        pump(lambda: canvas.blits >= 20)
        assert canvas.blits >= 20  # the panels are blitted, not redrawn whole
        before = feed.snapshots
        for event in (
            ("key_press_event", " "),
            ("key_release_event", " "),
            ("key_press_event", "h"),
            ("key_press_event", "f12"),
        ):
            gui.put(event)
        pump(lambda: len(got) >= 4 and feed.snapshots > before)
        assert [(k.name, k.down) for k in got] == [
            ("space", True),
            ("space", False),
            ("h", True),
            ("f12", True),
        ]
        assert feed.snapshots > before  # f12 wrote one: the window's picture as it is
        png = matplotlib.image.imread(tmp_path / "latest.png")
        assert png.shape[:2] == (H, W)
        assert video_has_frame(png) and banner_is_red(png)
        left, bottom, width, height = LAYOUT["link"]  # h hid the link statistics
        hidden = _rgb(png, left + width / 2, bottom + height / 2, r=20)
        assert np.allclose(hidden, matplotlib.colors.to_rgb(disp.BG), atol=0.02)
        assert not proc.view.stats_visible
        gui.put(("close_event", None))
        pump(lambda: feed.quit_requested)
        assert got[-1].name == "window_closed"
        thread.join(5.0)
        assert not thread.is_alive()
    finally:
        proc.stop = True
        thread.join(5.0)
        feed.stop()


# ---------------------------------------------------------------------------------------------
# the display process
# ---------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _started(tmp_path: Path, **kw: object) -> DisplayFeed:
    cfg = DisplayConfig(mode="headless", snapshot_dir=str(tmp_path), **kw)  # type: ignore[arg-type]
    feed = DisplayFeed(cfg).start()
    assert feed.wait_ready(30.0), "the display process did not come up"
    assert feed.mode == "headless" and feed.backend == "agg"
    return feed


@pytest.mark.slow
def test_display_process_writes_snapshots_of_what_it_is_fed(tmp_path: Path) -> None:
    jpeg = red_on_blue_jpeg()
    feed = _started(tmp_path, snapshot_every_s=0.2, keep_snapshots=3)
    try:
        latest = tmp_path / "latest.png"
        deadline = time.monotonic() + 20.0
        ok = False
        while time.monotonic() < deadline and not ok:
            feed.publish_video(jpeg, 640, 480, time.monotonic_ns())
            feed.publish_telemetry(LOST)
            feed.keys()
            time.sleep(0.05)
            if latest.exists():
                png = matplotlib.image.imread(latest)  # atomic replace: never a partial file
                assert png.shape[:2] == (H, W)
                ok = video_has_frame(png) and banner_is_red(png)
        assert ok, "no snapshot showed the frame and the LOST banner"
        while feed.last_snapshot is None and time.monotonic() < deadline:
            feed._drain_events(wait_ms=100)  # the display says so too
        assert feed.last_snapshot == str(latest)
        while feed.snapshots < 5 and time.monotonic() < deadline:  # rotation
            feed.publish_video(jpeg, 640, 480, time.monotonic_ns())
            feed._drain_events(wait_ms=100)
        assert len(list(tmp_path.glob("snapshot-*.png"))) == 3
        assert feed.counters["video_sent"] > 0 and feed.counters["telemetry_sent"] > 0

        # key events from the window reach keys() (injected here: no display on this machine)
        assert feed._dir is not None
        ctx = zmq.Context.instance()
        push = ctx.socket(zmq.PUSH)
        push.connect(f"ipc://{feed._dir}/events")
        for down in (True, False):
            push.send(
                disp._ENCODER.encode({"type": "key", "key": "space", "down": down, "t_ns": 1})
            )
        push.send(disp._ENCODER.encode({"type": "key", "key": "escape", "down": True, "t_ns": 2}))
        got: list[KeyEvent] = []
        while len(got) < 3 and time.monotonic() < deadline:
            got += feed.keys()
            time.sleep(0.01)
        push.close(linger=0)
        assert [(k.name, k.down) for k in got] == [
            ("space", True),
            ("space", False),
            ("escape", True),
        ]
        assert feed.quit_requested
    finally:
        feed.stop()
    assert not feed.alive
    assert feed._proc is not None and feed._proc.returncode == 0  # it quit when asked
    assert feed._dir is None


@pytest.mark.slow
def test_publishing_never_blocks_on_a_stopped_display(tmp_path: Path) -> None:
    jpeg = simplejpeg.encode_jpeg(disp.synthetic_frame(1.0), quality=85, colorspace="RGB")
    assert len(jpeg) > 20_000  # 5000 frames queued would be > 100 MB
    feed = _started(tmp_path, snapshot_every_s=0.2)
    pid = feed.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(200):  # warm up, fill every queue and buffer there is
            feed.publish_video(jpeg, 640, 480, time.monotonic_ns())
        rss0 = _rss_bytes()
        period = feed._period_ns
        t0 = time.perf_counter()
        for _ in range(5000):
            feed.publish_video(jpeg, 640, 480, time.monotonic_ns())
        for i in range(50_000):  # each one due (now_ns advanced): the send path, not the limit
            assert feed.publish_telemetry(LOST, now_ns=10**12 + i * period) in (True, False)
        elapsed = time.perf_counter() - t0
        growth = _rss_bytes() - rss0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert elapsed < 5.0, f"publishing took {elapsed:.1f} s with the display stopped"
    assert growth < 20 * 2**20, f"memory grew by {growth / 2**20:.1f} MiB"
    assert feed.counters["video_sent"] + feed.counters["video_dropped"] == 5200
    assert feed.alive
    feed.stop()
    assert not feed.alive and feed._proc is not None and feed._proc.returncode == 0


@pytest.mark.slow
def test_stop_kills_a_hung_display_and_tolerates_a_dead_one(tmp_path: Path) -> None:
    feed = _started(tmp_path / "a")
    assert feed.pid is not None
    os.kill(feed.pid, signal.SIGSTOP)  # hung: it cannot answer the quit
    t0 = time.monotonic()
    feed.stop(timeout_s=0.5)
    assert time.monotonic() - t0 < 5.0
    assert not feed.alive and feed._proc is not None and feed._proc.returncode == -signal.SIGKILL

    feed = _started(tmp_path / "b")
    assert feed.pid is not None
    os.kill(feed.pid, signal.SIGKILL)
    feed._proc.wait()  # type: ignore[union-attr]
    assert not feed.alive
    assert feed.publish_video(red_on_blue_jpeg(), 640, 480, 0) in (True, False)  # no raise
    assert feed.publish_telemetry({"health": "OK"}) in (True, False)
    assert feed.keys() == []
    feed.stop()  # already dead: no exception
    feed.stop()  # twice: no exception
    assert feed.publish_telemetry({"health": "OK"}, now_ns=2**62) is False  # closed: no-op
