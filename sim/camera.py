"""The endoscope camera, rendered in its own process so it never blocks the physics.

:class:`CameraProcess` starts a child process (``multiprocessing`` spawn context, daemon) with its
own PyBullet DIRECT client, which loads the same URDF and builds the same scene (same seed). The
child mirrors the arm's joints and the rings' poses it is given, renders the view with
TinyRenderer (or PyBullet's EGL renderer when it loads *and* is faster, ``renderer="auto"``),
encodes JPEG with simplejpeg and publishes (seq, capture_ns, width, height, JPEG bytes).

Nothing between the two processes can block: both directions go through shared memory guarded by
a sequence counter (a seqlock), newest wins.

* Scene in (physics -> camera): :meth:`CameraProcess.update_scene` writes the joints, ring poses
  and the time they were true into one shared slot (a few µs; an older unread state is simply
  overwritten). Before each frame the camera raises a flag (:meth:`CameraProcess.state_wanted`);
  :class:`sim.arm.SimArm` answers it on its next tick, so the mirrored state is at most about one
  control period old when rendering starts, and the physics feeds exactly one state per frame.
  The camera waits at most ``STATE_WAIT_S`` for it (then renders what it has).
* Frames out (camera -> physics side): the newest encoded frame sits in a shared buffer;
  :meth:`CameraProcess.poll_frame` copies it out only when its sequence number changed. A slow
  consumer just sees fewer frames.

``capture_ns`` is the ``time.monotonic_ns()`` at which the rendered state was true in the physics
process (so video latency measured from it is honest). The child exits when told to stop, and by
itself when its parent dies; :meth:`CameraProcess.stop` joins it, terminating (then killing) it
if it does not exit in time, so no orphan is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

STATE_WAIT_S = 0.005
"""How long the camera waits for the physics to answer its request for a fresh state."""
N_JOINTS = 8
"""The mirrored joints: the 6 arm joints and the two fingers."""

# control slots (int64) shared by both processes
_STATE_LOCK = 0  # seqlock counter of the scene slot (odd while being written)
_STATE_STAMP = 1  # monotonic_ns at which the scene state was true
_STATE_WANT = 2  # the camera asks for a fresh state: the number of the frame it is about to render
_STATE_SERVED = 3  # the last request the physics side answered
_FRAME_LOCK = 4  # seqlock counter of the frame buffer
_FRAME_SEQ = 5
_FRAME_CAPTURE = 6
_FRAME_NBYTES = 7
_READY = 8  # 0 starting, 1 rendering, -1 failed
_RENDERER = 9  # 0 TinyRenderer, 1 EGL
_RENDER_NS = 10  # total render time
_ENCODE_NS = 11  # total encode time
_N_RINGS = 12
_N_CTL = 16

RENDERERS = ("tiny", "egl")


@dataclass(frozen=True)
class VideoFrameData:
    """One encoded endoscope image, newest first (see the module docstring for ``capture_ns``)."""

    seq: int
    capture_ns: int
    width: int
    height: int
    data: bytes
    encoding: str = "jpeg"


@dataclass(frozen=True)
class CameraView:
    """Where the endoscope looks from (base frame, m) and its field of view (deg)."""

    eye: tuple[float, float, float] = (0.0, -0.12, -0.09)
    target: tuple[float, float, float] = (0.0, 0.01, -0.19)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float = 55.0
    near_m: float = 0.01
    far_m: float = 1.0


class CameraProcess:
    """The endoscope camera in a child process (see the module docstring).

    Args:
        width, height: image size (px).
        rate_hz: frames per second (the child renders as fast as it can below that).
        seed: the scene seed (must match the physics' scene).
        quality: JPEG quality (1-100).
        renderer: ``"auto"`` (EGL when it loads and renders faster than TinyRenderer),
            ``"tiny"`` or ``"egl"`` (falls back to TinyRenderer when EGL cannot load).
        n_rings: how many ring poses the scene has (as :func:`sim.scene.build_scene`).
        view: the camera placement.
    """

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        rate_hz: float = 30.0,
        seed: int = 0,
        quality: int = 80,
        renderer: str = "auto",
        n_rings: int = 3,
        view: CameraView | None = None,
    ) -> None:
        if not (1 <= int(width) <= 4096 and 1 <= int(height) <= 4096):
            raise ValueError(f"image size must be 1..4096 px, got {width}x{height}")
        if not (math.isfinite(rate_hz) and 0.0 < rate_hz <= 1000.0):
            raise ValueError(f"rate_hz must be in (0, 1000] Hz, got {rate_hz!r}")
        if renderer not in ("auto", *RENDERERS):
            raise ValueError(f"renderer must be 'auto', 'tiny' or 'egl', got {renderer!r}")
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"quality must be 1..100, got {quality!r}")
        self.width = int(width)
        self.height = int(height)
        self.rate_hz = float(rate_hz)
        self.seed = int(seed)
        self.quality = int(quality)
        self.renderer = renderer
        self.n_rings = int(n_rings)
        self.view = view or CameraView()
        self._ctx = mp.get_context("spawn")
        self._ctl: Any = None
        self._state: Any = None
        self._buf: Any = None
        self._stop: Any = None
        self._proc: Any = None
        self._last: VideoFrameData | None = None
        self._last_lock = -1
        self._started_ns = 0
        self._fallback_tried = False

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the child process (returns at once; frames follow after ~1 s of start-up)."""
        if self._proc is not None:
            return
        ctx = self._ctx
        self._ctl = ctx.RawArray(ctypes.c_int64, _N_CTL)
        self._state = ctx.RawArray(ctypes.c_double, N_JOINTS + 7 * self.n_rings)
        self._buf = ctx.RawArray(ctypes.c_ubyte, self.width * self.height * 4 + 65536)
        self._ctl[_N_RINGS] = self.n_rings
        self._stop = ctx.Event()
        self._last = None
        self._last_lock = -1
        self._spawn(self.renderer)

    def _spawn(self, renderer: str) -> None:
        config = {
            "width": self.width,
            "height": self.height,
            "rate_hz": self.rate_hz,
            "seed": self.seed,
            "quality": self.quality,
            "renderer": renderer,
            "view": self.view,
        }
        self._ctl[_READY] = 0
        self._proc = self._ctx.Process(
            target=_camera_main,
            args=(config, self._ctl, self._state, self._buf, self._stop),
            name="sim-camera",
            daemon=True,
        )
        self._proc.start()
        self._started_ns = time.monotonic_ns()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the child and wait for it (terminate, then kill, if it lingers). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._stop.set()
        proc.join(timeout_s)
        if proc.is_alive():
            logger.warning("camera process did not stop in %.1f s: terminating it", timeout_s)
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():  # pragma: no cover - a child stuck in C code
            proc.kill()
            proc.join(1.0)
        with contextlib.suppress(ValueError):
            proc.close()

    def __enter__(self) -> CameraProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def ready(self) -> bool:
        """True once the child renders."""
        return self._ctl is not None and self._ctl[_READY] == 1

    # -- physics side --------------------------------------------------------------------------
    def state_wanted(self) -> bool:
        """True when the camera is waiting for a fresh scene state (cheap: one shared read)."""
        ctl = self._ctl
        return ctl is not None and ctl[_STATE_WANT] != ctl[_STATE_SERVED]

    def update_scene(
        self,
        joint_positions: Any,
        ring_poses: Any,
        stamp_ns: int | None = None,
    ) -> None:
        """Hand the camera the arm's joints (6 arm joints + 2 fingers, or 6 + jaw opening) and
        the ring poses (n x 7), true at ``stamp_ns`` (default now). Never blocks."""
        ctl, st = self._ctl, self._state
        if ctl is None:
            return
        q = np.asarray(joint_positions, dtype=np.float64).ravel()
        if q.size == 7:  # 6 arm joints + jaw opening -> the two finger angles
            q = np.concatenate([q[:6], [0.5 * q[6], -0.5 * q[6]]])
        rings = np.asarray(ring_poses, dtype=np.float64).reshape(-1, 7)[: self.n_rings]
        want = ctl[_STATE_WANT]
        ctl[_STATE_LOCK] += 1  # odd: being written
        view = np.frombuffer(st, dtype=np.float64)
        view[:N_JOINTS] = q[:N_JOINTS]
        view[N_JOINTS : N_JOINTS + rings.size] = rings.ravel()
        ctl[_STATE_STAMP] = time.monotonic_ns() if stamp_ns is None else int(stamp_ns)
        ctl[_STATE_LOCK] += 1  # even: consistent
        ctl[_STATE_SERVED] = want

    # -- consumer side -------------------------------------------------------------------------
    def poll_frame(self) -> VideoFrameData | None:
        """The newest frame (the same object until a newer one arrives), or None before the first.

        Cheap when nothing changed (one shared read). If the child died before its first frame
        with ``renderer="auto"`` (e.g. a broken EGL driver), it is restarted once on TinyRenderer.
        """
        ctl = self._ctl
        if ctl is None:
            return self._last
        lock = ctl[_FRAME_LOCK]
        if lock == self._last_lock or lock & 1 or lock == 0:
            if self._last is None:
                self._check_start_failure()
            return self._last
        n = int(ctl[_FRAME_NBYTES])
        seq, cap = int(ctl[_FRAME_SEQ]), int(ctl[_FRAME_CAPTURE])
        data = bytes(memoryview(self._buf).cast("B")[:n])
        if ctl[_FRAME_LOCK] != lock:  # overwritten while copying: take the next one
            return self._last
        self._last_lock = lock
        self._last = VideoFrameData(seq, cap, self.width, self.height, data)
        return self._last

    def _check_start_failure(self) -> None:
        proc = self._proc
        if proc is None or proc.is_alive() or self._fallback_tried or self.renderer != "auto":
            return
        self._fallback_tried = True
        logger.warning(
            "camera process exited (code %s) before its first frame; retrying with TinyRenderer",
            proc.exitcode,
        )
        with contextlib.suppress(ValueError):
            proc.close()
        self._spawn("tiny")

    def stats(self) -> dict[str, Any]:
        """Frames published, the renderer in use and the mean render / encode time (ms)."""
        ctl = self._ctl
        if ctl is None:
            return {"frames": 0, "renderer": None, "render_ms": math.nan, "encode_ms": math.nan}
        n = int(ctl[_FRAME_SEQ])
        return {
            "frames": n,
            "renderer": RENDERERS[int(ctl[_RENDERER])] if ctl[_READY] == 1 else None,
            "render_ms": ctl[_RENDER_NS] / n / 1e6 if n else math.nan,
            "encode_ms": ctl[_ENCODE_NS] / n / 1e6 if n else math.nan,
        }


# ---------------------------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------------------------
def _load_egl(p: Any, client: int) -> int:
    """Load PyBullet's EGL renderer plugin (its chatter on stderr silenced); -1 if it fails."""
    import pkgutil

    loader = pkgutil.get_loader("eglRenderer")
    if loader is None:
        return -1
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return int(
            p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=client)
        )
    except Exception:
        return -1
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _camera_main(config: dict[str, Any], ctl: Any, state: Any, buf: Any, stop: Any) -> None:
    import signal

    import pybullet as p
    import simplejpeg

    from sim.scene import build_scene, load_arm

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    # Rendering is best effort: yield the CPU to the 1 kHz loops (the arm's and a local
    # console's) whenever they want it. Frames come a little later under load, physics never.
    with contextlib.suppress(OSError):
        os.nice(5)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # PyBullet's renderers chatter on stdout; nothing of ours goes there
    os.close(devnull)

    w, h = config["width"], config["height"]
    view: CameraView = config["view"]
    parent = mp.parent_process()
    try:
        client = p.connect(p.DIRECT)
        plugin = -1
        if config["renderer"] in ("auto", "egl"):
            plugin = _load_egl(p, client)  # before loading anything: EGL sees only later bodies
        arm = load_arm(client)
        scene = build_scene(client, config["seed"], n_rings=int(ctl[_N_RINGS]))
        view_m = p.computeViewMatrix(view.eye, view.target, view.up, physicsClientId=client)
        proj_m = p.computeProjectionMatrixFOV(
            view.fov_deg, w / h, view.near_m, view.far_m, physicsClientId=client
        )

        def render(kind: int) -> np.ndarray:
            img = p.getCameraImage(
                w,
                h,
                view_m,
                proj_m,
                shadow=0,
                renderer=p.ER_BULLET_HARDWARE_OPENGL if kind == 1 else p.ER_TINY_RENDERER,
                flags=p.ER_NO_SEGMENTATION_MASK,
                physicsClientId=client,
            )
            return np.reshape(np.asarray(img[2], dtype=np.uint8), (h, w, 4))

        kind = 0
        if plugin >= 0:
            kind = 1
            if config["renderer"] == "auto":  # keep EGL only if it is faster (a GPU, not llvmpipe)
                times = []
                for k in (0, 1):
                    render(k)  # warm up
                    t0 = time.perf_counter()
                    for _ in range(3):
                        render(k)
                    times.append(time.perf_counter() - t0)
                if times[1] >= times[0]:
                    kind = 0
                    p.unloadPlugin(plugin, physicsClientId=client)
        ctl[_RENDERER] = kind
        joints = list(arm.all_joints)
        rings = list(scene.rings)
        st = np.frombuffer(state, dtype=np.float64)
        fbuf = np.frombuffer(buf, dtype=np.uint8)
        ctl[_READY] = 1
    except Exception:
        ctl[_READY] = -1
        raise

    period_ns = int(1e9 / config["rate_hz"])
    next_ns = time.monotonic_ns()
    seq = 0
    stamp = 0
    wait_ns = int(STATE_WAIT_S * 1e9)
    while not stop.is_set():
        if parent is not None and not parent.is_alive():
            break
        # ask the physics for a fresh state, wait a moment for it, mirror the newest one
        ctl[_STATE_WANT] = seq + 1
        deadline = time.monotonic_ns() + wait_ns
        while ctl[_STATE_SERVED] != seq + 1 and time.monotonic_ns() < deadline:
            time.sleep(0.0002)
        for _ in range(10):
            lock = ctl[_STATE_LOCK]
            if lock & 1:
                time.sleep(0.00005)
                continue
            values = st.copy()
            s_stamp = int(ctl[_STATE_STAMP])
            if ctl[_STATE_LOCK] == lock:
                if lock > 0:
                    for j, v in zip(joints, values[:N_JOINTS], strict=True):
                        p.resetJointState(arm.body, j, float(v), physicsClientId=client)
                    for i, r in enumerate(rings):
                        pose = values[N_JOINTS + 7 * i : N_JOINTS + 7 * i + 7]
                        if np.any(pose[3:]):
                            p.resetBasePositionAndOrientation(
                                r, pose[:3].tolist(), pose[3:].tolist(), physicsClientId=client
                            )
                    stamp = s_stamp
                break
        t0 = time.perf_counter_ns()
        capture = stamp or time.monotonic_ns()
        rgba = render(kind)
        t1 = time.perf_counter_ns()
        jpeg = simplejpeg.encode_jpeg(
            rgba, quality=config["quality"], colorspace="RGBA", colorsubsampling="420", fastdct=True
        )
        t2 = time.perf_counter_ns()
        n = len(jpeg)
        if n <= fbuf.size:
            seq += 1
            ctl[_FRAME_LOCK] += 1
            fbuf[:n] = np.frombuffer(jpeg, dtype=np.uint8)
            ctl[_FRAME_NBYTES] = n
            ctl[_FRAME_CAPTURE] = capture
            ctl[_RENDER_NS] += t1 - t0
            ctl[_ENCODE_NS] += t2 - t1
            ctl[_FRAME_SEQ] = seq
            ctl[_FRAME_LOCK] += 1
        next_ns += period_ns
        now = time.monotonic_ns()
        if next_ns <= now:
            next_ns = now  # behind: render again at once, do not try to catch up
        else:
            stop.wait((next_ns - now) / 1e9)
    with contextlib.suppress(Exception):
        p.disconnect(client)
