"""Text in images: the OCR engine (engine.py) and generated memes for tests and corpora (render.py)."""
