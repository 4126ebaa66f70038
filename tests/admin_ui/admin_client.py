"""Fixtures for the web admin: the demo school with its demo passwords, an app on it, and a
client that signs in and sends forms with their CSRF token, as a browser would.

A plugin module rather than a conftest.py: the other tests import the root conftest by its
bare name, which a second conftest.py would shadow. Test modules load it with
``pytest_plugins``; its asserts carry their own messages (PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from admin_ui import create_app
from admin_ui.staff import DEMO_PASSWORD, give_demo_passwords

FAST_HASH = "pbkdf2:sha256:1000"  # the real default (scrypt) costs 0.1 s a sign-in
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def school(demo: sessionmaker[Session]) -> sessionmaker[Session]:
    """The demo school whose staff can sign in with the demo password."""
    with demo() as db:
        give_demo_passwords(db, method=FAST_HASH)
    return demo


def make_app(url: str, **extra: Any) -> Flask:
    return create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test",
                       "PASSWORD_METHOD": FAST_HASH, **extra})


@pytest.fixture
def app(school: sessionmaker[Session], sqlite_url: str) -> Flask:
    return make_app(sqlite_url)


class Staff:
    """A test client with a person behind it: signs in, follows forms, carries the token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # a user's own language wins
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            html = self.client.get("/login", follow_redirects=True).get_data(as_text=True)
            match = TOKEN.search(html)
            assert match, "no CSRF token on the page"
            self._token = match[1]
        return self._token

    def sign_in(self, username: str, password: str = DEMO_PASSWORD, *,
                next: str | None = None) -> TestResponse:
        url = "/login" if next is None else f"/login?next={quote(next, safe='')}"
        response = self.post(url, username=username, password=password)
        self._token = None  # signing in starts a new cookie session, with a new token
        return response

    def get(self, url: str, **params: str) -> TestResponse:
        return self.client.get(url, query_string=params)

    def page(self, url: str, **params: str) -> str:
        response = self.get(url, **params)
        assert response.status_code == 200, (url, response.status_code, response.location)
        return response.get_data(as_text=True)

    def post(self, url: str, data: dict[str, Any] | None = None, **fields: Any) -> TestResponse:
        form = {"csrf_token": self.token(), **(data or {}), **fields}
        return self.client.post(url, data=form)


@pytest.fixture
def staff(app: Flask) -> Callable[[str | None], Staff]:
    """``staff("council")``: a fresh browser signed in as that demo account (None: nobody)."""

    def make(username: str | None = None) -> Staff:
        person = Staff(app.test_client())
        if username is not None:
            response = person.sign_in(username)
            assert response.status_code == 302, response.get_data(as_text=True)
        return person

    return make
