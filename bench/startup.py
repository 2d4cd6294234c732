"""How soon a new agent process answers: its port (`/healthz`, what FC probes on every new instance) and its
application (`/api/status`, a 404 for an unknown task), beside how long a bare Python with aiohttp takes to start.

    python bench/startup.py [--rounds 10] [--checkout DIR]

`--checkout` measures another checkout's agent (say, a `git worktree` of an earlier commit) beside this one's.

Each round starts `python -m agent` attached to an address where no ComfyUI answers (the ComfyUI start is not
what is measured) and polls both paths every millisecond. The figures are medians and maxima over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import REPO, free_port

POLL = 0.001


def _answers(url: str, expected: int) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == expected)
    except urllib.error.HTTPError as exc:
        return exc.code == expected
    except (TimeoutError, urllib.error.URLError, ConnectionError):
        return False


def _until(url: str, expected: int, started: float) -> float:
    while not _answers(url, expected):
        time.sleep(POLL)
    return time.perf_counter() - started


def one_round(checkout: Path) -> tuple[float, float]:
    port = free_port()
    env = {**os.environ, "AGENT_HOST": "127.0.0.1", "AGENT_PORT": str(port), "TASK_STORE": "memory://",
           "LOG_LEVEL": "warning", "COMFYUI_URL": f"http://127.0.0.1:{free_port()}"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        port_at = _until(f"{base}/healthz", 200, started)
        app_at = _until(f"{base}/api/status?id=nobody", 404, started)
    finally:
        proc.terminate()
        proc.wait(30)
    return port_at, app_at


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aiohttp.web"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--checkout", type=Path, action="append", default=[])
    options = parser.parse_args()
    checkouts = [REPO, *options.checkout]
    figures = {checkout: [one_round(checkout) for _ in range(options.rounds)] for checkout in checkouts}
    rows = [("bare python -c 'import aiohttp.web'", [bare_python() for _ in range(options.rounds)])]
    for checkout, times in figures.items():
        rows += [(f"{checkout.name}: port answers (/healthz)", [port for port, _ in times]),
                 (f"{checkout.name}: application answers", [app for _, app in times])]
    for name, values in rows:
        print(f"{name:45s} median {statistics.median(values) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
