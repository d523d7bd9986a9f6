"""Rewrite one benchmark's section of bench/README.md (between its ``<!-- name:start/end -->`` markers)."""

from __future__ import annotations

from pathlib import Path

README_PATH = Path(__file__).resolve().parent / "README.md"


def replace_section(name: str, heading: str, section: str, path: Path = README_PATH) -> None:
    """Put ``section`` between the markers of ``name``; append a new ``heading`` + markers if absent."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8")
    start, end = text.find(start_marker), text.find(end_marker)
    if start == -1 or end == -1:
        text = text.rstrip("\n") + f"\n\n{heading}\n{start_marker}\n{section.strip()}\n{end_marker}\n"
    else:
        text = text[: start + len(start_marker)] + "\n" + section.strip() + "\n" + text[end:]
    path.write_text(text, encoding="utf-8")
