"""Detail tiers: with `server.details: token`, anonymous callers see only the verdict,
in every format; the bearer token unlocks the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapter.config import ConfigError, load_config, parse_config
from adapter.server import make_app, reloader_for
from tests import sample_probes
from tests.rotation import SecretDir

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

TOKEN = "s3cret-token-0123456789"
SECRET_OUTPUT = "switch says"  # the Switch probe's output: a detail
CONFIG = """
service: orders-api
server: {details: token, token_env: HA_TOKEN}
checks:
  - {name: api, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: api}}
  - {name: disk, groups: [live, ready], interval: 100ms,
     plugin: {class: "tests.sample_probes:Ok"}}
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(aiohttp_client: Client) -> TestClient[Any, Any]:
    config = parse_config(CONFIG, environ={"HA_TOKEN": TOKEN})
    client = await aiohttp_client(make_app(config))
    for _ in range(200):
        if (await client.get("/health", headers=AUTH)).status == 200:
            break
        await asyncio.sleep(0.02)
    return client


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        pytest.param("/health", 200, '{"status":"pass"}', id="json"),
        pytest.param("/readyz?verbose", 200, "readyz check passed\n", id="text"),
        pytest.param("/livez?format=text", 200, "livez check passed\n", id="text-livez"),
        pytest.param(
            "/health?format=nagios", 200, "HEALTH OK - details need the bearer token\n", id="nagios"
        ),
    ],
)
async def test_anonymous_callers_get_the_verdict_only(
    client: TestClient[Any, Any], path: str, status: int, body: str
) -> None:
    response = await client.get(path)
    assert (response.status, await response.text()) == (status, body)
    assert "Authorization" in response.headers["Vary"]


async def test_anonymous_status_codes_follow_the_verdict(client: TestClient[Any, Any]) -> None:
    sample_probes.SWITCHES["api"] = "fail"
    for _ in range(200):
        response = await client.get("/health")
        if response.status == 503:
            break
        await asyncio.sleep(0.02)
    assert await response.json(content_type=None) == {"status": "fail"}
    assert (await client.get("/livez")).status == 200  # api is not in live


@pytest.mark.parametrize("path", ["/", "/health?format=html"])
async def test_the_status_page_names_no_check_anonymously(
    client: TestClient[Any, Any], path: str
) -> None:
    anonymous = await (await client.get(path, headers={"Accept": "text/html"})).text()
    assert "<h1>pass</h1>" in anonymous
    for detail in ("api", "disk", "orders-api", SECRET_OUTPUT):
        assert detail not in anonymous
    with_token = await (await client.get(path, headers={**AUTH, "Accept": "text/html"})).text()
    assert "api" in with_token and SECRET_OUTPUT in with_token


async def test_metrics_expose_only_the_verdict_anonymously(client: TestClient[Any, Any]) -> None:
    anonymous = await (await client.get("/metrics")).text()
    lines = [line for line in anonymous.splitlines() if not line.startswith("#")]
    assert lines == ["health_status 0.0"]
    with_token = await (await client.get("/metrics", headers=AUTH)).text()
    assert 'health_check_status{check="api"}' in with_token
    assert "process_resident_memory_bytes" in with_token
    assert 'health_adapter_config_reloads_total{result="success"} 0.0' in with_token


@pytest.mark.parametrize(
    "path",
    [
        "/health/api",
        "/health/nope",
        "/readyz/api",
        "/livez/disk",
        "/startupz/api",
        "/health?exclude=api",
    ],
)
async def test_per_check_answers_need_the_token(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="health-adapter"'
    assert "api" not in await response.text()
    authorized = await client.get(path, headers=AUTH)
    assert authorized.status == (404 if "nope" in path else 200)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="shorter"),
        pytest.param(f"Basic {TOKEN}", id="other-scheme"),
        pytest.param(TOKEN, id="no-scheme"),
        pytest.param("Bearer ", id="empty"),
        pytest.param(f"Bearer {TOKEN.upper()}", id="other-case"),
    ],
)
async def test_a_wrong_token_is_anonymous(client: TestClient[Any, Any], authorization: str) -> None:
    response = await client.get("/health", headers={"Authorization": authorization})
    assert await response.json(content_type=None) == {"status": "pass"}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"Bearer \xff\xfeabc", id="not-utf8"),
        pytest.param(b"Bearer \x00", id="nul"),
        pytest.param(b"Bearer " + "é".encode() * 20, id="utf8-non-ascii"),
    ],
)
async def test_a_token_of_any_bytes_is_anonymous_not_an_error(
    client: TestClient[Any, Any], raw: bytes
) -> None:
    port = client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: " + raw + b"\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    if raw == b"Bearer \x00":  # the parser refuses a NUL in a header: 400, not 500
        assert b" 400 " in status_line
    else:
        assert status_line == b"HTTP/1.1 200 OK"
        assert rest.endswith(b'{"status":"pass"}')


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN} "]
)
async def test_the_token_unlocks_details(client: TestClient[Any, Any], authorization: str) -> None:
    body = await (await client.get("/health", headers={"Authorization": authorization})).json(
        content_type=None
    )
    assert body["serviceId"] == "orders-api" and set(body["checks"]) == {"api", "disk"}
    assert body["checks"]["api"][0]["output"] == "switch says pass"


async def test_public_details_are_the_default(aiohttp_client: Client) -> None:
    config = parse_config(
        "checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]", environ={}
    )
    client = await aiohttp_client(make_app(config, run_checks=False))
    body = await (await client.get("/health")).json(content_type=None)
    assert set(body["checks"]) == {"a"}
    assert (await client.get("/health/a")).status == 503  # no result yet, but answered


def test_the_token_is_never_echoed_in_errors(tmp_path: Path) -> None:
    short = tmp_path / "token"
    short.write_text("tiny\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(
            f"server: {{details: token, token_file: '{short}'}}\n"
            "checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]",
            environ={},
        )
    assert caught.value.errors == [
        "server.token_file: the token must be one word of at least 16 printable characters"
    ]
    assert "tiny" not in str(caught.value)


async def test_a_reload_rotates_the_token(aiohttp_client: Client, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    path = tmp_path / "health.yaml"
    path.write_text(
        f"server: {{details: token, token_file: '{token_file}'}}\n"
        "checks: [{name: a, interval: 100ms, "
        "plugin: {class: 'tests.sample_probes:Ok'}}]\n"
    )
    client = await aiohttp_client(make_app(load_config(path)))
    assert "checks" in await (await client.get("/health", headers=AUTH)).json(content_type=None)
    token_file.write_text("another-token-abcdefghij\n")
    assert await reloader_for(client.app, path).reload("test")  # type: ignore[arg-type]
    old = await (await client.get("/health", headers=AUTH)).json(content_type=None)
    new = await (
        await client.get("/health", headers={"Authorization": "Bearer another-token-abcdefghij"})
    ).json(content_type=None)
    assert "checks" not in old and "checks" in new


async def test_a_rotated_token_file_is_used_at_the_next_request_without_a_reload(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    secret = SecretDir(tmp_path / "secret")
    secret.publish({"token": f"{TOKEN}\n".encode()})
    config = parse_config(
        f"server: {{details: token, token_file: '{secret.path('token')}'}}\n"
        "checks: [{name: a, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}]\n",
        environ={},
    )
    client = await aiohttp_client(make_app(config))
    new_auth = {"Authorization": "Bearer another-token-abcdefghij"}

    async def sees_details(headers: dict[str, str]) -> bool:
        body = await (await client.get("/health", headers=headers)).json(content_type=None)
        return "checks" in body

    assert await sees_details(AUTH) and not await sees_details(new_auth)

    secret.publish({"token": b"another-token-abcdefghij\n"})  # a Secret's symlink swap
    assert await sees_details(new_auth) and not await sees_details(AUTH)

    secret.publish({"token": b"short\n"})  # not a token: the one in force stays
    assert await sees_details(new_auth) and not await sees_details(
        {"Authorization": "Bearer short"}
    )
