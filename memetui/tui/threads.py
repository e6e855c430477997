"""Hand results from worker threads to the UI thread without failing while the app shuts down."""

from __future__ import annotations


def call_from_worker(app, callback, *args) -> bool:
    """Run `callback(*args)` on `app`'s thread and wait; False (nothing run) once the app stopped.

    A worker still searching when the user quits must end quietly, not with a traceback.
    """
    if app is None or not app.is_running:
        return False
    try:
        app.call_from_thread(callback, *args)
    except RuntimeError:  # the app closed while this call waited for its event loop
        return False
    return True
