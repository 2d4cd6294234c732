"""The page as people see it, at a desktop's width and a phone's: nothing wider than the screen, every control
within reach, the examples by title, and a screenshot compared with the committed one (tests/web/reference/).

The comparison is tolerant: the page is drawn in DejaVu Sans (Debian's fonts-dejavu-core, what CI installs)
whatever this machine's default font, the clock and the locale are fixed, the time a run took is masked, and
a pixel counts as changed only when it differs visibly after a 1 px blur, so that anti-aliasing and sub-pixel
positions do not; a changed layout moves whole blocks and exceeds the share allowed. After a deliberate change
of the page, `UPDATE_SCREENSHOTS=1` writes the new references (look at them before committing them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageFilter
from playwright.async_api import Page, expect

from agent_harness import running_agent

OpenPage = Callable[..., AbstractAsyncContextManager[Page]]  # tests/web/conftest.py's open_page

REFERENCE = Path(__file__).resolve().parent / "reference"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SAME_EVERYWHERE = {"locale": "en-US", "timezone_id": "UTC"}  # the history's dates, with the clock fixed
SIZES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}, **SAME_EVERYWHERE},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, **SAME_EVERYWHERE},
}
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
VISIBLE = 48  # of 255, in any colour channel: a difference a person notices
TILE = 32  # px: the page is judged square by square, as a change is local and anti-aliasing noise is thin
CHANGED_AT_MOST = 0.25  # of a square's pixels: a moved button or a recoloured one is far more
# Every control a person uses, and whether any of it lies outside the viewport (or makes the page scroll sideways).
OUT_OF_REACH = """() => {
  const width = document.documentElement.clientWidth;
  const controls = [...document.querySelectorAll("button, input, select, textarea, summary, a, label.button")]
    .filter((node) => node.getClientRects().length);
  return {width, scrollWidth: document.documentElement.scrollWidth, outside: controls
    .filter((node) => { const box = node.getBoundingClientRect(); return box.left < 0 || box.right > width; })
    .map((node) => `${node.tagName.toLowerCase()}#${node.id} ${node.textContent.trim().slice(0, 30)}`)};
}"""


@pytest.fixture
def dejavu() -> None:
    if not DEJAVU.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{DEJAVU} is missing; .ci/run installs Debian's fonts-dejavu-core")
        pytest.skip("DejaVu Sans is not installed (apt-get install fonts-dejavu-core)")


@pytest.fixture
async def site(double: str) -> AsyncIterator[str]:
    async with running_agent(comfyui_url=double) as agent:
        yield str(agent.make_url("/app/"))


def visibly_changed(actual: Image.Image, reference: Image.Image) -> Image.Image:
    """White where the two differ visibly once both are blurred by 1 px, black elsewhere."""
    blurred = [image.convert("RGB").filter(ImageFilter.GaussianBlur(1)) for image in (actual, reference)]
    red, green, blue = ImageChops.difference(*blurred).split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda level: 255 if level > VISIBLE else 0)


def most_changed_square(changed: Image.Image) -> tuple[float, tuple[int, int]]:
    """The share of changed pixels in the square that has most, and where that square is."""
    worst = (0.0, (0, 0))
    for top in range(0, changed.height, TILE):
        for left in range(0, changed.width, TILE):
            square = changed.crop((left, top, min(left + TILE, changed.width), min(top + TILE, changed.height)))
            share = square.histogram()[255] / (square.width * square.height)
            worst = max(worst, (share, (left, top)))
    return worst


def compare_with_reference(shot: Path, size: str) -> None:
    """The screenshot against the committed one; what changed is left beside the screenshot when too much did."""
    reference = REFERENCE / f"{size}.png"
    if os.environ.get("UPDATE_SCREENSHOTS"):
        REFERENCE.mkdir(exist_ok=True)
        reference.write_bytes(shot.read_bytes())
        return
    with Image.open(shot) as actual, Image.open(reference) as expected:
        assert actual.size == expected.size, (
            f"the page is {actual.size} at {size} size, the reference {expected.size}: the layout changed "
            f"(see {shot}; UPDATE_SCREENSHOTS=1 after a deliberate change)")
        changed = visibly_changed(actual, expected)
        share, (left, top) = most_changed_square(changed)
        if share > CHANGED_AT_MOST:
            changed.save(shot.with_name(f"look-{size}-changed.png"))
        assert share <= CHANGED_AT_MOST, (
            f"{share:.0%} of the {TILE} px square at x={left}, y={top} differs from {reference} "
            f"(see {shot} and look-{size}-changed.png)")


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_page_fits_the_screen_and_looks_as_it_did(
        open_page: OpenPage, site: str, size: str, artifacts: Path, dejavu: None) -> None:
    async with open_page(**SIZES[size]) as page:
        await page.clock.set_fixed_time(NOW)
        await page.goto(site)
        await expect(page.locator("#readiness")).to_have_text("ComfyUI ready")
        await expect(page.locator("#examples option")).to_have_text(["choose…", "Image to image", "Text to image"])
        await page.select_option("#examples", label="Text to image")
        await expect(page.locator("#workflow-name")).to_have_text("Stable Diffusion 1.5: an image from a prompt.")
        await page.fill("[id='prompt']", "a lighthouse at dusk")
        await page.fill("[id='seed']", "7")
        await page.fill("[id='width']", "64")
        await page.fill("[id='height']", "64")
        await page.click("#run")
        await expect(page.locator("#runs .run[data-status='succeeded']")).to_have_count(1, timeout=30_000)
        await expect(page.locator("#gallery img")).to_have_js_property("naturalWidth", 64)
        await expect(page.locator("#history .run")).to_have_count(1)
        await page.locator("#own summary").click()  # its controls are checked too
        await expect(page.locator("#paste")).to_be_visible()
        reach = await page.evaluate(OUT_OF_REACH)
        assert reach["scrollWidth"] <= reach["width"] and reach["outside"] == [], reach
        await page.add_style_tag(content="* { font-family: 'DejaVu Sans' !important; }")
        shot = artifacts / f"look-{size}.png"
        await page.screenshot(path=str(shot), full_page=True, animations="disabled", caret="hide",
                              mask=[page.locator("#runs .elapsed")])  # the one thing that varies: a time taken
        compare_with_reference(shot, size)
