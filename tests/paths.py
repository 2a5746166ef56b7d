"""Where tests find the repository and the shared real-world corpus (``../shared`` beside it)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "meshes"
