"""The HTTP/1.x request corpus (tests/data/http1-requests), as cases.

Shared by test_corpus_core.py (the sans-IO parser) and test_corpus_wire.py
(a real server, WSGI and ASGI). The corpus is read from its copy in the repository.

It holds gunicorn's expectations. Where twincorn differs, the difference is
written down here, once, with its reason:

- UNSUPPORTED_OPTIONS: gunicorn options twincorn does not have; the cases
  that need them are skipped (`Case.missing_options`).
- `gunicorn_settings` that twincorn has are mapped to twincorn settings of
  the same meaning (`Case.settings`).
- NO_HOST: valid cases with an HTTP/1.1 request without Host. twincorn
  answers those 400 by default (require_host, RFC 9112 section 3.2); the
  tests run them both ways round.
- REFUSED_BY_POLICY: valid cases twincorn refuses (4xx and close).
- PROXY_HEADER_REQUIRED: valid cases without a PROXY header, which
  twincorn requires. A refused case with proxy_protocol
  (`Case.proxy_protocol`: invalid, or in that list) is closed with nothing
  written, not answered: before a valid PROXY header nothing is HTTP.
- ACCEPTED_BY_POLICY: invalid cases twincorn accepts.
- LIMIT_ACCOUNTING: invalid cases that fall within twincorn's limits because
  it counts a field line differently; they are run with twincorn's own
  limit set so that the same line is over it.
- INCOMPLETE: cases that end in the middle of a request: over a socket they
  are refused only when the client half-closes; in the parser they leave a
  request unfinished.
- How a served request is compared: header names with "_" are kept by
  twincorn except in WSGI (UNDERSCORED_KEPT); obs-fold may leave several
  spaces (fold_blind); CONNECT has no path (Expected.twincorn_path); a
  chunked body reaches a WSGI app with CONTENT_LENGTH set, since twincorn
  read it whole before the call (Expected.wsgi_headers).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A copy of gunicorn's corpus, kept in the repository (see its README.md).
CORPUS = Path(__file__).resolve().parent / "data" / "http1-requests"

#: gunicorn options with no twincorn equivalent: the cases needing them are
#: reported apart (skipped, naming the option).
UNSUPPORTED_OPTIONS = frozenset(
    {
        "header_map",
        "casefold_http_method",
        "permit_unconventional_http_method",
        "strip_header_spaces",
    }
)

#: gunicorn setting -> twincorn setting of the same meaning.
MAPPED_OPTIONS = {
    "limit_request_line": "limit_request_line",
    "limit_request_fields": "limit_request_fields",
    "limit_request_field_size": "limit_request_field_size",
    "permit_obsolete_folding": "permit_obsolete_folding",
    "proxy_protocol": "proxy_protocol",
    "forwarded_allow_ips": "forwarded_allow_ips",
}
#: Mapped settings of the server, not of the HTTP core's RequestPolicy.
SERVER_OPTIONS = frozenset({"forwarded_allow_ips"})
# gunicorn reads limit_request_field_size=0 as "its default", 8190.
_GUNICORN_DEFAULT_FIELD_SIZE = 8190

#: Exactly the cases skipped for a missing option (a test asserts this set,
#: so that a new option in twincorn or in the corpus is noticed).
SKIPPED_FOR_OPTIONS = frozenset(
    {
        "invalid/040",  # header_map
        "invalid/chunked_07",  # header_map
        "valid/028",  # strip_header_spaces
        "valid/031compat",  # permit_unconventional_http_method, casefold_http_method
        "valid/031compat2",  # permit_unconventional_http_method
        "valid/040_compat",  # header_map
    }
)

#: Valid in the corpus, refused by twincorn (a 4xx or 5xx-free refusal and
#: the connection closed). Run with require_host=False, so that the refusal
#: is for the reason given here, not for a missing Host.
REFUSED_BY_POLICY: dict[str, str] = {
    "valid/009": (
        "Transfer-Encoding: identity with Content-Length: llhttp refuses CL with TE "
        "(anti-smuggling, RFC 9112 s6.1 allows it), and a request TE whose final "
        "coding is not chunked must get 400 anyway (RFC 9112 s6.3 rule 4)"
    ),
    "valid/013": (
        "whitespace after ';' in chunk extensions: RFC 9112 s7.1.1 allows BWS there, "
        "llhttp refuses it ('Invalid character in chunk extensions') and has no "
        "leniency for it; twincorn takes llhttp's grammar"
    ),
    "valid/027": (
        "raw bytes >= 0x80 in the request target: not a URI (RFC 3986), so not a "
        "valid request-target (RFC 9112 s3.2); llhttp refuses it"
    ),
    "valid/031": (
        "method '-BLARGH': a valid token that llhttp does not know; twincorn answers "
        "400 where RFC 9110 s9.1 suggests 501 (documented in docs/http.md)"
    ),
    "valid/099": (
        "declares Content-Length 17914 and sends less: the server waits for the "
        "rest; after the client's half-close it answers 400 'request body cut short' "
        "(in the parser: the request stays unfinished)"
    ),
}

#: Valid in the corpus, whose proxy_protocol reads a header only if one is
#: there; twincorn requires it from the peers it reads one from, and closes
#: the connection with nothing written without it.
PROXY_HEADER_REQUIRED: dict[str, str] = {
    "valid/pp_03": (
        "no PROXY header with proxy_protocol on: gunicorn guesses and serves the "
        "request; HAProxy's proxy-protocol.txt (section 2) has a receiver configured "
        "for the protocol never guess (else any client could spoof an address), so "
        "twincorn closes the connection, nothing served"
    ),
}

#: Invalid in the corpus (gunicorn's own policy, not the RFC's), accepted by
#: twincorn.
ACCEPTED_BY_POLICY: dict[str, str] = {
    "invalid/041": (
        "two Content-Type fields: gunicorn refuses them; RFC 9110 s5.3 does not "
        "ask a server to, and neither llhttp nor twincorn does (ASGI gets both, "
        "WSGI's CONTENT_TYPE joins them with ',')"
    ),
    "invalid/019": (
        "X-Forwarded-Proto: https with X-Forwarded-Ssl: off from a trusted peer: "
        "gunicorn's secure_scheme_headers disagree and it refuses the request; "
        "twincorn reads X-Forwarded-Proto only, so the scheme is https "
        "(tests/test_forwarded_driver.py checks it)"
    ),
}

#: Invalid cases within twincorn's limits under the gunicorn-mapped settings,
#: because twincorn measures a field as name + ": " + value (without the CRLF,
#: and after unfolding), where gunicorn counts the raw line with its CRLF (and
#: each folded line with its own). Each is run with the twincorn setting
#: given here, which puts the same field over twincorn's limit: 431.
LIMIT_ACCOUNTING: dict[str, tuple[dict[str, Any], str]] = {
    "invalid/008": (
        {"limit_request_field_size": 8188},
        "an 8189-byte field line: over gunicorn's 8190 with its CRLF, within twincorn's 8190",
    ),
    "invalid/012": (
        {"limit_request_field_size": 96},
        "a 97-byte field line with limit 98: over gunicorn's limit with its CRLF only",
    ),
    "invalid/013": (
        {"limit_request_field_size": 10, "permit_obsolete_folding": True},
        "'Accept:' folded onto ' */*' with limit 14: gunicorn counts both raw lines "
        "and their CRLFs (15), twincorn the unfolded 'Accept: */*' (11)",
    ),
    "invalid/017": (
        {"limit_request_field_size": 8188},
        "an 8189-byte field line: over gunicorn's 8190 with its CRLF, within twincorn's 8190",
    ),
    "invalid/limit_header_default_01": (
        {"limit_request_field_size": 8188},
        "an 8190-byte field line under the default limit: over gunicorn's 8190 "
        "with its CRLF, exactly twincorn's 8190",
    ),
}

#: The "_" fields twincorn keeps where the corpus (gunicorn) drops them.
UNDERSCORED_KEPT: dict[str, list[tuple[str, str]]] = {
    "valid/040": [("TRANSFER_ENCODING", "tricked"), ("CONTENT_LENGTH", "-1E23")],
}

#: Cases that stop in the middle of a request (head or body).
INCOMPLETE = frozenset(
    {"invalid/001", "invalid/rfc9112_chunked_missing_final_crlf_01", "valid/099"}
)

#: Statuses a refusal may have (README: a 4xx, or 501/505).
REFUSAL_STATUSES = frozenset({400, 408, 413, 414, 417, 431, 501, 505})


@dataclass(frozen=True)
class Expected:
    """One request as the corpus expects it (str fields are latin-1 text)."""

    method: str
    target: str
    path: str
    query: str
    fragment: str
    version: str
    headers: tuple[tuple[str, str], ...]  # names upper-cased, order kept
    body: bytes
    trailers: tuple[tuple[str, str], ...]

    @property
    def has_host(self) -> bool:
        return any(name == "HOST" for name, _ in self.headers)

    @property
    def twincorn_path(self) -> str:
        """The path twincorn gives the application (raw, not decoded).

        For CONNECT's authority-form target gunicorn reports urlsplit's
        reading of "host:port" (the port as a path); there is no path, and
        twincorn gives an empty one (the target stays in RAW_URI).
        """
        return "" if self.method == "CONNECT" else self.path

    @property
    def wsgi_headers(self) -> dict[str, str]:
        """The header keys of the WSGI environ (names as the corpus writes
        them): duplicates joined with ",", and CONTENT-LENGTH added for a
        chunked body, which twincorn reads whole before the call (Django
        and Falcon read nothing of a body without it)."""
        joined: dict[str, str] = {}
        for name, value in self.headers:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        coding = joined.get("TRANSFER-ENCODING", "").lower()
        if coding.rstrip(" \t").endswith("chunked"):
            joined["CONTENT-LENGTH"] = str(len(self.body))
        return joined


@dataclass(frozen=True)
class Case:
    name: str  # "valid/001"
    kind: str  # "valid" or "invalid"
    data: bytes
    gunicorn_settings: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    requests: tuple[Expected, ...] = ()
    gunicorn_error: str = ""

    def __str__(self) -> str:
        return self.name

    @property
    def missing_options(self) -> list[str]:
        return sorted(UNSUPPORTED_OPTIONS & self.gunicorn_settings.keys())

    @property
    def settings(self) -> dict[str, Any]:
        """twincorn settings of the same meaning as the case's gunicorn ones."""
        out: dict[str, Any] = {}
        for name, value in self.gunicorn_settings.items():
            if name in UNSUPPORTED_OPTIONS:
                continue
            if name not in MAPPED_OPTIONS:
                raise KeyError(f"{self.name}: gunicorn setting {name!r} is not mapped")
            if name == "limit_request_field_size" and value == 0:
                value = _GUNICORN_DEFAULT_FIELD_SIZE
            out[MAPPED_OPTIONS[name]] = value
        return out

    @property
    def proxy_protocol(self) -> bool:
        """The case begins with a PROXY header (or should: PROXY_HEADER_REQUIRED)."""
        return bool(self.gunicorn_settings.get("proxy_protocol"))

    @property
    def policy_settings(self) -> dict[str, Any]:
        """The settings of the HTTP core (RequestPolicy) among them."""
        return {k: v for k, v in self.settings.items() if k not in SERVER_OPTIONS}

    @property
    def lacks_host(self) -> bool:
        """An HTTP/1.1 request in it has no Host header."""
        return any(r.version == "1.1" and not r.has_host for r in self.requests)


def _pairs(raw: list[list[str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in raw or ())


def _load(json_path: Path) -> Case:
    spec = json.loads(json_path.read_text())
    requests = tuple(
        Expected(
            method=r["method"],
            target=r["target"],
            path=r["path"],
            query=r["query"],
            fragment=r["fragment"],
            version=r["version"],
            headers=_pairs(r["headers"]),
            body=base64.b64decode(r["body_base64"]),
            trailers=_pairs(r.get("trailers")),
        )
        for r in spec.get("requests", [])
    )
    return Case(
        name=f"{json_path.parent.name}/{json_path.stem}",
        kind=spec["kind"],
        data=json_path.with_suffix(".http").read_bytes(),
        gunicorn_settings=dict(spec.get("gunicorn_settings", {})),
        note=spec.get("note", ""),
        requests=requests,
        gunicorn_error=spec.get("gunicorn_error", ""),
    )


@functools.cache
def load_cases() -> tuple[Case, ...]:
    """Every case, valid ones first, by name (empty if the corpus is absent)."""
    if not CORPUS.is_dir():
        return ()
    return tuple(
        _load(p) for kind in ("valid", "invalid") for p in sorted((CORPUS / kind).glob("*.json"))
    )


def case_names() -> list[str]:
    return [case.name for case in load_cases()]


def get_case(name: str) -> Case:
    for case in load_cases():
        if case.name == name:
            return case
    raise KeyError(name)


def no_host_cases() -> list[str]:
    """Valid cases that twincorn refuses by default for a missing Host."""
    return [c.name for c in load_cases() if c.kind == "valid" and c.lacks_host]


def upper_headers(pairs: list[tuple[bytes, bytes]] | list[list[str]]) -> list[tuple[str, str]]:
    """(NAME, value) text pairs, names upper-cased, from bytes or text pairs."""
    out = []
    for name, value in pairs:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append((name.upper(), value))
    return out


def split_underscored(
    headers: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(headers whose name has no "_", those whose name has one).

    The corpus follows gunicorn's default of dropping names with "_"
    (header_map=drop). twincorn drops them from the WSGI environ only; at the
    HTTP level and in ASGI's headers they are kept (docs/http.md).
    """
    plain = [h for h in headers if "_" not in h[0]]
    underscored = [h for h in headers if "_" in h[0]]
    return plain, underscored


def fold_blind(case: Case, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` with each run of SP/HTAB made one SP, in a case with obs-fold.

    RFC 9112 s5.2 has a server that accepts obs-fold replace each fold with
    one or more SP. gunicorn writes one; llhttp drops the CRLF and keeps the
    whitespace that began the continuation line (four spaces in
    valid/compat_obs_fold_huge), which twincorn cannot tell from the value's
    own. RFC 9112 allows both.
    """
    if not case.settings.get("permit_obsolete_folding"):
        return headers
    return [(name, _BLANKS.sub(" ", value)) for name, value in headers]


_BLANKS = re.compile(r"[ \t]+")
