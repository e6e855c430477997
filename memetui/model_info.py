"""ModelInfo: the identity of the CLIP model behind an index (shared by embed and index)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelMismatchError


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the CLIP model that produced an index's embeddings."""

    name: str
    """open_clip model (config) name, e.g. 'ViT-B-32' or 'memetui-demo-clip'."""
    pretrained: str | None
    """open_clip pretrained tag, or a checkpoint file name/path; None for random weights."""
    dim: int
    """Embedding dimension."""
    sha256: str
    """Hash of the checkpoint file (or of name + tag for hub weights): the identity that counts."""

    def check_compatible(self, other: "ModelInfo", what: str = "query") -> None:
        """Raise ModelMismatchError unless `other` is the same model as this one."""
        if self.sha256 != other.sha256 or self.dim != other.dim:
            raise ModelMismatchError(
                f"{what} model {other.name} ({other.pretrained}, dim {other.dim}, {other.sha256[:12]}) "
                f"does not match the index model {self.name} ({self.pretrained}, dim {self.dim}, "
                f"{self.sha256[:12]})"
            )
