"""Exported policies (ONNX, TorchScript) act exactly as the SB3 policy, and serve as schedulers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.policy import PolicyCompatibilityError, load_exported
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate
from llmsched_gym.tasks import get_task
from train.evaluate import load_policy
from train.export import export_run, sample_observations


@pytest.fixture(scope="module")
def exported(smoke_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out = tmp_path_factory.mktemp("exported")
    return {name: export_run(run, "final", out / name) for name, run in smoke_runs.items()}


@pytest.mark.parametrize("name", ["priority", "knobs", "scores"])
def test_exported_actions_equal_the_sb3_policy(
    smoke_runs: dict[str, Path], exported: dict[str, list[Path]], name: str
) -> None:
    model, mode = load_policy(smoke_runs[name] / "final.zip")
    env = get_task("slo-goodput").make_env("validation", mode)
    observations = sample_observations(env, model, [500_003], limit=80)
    for path in exported[name]:
        policy = load_exported(path)
        for obs in observations:
            want, _ = model.predict(obs, deterministic=True)
            got = policy.act(obs)
            if name == "knobs":
                assert got.tolist() == want.tolist()
            else:
                np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", ["priority", "knobs", "scores"])
def test_an_exported_policy_in_simulate_equals_the_policy_in_the_env(
    exported: dict[str, list[Path]], name: str
) -> None:
    path = exported[name][0]
    policy = load_exported(path)
    env = get_task("slo-goodput").make_env("validation", policy.manifest.action_mode)
    obs, _ = env.reset(seed=500_004)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        done = terminated or truncated
    in_env = env.unwrapped.result()
    setup = env.unwrapped.engine_setup()
    scheduler = make_scheduler(f"policy:{path}")
    native = simulate(list(env.unwrapped.episode.requests), scheduler, SimulatedRunner(setup.cost_model),
                      setup.engine_config)  # fmt: skip
    assert len(scheduler.decision_times) == env.unwrapped.steps
    names_env = np.asarray(in_env.slo_names)[in_env.columns["slo_class"]]
    names_sim = np.asarray(native.slo_names)[native.columns["slo_class"]]
    assert names_env.tolist() == names_sim.tolist()  # same classes (indexed in another order by simulate)
    for col in native.columns:
        if col not in ("slo_class", "tbt_sum"):
            assert np.array_equal(native.columns[col], in_env.columns[col], equal_nan=True), col
    np.testing.assert_allclose(native.columns["tbt_sum"], in_env.columns["tbt_sum"], rtol=1e-9)


def test_a_policy_for_another_configuration_refuses_to_load(exported: dict[str, list[Path]], tmp_path: Path) -> None:
    import onnx

    from llmsched_gym.policy.manifest import METADATA_KEY, PolicyManifest
    from llmsched_gym.policy.scheduler import PolicyScheduler

    path = exported["priority"][0]
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    manifest = PolicyManifest.from_json(entry.value)
    for field, value, fragment in (
        ("env_version", 0, "env version 0"),
        ("feature_names", ("x",), "observation has 1 features"),
    ):
        import dataclasses

        entry.value = dataclasses.replace(manifest, **{field: value}).to_json()
        bad = tmp_path / f"bad-{field}.onnx"
        onnx.save(model, str(bad))
        with pytest.raises(PolicyCompatibilityError, match=fragment):
            PolicyScheduler(load_exported(bad))


def test_missing_or_foreign_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="llmsched export"):
        load_exported(tmp_path / "none.onnx")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(Exception, match=r"(?i)zip|archive|file|magic|pytorch"):
        load_exported(junk)
