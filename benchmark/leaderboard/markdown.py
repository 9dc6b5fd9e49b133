"""``leaderboard.md``: the leaderboard's tables and charts for a person reading Markdown (GitHub,
``docs/RESULTS.md``)."""
from __future__ import annotations

import os
from pathlib import Path

from .board import Table


def table_markdown(table: Table) -> str:
    """``table`` as a Markdown section: its title, the table, its note."""
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [f"## {table.title}", "", line(table.columns), line(["---"] * len(table.columns))]
    lines += [line(cell.text for cell in row) for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines)


def leaderboard_markdown(title: str, intro: str, tables: list[Table], charts: list[tuple[str, Path]],
                         out: Path) -> str:
    """The whole document: ``intro``, every table, the charts (linked relative to ``out``)."""
    parts = [f"# {title}", "", intro]
    parts += ["", *(section for table in tables for section in (table_markdown(table), ""))]
    if charts:
        parts += ["## Charts", ""]
        parts += [f"![{caption}]({os.path.relpath(path, out)})\n" for caption, path in charts]
    return "\n".join(parts).rstrip() + "\n"
