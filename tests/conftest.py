"""Shared test helpers: CLI runner, isolated trace cache, one-thread torch, a tiny UNet."""

import os

import pytest
import torch
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub in tests

# Property tests draw the same cases on every run by default, so a red CI always means a change
# broke something, never a new draw; `make fuzz` (profile "explore") draws fresh random cases,
# and every counterexample it finds becomes a regression test.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def run_cli(capsys):
    """Run the CLI entry point in-process; returns (exit code, stdout, stderr)."""
    from earlyq_sim.cli import main

    def _run(args):
        with pytest.raises(SystemExit) as e:
            main(list(args))
            raise SystemExit(0)
        out = capsys.readouterr()
        return e.value.code, out.out, out.err

    return _run


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Traces go to a per-test cache folder, not the user's."""
    monkeypatch.setenv("EARLYQ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def one_thread():
    # Tiny real-tensor forwards: 2 OpenMP threads on a busy 2-core box spin for seconds.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_unet(seed=0):
    """A small random-init 16x16 UNet2DModel with one attention level."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(32, 64),
                       layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=32)
