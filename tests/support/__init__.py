"""Test support shared by every suite: servers (HTTP fault server, SMTP sink), builders
of sources, feeds and pages, and the repository's paths."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"  # read-only corpora and seeds beside the checkout
