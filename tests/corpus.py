"""Access to the shared real-world mail corpus (``../shared/corpus`` beside the checkout).

Tests that need it call :func:`corpus_dir`, which skips the test with a visible reason
when the folder is absent (copyleft files are never copied into this repository).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_path() -> Path:
    override = os.environ.get("HELPDESKD_CORPUS")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "corpus"


def corpus_dir() -> Path:
    path = corpus_path()
    if not (path / "MANIFEST.tsv").is_file():
        pytest.skip(f"mail corpus not found at {path} (set HELPDESKD_CORPUS)")
    return path


@dataclass(frozen=True)
class CorpusEntry:
    file: str
    source_repo: str
    license: str
    kind: str
    client: str
    expected_file: str
    tags: frozenset[str]
    expected_basis: str

    def read(self) -> bytes:
        return (corpus_path() / self.file).read_bytes()


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def corpus_entries() -> list[CorpusEntry]:
    """Every message of MANIFEST.tsv joined with its TAGS.tsv row; [] without the corpus."""
    path = corpus_path()
    if not (path / "MANIFEST.tsv").is_file():
        return []
    tags = {row["file"]: row for row in _read_tsv(path / "TAGS.tsv")}
    entries = []
    for row in _read_tsv(path / "MANIFEST.tsv"):
        extra = tags.get(row["file"], {})
        entries.append(
            CorpusEntry(
                file=row["file"],
                source_repo=row["source_repo"],
                license=row["license"],
                kind=row["kind"],
                client=row.get("client", "") or "",
                expected_file=row.get("expected_file", "") or "",
                tags=frozenset((extra.get("tags") or "").split()),
                expected_basis=extra.get("expected_basis", "") or "",
            )
        )
    return entries
