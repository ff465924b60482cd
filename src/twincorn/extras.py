"""How to install one of twincorn's optional extras, here.

`pip install 'twincorn[reload]'` is right for an installed twincorn, but in
a source checkout (`pip install -e .`, or src/ on PYTHONPATH) it would fetch
another twincorn from the index: there the command is
`pip install -e '.[reload]'`, from the checkout's folder.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit


def checkout() -> Path | None:
    """The folder of the source checkout this twincorn runs from, if it does."""
    try:
        text = metadata.distribution("twincorn").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        text = None
    if text:
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
        url = info.get("url", "")
        if info.get("dir_info", {}).get("editable") and url.startswith("file:"):
            return Path(unquote(urlsplit(url).path))
        return None
    # Not installed by pip: src/twincorn/ inside a checkout, on the path by hand.
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def install_hint(extra: str) -> str:
    """The pip command that installs `extra` for this twincorn."""
    root = checkout()
    if root is None:
        return f"pip install 'twincorn[{extra}]'"
    try:
        shown = os.path.relpath(root)
    except ValueError:  # another drive (Windows)
        shown = str(root)
    if shown.startswith(".."):
        shown = str(root)
    return f"pip install -e '{shown}[{extra}]' (this twincorn runs from a source checkout)"
