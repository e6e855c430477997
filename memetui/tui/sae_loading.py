"""The app's SAE (or PCA), loaded after its first results: torch, the weights and a PCA fit stay off the first frame.

`memetui` opens the Session with `defer_sae=True`: the first search needs only the memory-mapped
embeddings and the ANN. Once the first results are on screen a worker thread imports torch, loads
the SAE (and resolves the device name when none was given); the UI thread then attaches it and
refreshes, so the panel fills in. Until then the panel's title says "loading features…", `l`/`h`
are queued and stepped once it is attached, and other keys that need the SAE say they are waiting
for it. An index without an SAE opens in PCA mode: its directions are fitted (or read from their
cache) by the same worker, so the first results do not wait for the fit (9.3 s of CPU on a 1M-row
index the first time).
"""

from __future__ import annotations

import gc
from functools import partial

from ..errors import MemetuiError, SAEError
from ..session.features import PanelData
from .threads import call_from_worker

LOADING_TITLE = "loading features…"
NO_SAE = "started without an SAE (PCA and random only)"


def panel(session, mode: str, query, selected, results, defer_pca: bool = False) -> PanelData:
    """The session's PanelData, or an empty panel while its SAE is still loading (or, with `defer_pca`,
    while the background worker fits PCA; otherwise a PCA fit runs here, in the caller's worker)."""
    if mode == "sae" and session.sae_pending is not None:
        return PanelData("sae", None, [], [])
    if mode == "pca" and defer_pca and not session.directions.pca_ready:
        return PanelData("pca", None, [], [])
    return session.features.panel(mode, query, selected, results)


def _pca_pending(session) -> bool:
    """Whether the session opened in PCA mode and its directions are not fitted yet."""
    return session.mode == "pca" and not session.directions.pca_ready


def mark_loading(app) -> None:
    """Title the feature panel "loading features…" while the session's SAE (or PCA) is pending; an app
    that opens in PCA mode leaves the fit to the background worker (`app.defer_pca`)."""
    app.defer_pca = _pca_pending(app.session)
    if app.session.sae_pending is not None or app.defer_pca:
        app.panel.border_title = LOADING_TITLE


def with_sae_if_needed(app, restore) -> None:
    """Run `restore()`; when it needs the SAE still pending (SAEError), load that now and run it again."""
    try:
        restore()
    except SAEError:
        if app.session.sae_pending is None:
            raise
        load_now(app)
        restore()


def waiting(app) -> bool:
    """Whether the SAE is still loading; says so (for keys that need it)."""
    if app.session.sae_pending is None:
        return False
    app.say("the SAE features are still loading; try again in a moment", timeout=3)
    return True


def start(app) -> None:
    """Once per app: load the pending SAE and resolve a device name not yet known, in a worker thread."""
    if getattr(app, "_background_load_started", False):
        return
    app._background_load_started = True
    if app.session.sae_pending is None and app.device_name is not None and not _pca_pending(app.session):
        return
    app.run_worker(partial(_load, app), thread=True, group="sae-load", exit_on_error=False)


def load_now(app) -> None:
    """Load and attach the pending SAE on this thread (a restored query steers along its features)."""
    sae, error = _read_sae(app.session)
    _attach(app, sae, error, None)


def _read_sae(session):
    """(SAEDirections or None, error text or None) of the session's pending SAE."""
    if session.sae_pending is None:
        return None, None
    try:
        return session.load_sae(), None
    except MemetuiError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the app running without the SAE
        text = str(exc).strip().splitlines()
        return None, f"cannot load the SAE: {text[0] if text else type(exc).__name__}"


def _load(app) -> None:
    """The worker: the device name (imports torch), then the SAE; attached on the UI thread."""
    device = None
    if app.device_name is None:
        try:
            from ..devices import pick_device

            device = str(pick_device(None))
        except Exception:  # noqa: BLE001 - the status bar then just says cpu
            device = "cpu"
    pending = app.session.sae_pending is not None
    sae, error = _read_sae(app.session)
    pca = _pca_pending(app.session) or (pending and sae is None)  # without its SAE the app goes on in PCA mode
    if pca:
        try:
            app.session.directions.provider("pca")
        except MemetuiError as exc:
            call_from_worker(app, partial(app.say, f"cannot compute PCA directions: {exc}", severity="error"))
    call_from_worker(app, _attach, app, sae, error, device, pca)


def queue_step(app, sign: int) -> bool:
    """In SAE mode while the SAE loads: keep an `l`/`h` press for when it is attached (True), not lose it."""
    if app.session.mode != "sae" or app.session.sae_pending is None:
        return False
    app.queued_steps.append(sign)
    app.say("stepping once the SAE features have loaded…", timeout=2)
    return True


def _replay_queued_steps(app) -> None:
    """Apply the `l`/`h` presses queued while the SAE loaded (dropped if the app went on without it)."""
    queued, app.queued_steps = app.queued_steps, []
    if app.session.mode != "sae":
        return
    for sign in queued:
        app.action_step(sign)


def _attach(app, sae, error: str | None, device: str | None, pca: bool = False) -> None:
    """UI thread: attach the loaded SAE (or go on without one, saying why) and refresh the view."""
    if device is not None:
        app.device_name = device
    session = app.session
    if session.sae_pending is not None:
        try:
            session.attach_sae(sae)
        except SAEError as exc:
            session.attach_sae(None)
            error = str(exc)
        if error:
            app.say(f"{error}; {NO_SAE}", severity="error", timeout=15)
        app.panel.border_title = None
        gc.freeze()  # torch and the weights stay out of gen-2 scans, as the rest did at the first results
        app.refresh_view()
        _replay_queued_steps(app)
    elif pca:
        app.defer_pca = False
        app.panel.border_title = None
        app.refresh_view()
    elif device is not None:
        app._show_status()
