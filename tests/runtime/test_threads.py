"""CPU threads are a runtime choice (LTH_THREADS), never a param that enters a stage hash."""
import pytest
import torch
import yaml

from conftest import TINY, merge
from pipeline.core.config import ConfigError, parse_params
from pipeline.runtime import device
from pipeline.runtime.distributed import LaunchError


def test_lth_threads_sets_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LTH_THREADS", "2")
        assert device.configure_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("LTH_THREADS", "1")
        assert device.configure_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("LTH_THREADS")
        assert device.cpu_threads() == device.available_cores()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_is_one_line(monkeypatch, bad):
    monkeypatch.setenv("LTH_THREADS", bad)
    with pytest.raises(LaunchError, match="LTH_THREADS"):
        device.cpu_threads()


def test_train_threads_is_no_longer_a_param_and_says_where_it_went():
    with pytest.raises(ConfigError, match="train.threads.*LTH_THREADS"):
        parse_params(merge(TINY, {"train": {"threads": 2}}))


def test_no_stage_declares_a_thread_param():
    from pathlib import Path
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())
    assert "threads" not in str(spec), "thread counts must not enter any stage's params hash"
