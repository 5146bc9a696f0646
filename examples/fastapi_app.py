"""A small FastAPI service on claystore: accounts, deposits, transfers, a paged query, aliases.

Every request runs in its own async session (:class:`claystore.web.ASGISessionMiddleware`):
committed before the response goes out when the status is below 500, rolled back on an
exception, a 5xx or a cancelled request.  The ASGI lifespan starts and stops the client.

Run it (``pip install "claystore[web]" uvicorn``)::

    DC_URL=sqlite:///bank.db uvicorn examples.fastapi_app:app

``python examples/fastapi_app.py`` runs it in-process instead (httpx over the ASGI transport,
on SQLite, no server): opens two accounts, sends 200 concurrent deposits from 20 tasks, checks
that none was lost and that a failed transfer wrote nothing, and exits.

The endpoints:

- ``POST /accounts`` ``{"name": "alice"}``: opens an account (the name is its alias; 409 if
  taken);
- ``GET /accounts/{name}``: the account named so (an alias lookup; 404 if none);
- ``POST /accounts/{name}/deposits`` ``{"amount": 10}``: adds money (an activemethod: the
  row is locked, concurrent deposits never lose one);
- ``POST /transfers`` ``{"source": "alice", "target": "bob", "amount": 5}``: moves money in
  one transaction (an unknown target fails after the withdrawal: nothing is written);
- ``GET /accounts?limit=10&offset=0&min_balance=0``: a page of accounts by name (one SELECT,
  streamed with ``async for``), with the total.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from claystore import AsyncSession, Client, DataClayObject, activemethod
from claystore.errors import AliasAlreadyExistError, AliasDoesNotExistError
from claystore.web import ASGISessionMiddleware


class Account(DataClayObject):
    name: str
    balance: int = 0

    def __init__(self, name: str) -> None:
        self.name = name

    @activemethod
    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance


class NewAccount(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class Deposit(BaseModel):
    amount: int = Field(gt=0)


class Transfer(BaseModel):
    source: str
    target: str
    amount: int = Field(gt=0)


def as_json(account: Account) -> dict[str, Any]:
    """An account as the API shows it (read from memory: it is in the request's session)."""
    return {"name": account.name, "balance": account.balance}


def create_app(client: Client) -> FastAPI:
    """The service on ``client`` (started by the app's lifespan if it is not yet)."""
    app = FastAPI(title="claystore bank")
    app.add_middleware(ASGISessionMiddleware, client=client)
    session_dependency = Depends(client.a_session_dependency, scope="function")

    async def find(name: str) -> Account:
        try:
            return await Account.a_get_by_alias(name)
        except AliasDoesNotExistError:
            raise HTTPException(404, f"no account named {name!r}") from None

    @app.post("/accounts", status_code=201)
    async def open_account(new: NewAccount) -> dict[str, Any]:
        account = Account(new.name)
        try:
            await account.a_make_persistent(alias=new.name)
        except AliasAlreadyExistError:
            raise HTTPException(409, f"an account named {new.name!r} exists") from None
        return as_json(account)

    @app.get("/accounts/{name}")
    async def get_account(name: str) -> dict[str, Any]:
        return as_json(await find(name))

    @app.post("/accounts/{name}/deposits")
    async def deposit(name: str, deposit: Deposit) -> dict[str, Any]:
        account = await find(name)
        await account.a_deposit(deposit.amount)
        return as_json(account)

    @app.post("/transfers")
    async def transfer(
        transfer: Transfer, session: AsyncSession = session_dependency
    ) -> dict[str, Any]:
        source = await find(transfer.source)
        if source.balance < transfer.amount:
            raise HTTPException(409, f"{source.name} has {source.balance}, not {transfer.amount}")
        await source.a_deposit(-transfer.amount)
        # an unknown target raises here, after the withdrawal: the request's session rolls
        # both back (an exception, a 5xx)
        target = await Account.a_get_by_alias(transfer.target)
        await target.a_deposit(transfer.amount)
        await session.a_flush()  # written now (the commit comes with the response)
        return {"source": as_json(source), "target": as_json(target)}

    @app.get("/accounts")
    async def list_accounts(
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
        offset: Annotated[int, Query(ge=0)] = 0,
        min_balance: int | None = None,
    ) -> dict[str, Any]:
        query = Account.dc_query().order("name")
        if min_balance is not None:
            query = query.filter("balance", ">=", min_balance)
        total = await query.a_count()
        page = query.limit(limit).offset(offset)
        items = [as_json(account) async for account in page.a_iter()]
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    return app


client = Client(os.environ.get("DC_URL", "sqlite:///fastapi_app.db"))
app = create_app(client)


async def demo() -> None:
    """Drive the service in-process: 200 concurrent deposits from 20 tasks, one failed
    transfer, and check the balances."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bank") as http:
        for name in ("alice", "bob"):
            (await http.post("/accounts", json={"name": name})).raise_for_status()

        async def deposits(count: int) -> None:
            for _ in range(count):
                reply = await http.post("/accounts/alice/deposits", json={"amount": 1})
                reply.raise_for_status()

        await asyncio.gather(*(deposits(10) for _ in range(20)))
        alice = (await http.get("/accounts/alice")).json()
        assert alice["balance"] == 200, alice
        print(f"200 concurrent deposits from 20 tasks: alice has {alice['balance']}")

        failed = {"source": "alice", "target": "nobody", "amount": 50}
        reply = await http.post("/transfers", json=failed)
        print(f"a transfer to an unknown account: {reply.status_code} {reply.text}")
        alice = (await http.get("/accounts/alice")).json()
        assert alice["balance"] == 200, alice
        print(f"nothing of it was written: alice still has {alice['balance']}")
        done = {"source": "alice", "target": "bob", "amount": 50}
        print("transfer:", (await http.post("/transfers", json=done)).json())
        print("page:", (await http.get("/accounts", params={"limit": 1, "offset": 1})).json())


def main() -> None:
    if "DC_URL" not in os.environ:
        Path("fastapi_app.db").unlink(missing_ok=True)
    with client:
        asyncio.run(demo())


if __name__ == "__main__":
    main()
