"""EndpointConfig, the flags that build it, and the shaping parts with an injected clock."""

from __future__ import annotations

import argparse

import pytest

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.errors import ConfigError
from corpusbeam.inference.server import EndpointConfig, FaultRates
from corpusbeam.inference.server.config import parse_faults, parse_latency
from corpusbeam.inference.server.flags import add_arguments, config_from_args, config_to_args
from corpusbeam.inference.server.metrics import Metrics
from corpusbeam.inference.server.shaping import FaultPicker, RateBudget


def test_defaults():
    cfg = EndpointConfig()
    assert cfg.model == "hash" and cfg.api_key is None and cfg.max_inputs == 96
    assert cfg.faults == FaultRates()


def test_the_documented_constructor_call_works():
    EndpointConfig(
        model="hash",
        dimensions=256,
        api_key=None,
        latency_ms=(0, 0),
        max_concurrency=None,
        rpm=None,
        tpm=None,
        faults=FaultRates(server_error=0.0, drop=0.0, truncate=0.0, stall=0.0),
        stall_seconds=30.0,
        seed=0,
        blocked_words=(),
        max_inputs=96,
        max_input_tokens=512,
        max_request_bytes=1 << 20,
        max_image_bytes=5_000_000,
        max_image_pixels=25_000_000,
    )


def test_config_is_frozen_and_keyword_only():
    cfg = EndpointConfig()
    with pytest.raises(AttributeError):
        cfg.model = "minilm"  # type: ignore[misc]
    with pytest.raises(TypeError):
        EndpointConfig("hash")  # type: ignore[misc]


def test_repr_hides_the_key():
    cfg = EndpointConfig(api_key="super-secret-key")
    assert "super-secret-key" not in repr(cfg)
    assert "super-secret-key" not in str(cfg)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "gpt"}, "model"),
        ({"dimensions": 12}, "dimensions"),
        ({"dimensions": 0}, "dimensions"),
        ({"model": "minilm", "dimensions": 256}, "dimensions"),
        ({"api_key": ""}, "api_key"),
        ({"latency_ms": (300, 100)}, "latency_ms"),
        ({"latency_ms": (-1, 1)}, "latency_ms"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"rpm": -1}, "rpm"),
        ({"tpm": 1.5}, "tpm"),
        ({"stall_seconds": -1}, "stall_seconds"),
        ({"seed": "x"}, "seed"),
        ({"blocked_words": ["x"]}, "blocked_words"),
        ({"blocked_words": ("",)}, "blocked_words"),
        ({"max_inputs": 0}, "max_inputs"),
        ({"max_input_tokens": 0}, "max_input_tokens"),
        ({"max_request_bytes": True}, "max_request_bytes"),
        ({"max_image_bytes": None}, "max_image_bytes"),
        ({"max_image_pixels": -5}, "max_image_pixels"),
        ({"faults": {"drop": 1}}, "faults"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        EndpointConfig(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_a_bad_key_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        EndpointConfig(api_key=123)  # type: ignore[arg-type]
    assert "123" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"drop": 1.5}, "faults.drop"),
        ({"stall": -0.1}, "faults.stall"),
        ({"drop": 0.6, "truncate": 0.6}, "faults"),
    ],
)
def test_bad_fault_rates(kwargs, field):
    with pytest.raises(ConfigError) as info:
        FaultRates(**kwargs)
    assert info.value.field == field


def test_parse_faults_and_latency():
    assert parse_faults("5xx=0.05,drop=0.02,truncate=0.01,stall=0.01") == FaultRates(
        server_error=0.05, drop=0.02, truncate=0.01, stall=0.01
    )
    assert parse_faults("") == FaultRates()
    assert parse_latency("200") == (200.0, 200.0)
    assert parse_latency("100-300") == (100.0, 300.0)
    for bad in ("boom=0.1", "drop", "drop=x"):
        with pytest.raises(ConfigError, match="faults"):
            parse_faults(bad)
    with pytest.raises(ConfigError, match="latency_ms"):
        parse_latency("fast")


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_build_the_config(monkeypatch):
    monkeypatch.setenv("MY_KEY", "from-env")
    flags = (
        "--model hash --dimensions 64 --latency-ms 100-300 --max-concurrency 4 --rpm 10 "
        "--tpm 1000 --faults 5xx=0.1,drop=0.2 --stall-seconds 2 --seed 9 --block a --block b "
        "--max-inputs 5 --max-input-tokens 50 --max-request-bytes 1000 --max-image-bytes 999 "
        "--max-image-pixels 100 --api-key-env MY_KEY --port 0"
    )
    args = _parse(flags.split())
    cfg = config_from_args(args)
    assert cfg == EndpointConfig(
        model="hash",
        dimensions=64,
        api_key="from-env",
        latency_ms=(100.0, 300.0),
        max_concurrency=4,
        rpm=10,
        tpm=1000,
        faults=FaultRates(server_error=0.1, drop=0.2),
        stall_seconds=2.0,
        seed=9,
        blocked_words=("a", "b"),
        max_inputs=5,
        max_input_tokens=50,
        max_request_bytes=1000,
        max_image_bytes=999,
        max_image_pixels=100,
    )
    assert args.port == 0
    # and back: config_to_args reproduces everything but the key
    again = config_from_args(_parse([*config_to_args(cfg), "--api-key-env", "MY_KEY"]))
    assert again == cfg
    assert "from-env" not in config_to_args(cfg)


def test_api_key_flag_and_missing_env(monkeypatch):
    assert config_from_args(_parse(["--api-key", "k"])).api_key == "k"
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ConfigError, match="NOPE_KEY"):
        config_from_args(_parse(["--api-key-env", "NOPE_KEY"]))


def test_default_flags_are_the_default_config():
    assert config_from_args(_parse([])) == EndpointConfig()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_budget_rpm_slides():
    clock = FakeClock()
    budget = RateBudget(rpm=2, tpm=None, clock=clock)
    assert budget.admit(1) is None
    clock.now += 10
    assert budget.admit(1) is None
    assert budget.admit(1) == pytest.approx(50.0)  # the first frees at t+60
    clock.now += 50
    assert budget.admit(1) is None
    assert budget.admit(1) == pytest.approx(10.0)


def test_rate_budget_tpm_waits_for_enough_tokens():
    clock = FakeClock()
    budget = RateBudget(rpm=None, tpm=100, clock=clock)
    assert budget.admit(40) is None
    clock.now += 5
    assert budget.admit(40) is None
    clock.now += 5
    assert budget.admit(30) == pytest.approx(50.0)  # 10 tokens short: the first must expire
    assert budget.admit(20) is None
    assert budget.admit(50) == pytest.approx(55.0)  # needs the first two to expire


def test_rate_budget_off():
    assert RateBudget(rpm=None, tpm=None).admit(10**9) is None


def test_fault_picker_rates_and_determinism():
    rates = FaultRates(server_error=0.1, drop=0.2, truncate=0.1, stall=0.1)
    picks = [FaultPicker(rates, seed=1).next() for _ in range(1)]
    a, b = FaultPicker(rates, seed=1), FaultPicker(rates, seed=1)
    seq = [a.next() for _ in range(4000)]
    assert seq == [b.next() for _ in range(4000)]
    assert picks[0] == seq[0]
    share = {k: seq.count(k) / len(seq) for k in ("500", "503", "drop", "truncate", "stall", None)}
    assert share["drop"] == pytest.approx(0.2, abs=0.03)
    assert share["500"] + share["503"] == pytest.approx(0.1, abs=0.03)
    assert share[None] == pytest.approx(0.5, abs=0.03)
    assert FaultPicker(FaultRates(), seed=1).next() is None


def test_metrics_render_and_parse():
    m = Metrics()
    m.inc("corpusbeam_requests_total", route="/embeddings", status="200")
    m.inc("corpusbeam_tokens_total", 7, route="/embeddings")
    m.inc("corpusbeam_errors_total", code='we"ird')
    parsed = parse_metrics(m.render())
    assert parsed['corpusbeam_requests_total{route="/embeddings",status="200"}'] == 1
    assert parsed['corpusbeam_tokens_total{route="/embeddings"}'] == 7
    assert parsed['corpusbeam_errors_total{code="we\\"ird"}'] == 1


def test_metrics_print_large_counts_exactly():
    m = Metrics()
    m.inc("corpusbeam_tokens_total", 12_345_678, route="/embeddings")
    m.inc("corpusbeam_tokens_total", 0.5, route="/x")
    text = m.render()
    assert 'corpusbeam_tokens_total{route="/embeddings"} 12345678\n' in text
    assert 'corpusbeam_tokens_total{route="/x"} 0.5\n' in text
