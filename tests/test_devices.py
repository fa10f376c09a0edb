"""Input devices: the synthetic hand, rate integration, the data glove, replay and keyboard."""

from __future__ import annotations

import itertools
import threading
import time

import msgpack
import numpy as np
import pytest

from master_console.devices import (
    AxisMapping,
    GloveFrame,
    GloveMessageError,
    GloveReceiver,
    GloveSender,
    InputRecording,
    InputSample,
    KeyboardDevice,
    RateIntegrator,
    ReplayDevice,
    decode_glove_message,
    encode_glove_message,
)
from master_console.synthetic import AMPLITUDE_CLASSES_UM, SyntheticHand


class FakeClock:
    def __init__(self, t_ns: int = 1_000_000_000) -> None:
        self.t_ns = t_ns

    def __call__(self) -> int:
        return self.t_ns

    def advance(self, seconds: float) -> None:
        self.t_ns += round(seconds * 1e9)


def wait_until(cond, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


# -- SyntheticHand ---------------------------------------------------------------------------


def test_hand_is_deterministic_for_a_seed() -> None:
    t = np.sort(np.random.default_rng(0).uniform(0, 20, 3000))
    a, b, c = SyntheticHand(seed=5), SyntheticHand(seed=5), SyntheticHand(seed=6)
    va, ta = a.motion(t)
    # evaluated in another order and in pieces: the same, because it depends only on time
    vb = np.concatenate([b.motion(t[1500:])[0], b.motion(t[:1500])[0]])
    vb = np.concatenate([vb[-1500:], vb[:-1500]])
    assert np.array_equal(va, vb)
    assert np.array_equal(ta, b.motion(t)[1])
    assert not np.allclose(ta, c.motion(t)[1])
    s1, _ = SyntheticHand(seed=5).sample_at(123)
    s2, _ = SyntheticHand(seed=5).sample_at(123)
    assert np.array_equal(s1.pose, s2.pose)


@pytest.mark.parametrize("cls", list(AMPLITUDE_CLASSES_UM))
@pytest.mark.parametrize("seed", [1, 2])
def test_tremor_rms_follows_its_class(cls: str, seed: int) -> None:
    hand = SyntheticHand(seed=seed, amplitude_class=cls)
    t = 5.0 + np.arange(10_000) / 1000.0  # 10 s at 1 kHz
    _, tremor = hand.motion(t)
    rms_um = np.sqrt(np.mean(tremor**2, axis=0)) * 1e6
    assert np.allclose(rms_um, AMPLITUDE_CLASSES_UM[cls], rtol=0.15), rms_um
    # in band: 6-16 Hz (the harmonic may reach above)
    p = (np.abs(np.fft.rfft(tremor, axis=0)) ** 2).sum(axis=1)
    f = np.fft.rfftfreq(len(t), 1e-3)
    assert p[(f >= 6) & (f <= 16)].sum() / p.sum() > 0.85
    hz = hand.tremor_hz(t)
    assert 1 <= hz.shape[1] <= 3 and hz.min() >= 7.0 and hz.max() <= 13.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_voluntary_power_lies_below_2_hz(seed: int) -> None:
    t = np.arange(30_000) / 1000.0
    v, _ = SyntheticHand(seed=seed).motion(t)
    x = v - v.mean(axis=0)
    p = (np.abs(np.fft.rfft(x, axis=0)) ** 2).sum(axis=1)
    f = np.fft.rfftfreq(len(t), 1e-3)
    assert p[f < 2.0].sum() / p.sum() >= 0.98
    assert 0.005 < float(np.ptp(v, axis=0).max()) <= 0.11  # reaches of cm within the box


def test_hand_reaches_caller_targets() -> None:
    targets = [(0.01, 0.0, 0.0), (0.01, 0.02, -0.01)]
    hand = SyntheticHand(seed=1, targets=targets, drift_m=0.0)
    v, _ = hand.motion(np.array([0.0, 20.0]))
    assert np.allclose(v[0], 0.0)
    assert np.allclose(v[1], targets[-1])


def test_hand_thread_rate_seq_truth_and_latest_never_blocks() -> None:
    hand = SyntheticHand(seed=3, rate_hz=1000.0)
    assert hand.latest() is None
    with hand:
        time.sleep(0.05)
        n0 = hand.samples
        seqs, worst = [], 0.0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            t = time.perf_counter()
            s = hand.latest()
            worst = max(worst, time.perf_counter() - t)
            assert s is not None
            seqs.append(s.seq)
            time.sleep(0.001)
        n = hand.samples - n0
        truth = hand.truth()
        sample = hand.latest()
    assert n >= 900, f"only {n} samples in 1 s at 1 kHz"
    assert all(b >= a for a, b in itertools.pairwise(seqs)) and seqs[-1] > seqs[0]
    assert worst < 0.05
    # the truth belongs to a sample and adds up to its pose
    assert truth is not None and sample is not None and truth.seq <= sample.seq
    fresh = SyntheticHand(seed=3)
    v, tr = fresh.motion(np.array([(truth.t_ns - hand.start_ns) / 1e9]))
    assert np.allclose(v[0], truth.voluntary) and np.allclose(tr[0], truth.tremor)
    assert sample.buttons.clutch and sample.buttons.operator_present


def test_hand_clutch_script() -> None:
    hand = SyntheticHand(seed=1, clutch_script=[(1.0, False), (2.5, True)])
    t0 = 10**12
    hand.sample_at(t0)
    at = {s: hand.sample_at(t0 + round(s * 1e9))[0].buttons.clutch for s in (0.5, 1.5, 2.4, 3.0)}
    assert at == {0.5: True, 1.5: False, 2.4: False, 3.0: True}


# -- RateIntegrator --------------------------------------------------------------------------


def _integrate(rate_hz: float, raw: np.ndarray, mapping: AxisMapping, seconds: float = 1.0):
    integ = RateIntegrator(mapping)
    n = round(seconds * rate_hz)
    pose = None
    for i in range(n + 1):
        pose = integ.step(round(i * 1e9 / rate_hz) + 5_000, raw)
    return pose


def test_integration_does_not_depend_on_the_sample_rate() -> None:
    m = AxisMapping(max_speed_m_s=0.05, max_rate_rad_s=1.0)
    raw = np.array([0.5, -0.3, 0.2, 0.0, 0.0, 0.4])
    a, b = _integrate(100.0, raw, m), _integrate(1000.0, raw, m)
    assert np.allclose(a, b, atol=1e-12)
    assert np.allclose(a[:3], m.twist(raw)[:3] * 1.0)
    # a rotation of 0.4 * (1 - dz) ... about z for 1 s
    angle = m.twist(raw)[5]
    assert np.allclose(a[3:], [0, 0, np.sin(angle / 2), np.cos(angle / 2)], atol=1e-12)


def test_dead_zone_inversion_mapping_and_unit_quaternion() -> None:
    m = AxisMapping(dead_zone=0.1)
    assert np.array_equal(m.twist(np.full(6, 0.09)), np.zeros(6))
    assert m.twist(np.array([0.55, 0, 0, 0, 0, 0]))[0] == pytest.approx(0.5 * 0.05)
    inv = AxisMapping(invert=(True, False, False, False, False, False), dead_zone=0.0)
    assert inv.twist(np.array([1.0, 0, 0, 0, 0, 0]))[0] == pytest.approx(-0.05)
    swap = AxisMapping(axes=(2, 1, 0, 3, 4, 5), dead_zone=0.0)
    assert np.allclose(swap.twist(np.array([0, 0, 1.0, 0, 0, 0])), [0.05, 0, 0, 0, 0, 0])
    # speed limited in norm
    assert np.linalg.norm(AxisMapping(dead_zone=0).twist(np.ones(6))[:3]) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        AxisMapping(axes=(0, 1, 2))
    integ = RateIntegrator(AxisMapping(dead_zone=0.0, max_rate_rad_s=3.0))
    rng = np.random.default_rng(0)
    t = 0
    for _ in range(2000):
        t += int(rng.integers(100_000, 5_000_000))
        pose = integ.step(t, rng.uniform(-1, 1, 6))
        assert abs(np.linalg.norm(pose[3:]) - 1.0) < 1e-9
    # time going backwards integrates nothing
    assert np.array_equal(integ.step(t - 10**9, np.zeros(6)), integ.pose)


# -- Glove -----------------------------------------------------------------------------------


def _frame(i: int) -> GloveFrame:
    q = np.array([0.0, 0.0, np.sin(i * 0.001), np.cos(i * 0.001)])
    return GloveFrame(np.r_[0.001 * i, -0.002 * i, 0.1, q], (i % 100) / 100.0, i % 2 == 0, True)


def test_glove_message_roundtrip_and_validation() -> None:
    t, f = decode_glove_message(encode_glove_message(42, _frame(7)))
    assert t == 42 and np.allclose(f.pose, _frame(7).pose) and f.grip == 0.07 and not f.clutch
    good = msgpack.unpackb(encode_glove_message(1, _frame(1)))
    for key, value, reason in [
        ("v", 2, "bad_version"),
        ("v", True, "bad_version"),
        ("t_ns", -1, "bad_t_ns"),
        ("t_ns", 1.5, "bad_t_ns"),
        ("pose", [0.0] * 6, "bad_pose"),
        ("pose", [float("nan"), 0, 0, 0, 0, 0, 1], "bad_pose"),
        ("pose", [0, 0, 0, 0, 0, 0, 2.0], "bad_pose"),
        ("pose", [0, 0, 0, 0, 0, 0, True], "bad_pose"),
        ("grip", 1.5, "bad_grip"),
        ("grip", float("inf"), "bad_grip"),
        ("grip", "x", "bad_grip"),
        ("clutch", 1, "bad_button"),
        ("extra", 1, "bad_keys"),
    ]:
        with pytest.raises(GloveMessageError) as e:
            decode_glove_message(msgpack.packb({**good, key: value}))
        assert e.value.reason == reason, (key, value)
    for data, reason in [
        (b"\xc1", "undecodable"),
        (msgpack.packb([1, 2]), "not_a_map"),
        (b"\x00" * 2000, "oversized"),
    ]:
        with pytest.raises(GloveMessageError) as e:
            decode_glove_message(data)
        assert e.value.reason == reason


def _malformed(rng: np.random.Generator, i: int) -> bytes:
    good = msgpack.unpackb(encode_glove_message(1, _frame(1)))
    kind = i % 5
    if kind == 0:
        return rng.bytes(int(rng.integers(1, 64)))
    if kind == 1:
        return msgpack.packb({**good, "pose": "not a list"})
    if kind == 2:
        return msgpack.packb({**good, "grip": float("nan")})
    if kind == 3:
        return msgpack.packb({**good, "v": 99})
    return msgpack.packb({**good, "clutch": "yes"})


def test_glove_over_tcp_newest_wins_and_bad_messages_are_dropped() -> None:
    sender = GloveSender("tcp://127.0.0.1:*")
    receiver = GloveReceiver(sender.endpoint, jaw_open_rad=1.0)
    try:
        receiver.connect()
        assert sender.wait_for_subscriber(3.0)
        frames = [_frame(i) for i in range(200)]
        t0 = time.monotonic()
        assert sender.replay(frames, rate_hz=500.0) == 200
        assert time.monotonic() - t0 >= 0.35  # paced, not a burst
        assert wait_until(lambda: receiver.stats.accepted == 200)
        s = receiver.latest()
        assert isinstance(s, InputSample)
        last = frames[-1]
        assert np.allclose(s.pose, last.pose)
        assert s.jaw == pytest.approx(1.0 - last.grip)
        assert s.buttons.clutch == last.clutch and s.buttons.operator_present == last.present
        # 100 malformed messages: counted, dropped, and the receiver keeps working
        rng = np.random.default_rng(0)
        for i in range(100):
            sender.send_raw(_malformed(rng, i))
        assert wait_until(lambda: receiver.stats.dropped == 100)
        assert np.allclose(receiver.latest().pose, last.pose)
        sender.send(_frame(500))
        assert wait_until(lambda: receiver.stats.accepted == 201)
        assert np.allclose(receiver.latest().pose, _frame(500).pose)
        st = receiver.stats
        assert st.received == 301 and sum(st.reasons.values()) == 100
        assert receiver.errors == 0
    finally:
        receiver.disconnect()
        sender.close()


# -- Replay and keyboard ---------------------------------------------------------------------


def _recording(n: int = 50) -> InputRecording:
    t = np.arange(n) * 0.01
    pose = np.tile([0, 0, 0, 0, 0, 0, 1.0], (n, 1))
    pose[:, 0] = t
    return InputRecording(t, pose, t / 10, np.arange(n) % 2 == 0, np.ones(n, dtype=bool))


def test_replay_plays_in_order_at_a_speed_factor(tmp_path) -> None:
    path = tmp_path / "rec.npz"
    _recording().save(path)
    clock = FakeClock()
    dev = ReplayDevice.from_npz(path, speed=2.0, clock=clock)
    assert dev.latest() is None
    with dev:
        seen = []
        for _ in range(30):
            s = dev.latest()
            seen.append(s.seq)
            # at 2x, after k ms of wall time the recording is at 2k ms
            assert s.pose[0] == pytest.approx(s.seq * 0.01)
            assert s.buttons.clutch == (s.seq % 2 == 0)
            clock.advance(0.01)
        assert seen == sorted(seen) and seen[:4] == [0, 2, 4, 6]
        assert dev.finished
        assert dev.latest().seq == 49
    with pytest.raises(ValueError):
        InputRecording(np.array([0.0, -1.0]), np.zeros((2, 7)), np.zeros(2), [0, 0], [0, 0])


def test_replay_in_real_time() -> None:
    with ReplayDevice(_recording(), speed=1.0) as dev:
        time.sleep(0.1)
        s = dev.latest()
    assert 8 <= s.seq <= 49


def test_keyboard_motion_clutch_and_jaw() -> None:
    clock = FakeClock()
    kb = KeyboardDevice(AxisMapping(max_speed_m_s=0.02), jaw_rate_rad_s=0.5, clock=clock)
    assert kb.latest() is None
    kb.connect()
    kb.press("Right")
    clock.advance(1.0)
    kb.release("right")
    clock.advance(1.0)
    s = kb.latest()
    assert np.allclose(s.pose[:3], [0.02, 0, 0])
    kb.press("w")
    kb.press("e")
    clock.advance(0.5)
    s = kb.latest()
    d = 0.02 / np.sqrt(2) * 0.5  # diagonal speed limited to max_speed_m_s in norm
    assert np.allclose(s.pose[:3], [0.02, d, d])
    assert np.allclose(s.twist[:3], [0, 0.02 / np.sqrt(2), 0.02 / np.sqrt(2)])
    kb.release("w")
    kb.release("e")
    assert not s.buttons.clutch
    kb.press("space")
    kb.press("space")  # key repeat: no second toggle
    assert kb.latest().buttons.clutch
    kb.release("space")
    kb.press(" ")
    kb.release(" ")
    assert not kb.latest().buttons.clutch
    kb.press("p")
    assert kb.latest().buttons.operator_present
    kb.press("]")
    clock.advance(1.0)
    assert kb.latest().jaw == pytest.approx(0.5)
    clock.advance(5.0)
    assert kb.latest().jaw == pytest.approx(1.0)  # clamped at jaw_max_rad
    kb.release("]")
    kb.press("[")
    clock.advance(0.5)
    assert kb.latest().jaw == pytest.approx(0.75)
    kb.disconnect()
    assert kb.latest() is None


def test_keyboard_is_thread_safe() -> None:
    kb = KeyboardDevice()
    kb.connect()
    stop = threading.Event()

    def typist() -> None:
        while not stop.is_set():
            kb.press("a")
            kb.release("a")

    th = threading.Thread(target=typist)
    th.start()
    try:
        for _ in range(300):
            s = kb.latest()
            assert abs(np.linalg.norm(s.pose[3:]) - 1) < 1e-9
    finally:
        stop.set()
        th.join()


def test_hand_reclutches_like_a_surgeon_unless_scripted() -> None:
    hand = SyntheticHand(seed=1)
    assert hand.clutch_at(0.0) and hand.clutch_at(2.4)
    assert not hand.clutch_at(2.55) and hand.clutch_at(2.75)  # released 0.2 s every 2.5 s
    assert not hand.clutch_at(5.1)
    steady = SyntheticHand(seed=1, reclutch_every_s=None)
    assert all(steady.clutch_at(t) for t in (0.0, 2.55, 5.1))
