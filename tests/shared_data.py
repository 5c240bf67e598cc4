"""Where the real data lives, for tests that read it; they skip where it is absent.

The real data (/work/shared/data in this setup, see its README) sits beside the
project as ``../shared/data``. It is written by others and not part of the
project, so every test that reads it skips, never fails, where it is absent.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT / ".." / "shared" / "data"


def shared_data_dir() -> Path | None:
    """The real data folder, or None where this checkout has none beside it."""
    return SHARED_DATA.resolve() if SHARED_DATA.is_dir() else None


def shared_data_files(pattern: str) -> list[Path]:
    """Files of the real data matching a glob, sorted; empty when the data is absent.

    For ``pytest.mark.parametrize``: an empty list makes pytest skip the test.
    """
    root = shared_data_dir()
    return sorted(root.glob(pattern)) if root is not None else []


def shared_data_id(path: Path) -> str:
    """A parametrize id: the path inside the real data folder."""
    root = shared_data_dir()
    return str(path.relative_to(root)) if root is not None else path.name
