"""Session-per-request: the WSGI middleware and @client.transactional, driven like a server."""

from __future__ import annotations

import contextvars
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from claystore import Client
from claystore.web import SessionMiddleware
from tests.models import Counter, Employee


def call(app: Any, path: str) -> tuple[str, bytes]:
    """Call a WSGI application the way a server does."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(),
    }
    status: list[str] = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    return status[0], body


def counter_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    counter = Counter.get_by_alias("hits")
    if environ["PATH_INFO"] == "/hit":
        counter.increment()
        start_response("200 OK", [])
        return [json.dumps(counter.count).encode()]
    if environ["PATH_INFO"] == "/crash":
        counter.count = -1
        raise RuntimeError("handler crashed")
    counter.count = -2
    start_response("503 Service Unavailable", [])
    return [b"down"]


def test_concurrent_requests_each_get_a_session(client: Client) -> None:
    """200 requests from 8 server threads, each in its own session, lose no increment."""
    Counter().make_persistent("hits")
    app = SessionMiddleware(counter_app, client)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: context.copy().run(call, app, "/hit"), range(200)))
    assert {status for status, _ in results} == {"200 OK"}
    assert Counter.get_by_alias("hits").count == 200


def test_failed_requests_leave_nothing_behind(client: Client) -> None:
    """A handler that raises, or answers 5xx, has its changes rolled back."""
    Counter().make_persistent("hits")
    app = SessionMiddleware(counter_app, client)
    with pytest.raises(RuntimeError, match="handler crashed"):
        call(app, "/crash")
    assert call(app, "/down") == ("503 Service Unavailable", b"down")
    assert Counter.get_by_alias("hits").count == 0


def test_transactional_decorator_commits_or_rolls_back(client: Client) -> None:
    """@client.transactional runs each call in a session of its own."""
    employee = Employee("John", 1.0)
    employee.make_persistent()

    @client.transactional
    def give_raise(amount: float) -> None:
        employee.salary += amount
        if amount < 0:
            raise ValueError("no pay cuts")

    give_raise(10.0)
    with pytest.raises(ValueError, match="no pay cuts"):
        give_raise(-5.0)
    assert employee.salary == 11.0
