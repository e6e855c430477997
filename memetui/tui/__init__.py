"""The Textual app: query bar, result grid of terminal images, SAE feature panel, status bar."""
