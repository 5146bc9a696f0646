"""Session-per-request for web applications.

Owns :class:`SessionMiddleware`, a WSGI middleware that runs every request in its own
``client.session()``: the request's reads come from one unit of work, its writes are committed
together when the application returns a response below 500, and rolled back when it raises or
answers with a server error.  Each request runs in the server's worker thread, with its own
session; objects a request loads are its own.

For handler functions (any framework) use the decorator ``@client.transactional``; for
frameworks with dependency injection, a generator dependency is one line::

    def session():
        with client.session() as s:
            yield s

Used by applications; calls :meth:`claystore.Client.session`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claystore.client import Client

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _RollbackResponse(Exception):
    """Raised inside the session block to undo a request that answered with a 5xx."""


class SessionMiddleware:
    """WSGI middleware: one claystore session per request (commit, or roll back on error)."""

    def __init__(self, app: WSGIApp, client: Client) -> None:
        self.app = app
        self.client = client

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Handle one request inside its own session."""
        status: list[str] = []

        def recording_start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        body: list[bytes] = []
        try:
            with self.client.session():
                # the body is produced inside the session, so lazy bodies see its objects
                body.extend(self.app(environ, recording_start_response))
                if status and int(status[-1].split(" ", 1)[0]) >= 500:
                    raise _RollbackResponse
        except _RollbackResponse:
            pass
        return body
