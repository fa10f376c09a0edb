"""The surgeon side: input devices, the 1 kHz console loop, the display, force feedback, recording.

- ``master_console/console.py``: :class:`~master_console.console.ConsoleLoop`, device → tremor
  filter → clutch and scaling → link at 1 kHz on absolute deadlines (SCHED_FIFO where permitted),
  force feedback to the device, telemetry to the display, everything to the recorder;
- ``master_console/cli.py``: ``master-console --sim`` / ``--connect``, settings from
  ``master_console/config.py`` (TOML, flags override) and the input-device factory;
- ``master_console/devices.py``: the :class:`~master_console.devices.InputDevice` interface,
  threaded devices, rate integration and axis mapping, the data-glove stream, replay, keyboard;
- ``master_console/joystick.py``: gamepads/joysticks (pygame/SDL) and the 3Dconnexion
  SpaceMouse (pyspacemouse); ``master_console/virtual_joystick.py``: SDL's virtual joystick;
- ``master_console/synthetic.py``: a seeded synthetic surgeon hand with physiological tremor;
- ``master_console/haptics.py``: force feedback with a time-domain passivity controller, and a
  simulated haptic handle;
- ``master_console/display.py``: the console view (video, force, link health, console state) in
  its own process: a window, or PNG snapshots when there is no screen;
- ``master_console/recording.py``: the crash-safe session recorder and its loader.

This package uses ``filters`` and ``network`` only.
"""
