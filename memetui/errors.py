"""Typed exceptions raised by the engine; only the CLI and the TUI turn them into messages."""


class MemetuiError(Exception):
    """Base class: a user-facing problem whose message fits on one line."""

    exit_code = 1


class UsageError(MemetuiError):
    """The command line or an argument value is wrong."""

    exit_code = 2


class IndexNotFoundError(MemetuiError):
    """The index folder does not exist or holds no manifest."""


class IndexFormatError(MemetuiError):
    """The index folder exists but is unreadable, corrupt or of an unknown format."""


class ModelMismatchError(MemetuiError):
    """Embeddings from one model were combined with an index built by another."""


class ModelLoadError(MemetuiError):
    """A CLIP model or checkpoint could not be found or loaded."""


class ImageLoadError(MemetuiError):
    """A file is not a decodable image, or is one we refuse (too large, empty)."""


class SAEError(MemetuiError):
    """An SAE checkpoint is missing, corrupt or does not fit the index."""


class QueryError(MemetuiError):
    """A query term or query file is malformed or empty."""


class OcrUnavailableError(MemetuiError):
    """The OCR package or its bundled models are not installed: indexing goes on without text."""


class OcrError(MemetuiError):
    """OCR failed on one image (recorded for that item, never fatal to a build)."""


class IndexBusyError(MemetuiError):
    """Another process holds the index's writer lock."""

    exit_code = 3


class IndexWriteError(MemetuiError):
    """Writing the index failed (disk full, I/O error, read-only folder); the last complete index is intact."""


class IndexDamagedError(IndexFormatError):
    """A derived file (embeddings, graph, manifest count) disagrees with items.sqlite; a build repairs it.

    `index` and `root` name the index folder and its images folder, so the caller can say how to
    repair it; the engine's message does not name commands.
    """

    def __init__(self, message: str, index=None, root=None):
        super().__init__(message)
        self.index = index
        self.root = root


class MissingExtraError(UsageError):
    """A feature needs an optional dependency group (e.g. `pip install 'memetui[scale]'`) that is not installed."""


class RemoteIndexError(MemetuiError):
    """A remote service (a Milvus server, a Ray cluster) cannot be reached, or lacks what the index needs."""
