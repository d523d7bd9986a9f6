"""Read and rewrite one benchmark's section of bench/README.md (between its ``<!-- name:start/end -->`` markers).

Every bench writes its figures through here, so the markers mean the same thing everywhere.
"""

from __future__ import annotations

from pathlib import Path

README_PATH = Path(__file__).resolve().parent / "README.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _bounds(name: str, text: str, path: Path) -> tuple[int, int] | None:
    start_marker, end_marker = markers(name)
    start, end = text.find(start_marker), text.find(end_marker)
    if start == -1 and end == -1:
        return None
    if start == -1 or end < start:
        raise LookupError(
            f"{path}: markers {start_marker} ... {end_marker} are not both there, in that order"
        )
    return start + len(start_marker), end


def read_section(name: str, path: Path = README_PATH) -> str:
    """The text between the markers of ``name`` ('' when the section does not exist yet)."""
    text = path.read_text(encoding="utf-8")
    bounds = _bounds(name, text, path)
    return "" if bounds is None else text[bounds[0] : bounds[1]]


def replace_section(name: str, heading: str | None, section: str, path: Path = README_PATH) -> None:
    """Put ``section`` between the markers of ``name``.

    A missing section is appended under ``heading``; with ``heading=None`` it is a ``LookupError`` (for
    benches whose section has a fixed place in the README).
    """
    text = path.read_text(encoding="utf-8")
    bounds = _bounds(name, text, path)
    if bounds is None:
        start_marker, end_marker = markers(name)
        if heading is None:
            raise LookupError(f"{path}: markers {start_marker} ... {end_marker} not found")
        text = text.rstrip("\n") + f"\n\n{heading}\n{start_marker}\n{section.strip()}\n{end_marker}\n"
    else:
        text = text[: bounds[0]] + "\n" + section.strip() + "\n" + text[bounds[1] :]
    path.write_text(text, encoding="utf-8")
