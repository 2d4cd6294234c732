"""The Dockerfile read as its stages and instructions, for tests/packaging/."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(keyword: str, text: str = DOCKERFILE) -> list[str]:
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(keyword + " ")]


def stages() -> list[tuple[str | None, str]]:
    """Each stage's name (None when unnamed) and text, in order: the last is what a plain `docker build` makes."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE, flags=re.MULTILINE)[1:]
    named = [re.match(r"FROM \S+(?: AS (\S+))?", part) for part in parts]
    return [(match.group(1) if match else None, part) for match, part in zip(named, parts, strict=True)]


def stage(name: str) -> str:
    [text] = [text for stage_name, text in stages() if stage_name == name]
    return text


def final_stage() -> str:
    return stages()[-1][1]


def run_lines(text: str) -> str:
    """A stage's instructions and their continuation lines, comments and blank lines left out."""
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
