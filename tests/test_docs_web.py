"""docs/web.md stays true: its Python blocks run as one program (in a coroutine) on both
engines, the names it mentions exist, and what its prose says about the middlewares, the
FastAPI dependency and the async session holds when an application is driven like a server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

import claystore
import claystore.web
from claystore import AsyncSession, Client, DataClayObject, a_retry_on_conflict
from claystore.errors import SessionStateError
from claystore.orm.modelquery import ModelQuery
from claystore.web import ASGISessionMiddleware
from tests.models import Company, Counter, Employee

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "web.md"
SRC = Path(claystore.__file__).resolve().parent.parent

_BLOCK = re.compile(
    r"^(<!-- not run: [^\n]*-->\n)?( *)```python\n(.*?)^\2```$", re.MULTILINE | re.DOTALL
)

# runs the page's blocks inside one coroutine, as `python -m asyncio` would
_RUNNER = """
import ast, asyncio, sys
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, "docs/web.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)

async def main():
    result = eval(code, {"__name__": "__main__"})
    if result is not None:
        await result

asyncio.run(main())
"""


def blocks() -> tuple[list[str], list[str]]:
    """The page's Python blocks: (run, not run)."""
    run: list[str] = []
    shown: list[str] = []
    for marker, _, code in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        (shown if marker else run).append(textwrap.dedent(code))
    return run, shown


def test_the_python_blocks_run_in_order(db_url: str, tmp_path: Path) -> None:
    """The blocks, joined, run without error inside a coroutine (every assert they make
    holds), with the client of ``Client()`` on this engine (``DC_URL``)."""
    run, _ = blocks()
    assert len(run) >= 8
    program = tmp_path / "web_md.py"
    program.write_text("\n".join(run), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DC_")}
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(program)],
        cwd=tmp_path,
        env={**env, "DC_URL": db_url, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_block_not_run_is_the_flask_one_and_compiles() -> None:
    """Only the Flask block is shown without running (Flask is no dependency); it is valid
    Python and wraps ``app.wsgi_app`` in the WSGI middleware."""
    _, shown = blocks()
    assert len(shown) == 1
    [flask] = shown
    compile(flask, "flask-block", "exec")
    assert "app.wsgi_app = SessionMiddleware(app.wsgi_app, client)" in flask
    assert "from claystore.web import SessionMiddleware" in flask


def test_the_names_the_page_mentions_exist() -> None:
    """Every ``client.x``, ``session.x`` and ``a_`` name of the page is there."""
    text = DOC.read_text(encoding="utf-8")
    for name in set(re.findall(r"\bclient\.(\w+)", text)):
        assert hasattr(Client, name), f"client.{name}"
    for name in set(re.findall(r"\bsession\.(\w+)", text)):
        assert hasattr(AsyncSession, name) or name == "session", f"session.{name}"
    owners = (AsyncSession, DataClayObject, ModelQuery, Client, claystore)
    twins = {"a_deposit", "a_name", "a_retry_on_conflict"}  # the page's activemethod, a_<name>
    for name in set(re.findall(r"\b(a_\w+)", text)) - twins:
        assert any(hasattr(owner, name) for owner in owners), name
    assert "a_retry_on_conflict" in claystore.__all__
    for name in ("SessionMiddleware", "ASGISessionMiddleware"):
        assert hasattr(claystore.web, name)


# -- driving applications ------------------------------------------------------------------


@pytest.fixture
def hits(client: Client, db_url: str) -> Iterator[Callable[[], int]]:
    """A stored counter ``hits``; returns what is committed (read with SQL, from outside)."""
    Counter().make_persistent("hits")
    engine = sa.create_engine(db_url)

    def committed() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count FROM counter")).scalar_one())

    yield committed
    engine.dispose()


async def drive(
    app: Any, requests: list[tuple[str, str]], committed: Callable[[], int]
) -> list[tuple[int, str, int | None]]:
    """Send the requests; for each: the status, the body, and what was committed when the
    response started (None: it never started)."""
    seen: list[int] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        async def spying_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.append(await asyncio.to_thread(committed))
            await send(message)

        await app(scope, receive, spying_send)

    out: list[tuple[int, str, int | None]] = []
    transport = httpx.ASGITransport(app=spy, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for method, path in requests:
            seen.clear()
            reply = await http.request(method, path)
            out.append((reply.status_code, reply.text, seen[0] if seen else None))
    return out


async def set_hits(value: int) -> Counter:
    counter = await Counter.a_get_by_alias("hits")
    counter.count = value
    return counter


def counter_app(client: Client, *, middleware: bool = True, scope: str | None = "function") -> Any:
    app = FastAPI()
    dependency = Depends(client.a_session_dependency, scope=scope)  # type: ignore[arg-type]

    @app.post("/set/{value}/{status}")
    async def set_value(value: int, status: int) -> JSONResponse:
        await set_hits(value)
        if 400 <= status < 500:
            raise HTTPException(status, "client error")
        return JSONResponse({}, status_code=status)

    @app.post("/raise/{value}")
    async def fail(value: int) -> None:
        await set_hits(value)
        raise RuntimeError("handler failed")

    @app.post("/bad-history")
    async def bad_history(session: AsyncSession = dependency) -> dict[str, str]:
        counter = await set_hits(7)
        counter.history.append("not an int")  # refused at the commit: FieldTypeError
        return {}

    @app.post("/via-dependency/{value}/{status}")
    async def via_dependency(value: int, status: int, session: AsyncSession = dependency) -> Any:
        await set_hits(value)
        await session.a_flush()
        return JSONResponse({}, status_code=status)

    if middleware:
        app.add_middleware(ASGISessionMiddleware, client=client)
    return app


def test_asgi_commits_below_500_before_the_response_and_rolls_back_5xx(
    client: Client, hits: Callable[[], int]
) -> None:
    """Below 500 (a 4xx from HTTPException too) the work is committed when the response
    starts; a 5xx or an exception rolls it back."""
    requests = [("POST", p) for p in ("/set/1/200", "/set/2/404", "/set/3/503", "/raise/4")]
    out = asyncio.run(drive(counter_app(client), requests, hits))
    assert [(status, at_start) for status, _, at_start in out] == [
        (200, 1),
        (404, 2),
        (503, 2),
        (500, 2),
    ]
    assert hits() == 2


def test_a_failed_commit_replaces_the_response_with_a_500(
    client: Client, hits: Callable[[], int]
) -> None:
    """A claystore error at the commit: a JSON 500 naming it, nothing written."""
    [(status, body, _)] = asyncio.run(drive(counter_app(client), [("POST", "/bad-history")], hits))
    assert status == 500
    assert '"error": "FieldTypeError"' in body
    assert hits() == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_version_conflict_at_the_commit_answers_409(client: Client, db_url: str) -> None:
    """Someone else changed the row since the request loaded it: 409, nothing written."""
    Counter().make_persistent("hits")
    engine = sa.create_engine(db_url)
    app = FastAPI()

    @app.post("/bump")
    async def bump() -> dict[str, int]:
        counter = await Counter.a_get_by_alias("hits")
        with engine.begin() as conn:  # another writer, between the load and the commit
            conn.execute(sa.text("UPDATE counter SET count = 100, dc_version = dc_version + 1"))
        counter.count += 1
        return {"count": counter.count}

    app.add_middleware(ASGISessionMiddleware, client=client)
    try:
        [(status, body, _)] = asyncio.run(drive(app, [("POST", "/bump")], lambda: 0))
    finally:
        engine.dispose()
    assert status == 409
    assert '"error": "VersionConflictError"' in body
    assert Counter.get_by_alias("hits").count == 100


def test_a_cancelled_request_rolls_back(client: Client, hits: Callable[[], int]) -> None:
    """The request's task is cancelled after a flush: nothing of it stays."""
    app = FastAPI()
    flushed = asyncio.Event()
    dependency = Depends(client.a_session_dependency, scope="function")

    @app.post("/slow")
    async def slow(session: AsyncSession = dependency) -> None:
        await set_hits(9)
        await session.a_flush()
        flushed.set()
        await asyncio.sleep(60)

    app.add_middleware(ASGISessionMiddleware, client=client)

    async def cancel_one() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            request = asyncio.create_task(http.post("/slow"))
            await flushed.wait()
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(cancel_one())
    assert hits() == 0


def test_work_after_the_response_started_is_the_next_transaction(
    client: Client, hits: Callable[[], int]
) -> None:
    """A streamed body after its first chunk and a background task run in the session's
    next transaction, committed when the application returns; objects loaded before the
    response must be loaded again to be read."""
    app = FastAPI()
    dependency = Depends(client.a_session_dependency, scope="function")

    @app.post("/stream")
    async def stream(session: AsyncSession = dependency) -> Any:
        counter = await set_hits(1)

        async def body() -> AsyncIterator[bytes]:
            yield b"first;"
            try:
                _ = counter.count
            except SessionStateError:
                yield b"reload;"
            await session.a_load(counter)
            counter.count += 10
            yield b"second"

        return StreamingResponse(body())

    @app.post("/background")
    async def background(tasks: BackgroundTasks) -> None:
        await set_hits(20)

        async def later() -> None:
            counter = await Counter.a_get_by_alias("hits")
            counter.count += 1

        tasks.add_task(later)

    app.add_middleware(ASGISessionMiddleware, client=client)
    out = asyncio.run(drive(app, [("POST", "/stream")], hits))
    assert out == [(200, "first;reload;second", 1)]
    assert hits() == 11
    [(_, _, at_start)] = asyncio.run(drive(app, [("POST", "/background")], hits))
    assert (at_start, hits()) == (20, 21)


def test_the_dependency_without_the_middleware(client: Client, hits: Callable[[], int]) -> None:
    """scope="function": committed before the response, a failed commit is a 500. The
    default scope ("request") commits after the response: a failed commit still answers 200."""
    requests = [("POST", "/via-dependency/5/200"), ("POST", "/bad-history")]
    function = asyncio.run(drive(counter_app(client, middleware=False), requests, hits))
    assert [(status, at_start) for status, _, at_start in function] == [(200, 5), (500, 5)]
    requests = [("POST", "/via-dependency/6/200"), ("POST", "/bad-history")]
    late = asyncio.run(drive(counter_app(client, middleware=False, scope=None), requests, hits))
    assert [(status, at_start) for status, _, at_start in late] == [(200, 5), (200, 6)]
    assert hits() == 6


def test_the_dependency_gives_the_middleware_session(
    client: Client, hits: Callable[[], int]
) -> None:
    """With the middleware the dependency yields its session: a 5xx rolls back what the
    handler flushed through it."""
    requests = [("POST", "/via-dependency/3/200"), ("POST", "/via-dependency/4/500")]
    out = asyncio.run(drive(counter_app(client), requests, hits))
    assert [(status, at_start) for status, _, at_start in out] == [(200, 3), (500, 3)]
    assert hits() == 3


def test_a_retry_on_conflict_refuses_to_run_inside_a_request(
    client: Client, hits: Callable[[], int]
) -> None:
    """The request's session is open: a_retry_on_conflict raises SessionStateError."""
    app = FastAPI()

    @app.post("/retry")
    async def retry() -> dict[str, str]:
        try:
            await a_retry_on_conflict(lambda: set_hits(1), client=client)
        except SessionStateError:
            return {"refused": "yes"}
        return {"refused": "no"}

    app.add_middleware(ASGISessionMiddleware, client=client)
    [(_, body, _)] = asyncio.run(drive(app, [("POST", "/retry")], hits))
    assert body == '{"refused":"yes"}'


def test_a_sync_call_inside_an_async_session_is_refused(client: Client) -> None:
    """The sync form of a lookup, on the event loop's thread inside the session, raises
    SessionStateError (the page's example catches it)."""
    Counter().make_persistent("hits")

    async def scenario() -> None:
        async with client.a_session():
            with pytest.raises(SessionStateError, match="no statement on the event loop"):
                Counter.get_by_alias("hits")
            assert (await Counter.a_get_by_alias("hits")).count == 0

    asyncio.run(scenario())


async def run_lifespan(app: Any, during: Callable[[], Awaitable[None]]) -> None:
    """Run the ASGI lifespan of ``app`` around ``during()``, as a server does."""
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    sent: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    task = asyncio.create_task(app(scope, messages.get, sent.put))
    await messages.put({"type": "lifespan.startup"})
    assert (await sent.get())["type"] == "lifespan.startup.complete"
    await during()
    await messages.put({"type": "lifespan.shutdown"})
    assert (await sent.get())["type"] == "lifespan.shutdown.complete"
    await task


def test_the_lifespan_starts_and_stops_a_client_it_started(db_url: str) -> None:
    """The client is open for the application's own startup code and its requests, and
    stopped after shutdown; a client started before is left open."""
    client = Client(db_url)
    seen: list[bool] = []

    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        seen.append(client.is_open)
        yield
        seen.append(client.is_open)

    app = FastAPI(lifespan=lifespan)  # type: ignore[arg-type]
    app.add_middleware(ASGISessionMiddleware, client=client)

    async def during() -> None:
        seen.append(client.is_open)

    asyncio.run(run_lifespan(app, during))
    assert (seen, client.is_open) == ([True, True, True], False)
    with client:
        asyncio.run(run_lifespan(app, during))
        assert client.is_open


def test_websockets_pass_through_without_a_session(client: Client) -> None:
    """A WebSocket connection gets no session: a_retry_on_conflict (which refuses to run in
    one) runs."""
    Counter().make_persistent("hits")
    ran: list[int] = []

    async def websocket_app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"

        async def bump() -> None:
            counter = await Counter.a_get_by_alias("hits")
            counter.count += 1
            ran.append(counter.count)

        await a_retry_on_conflict(bump, client=client)

    async def nothing() -> dict[str, str]:
        return {"type": "websocket.disconnect"}

    async def ignore(_: Any) -> None:
        return None

    middleware = ASGISessionMiddleware(websocket_app, client)
    asyncio.run(middleware({"type": "websocket"}, nothing, ignore))
    assert ran == [1]


@pytest.mark.parametrize("session_outside", [False, True])
def test_a_base_http_middleware_and_streamed_bodies(
    client: Client, hits: Callable[[], int], session_outside: bool
) -> None:
    """``@app.middleware("http")``: the session reaches the endpoint in either order and is
    settled by the status; a streamed body after its first chunk runs in the request's
    session with ASGISessionMiddleware inside (added first).  (Outside, that code no longer
    runs in the request's session: what it does then depends on timing, see docs/web.md.)"""
    app = FastAPI()

    @app.post("/set/{value}/{status}")
    async def set_value(value: int, status: int) -> JSONResponse:
        await set_hits(value)
        return JSONResponse({}, status_code=status)

    @app.post("/stream")
    async def stream() -> StreamingResponse:
        counter = await set_hits(30)

        async def body() -> AsyncIterator[bytes]:
            yield b"a"
            counter.count = 31
            yield b"b"

        return StreamingResponse(body())

    async def passing(request: Request, call_next: Any) -> Any:
        return await call_next(request)

    if session_outside:
        app.middleware("http")(passing)
        app.add_middleware(ASGISessionMiddleware, client=client)
    else:
        app.add_middleware(ASGISessionMiddleware, client=client)
        app.middleware("http")(passing)
    requests = [("POST", "/set/1/200"), ("POST", "/set/2/500")]
    out = asyncio.run(drive(app, requests, hits))
    assert [(status, at_start) for status, _, at_start in out] == [(200, 1), (500, 1)]
    if not session_outside:
        [(status, body, at_start)] = asyncio.run(drive(app, [("POST", "/stream")], hits))
        assert (status, body, hits()) == (200, "ab", 31)
        assert at_start in (30, 31)  # the outer middleware may send the start late


# -- what the page says that src does not do yet -------------------------------------------


def _read_in_session(client: Client, case: str) -> None:
    async def scenario() -> None:
        async with client.a_session() as session:
            if case == "reference":
                company = await Company.a_get_by_alias("acme")
                _ = company.ceo  # not loaded: refused
            else:
                ann = Employee("Ann", 1.0)
                await session.a_add(ann)
                [found] = await Employee.dc_query().a_fetch()
                assert found is ann
                _ = ann.name  # created here: in memory

    asyncio.run(scenario())


def test_reading_a_reference_not_loaded_raises_session_state_error(client: Client) -> None:
    """docs/web.md: a field the session has not loaded raises SessionStateError."""
    company = Company("acme")
    company.ceo = Employee("Bob", 2.0)
    company.make_persistent("acme")
    del company
    with pytest.raises(SessionStateError):
        _read_in_session(client, "reference")


def test_a_new_object_a_query_returns_is_read_from_memory(client: Client) -> None:
    """docs/web.md: objects the session created are read from memory."""
    _read_in_session(client, "new object")
