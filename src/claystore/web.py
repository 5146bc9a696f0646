"""Session-per-request for web applications (WSGI and ASGI).

Owns :class:`SessionMiddleware`, a WSGI middleware that runs every request in its own
``client.session()``: the request's reads come from one unit of work, its writes are committed
together when the application returns a response below 500, and rolled back when it raises or
answers with a server error.  Each request runs in the server's worker thread, with its own
session; objects a request loads are its own.

Also owns :class:`ASGISessionMiddleware`, the same for ASGI applications (FastAPI, Starlette):
every HTTP request runs in its own ``client.a_session()``, settled when the response starts --
committed before the client sees a status below 500, rolled back for a 5xx, an exception or a
cancellation (a client that went away) -- and the ASGI lifespan starts and stops the client.
It needs no web package; FastAPI handlers that want the session ask for
``Depends(client.a_session_dependency, scope="function")``.  docs/web.md has the patterns.

For handler functions (any framework) use the decorator ``@client.transactional``; for
frameworks with dependency injection, a generator dependency is one line::

    def session():
        with client.session() as s:
            yield s

Used by applications; calls :meth:`claystore.Client.session`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from claystore.errors import ClaystoreError, VersionConflictError

if TYPE_CHECKING:
    from claystore.client import Client
    from claystore.orm.asyncsession import AsyncSession

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

logger = logging.getLogger("claystore.web")


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


class ASGISessionMiddleware:
    """ASGI middleware: one async claystore session per HTTP request, and the client started
    and stopped with the application's lifespan.

    The session is settled when the application starts its response body (the status is
    known, the handler is done): below 500 it commits, then the response goes out; a commit
    that fails turns the response into ``409 Conflict`` (a
    :class:`~claystore.errors.VersionConflictError`: the client may retry) or ``500`` (any
    other claystore error), nothing of the request written.  A 5xx, an exception or a
    cancellation rolls back.  What runs after the response started (streamed bodies,
    background tasks) runs in the session's next transaction, committed when the application
    returns, rolled back if it raises.  WebSocket and other scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, client: Client, *, lifespan: bool = True) -> None:
        self.app = app
        self.client = client
        self.lifespan = lifespan

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan" and self.lifespan:
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        try:
            async with self.client.a_session() as session:
                response = _HeldResponse(session, send)
                await self.app(scope, receive, response.send)  # raises: rolled back
                if not response.settled:  # the application returned without a body
                    await response.settle()
                await response.release()
                if not response.committed:
                    raise _RollBack  # what ran after the response goes too
        except _RollBack:
            pass

    async def _lifespan(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send
    ) -> None:
        started_here = False

        async def receive_and_start() -> Message:
            nonlocal started_here
            message = await receive()
            if message["type"] == "lifespan.startup" and not self.client.is_open:
                await asyncio.to_thread(self.client.start)
                started_here = True
            return message

        async def send_and_stop(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and started_here:
                await asyncio.to_thread(self.client.stop)
            await send(message)

        await self.app(scope, receive_and_start, send_and_stop)


class _RollBack(Exception):
    """Leaves the request's session block so that it rolls back (caught by the caller)."""


class _HeldResponse:
    """The response of one request: its start held until the body begins, so that the session
    is settled first."""

    def __init__(self, session: AsyncSession, send: Send) -> None:
        self.session = session
        self._send = send
        self.start: Message | None = None
        self.status = 200
        self.settled = False
        self.committed = False
        self.replaced = False

    async def send(self, message: Message) -> None:
        """The application's ``send``."""
        kind = message["type"]
        if kind == "http.response.start" and not self.settled:
            self.start = message
            self.status = int(message["status"])
            return
        if self.replaced:
            return  # the application's response was replaced by the commit's failure
        if kind == "http.response.body" and not self.settled:
            await self.settle()
            if self.replaced:
                return
        await self.release()
        await self._send(message)

    async def settle(self) -> None:
        """Commit (status below 500) or roll back the request's work, once."""
        self.settled = True
        if self.status >= 500:
            await self.session.a_rollback()
            return
        try:
            await self.session.a_commit()
        except VersionConflictError as exc:
            logger.info("request not committed: %s", exc)
            await self._replace(409, exc)
            return
        except ClaystoreError as exc:
            logger.exception("request not committed")
            await self._replace(500, exc)
            return
        self.committed = True

    async def _replace(self, status: int, error: Exception) -> None:
        self.replaced = True
        self.start = None
        body = json.dumps({"error": type(error).__name__, "detail": str(error)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def release(self) -> None:
        """Send the held start of the response, if any."""
        start, self.start = self.start, None
        if start is not None:
            await self._send(start)
