from __future__ import annotations

from sqlalchemy.engine import URL
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings, parse_database_url


def test_app_healthz_and_readyz_answer_on_a_reachable_database(database_url: URL) -> None:
    with TestClient(
        create_app(Settings(open_without_keys=True, database_url=database_url))
    ) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_app_readyz_says_not_ready_when_the_database_is_unreachable() -> None:
    unreachable = parse_database_url("postgresql://postgres@127.0.0.1:1/test")
    with TestClient(
        create_app(Settings(open_without_keys=True, database_url=unreachable))
    ) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"


def test_app_graphql_answers_queries_and_serves_graphiql(database_url: URL) -> None:
    with TestClient(
        create_app(Settings(open_without_keys=True, database_url=database_url))
    ) as client:
        answer = client.post("/graphql", json={"query": "{ campaigns { totalCount } }"})
        assert answer.status_code == 200
        assert answer.json()["data"]["campaigns"]["totalCount"] == 0
        page = client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
        assert "callbacksScheduledDetails(timePeriod: {lastDays: 7})" in page.text


def test_app_without_introspection_refuses_schema_queries(database_url: URL) -> None:
    settings = Settings(
        open_without_keys=True,
        database_url=database_url,
        introspection=False,
        expiry_sweep_seconds=0,
    )
    with TestClient(create_app(settings)) as client:
        refused = client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        error = refused.json()["errors"][0]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "introspection" in error["message"].lower()
        answered = client.post("/graphql", json={"query": "{ campaigns { totalCount } }"})
        assert answered.json() == {"data": {"campaigns": {"totalCount": 0}}}
