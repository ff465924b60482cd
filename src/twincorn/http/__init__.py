"""The HTTP/1.1 core: protocol rules only, no sockets and no event loop.

It is fed bytes and hands back events (through a small handler interface) and
bytes to write. Both the WSGI and the ASGI adapters stand on it, and so does
the server's connection driver. Nothing here imports the rest of twincorn.
"""

from twincorn.http.errors import ProtocolError, ResponseError
from twincorn.http.parser import ParserState, RequestHandler, RequestParser
from twincorn.http.policy import RequestPolicy
from twincorn.http.request import Request
from twincorn.http.response import ResponseWriter, encode_error_response

__all__ = [
    "ParserState",
    "ProtocolError",
    "Request",
    "RequestHandler",
    "RequestParser",
    "RequestPolicy",
    "ResponseError",
    "ResponseWriter",
    "encode_error_response",
]
