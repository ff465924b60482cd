"""HTTP rules and limits (the request core's RequestPolicy takes them)."""

from __future__ import annotations

from dataclasses import dataclass

from twincorn.http import RequestPolicy
from twincorn.settings.declare import setting

_P = RequestPolicy()  # the core's own defaults, so that both agree


@dataclass(frozen=True)
class HttpSettings:
    """HTTP rules and limits (the request core's RequestPolicy takes them)."""

    __slots__ = ()

    # -- HTTP rules and limits
    limit_request_line: int = setting(
        _P.limit_request_line,
        "Longest request target, in bytes (414); 0 for no limit.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    limit_request_fields: int = setting(
        _P.limit_request_fields,
        "Most header fields in a request (431); 0 for no limit.",
        section="http",
        metavar="N",
    )
    limit_request_field_size: int = setting(
        _P.limit_request_field_size,
        "Longest header field line, name and value (431); 0 for no limit.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    limit_request_head: int = setting(
        _P.limit_request_head, "Largest request head in all (431); 0 for no limit.", section="http",
        metavar="SIZE",
        unit="size",
    )
    limit_request_body: int = setting(
        100 << 20,
        "Largest request body, after chunked decoding (413); 0 for no limit.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    wsgi_spool_size: int = setting(
        1 << 20,
        "WSGI request bodies larger than this are kept in a temporary file.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    drain_limit: int = setting(
        1 << 20,
        "Unread request body the server reads and discards to keep a "
        "connection open; a longer one closes it.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    require_host: bool = setting(
        _P.require_host,
        "Answer 400 to an HTTP/1.1 request without Host (RFC 9112 section 3.2).",
        section="http",
    )
    permit_obsolete_folding: bool = setting(
        _P.permit_obsolete_folding,
        "Accept header values folded over lines (obs-fold) instead of answering 400.",
        section="http",
    )
    server_header: bool = setting(True, "Send a Server header.", section="http")
