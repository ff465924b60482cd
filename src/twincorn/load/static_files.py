"""The files of the web UI and of the HTML report (static/, package data).

They are read through importlib.resources, so that they are found wherever
the package is installed. The web UI serves exactly the files listed in
SERVED (nothing is looked up from the request's path); the HTML report
inlines some of them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

UPLOT_JS = "vendor/uplot/uPlot.iife.min.js"
UPLOT_CSS = "vendor/uplot/uPlot.min.css"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# What the web UI serves under /static/, by the name in the URL.
SERVED = (UPLOT_JS, UPLOT_CSS, "common.css", "charts.js", "web.css", "web.js")


@cache
def read_static(name: str) -> str:
    """The text of static/<name> (read once, then kept)."""
    path = resources.files("twincorn.load").joinpath("static")
    for part in name.split("/"):
        path = path.joinpath(part)
    return path.read_text(encoding="utf-8")


def content_type(name: str) -> str:
    suffix = name[name.rfind(".") :]
    return CONTENT_TYPES.get(suffix, "application/octet-stream")
