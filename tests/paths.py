"""The one place the tests learn where the repository and the staged real data are."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the repository's parent holds shared/data (locally and in CI); tests that need it skip when it is absent
REAL_DATA = REPO.parent / "shared" / "data"
