"""What a request gives back: a Response (or the lack of one, with `error`)."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator, Mapping
from typing import Any

from twincorn.load.connection import RequestError, status_message
from twincorn.load.context import ResponseError


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive; repeated fields joined with ", "."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._joined: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self._joined[key] = f"{self._joined[key]}, {text}" if key in self._joined else text

    def __getitem__(self, name: str) -> str:
        return self._joined[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._joined)

    def __len__(self) -> int:
        return len(self._joined)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._joined

    def get_all(self, name: str) -> list[str]:
        """Every value of a field, one per line it came on (Set-Cookie)."""
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw if k.lower() == wanted]


class Response:
    """A response (or, with status 0 and `error` set, the lack of one)."""

    __slots__ = (
        "_headers", "_recorded", "_verdict", "content", "corrected", "elapsed", "error",
        "method", "name", "raw_headers", "status", "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        name: str,
        status: int = 0,
        headers: list[tuple[bytes, bytes]] | None = None,
        content: bytes = b"",
        elapsed: float = 0.0,
        error: RequestError | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.name = name
        self.status = status
        self.raw_headers = headers or []
        self._headers: Headers | None = None
        self.content = content
        self.elapsed = elapsed  # seconds, from sending the request to the whole response
        self.error = error
        self.corrected = elapsed  # open model: from the scheduled time (seconds)
        self._verdict: str | None = None  # None: by status; "": success; else failure
        self._recorded = False

    @property
    def headers(self) -> Headers:
        """The headers, case-insensitive (parsed on first use)."""
        if self._headers is None:
            self._headers = Headers(self.raw_headers)
        return self._headers

    @property
    def status_code(self) -> int:  # requests' and Locust's name
        return self.status

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 400

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def success(self) -> None:
        """Count this request as a success (inside a check=True block)."""
        self._decide("")

    def failure(self, message: str | BaseException) -> None:
        """Count this request as a failure, with this message (inside a
        check=True block)."""
        self._decide(str(message) or "failure")

    def _decide(self, verdict: str) -> None:
        if self._recorded:
            raise RuntimeError(
                "this response is already recorded: use "
                "`async with self.client.get(..., check=True) as r:` to decide its outcome"
            )
        self._verdict = verdict

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise ResponseError(self.error.message)
        if self.status >= 400:
            raise ResponseError(status_message(self.status))

    def __repr__(self) -> str:
        what = self.error.message if self.error else str(self.status)
        return f"<Response {self.method} {self.url} {what}>"
