"""A tiny web application with one claystore session per request (WSGI, standard library).

``python examples/web_app.py`` starts the server on a free port, sends it 200 concurrent
deposits from 8 threads and one failing request, checks that no deposit was lost and the failed
request left nothing behind, and exits.  ``python examples/web_app.py --serve`` keeps serving on
http://127.0.0.1:8000: ``GET /`` lists balances, ``POST /deposit?name=alice&amount=10`` adds
money (committed when the request succeeds), ``POST /fail?name=alice`` changes a balance and
then fails with a 500: the change is rolled back.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from claystore import Client, DataClayObject, activemethod
from claystore.web import SessionMiddleware


class Account(DataClayObject):
    name: str
    balance: int = 0

    def __init__(self, name: str) -> None:
        self.name = name

    @activemethod
    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance


def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI application; the middleware wraps each call in a session."""
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/deposit":
        account = Account.get_by_alias(query["name"])
        balance = account.deposit(int(query["amount"]))  # joins the request's session
        payload: Any = {"name": account.name, "balance": balance}
    elif path == "/fail":
        Account.get_by_alias(query["name"]).balance = -1_000_000
        start_response("500 Internal Server Error", [("Content-Type", "application/json")])
        return [b'{"error": "failed on purpose: the change above is rolled back"}']
    else:
        names = json.loads(query.get("names", '["alice", "bob"]'))
        payload = {name: Account.get_by_alias(name).balance for name in names}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    url = os.environ.get("DC_URL")
    if url is None:
        Path("web_app.db").unlink(missing_ok=True)
        url = "sqlite:///web_app.db"
    demo = "--serve" not in sys.argv
    with Client(url) as client:
        for name in ("alice", "bob"):
            Account(name).make_persistent(name)
        server = make_server(
            "127.0.0.1",
            0 if demo else 8000,
            SessionMiddleware(application, client),
            server_class=ThreadingServer,
            handler_class=QuietHandler,
        )
        port = server.server_address[1]
        if not demo:
            print(f"serving on http://127.0.0.1:{port}")
            server.serve_forever()
            return
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"

        def post(path: str) -> int:
            request = urllib.request.Request(base + path, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        with ThreadPoolExecutor(8) as pool:
            names = ["alice" if i % 2 else "bob" for i in range(200)]
            codes = list(pool.map(lambda name: post(f"/deposit?name={name}&amount=1"), names))
        assert codes == [200] * 200, codes
        assert post("/fail?name=alice") == 500
        with urllib.request.urlopen(base + "/", timeout=60) as response:
            balances = json.loads(response.read())
        server.shutdown()
        print("balances after 200 concurrent deposits and one failed request:", balances)
        assert balances == {"alice": 100, "bob": 100}, balances


if __name__ == "__main__":
    main()
