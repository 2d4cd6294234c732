"""Write what the code declares into the documents that repeat it: the settings of agent/config.py into README.md
and the contract's `x-settings`, and the contract's error kinds into README.md.

`python tests/sync_docs.py` rewrites them; tests/contract/test_contract.py fails while any is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.api.contract import CONTRACT, contract  # noqa: E402
from agent.config import SETTINGS, settings_table  # noqa: E402

README = REPO / "README.md"
SETTINGS_BLOCK = ("<!-- settings: written by `python tests/sync_docs.py` from agent/config.py -->\n",
                  "<!-- /settings -->\n")
KINDS_BLOCK = ("<!-- error kinds: written by `python tests/sync_docs.py` from the contract -->\n",
               "<!-- /error kinds -->\n")
SPEC_MARK = "x-settings:"


def settings_entries() -> list[dict[str, Any]]:
    return [{"name": setting.env[0], **({"also": list(setting.env[1:])} if setting.env[1:] else {}),
             "flag": setting.flag, "default": setting.default, "meaning": setting.help} for setting in SETTINGS]


def error_kinds_table(spec: dict[str, Any]) -> str:
    rows = ["| kind | status | when |", "| --- | --- | --- |"]
    rows += [f"| `{kind}` | {entry['status']} | {entry['meaning']} |" for kind, entry in spec["x-error-kinds"].items()]
    return "\n".join(rows) + "\n"


def _with_block(text: str, block: tuple[str, str], content: str) -> str:
    head, start, rest = text.partition(block[0])
    _, end, tail = rest.partition(block[1])
    if not start or not end:
        raise ValueError(f"README.md lacks the markers {block[0].strip()} ... {block[1].strip()}")
    return head + block[0] + content + block[1] + tail


def readme_with_tables(text: str, spec: dict[str, Any]) -> str:
    return _with_block(_with_block(text, SETTINGS_BLOCK, settings_table()), KINDS_BLOCK, error_kinds_table(spec))


def spec_with_settings(text: str) -> str:
    head, mark, _ = text.rpartition("\n" + SPEC_MARK)
    if not mark:
        raise ValueError(f"the contract lacks its {SPEC_MARK} section (it must be the last one)")
    body = yaml.safe_dump({SPEC_MARK[:-1]: settings_entries()}, sort_keys=False, allow_unicode=True, width=100)
    return head + "\n" + body


def main() -> None:
    CONTRACT.write_text(spec_with_settings(CONTRACT.read_text()))
    contract.cache_clear()
    README.write_text(readme_with_tables(README.read_text(), contract()))


if __name__ == "__main__":
    main()
