"""bench/readme_section.py: the one writer every benchmark's README section goes through."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("readme_section", REPO_ROOT / "bench" / "readme_section.py")
readme_section = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_section)


def test_replaces_only_its_own_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# B\n<!-- a:start -->\nold a\n<!-- a:end -->\n<!-- b:start -->\nold b\n<!-- b:end -->\ntail\n",
        encoding="utf-8",
    )
    readme_section.replace_section("a", None, "\nnew a\n\n", readme)
    assert readme.read_text(encoding="utf-8") == (
        "# B\n<!-- a:start -->\nnew a\n<!-- a:end -->\n<!-- b:start -->\nold b\n<!-- b:end -->\ntail\n"
    )
    assert readme_section.read_section("b", readme) == "\nold b\n"


def test_missing_section_is_appended_under_a_heading_or_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# B\n", encoding="utf-8")
    with pytest.raises(LookupError, match="<!-- c:start -->"):
        readme_section.replace_section("c", None, "x", readme)
    assert readme.read_text(encoding="utf-8") == "# B\n"  # nothing half-written
    readme_section.replace_section("c", "## C", "x", readme)
    assert readme.read_text(encoding="utf-8") == "# B\n\n## C\n<!-- c:start -->\nx\n<!-- c:end -->\n"
    assert readme_section.read_section("d", readme) == ""


def test_markers_out_of_order_are_named(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("<!-- e:end -->\n<!-- e:start -->\n", encoding="utf-8")
    with pytest.raises(LookupError, match="not both there, in that order"):
        readme_section.replace_section("e", "## E", "x", readme)
