"""The Textual app: query bar, result grid of terminal images, SAE feature panel, status bar."""

import os

# Textual paints at most TEXTUAL_FPS frames a second and a repaint waits for the next frame tick;
# at its default of 60 that wait (up to 17 ms) was a third of a keypress's latency. Set before
# textual is imported; a user's own TEXTUAL_FPS wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
