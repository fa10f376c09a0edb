"""In-process network impairment emulator (a portable stand-in for Linux netem).

Linux netem is not available on the machines this project runs on, so impairment is applied inside
the process, per message flow and per direction: the sender (or receiver) hands every message to an
:class:`Impairment`, which either drops it or schedules it for release at a later time; the caller
polls :meth:`Impairment.pop_due` and passes released messages on.

Model (per message, in this order):

1. **Outage**: an outage schedule is a seeded sequence of ``[start, end)`` intervals, anchored at
   the first :meth:`~Impairment.submit` time.  The gap from the end of one outage to the start of
   the next is exponential with mean ``outage_every_s``; the outage length is *uniform* in
   ``[0.5, 1.5] * outage_ms`` (bounded, so a single outage never lasts many times the mean).  Every
   message submitted during an outage is lost (``dropped_outage``); messages already in flight are
   still delivered.
2. **Gilbert–Elliott burst loss** (``dropped_burst``): a two-state Markov chain advanced once per
   submitted message (so burst lengths are counted in messages, not seconds: at 1 kHz a mean
   bad-state sojourn of ``1/ge_p_bad_to_good = 20`` messages is 20 ms).  The loss decision uses the
   current state, then the chain transitions.  The chain starts in a state drawn from its
   stationary distribution.
3. **Independent random loss** (``dropped_random``) with probability ``loss``.
4. **Bandwidth queue** (only if ``bandwidth_kbps > 0``): a FIFO single-server link; serialisation
   takes ``nbytes * 8 / (bandwidth_kbps * 1000)`` s.  A message whose queueing + serialisation time
   would exceed ``queue_limit_ms`` is tail-dropped (``dropped_queue``).  Lost messages (1–3) never
   occupy the queue.
5. **Delay**: ``release = tx_end + delay_ms + jitter`` where ``tx_end`` is the end of
   serialisation (the submit time when there is no bandwidth cap) and ``jitter`` is a zero-mean
   sample with standard deviation ``jitter_ms`` ("normal", or "pareto": a Pareto with shape 2.5,
   shifted and scaled to zero mean and the same standard deviation; its tail is heavy, to the
   right).  ``delay + jitter`` is clipped at zero, so a message is never released before it was
   sent.  With probability ``reorder`` a message is additionally held back ``reorder_gap_ms``
   (``reordered``), so later messages overtake it.  As with netem, jitter alone may also reorder
   messages; that is intended.

All times are integer nanoseconds from a monotonic clock and are always passed in, never read, so
the emulator runs equally well on virtual time.  Given the same profile, seed and sequence of
``submit()`` calls, drops and release times are identical.  Three independent ``random.Random``
streams are derived from the seed: loss (GE + random), delay (jitter + reorder) and outages;
changing e.g. the jitter therefore does not change which messages are lost.

Profiles are loaded from TOML: the built-in ``network/profiles.toml``, the ``*.toml`` files in the
directory named by the environment variable ``TELESURGERY_PROFILES_DIR``, or an explicit
``path/to/file.toml[:NAME]``.  Delays in profiles are *one-way*; a profile is meant to be applied
to both directions, so the nominal round trip is ``2 * delay_ms``.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import logging
import math
import os
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "JITTER_DISTRIBUTIONS",
    "PROFILES_DIR_ENV",
    "Impairment",
    "ImpairmentProfile",
    "builtin_profiles",
    "get_profile",
    "load_profiles",
    "profile_names",
]

#: Environment variable naming a directory of user profile files (``*.toml``).
PROFILES_DIR_ENV = "TELESURGERY_PROFILES_DIR"
#: Supported jitter distributions.
JITTER_DISTRIBUTIONS = ("normal", "pareto")
#: Shape of the Pareto used for heavy-tailed jitter (finite variance needs shape > 2).
PARETO_SHAPE = 2.5
_PARETO_MEAN = PARETO_SHAPE / (PARETO_SHAPE - 1.0)
_PARETO_STD = math.sqrt(PARETO_SHAPE / ((PARETO_SHAPE - 1.0) ** 2 * (PARETO_SHAPE - 2.0)))

_PROBABILITY_FIELDS = (
    "loss",
    "ge_p_good_to_bad",
    "ge_p_bad_to_good",
    "ge_loss_good",
    "ge_loss_bad",
    "reorder",
)
_NON_NEGATIVE_FIELDS = (
    "delay_ms",
    "jitter_ms",
    "reorder_gap_ms",
    "bandwidth_kbps",
    "queue_limit_ms",
    "outage_every_s",
    "outage_ms",
)
_COUNTER_NAMES = (
    "submitted",
    "delivered",
    "dropped_random",
    "dropped_burst",
    "dropped_outage",
    "dropped_queue",
    "reordered",
)


@dataclass(frozen=True)
class ImpairmentProfile:
    """Parameters of the impairment of one direction of one message flow.

    Units are in the field names: ``_ms`` milliseconds, ``_s`` seconds, ``_kbps`` kilobits (1000
    bits) per second; probabilities are per message, in [0, 1].  Delays are one-way.
    """

    name: str = "none"
    description: str = ""
    delay_ms: float = 0.0
    """Constant one-way delay added to every message (ms)."""
    jitter_ms: float = 0.0
    """Standard deviation of the zero-mean random extra delay (ms)."""
    jitter_distribution: str = "normal"
    """``"normal"`` or ``"pareto"`` (heavy-tailed, shape 2.5, zero mean, std dev ``jitter_ms``)."""
    loss: float = 0.0
    """Independent random loss probability per message."""
    ge_p_good_to_bad: float = 0.0
    """Gilbert–Elliott: per-message probability of going from the good to the bad state."""
    ge_p_bad_to_good: float = 0.0
    """Gilbert–Elliott: per-message probability of going from the bad to the good state."""
    ge_loss_good: float = 0.0
    """Gilbert–Elliott: loss probability while in the good state."""
    ge_loss_bad: float = 0.0
    """Gilbert–Elliott: loss probability while in the bad state."""
    reorder: float = 0.0
    """Probability that a message is held back an extra ``reorder_gap_ms``."""
    reorder_gap_ms: float = 0.0
    """Extra hold-back of a reordered message (ms)."""
    bandwidth_kbps: float = 0.0
    """Bottleneck rate (kbit/s, 1 kbit = 1000 bit); 0 = unlimited."""
    queue_limit_ms: float = 500.0
    """Tail-drop when queueing + serialisation time of a message would exceed this (ms)."""
    outage_every_s: float = 0.0
    """Mean gap from the end of one outage to the start of the next (s, exponential); 0 = none."""
    outage_ms: float = 0.0
    """Mean outage length (ms); lengths are uniform in [0.5, 1.5] x this."""

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field; raise :class:`ValueError` naming the profile and the problem."""
        where = f"impairment profile {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(
                f"impairment profile name must be a non-empty string, got {self.name!r}"
            )
        if not isinstance(self.description, str):
            raise ValueError(f"{where}: description must be a string, got {self.description!r}")
        if self.jitter_distribution not in JITTER_DISTRIBUTIONS:
            raise ValueError(
                f"{where}: unknown jitter_distribution {self.jitter_distribution!r}; "
                f"valid: {', '.join(JITTER_DISTRIBUTIONS)}"
            )
        for field in _NON_NEGATIVE_FIELDS + _PROBABILITY_FIELDS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: {field} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{where}: {field} must be finite, got {value!r}")
            if value < 0:
                raise ValueError(f"{where}: {field} must not be negative, got {value!r}")
        for field in _PROBABILITY_FIELDS:
            value = getattr(self, field)
            if value > 1:
                raise ValueError(f"{where}: {field} is a probability in [0, 1], got {value!r}")
        if self.queue_limit_ms <= 0:
            raise ValueError(f"{where}: queue_limit_ms must be > 0, got {self.queue_limit_ms!r}")
        # Gilbert–Elliott consistency.
        p, r = self.ge_p_good_to_bad, self.ge_p_bad_to_good
        if p > 0 and r == 0:
            raise ValueError(
                f"{where}: ge_p_good_to_bad > 0 but ge_p_bad_to_good == 0: the chain would stay in "
                "the bad state forever"
            )
        if p == 0 and (r > 0 or self.ge_loss_bad > 0 or self.ge_loss_good > 0):
            raise ValueError(
                f"{where}: Gilbert–Elliott parameters set but ge_p_good_to_bad == 0, so the bad "
                "state is never entered (for plain independent loss use 'loss')"
            )
        if p > 0 and self.ge_loss_bad == 0:
            raise ValueError(f"{where}: Gilbert–Elliott transitions set but ge_loss_bad == 0")
        if p > 0 and self.ge_loss_bad < self.ge_loss_good:
            raise ValueError(
                f"{where}: ge_loss_bad ({self.ge_loss_bad}) must be >= ge_loss_good "
                f"({self.ge_loss_good})"
            )
        if self.reorder > 0 and self.reorder_gap_ms == 0:
            raise ValueError(f"{where}: reorder > 0 needs reorder_gap_ms > 0")
        if (self.outage_every_s > 0) != (self.outage_ms > 0):
            raise ValueError(
                f"{where}: outages need both outage_every_s > 0 and outage_ms > 0 "
                f"(got outage_every_s={self.outage_every_s}, outage_ms={self.outage_ms})"
            )

    # ------------------------------------------------------------------ derived quantities
    @property
    def is_null(self) -> bool:
        """True when the profile changes nothing (messages are released at their submit time)."""
        return (
            self.delay_ms == 0
            and self.jitter_ms == 0
            and self.loss == 0
            and self.ge_p_good_to_bad == 0
            and self.reorder == 0
            and self.bandwidth_kbps == 0
            and self.outage_every_s == 0
        )

    @property
    def ge_bad_fraction(self) -> float:
        """Stationary probability of the Gilbert–Elliott bad state (fraction of messages)."""
        p, r = self.ge_p_good_to_bad, self.ge_p_bad_to_good
        return p / (p + r) if p > 0 else 0.0

    @property
    def ge_loss(self) -> float:
        """Long-run loss fraction of the Gilbert–Elliott chain alone."""
        if self.ge_p_good_to_bad == 0:
            return 0.0
        bad = self.ge_bad_fraction
        return (1.0 - bad) * self.ge_loss_good + bad * self.ge_loss_bad

    @property
    def outage_fraction(self) -> float:
        """Long-run fraction of time spent in outage (duty cycle)."""
        if self.outage_every_s == 0:
            return 0.0
        return self.outage_ms / (self.outage_every_s * 1000.0 + self.outage_ms)

    @property
    def expected_loss(self) -> float:
        """Long-run loss fraction implied by the parameters (random + GE + outage duty cycle).

        The three mechanisms are independent, so ``1 - (1-outage)(1-GE)(1-loss)``.  Bandwidth tail
        drops are not included: they depend on the offered traffic.
        """
        survive = (1.0 - self.outage_fraction) * (1.0 - self.ge_loss) * (1.0 - self.loss)
        return 1.0 - survive

    @property
    def rtt_ms(self) -> float:
        """Nominal round-trip time (ms) when the profile is applied to both directions."""
        return 2.0 * self.delay_ms

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (including ``name``); inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the settable fields (excluding ``name``)."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "name"]

    @classmethod
    def from_dict(cls, name: str, mapping: Mapping[str, Any]) -> ImpairmentProfile:
        """Build a profile called ``name`` from ``mapping`` (e.g. a TOML table).

        Unknown keys raise :class:`ValueError` naming the key and listing the valid ones.  A
        ``name`` key is accepted only if it equals ``name``.  Integers are accepted for floats.
        """
        valid = cls.field_names()
        kwargs: dict[str, Any] = {}
        for key, value in mapping.items():
            if key == "name":
                if value != name:
                    raise ValueError(
                        f"impairment profile {name!r}: 'name' key {value!r} does not match {name!r}"
                    )
                continue
            if key not in valid:
                raise ValueError(
                    f"impairment profile {name!r}: unknown key {key!r}; valid keys: "
                    f"{', '.join(valid)}"
                )
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            kwargs[key] = value
        return cls(name=name, **kwargs)


# ---------------------------------------------------------------------- profile files
def _parse_profiles(text: str, source: str) -> dict[str, ImpairmentProfile]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from exc
    profiles: dict[str, ImpairmentProfile] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(
                f"{source}: top-level key {name!r} is not a table; write each profile as [{name}]"
            )
        try:
            profiles[name] = ImpairmentProfile.from_dict(name, table)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc
    return profiles


@functools.lru_cache(maxsize=1)
def _builtin_profiles_cached() -> dict[str, ImpairmentProfile]:
    text: str
    try:
        from importlib.resources import files

        text = files(__package__ or "network").joinpath("profiles.toml").read_text("utf-8")
    except (ImportError, OSError, TypeError, ValueError):
        # e.g. ``network`` imported as a namespace package with a non-directory path entry.
        text = Path(__file__).with_name("profiles.toml").read_text("utf-8")
    return _parse_profiles(text, "built-in profiles.toml")


def builtin_profiles() -> dict[str, ImpairmentProfile]:
    """The built-in profiles from ``network/profiles.toml``, by name, in file order."""
    return dict(_builtin_profiles_cached())


def load_profiles(path: str | os.PathLike[str]) -> dict[str, ImpairmentProfile]:
    """Load every profile defined in the TOML file ``path`` (one ``[name]`` table per profile)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read impairment profile file {str(p)!r}: {exc}") from exc
    return _parse_profiles(text, str(p))


def _user_profiles() -> dict[str, ImpairmentProfile]:
    """Profiles from the ``*.toml`` files in ``$TELESURGERY_PROFILES_DIR`` (empty if unset)."""
    directory = os.environ.get(PROFILES_DIR_ENV)
    if not directory:
        return {}
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"{PROFILES_DIR_ENV}={directory!r} is not a directory")
    builtin = _builtin_profiles_cached()
    found: dict[str, ImpairmentProfile] = {}
    origin: dict[str, Path] = {}
    for file in sorted(d.glob("*.toml")):
        for name, profile in load_profiles(file).items():
            if name in builtin:
                raise ValueError(
                    f"{file}: profile {name!r} has the name of a built-in profile; rename it"
                )
            if name in found:
                raise ValueError(f"profile {name!r} is defined in both {origin[name]} and {file}")
            found[name] = profile
            origin[name] = file
    return found


def profile_names() -> list[str]:
    """Names usable with :func:`get_profile`: built-ins in file order, then user profiles sorted."""
    return list(_builtin_profiles_cached()) + sorted(_user_profiles())


def get_profile(name_or_path: str) -> ImpairmentProfile:
    """Look up a profile.

    ``name_or_path`` is a built-in name, a name defined in a ``*.toml`` file in
    ``$TELESURGERY_PROFILES_DIR``, ``path/to/file.toml`` (the file must define exactly one profile)
    or ``path/to/file.toml:NAME``.  Unknown names raise :class:`ValueError` listing the available
    ones.
    """
    spec = str(name_or_path)
    path_part, sep, sub = spec.rpartition(":")
    if sep and path_part.endswith(".toml"):
        profiles = load_profiles(path_part)
        if sub not in profiles:
            raise ValueError(
                f"no profile {sub!r} in {path_part}; available: {', '.join(profiles) or '(none)'}"
            )
        return profiles[sub]
    if spec.endswith(".toml"):
        profiles = load_profiles(spec)
        if len(profiles) != 1:
            raise ValueError(
                f"{spec} defines {len(profiles)} profiles ({', '.join(profiles) or 'none'}); "
                f"choose one with {spec}:NAME"
            )
        return next(iter(profiles.values()))
    builtin = _builtin_profiles_cached()
    if spec in builtin:
        return builtin[spec]
    user = _user_profiles()
    if spec in user:
        return user[spec]
    available = list(builtin) + sorted(user)
    hint = "" if os.environ.get(PROFILES_DIR_ENV) else f" (user profiles: set {PROFILES_DIR_ENV})"
    raise ValueError(
        f"unknown impairment profile {spec!r}; available: {', '.join(available)}{hint}"
    )


# ---------------------------------------------------------------------- the emulator
class Impairment:
    """Impairs one direction of one message flow.

    Not thread-safe.  Time is passed in (integer ns from a monotonic clock, non-decreasing across
    calls) and never read inside, so it is testable with virtual time.  ``counters`` holds:
    ``submitted``, ``delivered``, ``dropped_random``, ``dropped_burst``, ``dropped_outage``,
    ``dropped_queue`` and ``reordered`` (held back by the reorder option).  At any time
    ``submitted == delivered + pending() + sum(dropped_*)``.
    """

    __slots__ = (
        "_bw_ns_per_byte",
        "_delay_ns",
        "_delay_rng",
        "_gap_ns",
        "_ge_bad",
        "_heap",
        "_jitter_ns",
        "_link_free_ns",
        "_loss_rng",
        "_null",
        "_outage_end",
        "_outage_prev",
        "_outage_rng",
        "_outage_start",
        "_pareto",
        "_queue_limit_ns",
        "_seq",
        "counters",
        "profile",
        "seed",
    )

    def __init__(self, profile: ImpairmentProfile, seed: int = 0) -> None:
        """Create the emulator for ``profile``; ``seed`` selects the random streams."""
        self.profile = profile
        self.seed = seed
        self.counters: dict[str, int] = dict.fromkeys(_COUNTER_NAMES, 0)
        self._heap: list[tuple[int, int, object]] = []
        self._seq = 0
        self._null = profile.is_null
        self._loss_rng = random.Random(f"telesurgery.impairment:{seed}:loss")
        self._delay_rng = random.Random(f"telesurgery.impairment:{seed}:delay")
        self._outage_rng = random.Random(f"telesurgery.impairment:{seed}:outage")
        self._delay_ns = profile.delay_ms * 1e6
        self._jitter_ns = profile.jitter_ms * 1e6
        self._pareto = profile.jitter_distribution == "pareto"
        self._gap_ns = round(profile.reorder_gap_ms * 1e6)
        self._bw_ns_per_byte = 8e6 / profile.bandwidth_kbps if profile.bandwidth_kbps > 0 else 0.0
        self._queue_limit_ns = profile.queue_limit_ms * 1e6
        self._link_free_ns = 0
        # Gilbert–Elliott initial state from the stationary distribution.
        self._ge_bad = (
            profile.ge_p_good_to_bad > 0 and self._loss_rng.random() < profile.ge_bad_fraction
        )
        # Outage schedule: current interval [start, end) and the previous one; None until anchored.
        self._outage_start: int | None = None
        self._outage_end = 0
        self._outage_prev: tuple[int, int] = (0, 0)

    # ------------------------------------------------------------------ outages
    def _next_outage(self, after_ns: int) -> None:
        p = self.profile
        gap = self._outage_rng.expovariate(1.0 / (p.outage_every_s * 1e9))
        length = p.outage_ms * 1e6 * (0.5 + self._outage_rng.random())
        start = after_ns + round(gap)
        self._outage_start = start
        self._outage_end = start + max(1, round(length))

    def in_outage(self, now_ns: int) -> bool:
        """True if ``now_ns`` falls inside an outage interval (False before the first submit)."""
        if self._outage_start is None:
            return False
        while now_ns >= self._outage_end:
            self._outage_prev = (self._outage_start, self._outage_end)
            self._next_outage(self._outage_end)
        if now_ns >= self._outage_start:
            return True
        prev_start, prev_end = self._outage_prev
        return prev_start <= now_ns < prev_end

    # ------------------------------------------------------------------ data path
    def submit(self, now_ns: int, item: object, nbytes: int) -> bool:
        """Offer ``item`` (``nbytes`` bytes on the wire) sent at ``now_ns`` (ns).

        Returns False if it was dropped (the reason is counted), True if it was queued for release.
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        counters = self.counters
        counters["submitted"] += 1
        self._seq += 1
        if self._null:
            heapq.heappush(self._heap, (now_ns, self._seq, item))
            return True
        p = self.profile
        # 1. outages
        if p.outage_every_s > 0:
            if self._outage_start is None:
                self._next_outage(now_ns)
            if self.in_outage(now_ns):
                counters["dropped_outage"] += 1
                self._advance_ge()
                return False
        # 2. Gilbert–Elliott burst loss, 3. random loss
        if p.ge_p_good_to_bad > 0 and self._advance_ge():
            counters["dropped_burst"] += 1
            return False
        if p.loss > 0 and self._loss_rng.random() < p.loss:
            counters["dropped_random"] += 1
            return False
        # 4. bandwidth queue
        start = now_ns
        if self._bw_ns_per_byte:
            link_free = self._link_free_ns
            ser = nbytes * self._bw_ns_per_byte
            backlog = link_free - now_ns if link_free > now_ns else 0
            if backlog + ser > self._queue_limit_ns:
                counters["dropped_queue"] += 1
                return False
            start = (link_free if link_free > now_ns else now_ns) + round(ser)
            self._link_free_ns = start
        # 5. delay, jitter, reorder
        extra = self._delay_ns
        if self._jitter_ns:
            if self._pareto:
                z = (self._delay_rng.paretovariate(PARETO_SHAPE) - _PARETO_MEAN) / _PARETO_STD
            else:
                z = self._delay_rng.gauss(0.0, 1.0)
            extra += z * self._jitter_ns
            if extra < 0.0:
                extra = 0.0
        release = start + round(extra)
        if p.reorder > 0 and self._delay_rng.random() < p.reorder:
            release += self._gap_ns
            counters["reordered"] += 1
        heapq.heappush(self._heap, (release, self._seq, item))
        return True

    def _advance_ge(self) -> bool:
        """Decide GE loss for one message in the current state, then transition. True = lost."""
        p = self.profile
        if p.ge_p_good_to_bad == 0:
            return False
        rng = self._loss_rng
        if self._ge_bad:
            lost = rng.random() < p.ge_loss_bad
            if rng.random() < p.ge_p_bad_to_good:
                self._ge_bad = False
        else:
            lost = p.ge_loss_good > 0 and rng.random() < p.ge_loss_good
            if rng.random() < p.ge_p_good_to_bad:
                self._ge_bad = True
        return lost

    def next_release_ns(self) -> int | None:
        """Earliest pending release time (ns), or None when nothing is pending."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ns: int) -> list[object]:
        """Items released by ``now_ns`` (ns), in release-time order (ties: submission order)."""
        heap = self._heap
        if not heap or heap[0][0] > now_ns:
            return []
        out: list[object] = []
        pop = heapq.heappop
        while heap and heap[0][0] <= now_ns:
            out.append(pop(heap)[2])
        self.counters["delivered"] += len(out)
        return out

    def pending(self) -> int:
        """Number of items queued and not yet released."""
        return len(self._heap)

    def __repr__(self) -> str:
        return (
            f"Impairment(profile={self.profile.name!r}, seed={self.seed}, pending={self.pending()})"
        )
