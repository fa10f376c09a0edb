"""The surgeon side (in progress; see issue 5).

Landed so far:

- ``master_console/console.py``: the 1 kHz console loop (device → tremor filter → clutch and
  scaling → link), and ``master_console/cli.py``: ``master-console --sim`` / ``--connect``;
- ``master_console/devices.py``: the :class:`~master_console.devices.InputDevice` interface,
  devices read on their own thread, rate-to-pose integration with axis mapping, the data glove
  stream (receiver and sender, documented message format), replay of a recording, and a keyboard
  state machine;
- ``master_console/synthetic.py``: a seeded synthetic surgeon hand (voluntary reaches plus
  physiological tremor at the published amplitudes) for headless runs and benchmarks;
- ``master_console/recording.py``: the crash-safe session recorder and its loader.

Still to come: force feedback, the display, joystick and SpaceMouse, and meeting the loop-timing
target on a shared 2-core machine. This package uses ``filters`` and ``network`` only.
"""
