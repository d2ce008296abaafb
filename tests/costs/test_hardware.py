"""GPU and model catalogs, KV sizing and capacity."""

from __future__ import annotations

import dataclasses

import pytest

from llmsched_gym.errors import UnknownNameError
from llmsched_gym.hardware import GIB, GPUS, MODELS, GPUSpec, ModelSpec, get_gpu, get_model, kv_capacity_blocks

MIB = 1 << 20


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("Llama-2-7B", 6_738_415_616),
        ("Llama-2-13B", 13_015_864_320),
        ("Mistral-7B", 7_241_732_096),
        ("Llama-3-8B", 8_030_261_248),
        ("Llama-2-70B", 68_976_648_192),
    ],
)
def test_parameter_counts_match_the_published_models(name: str, params: int) -> None:
    assert get_model(name).n_params == params


def test_llama2_7b_kv_is_half_a_mebibyte_per_token() -> None:
    model = get_model("Llama-2-7B")
    assert model.kv_bytes_per_token() == 512 * 1024
    assert model.kv_bytes_per_token(tp=2) == 256 * 1024


def test_gqa_models_store_fewer_kv_heads() -> None:
    assert get_model("Mistral-7B").kv_bytes_per_token() == 128 * 1024
    assert get_model("Llama-2-70B").kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2
    assert get_model("Llama-2-70B").kv_bytes_per_token(tp=16) == 2 * 80 * 1 * 128 * 2  # KV heads replicated


def test_lookup_is_case_insensitive_and_passes_specs_through() -> None:
    assert get_gpu("h100-80gb") is GPUS["H100-80GB"]
    assert get_model(" llama-3-8b ") is MODELS["Llama-3-8B"]
    assert get_gpu(GPUS["H200"]) is GPUS["H200"]


@pytest.mark.parametrize(("getter", "known"), [(get_gpu, "H100-80GB"), (get_model, "Llama-2-70B")])
def test_unknown_names_list_the_known_ones(getter: object, known: str) -> None:
    with pytest.raises(UnknownNameError, match=known):
        getter("B200")  # type: ignore[operator]


def test_catalogs_are_immutable() -> None:
    with pytest.raises(TypeError):
        GPUS["X"] = GPUS["H200"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS["Llama-2-7B"].hidden = 1  # type: ignore[misc]


def test_h100_llama2_7b_capacity_is_about_7500_blocks() -> None:
    gpu, model = get_gpu("H100-80GB"), get_model("Llama-2-7B")
    rough = (0.9 * 80 * GIB - 13.5e9) / (0.5 * MIB) / 16
    assert kv_capacity_blocks(gpu, model, activation_reserve_bytes=0) == pytest.approx(rough, rel=0.01)
    expected = int((0.9 * 80 * GIB - model.weight_bytes - GIB) // (512 * 1024 * 16))
    assert kv_capacity_blocks(gpu, model) == expected == 7481


def test_tensor_parallelism_splits_weights_and_kv() -> None:
    gpu, model = get_gpu("H100-80GB"), get_model("Llama-2-70B")
    with pytest.raises(ValueError, match="raise tp"):
        kv_capacity_blocks(gpu, model)
    tp2 = kv_capacity_blocks(gpu, model, tp=2)
    tp4 = kv_capacity_blocks(gpu, model, tp=4)
    assert 0 < tp2 < tp4
    per_gpu_free = 0.9 * 80 * GIB - model.weight_bytes / 4 - GIB
    assert tp4 == int(per_gpu_free // (model.kv_bytes_per_token(4) * 16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tp": 3}, "tp=3 must divide"),
        ({"tp": 0}, "tp=0"),
        ({"memory_utilization": 1.5}, "memory_utilization=1.5"),
        ({"block_size": 0}, "block_size=0"),
        ({"activation_reserve_bytes": -1}, "activation_reserve_bytes=-1"),
    ],
)
def test_capacity_arguments_are_checked(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        kv_capacity_blocks(get_gpu("H100-80GB"), get_model("Llama-2-7B"), **kwargs)  # type: ignore[arg-type]


def test_specs_reject_bad_values_naming_them() -> None:
    with pytest.raises(ValueError, match="memory_bytes=0"):
        GPUSpec("g", 0, 1e12, 1e12)
    with pytest.raises(ValueError, match="measured_flops=-1"):
        GPUSpec("g", 1, 1e12, 1e12, measured_flops=-1)
    with pytest.raises(ValueError, match="n_kv_heads=5"):
        ModelSpec("m", 2, 64, 8, 5, 8, 128, 100)
    with pytest.raises(ValueError, match="hidden=0"):
        ModelSpec("m", 2, 0, 8, 8, 8, 128, 100)
    with pytest.raises(ValueError, match="dtype_bytes=3"):
        ModelSpec("m", 2, 64, 8, 8, 8, 128, 100, dtype_bytes=3)
