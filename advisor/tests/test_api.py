"""The JSON API and its OpenAPI description."""

import jsonschema
import pytest
from openapi_spec_validator import validate

from advisor.openapi import SPEC

pytestmark = pytest.mark.django_db


def response_schema(path, status="200"):
    return SPEC["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]


def test_the_openapi_description_is_valid():
    validate(SPEC)


def test_the_openapi_description_is_served(client):
    assert client.get("/api/advisor/openapi.json").json() == SPEC


@pytest.mark.parametrize("path", ["/api/advisor/gpus", "/api/advisor/models"])
def test_catalog_lists_match_the_description(client, path):
    body = client.get(path).json()
    jsonschema.validate(body, response_schema(path))
    items = next(iter(body.values()))
    assert len(items) >= 40 and all(item["slug"] and item["name"] for item in items)


def test_recommendations_match_the_description(client):
    response = client.get("/api/advisor/recommendations",
                          {"gpu": "nvidia-geforce-rtx-4060", "vram_gib": 8, "ram_gib": 32, "ctx": 8192})
    assert response.status_code == 200
    body = response.json()
    jsonschema.validate(body, response_schema("/api/advisor/recommendations"))
    assert body["inputs"]["gpu"] == "nvidia-geforce-rtx-4060"
    assert body["results"]
    assert body["share_url"].startswith("http://testserver/advisor/?")
    assert 0 <= body["results"][0]["offload_ratio"] <= 1


def test_recommendations_need_no_gpu_when_vram_is_given(client):
    body = client.get("/api/advisor/recommendations", {"vram_gib": 12}).json()
    assert body["results"]


@pytest.mark.parametrize("params, fields", [
    ({}, {"gpu"}),
    ({"gpu": "nope"}, {"gpu"}),
    ({"vram_gib": "x", "ctx": "10"}, {"vram_gib", "ctx"}),
    ({"vram_gib": "8", "ram_gib": "-1", "min_speed": "inf"}, {"ram_gib", "min_speed"}),
    ({"vram_gib": "8", "use": "poetry"}, {"use"}),
])
def test_bad_parameters_answer_400_naming_each_field(client, params, fields):
    response = client.get("/api/advisor/recommendations", params)
    assert response.status_code == 400
    body = response.json()
    jsonschema.validate(body, response_schema("/api/advisor/recommendations", "400"))
    assert set(body["errors"]) == fields


def test_the_api_refuses_other_methods(client):
    assert client.post("/api/advisor/recommendations", {"vram_gib": 8}).status_code == 405


def test_recommendations_take_a_runtime_and_a_ram_reserve_and_say_how_each_row_scored(client):
    data = client.get("/api/advisor/recommendations", {"gpu": "nvidia-geforce-rtx-3060", "runtime": "ollama",
                                                      "ram_reserve_gib": 6}).json()
    assert data["inputs"]["runtime"] == "ollama" and data["inputs"]["ram_reserve_gib"] == 6
    row = data["results"][0]
    assert row["ram_reserve_bytes"] == 6 * 2**30
    assert abs(row["score"] - row["quality_used"] * (1 - row["quant_cost"]) * row["speed_factor"]) < 0.05
    bad = client.get("/api/advisor/recommendations", {"gpu": "nvidia-geforce-rtx-3060", "runtime": "vllm"})
    assert bad.status_code == 400 and "runtime" in bad.json()["errors"]
