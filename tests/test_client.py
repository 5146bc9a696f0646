"""Client: configuration, start/stop, context variables, errors."""

from __future__ import annotations

import contextvars
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from claystore import Client, errors
from claystore.client import resolve_url
from tests.models import Employee, Person


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def url_of(**kwargs: Any) -> str:
    environ = kwargs.pop("environ", {})
    args = {"host": None, "port": None, "username": None, "password": None, "database": None}
    args.update(kwargs)
    url = args.pop("url", None)
    return resolve_url(url, environ=environ, **args).render_as_string(hide_password=False)


def test_default_is_a_sqlite_file() -> None:
    """With nothing configured the client uses sqlite:///claystore.db."""
    assert url_of() == "sqlite:///claystore.db"
    assert Client().url == "sqlite:///claystore.db"


def test_dataclay_style_arguments_make_a_postgresql_url() -> None:
    """host/port/username/password/database become a psycopg 3 URL."""
    url = url_of(host="db", port="16587", username="u", password="p", database="d")
    assert url == "postgresql+psycopg://u:p@db:16587/d"
    assert url_of(host="db", username="alice") == "postgresql+psycopg://alice@db:5432/alice"


def test_environment_variables_are_read() -> None:
    """DC_URL wins over DC_HOST & co; the arguments win over both."""
    environ = {
        "DC_HOST": "envhost",
        "DC_PORT": "6000",
        "DC_USERNAME": "eve",
        "DC_PASSWORD": "pw",
        "DC_DATABASE": "envdb",
    }
    assert url_of(environ=environ) == "postgresql+psycopg://eve:pw@envhost:6000/envdb"
    assert url_of(environ={**environ, "DC_URL": "sqlite:///x.db"}) == "sqlite:///x.db"
    assert url_of(url="sqlite:///y.db", environ=environ) == "sqlite:///y.db"


def test_dataset_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """dataset=..., else DC_DATASET, else 'default'."""
    monkeypatch.setenv("DC_DATASET", "fromenv")
    assert Client("sqlite://").dataset == "fromenv"
    assert Client("sqlite://", dataset="arg").dataset == "arg"
    monkeypatch.delenv("DC_DATASET")
    assert Client("sqlite://").dataset == "default"


def test_postgresql_urls_use_psycopg_3() -> None:
    """A bare postgresql:// URL is pinned to the psycopg 3 driver."""
    assert url_of(url="postgresql://u@h/d") == "postgresql+psycopg://u@h/d"


def test_bad_configuration_is_a_clear_error() -> None:
    """Unsupported databases, bad URLs and bad ports raise ConfigurationError."""
    with pytest.raises(errors.ConfigurationError, match="supports postgresql, sqlite"):
        Client("mysql://u@h/d")
    with pytest.raises(errors.ConfigurationError, match="not a database URL"):
        Client("::nonsense::")
    with pytest.raises(errors.ConfigurationError, match="port must be a number"):
        Client(host="h", port="eighty")
    with pytest.raises(errors.ConfigurationError, match="either a URL or host"):
        Client("sqlite://", host="h")


def test_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    """repr, url, log lines and connection errors mask the password."""
    port = free_port()
    client = Client(host="127.0.0.1", port=port, username="u", password="s3cret", dataset="d")
    assert "s3cret" not in repr(client)
    assert "***" in repr(client)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.DatabaseConnectionError) as info:
        client.start()
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in caplog.text


def test_unreachable_database_names_host_and_port() -> None:
    """An unreachable server is a ConnectionError-derived claystore error, not a traceback."""
    port = free_port()
    client = Client(host="127.0.0.1", port=port, username="postgres")
    with pytest.raises(errors.DatabaseConnectionError) as info:
        client.start()
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, errors.ClaystoreError)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.orig is not None
    assert client.is_closed


def test_start_stop_and_reuse(db_url: str) -> None:
    """A client is reusable: start/stop, and `with` several times; is_open tracks it."""
    client = Client(db_url)
    assert client.is_closed
    client.start()
    assert client.is_open
    Employee("John", 1.0).make_persistent("john")
    client.stop()
    assert client.is_closed
    with client:
        assert Employee.get_by_alias("john").name == "John"
    with client:
        assert client.is_open
    assert not client.is_open


def test_objects_of_a_stopped_client_say_so(db_url: str) -> None:
    """Using an object after its client stopped raises ClientClosedError with the fix."""
    client = Client(db_url)
    with client:
        employee = Employee("John", 1.0)
        employee.make_persistent()
    with pytest.raises(errors.ClientClosedError, match="start it again"):
        _ = employee.salary
    with client:
        assert employee.salary == 1.0


def test_no_client_started_is_a_clear_error() -> None:
    """make_persistent with no started client says how to start one."""
    with pytest.raises(errors.ClientNotStartedError, match="with Client"):
        Employee("John", 1.0).make_persistent()


def test_get_backends_lists_the_default_backend(client: Client) -> None:
    """get_backends returns the one default backend, stable across restarts."""
    backends = client.get_backends()
    assert len(backends) == 1
    ((backend_id, info),) = backends.items()
    assert info.is_default
    assert info.name == "default"
    client.stop()
    client.start()
    assert list(client.get_backends()) == [backend_id]


def test_copied_context_carries_the_client_into_threads(client: Client) -> None:
    """The dataClay multithreading example: copy_context().run(job) in a thread pool.

    (One Context cannot be entered by two threads at once — a Python rule — so each task runs
    in its own copy of it.)
    """
    current_context = contextvars.copy_context()

    def job(name: str, age: int) -> str:
        person = Person(name, age)
        person.make_persistent(name)
        return person.name

    with ThreadPoolExecutor() as executor:
        futures = [
            executor.submit(current_context.copy().run, job, f"Name{i}", i) for i in range(10)
        ]
        assert sorted(f.result() for f in futures) == sorted(f"Name{i}" for i in range(10))
    assert Person.get_by_alias("Name3").age == 3


def test_plain_threads_fall_back_to_the_latest_client(client: Client) -> None:
    """A thread started without a copied context uses the most recently started client."""
    import threading

    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(Employee.get_by_alias("e").name))
    Employee("E", 1.0).make_persistent("e")
    thread.start()
    thread.join()
    assert results == ["E"]


def test_memory_database_works_across_threads() -> None:
    """sqlite:// (in memory) is one database shared by the client's threads."""
    with Client("sqlite://"):
        Employee("John", 1.0).make_persistent("john")
        context = contextvars.copy_context()
        with ThreadPoolExecutor(2) as pool:
            names = list(
                pool.map(
                    lambda _: context.copy().run(lambda: Employee.get_by_alias("john").name),
                    range(4),
                )
            )
        assert names == ["John"] * 4
