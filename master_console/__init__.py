"""The surgeon side (in progress; see issue 5).

Landed so far:

- ``master_console/devices.py``: the :class:`~master_console.devices.InputDevice` interface,
  devices read on their own thread, rate-to-pose integration with axis mapping, the data glove
  stream (receiver and sender, documented message format), replay of a recording, and a keyboard
  state machine;
- ``master_console/synthetic.py``: a seeded synthetic surgeon hand (voluntary reaches plus
  physiological tremor at the published amplitudes) for headless runs and benchmarks;
- ``master_console/recording.py``: the crash-safe session recorder and its loader.

Still to come: the 1 kHz console loop, force feedback, the display, joystick and SpaceMouse,
and the ``master-console`` command. This package uses ``filters`` and ``network`` only.
"""
