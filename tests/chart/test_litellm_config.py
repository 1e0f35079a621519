"""The shipped LiteLLM config: offline by default, providers only with keys, a real cascade."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART, KIND_VALUES

pytestmark = pytest.mark.chart

CONFIG_PATH = CHART / "charts" / "litellm" / "files" / "config.yaml"
PROVIDER_KEYS = {
    "openai/": "OPENAI_API_KEY",
    "gemini/": "GEMINI_API_KEY",
    "groq/": "GROQ_API_KEY",
    "openrouter/": "OPENROUTER_API_KEY",
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG_PATH.read_text()))


def _models(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["model_name"]: entry["litellm_params"] for entry in config["model_list"]}


def _fallbacks(config: dict[str, Any]) -> dict[str, list[str]]:
    chain: dict[str, list[str]] = {}
    for rule in config["router_settings"]["fallbacks"]:
        chain.update(rule)
    return chain


def test_every_model_is_either_an_offline_mock_or_reads_its_key_from_the_environment(
    config: dict[str, Any],
) -> None:
    for name, params in _models(config).items():
        if "mock_response" in params:
            assert "api_key" not in params, name
            continue
        provider = next(p for p in PROVIDER_KEYS if params["model"].startswith(p))
        # A literal key in a shipped file would be a leaked key.
        assert params["api_key"] == f"os.environ/{PROVIDER_KEYS[provider]}", name


def test_every_provider_has_a_named_model(config: dict[str, Any]) -> None:
    prefixes = {
        params["model"].split("/")[0] + "/"
        for params in _models(config).values()
        if "mock_response" not in params
    }
    assert prefixes == set(PROVIDER_KEYS)


def test_smart_router_cascades_through_three_offline_tiers(config: dict[str, Any]) -> None:
    models = _models(config)
    chain, current = ["smart-router"], "smart-router"
    fallbacks = _fallbacks(config)
    while current in fallbacks:
        (current,) = fallbacks[current]
        chain.append(current)
    assert chain == ["smart-router", "smart-router-secondary", "smart-router-fallback"]
    # With no keys at all, every tier answers.
    assert all("mock_response" in models[tier] for tier in chain)


def test_every_fallback_target_is_a_model_of_the_config(config: dict[str, Any]) -> None:
    names = set(_models(config))
    for source, targets in _fallbacks(config).items():
        assert source in names
        assert set(targets) <= names, source


def test_a_failing_mock_demonstrates_fallback_offline(config: dict[str, Any]) -> None:
    models = _models(config)
    assert models["mock-unavailable"]["mock_response"] == "litellm.InternalServerError"
    (target,) = _fallbacks(config)["mock-unavailable"]
    assert isinstance(models[target]["mock_response"], str)


def test_gateway_default_model_and_embedding_models_exist(config: dict[str, Any]) -> None:
    names = set(_models(config))
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    kind_values = yaml.safe_load(KIND_VALUES.read_text())
    assert chart_values["config"]["defaultModel"] in names
    assert kind_values["config"]["defaultModel"] in names
    assert chart_values["config"]["embeddingModel"] in names
    embedding = next(e for e in config["model_list"] if e["model_name"] == "mock-embedding")
    assert embedding["model_info"]["mode"] == "embedding"
    assert all(isinstance(x, float) for x in embedding["litellm_params"]["mock_response"])


def test_the_gateway_owns_retries(config: dict[str, Any]) -> None:
    assert config["router_settings"]["num_retries"] == 0
