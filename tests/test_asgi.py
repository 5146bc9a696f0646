"""ASGI: the session-per-request middleware, the FastAPI dependency and examples/fastapi_app.py,
driven with httpx over the ASGI transport, on both engines."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import JSONResponse

from claystore import AsyncSession, Client
from claystore.web import ASGISessionMiddleware
from tests.models import Counter
from tests.orm.test_async_session import idle_in_transaction, open_transactions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import fastapi_app  # the example, from examples/

T = TypeVar("T")


def run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function to completion on a new event loop."""

    async def main() -> T:
        return await coro()

    return asyncio.run(main())


def http(app: Any) -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in-process (a handler's exception becomes a 500)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def balance(name: str) -> int:
    """An account's committed balance."""
    return int(fastapi_app.Account.get_by_alias(name).balance)


def test_the_example_loses_no_concurrent_deposit(client: Client) -> None:
    """200 deposits from 20 concurrent tasks end exact; the alias lookup and the paged query
    answer what was committed."""
    app = fastapi_app.create_app(client)

    async def work() -> dict[str, Any]:
        async with http(app) as web:
            for name in ("alice", "bob", "carol"):
                assert (await web.post("/accounts", json={"name": name})).status_code == 201
            again = await web.post("/accounts", json={"name": "alice"})
            assert again.status_code == 409

            async def deposits() -> None:
                for _ in range(10):
                    reply = await web.post("/accounts/alice/deposits", json={"amount": 1})
                    assert reply.status_code == 200, reply.text

            await asyncio.gather(*(deposits() for _ in range(20)))
            assert (await web.get("/accounts/nobody")).status_code == 404
            page = await web.get("/accounts", params={"limit": 2, "offset": 1})
            rich = await web.get("/accounts", params={"min_balance": 1})
            return {
                "alice": (await web.get("/accounts/alice")).json(),
                "page": page.json(),
                "rich": rich.json(),
            }

    seen = run(work)
    assert seen["alice"] == {"name": "alice", "balance": 200}
    assert balance("alice") == 200
    assert seen["page"]["total"] == 3
    assert [a["name"] for a in seen["page"]["items"]] == ["bob", "carol"]
    assert seen["rich"]["items"] == [{"name": "alice", "balance": 200}]
    assert open_transactions(client) == 0


def test_a_handler_exception_writes_nothing(client: Client) -> None:
    """A transfer whose target is unknown fails after the withdrawal: a 500, and neither the
    withdrawal nor anything else of the request is written."""
    app = fastapi_app.create_app(client)

    async def work() -> tuple[int, int]:
        async with http(app) as web:
            for name in ("alice", "bob"):
                await web.post("/accounts", json={"name": name})
            await web.post("/accounts/alice/deposits", json={"amount": 100})
            failed = await web.post(
                "/transfers", json={"source": "alice", "target": "nobody", "amount": 30}
            )
            done = await web.post(
                "/transfers", json={"source": "alice", "target": "bob", "amount": 30}
            )
            return failed.status_code, done.status_code

    assert run(work) == (500, 200)
    assert (balance("alice"), balance("bob")) == (70, 30)


def counter_app(client: Client, events: dict[str, asyncio.Event]) -> FastAPI:
    """Routes that change the counter ``c`` and then fail, stall or answer oddly."""
    app = FastAPI()
    app.add_middleware(ASGISessionMiddleware, client=client)

    async def counter() -> Counter:
        return await Counter.a_get_by_alias("c")

    @app.post("/unavailable")
    async def unavailable() -> JSONResponse:
        (await counter()).count = 503
        return JSONResponse({"down": True}, status_code=503)

    request_session = Depends(client.a_session_dependency)  # the middleware's

    @app.post("/stall")
    async def stall(session: AsyncSession = request_session) -> None:
        (await counter()).count = 1
        await session.a_flush()  # the UPDATE is sent: the transaction is open in the database
        events["stalled"].set()
        await asyncio.sleep(30)

    @app.post("/later")
    async def later(tasks: BackgroundTasks) -> dict[str, int]:
        async def after_the_response() -> None:
            (await counter()).count += 10

        (await counter()).count = 1
        tasks.add_task(after_the_response)
        return {"ok": 1}

    @app.post("/conflict")
    async def conflict() -> dict[str, int]:
        mine = await counter()
        mine.count = 7
        events["loaded"].set()
        await events["overwritten"].wait()
        return {"count": mine.count}

    return app


def test_a_5xx_answer_rolls_back_and_work_after_the_response_commits(client: Client) -> None:
    """A 503 written by the handler rolls its changes back; a background task (after the
    response) runs in the session's next transaction and is committed."""
    Counter().make_persistent("c")
    app = counter_app(client, {})

    async def work() -> tuple[int, int]:
        async with http(app) as web:
            down = await web.post("/unavailable")
            assert Counter.get_by_alias("c").count == 0
            later = await web.post("/later")
            return down.status_code, later.status_code

    assert run(work) == (503, 200)
    assert Counter.get_by_alias("c").count == 11


def test_a_cancelled_request_leaves_no_open_transaction(client: Client) -> None:
    """A request cancelled while its handler waits (a client that went away) rolls back the
    UPDATE it already sent and gives the connection back."""
    Counter().make_persistent("c")
    events = {"stalled": asyncio.Event()}
    app = counter_app(client, events)

    async def work() -> bool:
        events["stalled"] = asyncio.Event()  # of this loop
        async with http(app) as web:
            request = asyncio.create_task(web.post("/stall"))
            await asyncio.wait_for(events["stalled"].wait(), 10)
            request.cancel()
            try:
                await request
            except asyncio.CancelledError:
                return True
        return False

    assert run(work) is True
    assert Counter.get_by_alias("c").count == 0
    assert open_transactions(client) == 0
    assert idle_in_transaction(client) == 0


def test_a_commit_conflict_answers_409(client: Client, engine_name: str) -> None:
    """A request whose object another writer changed meanwhile is not committed: the response
    becomes 409 Conflict (the client may retry) and the other write stands."""
    if engine_name == "sqlite":
        pytest.skip("a SQLite session holds the write lock: no one else can commit meanwhile")
    Counter().make_persistent("c")
    events: dict[str, asyncio.Event] = {}
    app = counter_app(client, events)

    async def work() -> httpx.Response:
        events.update(loaded=asyncio.Event(), overwritten=asyncio.Event())
        async with http(app) as web:
            request = asyncio.create_task(web.post("/conflict"))
            await events["loaded"].wait()
            await asyncio.to_thread(lambda: setattr(Counter.get_by_alias("c"), "count", 42))
            events["overwritten"].set()
            return await request

    reply = run(work)
    assert reply.status_code == 409
    assert reply.json()["error"] == "VersionConflictError"
    assert Counter.get_by_alias("c").count == 42


def test_the_dependency_alone_commits_when_the_handler_returns(client: Client) -> None:
    """Without the middleware ``Depends(client.a_session_dependency, scope="function")`` opens
    the session: committed when the handler returns, rolled back when it raises."""
    Counter().make_persistent("c")
    app = FastAPI()
    dependency = Depends(client.a_session_dependency, scope="function")

    @app.post("/add/{n}")
    async def add(n: int, session: AsyncSession = dependency) -> dict[str, int]:
        counter = await Counter.a_get_by_alias("c")
        counter.count += n
        if n < 0:
            raise ValueError("negative")
        assert counter in session
        return {"count": counter.count}

    async def work() -> list[int]:
        async with http(app) as web:
            return [(await web.post(f"/add/{n}")).status_code for n in (5, -100, 2)]

    assert run(work) == [200, 500, 200]
    assert Counter.get_by_alias("c").count == 7


def test_the_lifespan_starts_and_stops_the_client(db_url: str) -> None:
    """The ASGI lifespan starts a client that is not started, and stops it at shutdown."""
    client = Client(db_url)
    app = ASGISessionMiddleware(FastAPI(), client)

    async def lifespan() -> list[str]:
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[str] = []
        states: list[str] = []

        async def receive() -> dict[str, Any]:
            return await incoming.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            states.append(f"{message['type']}:{client.is_open}")

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        server = asyncio.create_task(app(scope, receive, send))
        await incoming.put({"type": "lifespan.startup"})
        while not sent:
            await asyncio.sleep(0.01)
        await incoming.put({"type": "lifespan.shutdown"})
        await server
        return states

    states = run(lifespan)
    assert states == ["lifespan.startup.complete:True", "lifespan.shutdown.complete:False"]
    assert not client.is_open
