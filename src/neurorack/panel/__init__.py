"""The web faceplate: the module on screen, live, in any browser (SPEC §4; issue 5).

``serve_panel(engine)`` serves a page with the OLED screen and its menus (the device mode's own
renderer), the encoder and button, four CV knobs, two gates, the LED, the current impact's waveform,
spectrogram and descriptor curves against the model's anchors, model selection and recording; the
browser plays the impact itself (WebAudio) when the engine has no audio device::

    from neurorack.engine import Engine
    from neurorack.panel import serve_panel

    with Engine(audio="null") as engine:
        panel = serve_panel(engine)          # http://127.0.0.1:8000/
        print(panel.url)
        ...
        panel.stop()

Modules: ``server`` (FastAPI app, :class:`PanelServer`), ``messages`` (what a page may send),
``security`` (token, Host and Origin checks), ``hub`` (status/screen/impact publishing, bounded
per-client queues), ``views`` (waveform, spectrogram, curves, binary frames), ``static/`` (the page).
"""

from neurorack.panel.server import PanelServer, serve_panel

__all__ = ["PanelServer", "serve_panel"]
