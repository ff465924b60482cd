"""What the request parser accepts: size limits and the two policy switches.

The defaults here are the core's own; twincorn.config declares the settings
users see (with the same defaults) and builds a RequestPolicy from them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    """How large a request may be, and two choices the RFCs leave open.

    Each limit notes the status it is answered with. The defaults of the
    first three are gunicorn's, so that configurations carry over.
    """

    limit_request_line: int = 4094  # request-target length: 414
    limit_request_fields: int = 100  # header fields in one head: 431
    limit_request_field_size: int = 8190  # one "name: value" line: 431
    limit_request_head: int = 65536  # the whole head: 431
    limit_request_body: int = 0  # decoded body bytes, 0 = no limit: 413
    # RFC 9112 section 5.2: a server MUST either reject obs-fold with 400 or
    # replace each fold with a space. Rejecting is the default.
    permit_obsolete_folding: bool = False
    # RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request
    # without a Host header. Off only for old clients that a user must keep.
    require_host: bool = True
