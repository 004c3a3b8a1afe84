"""Driving the viewer page: open one in Chromium, log in through the form, open a study, read the
canvas back."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

RENDER_TIMEOUT_MS = 30_000


def log_in(page: Any, base: str, username: str, password: str) -> None:
    """Log in through the viewer's own form (POST /login, session cookie)."""
    page.goto(f"{base}/viewer/")
    page.fill("#login input[name=username]", username)
    page.fill("#login input[name=password]", password)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#studies, .reader", timeout=RENDER_TIMEOUT_MS)


def open_study(page: Any, base: str, study_uid: str) -> None:
    page.goto(f"{base}/viewer/?StudyInstanceUIDs={study_uid}")
    wait_rendered(page)


def wait_rendered(page: Any, index: int = 0) -> None:
    page.wait_for_selector(f".vp[data-index='{index}'][data-rendered]", timeout=RENDER_TIMEOUT_MS)


def wait_slice(page: Any, text: str, index: int = 0) -> None:
    """Wait until the overlay of viewport ``index`` says slice ``text`` (for example "2/5")."""
    page.wait_for_function(
        "([index, text]) => document.querySelector(`.vp[data-index='${index}'] .ov-bl`)"
        "?.textContent.includes(text)",
        arg=[index, text],
        timeout=RENDER_TIMEOUT_MS,
    )


def settled_text(page: Any, selector: str, timeout_s: float = 10.0) -> str:
    """The text of ``selector`` once it stops changing between animation frames (annotation
    labels are redrawn a frame or more after the mouse events that change them)."""
    import time

    deadline = time.monotonic() + timeout_s
    frames = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    previous = None
    while time.monotonic() < deadline:
        page.evaluate(frames)
        text = page.locator(selector).first.text_content() or ""
        if text and text == previous:
            return text
        previous = text
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector} did not settle: last {previous!r}")


def canvas_image(page: Any, index: int = 0) -> np.ndarray:
    """The viewport's canvas as an RGB array (what the user sees, without the overlay text)."""
    url = page.evaluate(
        "(index) => document.querySelector(`.vp[data-index='${index}'] canvas`).toDataURL()",
        index,
    )
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@dataclass(frozen=True)
class Placement:
    """Where the image lies on the canvas (canvas pixels), found from the drawn pixels."""

    left: float
    top: float
    width: float
    height: float

    def to_canvas(self, x: float, y: float, columns: int, rows: int) -> tuple[float, float]:
        """Canvas position of image position (x, y), both in pixels from the top left corner."""
        return self.left + x / columns * self.width, self.top + y / rows * self.height


def placement(rgb: np.ndarray, threshold: int = 8) -> Placement:
    """The bounding box of non-black pixels (test images are drawn with no black pixels)."""
    bright = rgb.max(axis=2) > threshold
    rows = np.flatnonzero(bright.any(axis=1))
    cols = np.flatnonzero(bright.any(axis=0))
    assert rows.size and cols.size, "the canvas is blank"
    return Placement(
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    )


def fitted(rgb: np.ndarray, columns: int, rows: int) -> Placement:
    """Where an image of ``columns`` x ``rows`` lies when fitted, centred, into the canvas."""
    height, width = rgb.shape[:2]
    scale = min(width / columns, height / rows)
    return Placement(
        (width - columns * scale) / 2, (height - rows * scale) / 2, columns * scale, rows * scale
    )


READER_VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


class PageOpener:
    """Opens browser pages for one test, each in its own context (cookies, locale, viewport).

    Every page's uncaught script errors are collected: ``check`` fails the test on any, because
    a page that threw has left something undone even when what the test asserts looks right.
    """

    def __init__(self, browser: Browser, base: str, admin: tuple[str, str]) -> None:
        self.browser, self.base, self.admin = browser, base, admin
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def __call__(
        self,
        *,
        locale: str | None = "vi-VN",
        viewport: ViewportSize = READER_VIEWPORT,
        user: tuple[str, str] | None = None,
        logged_in: bool = True,
        **options: Any,
    ) -> Page:
        """A new page: ``locale`` None leaves the browser's own, ``user`` None is the admin,
        ``logged_in`` False leaves the page blank; ``options`` go to ``Browser.new_context``."""
        if locale is not None:
            options["locale"] = locale
        context = self.browser.new_context(viewport=viewport, **options)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        if logged_in:
            log_in(page, self.base, *(user or self.admin))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()

    def check(self) -> None:
        assert not self.errors, self.errors
