"""docs/benchmarks.md and docs/benchmarks.png from the engines' results files.

The page is half hand-written: the method, what the figures mean and why they are what
they are. Only the part between the two generated marks is rewritten, so an explanation
is never a sentence generated from a template that the code has since made false.
"""

from __future__ import annotations

from pathlib import Path

from bench.model import Results
from bench.report import tables
from bench.report.chart import chart

BEGIN = "<!-- generated: python -m bench report; edits between these marks are overwritten -->"
END = "<!-- end of generated -->"
ENGINES = ("stock", "current", "remote")


class MarksMissing(ValueError):
    """The page has no generated part to replace."""


def splice(page: str, generated: str) -> str:
    """The page with the text between its marks replaced, the marks and the rest kept."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise MarksMissing(f"the page needs the two lines\n{BEGIN}\n...\n{END}")
    return page[: start + len(BEGIN)] + "\n\n" + generated.strip() + "\n\n" + page[end:]


def generated(runs: list[Results]) -> str:
    sections = [
        ("Runs", tables.setting(runs)),
        (
            "Install layer rebuild",
            [
                "![each engine's modes, and orchestrate's own cost](benchmarks.png)",
                "",
                *tables.modes(runs),
            ],
        ),
        ("Where the time goes (medians; BuildKit's own step timings)", tables.details(runs)),
        ("Warm builds: the build's part and the orchestrator's", tables.split(runs)),
        ("The orchestrator's own cost", tables.costs(runs)),
        ("Parallel builds through one proxy: cold, then warm", tables.parallel(runs)),
        ("Targets", tables.targets(runs)),
    ]
    lines: list[str] = []
    for title, body in sections:
        lines += [f"### {title}", "", *body, ""]
    return "\n".join(lines)


def load(results_dir: Path) -> list[Results]:
    found = [results_dir / f"{name}.json" for name in ENGINES]
    runs = [Results.from_json(path.read_text()) for path in found if path.is_file()]
    if not runs:
        raise SystemExit(f"bench: no results in {results_dir}: run python -m bench --engine ...")
    return runs


def write(results_dir: Path, docs: Path) -> tuple[Path, Path]:
    runs = load(results_dir)
    md, png = docs / "benchmarks.md", docs / "benchmarks.png"
    chart(runs, png)
    md.write_text(splice(md.read_text(), generated(runs)))
    return md, png
