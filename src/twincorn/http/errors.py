"""Protocol errors and the status each one is answered with."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the server refuses.

    `status` is what the client is told (400, 408, 413, 414, 417, 431, 501,
    505...). After a ProtocolError the connection is always closed: once the
    framing of one request is in doubt, nothing after it can be trusted
    (RFC 9112 section 11.2, request smuggling).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"ProtocolError({self.status}, {self.reason!r})"


class ResponseError(Exception):
    """The application produced a response that must not be written.

    For example a header value holding CR or LF (response splitting), a
    second `http.response.start`, or a body longer than its Content-Length.
    """
