"""`nsteplstm bench`: the quick run writes valid, complete output; argument errors;
the FLOP count. Never a speed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nsteplstm.bench import (
    _CHAINER_PROBE,
    CHART_FILE,
    JSON_FILE,
    TABLE_FILE,
    _chainer_words,
    best_peak,
    chainer,
    check_chainer_python,
    epoch_flops,
    run_bench,
    torch_defaults,
)
from nsteplstm.config import Config
from nsteplstm.errors import InputError


def test_epoch_flops_counts_forward_and_twice_backward():
    # 1 layer, n_in 1, H 200, n_out 1: forward per step 2*800*201 + 2*200 = 322_000.
    per_step = 2 * 4 * 200 * (1 + 200) + 2 * 200 * 1
    assert epoch_flops(53_100, 1, 1, 200, 1) == 3 * 53_100 * per_step
    assert round(epoch_flops(53_100, 1, 1, 200, 1) / 1e9, 1) == 51.3
    second = 2 * 4 * 200 * (200 + 200)
    assert epoch_flops(10, 2, 1, 200, 1) - epoch_flops(10, 1, 1, 200, 1) == 3 * 10 * second
    # The figures the docstring and docs/performance.md quote for 2 and 3 layers.
    assert round(epoch_flops(53_100, 2, 1, 200, 1) / 1e9) == 153
    assert round(epoch_flops(53_100, 3, 1, 200, 1) / 1e9) == 255


def test_bad_arguments_are_input_errors(tmp_path: Path):
    with pytest.raises(InputError, match="repeats"):
        run_bench(out=tmp_path, repeats=0)
    with pytest.raises(InputError, match="device"):
        run_bench(out=tmp_path, device="tpu")
    with pytest.raises(InputError, match="not an executable"):
        run_bench(out=tmp_path, chainer_python=tmp_path / "nope")
    (tmp_path / JSON_FILE).write_text("{}")
    with pytest.raises(InputError, match="--force"):
        run_bench(out=tmp_path)
    not_dir = tmp_path / "file"
    not_dir.write_text("")
    with pytest.raises(InputError, match="not a directory"):
        run_bench(out=not_dir)
    # Both were accepted, then failed after the whole bench ("File exists"), or ran forever.
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(InputError, match=r"dangling: exists and is not a directory \(or a broken"):
        run_bench(out=tmp_path / "dangling")
    with pytest.raises(InputError, match=r"--repeats must be an integer >= 1 and <= 1,000"):
        run_bench(out=tmp_path / "new", repeats=10**20)
    # As root, os.access allowed /proc, and the bench failed only at its end.
    if Path("/proc/self").is_dir():
        with pytest.raises(
            InputError, match=r"--out /proc/nsteplstm-x: cannot create it: /proc is not writable$"
        ):
            run_bench(out=Path("/proc/nsteplstm-x"))
    # Under a dangling link: the whole bench ran, then mkdir said "File exists".
    with pytest.raises(
        InputError, match=r"dangling/new: cannot create it: .*dangling is a broken symbolic link"
    ):
        run_bench(out=tmp_path / "dangling" / "new")


def test_torch_defaults_restores_settings():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch_defaults():
            assert not torch.are_deterministic_algorithms_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


# A stand-in for Chainer's Python: each baseline epoch takes 2 s, each forecast 0.5 s;
# it notes the arguments of every forecast run in the file named by FORECAST_ARGS.
FAKE_BASELINE = (
    'case "$*" in *--forecast*) echo "$*" >> "$FORECAST_ARGS"; '
    """echo '{"seconds_per_forecast": [0.75, 0.5]}';; """
    """*) echo '{"seconds_per_epoch": [2.0]}';; esac"""
)


@pytest.mark.slow
def test_quick_run_writes_complete_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "chainer").mkdir()
    python = fake_python(tmp_path / "chainer" / "python", FAKE_BASELINE)
    monkeypatch.setenv("FORECAST_ARGS", str(tmp_path / "chainer" / "args"))
    doc = run_bench(out=tmp_path, quick=True, device="cpu", repeats=2, chainer_python=python)
    assert "| device | model |" in capsys.readouterr().out
    saved = json.loads((tmp_path / JSON_FILE).read_text())
    assert saved == json.loads(json.dumps(doc))
    for key in ("machine", "setup", "peak", "training", "forecast", "peak_rss", "targets"):
        assert key in saved
    for key in ("cpu", "cores", "torch", "torch_threads", "cuda_devices"):
        assert key in saved["machine"]
    names = {(r["contender"], r["n_layers"]) for r in saved["training"]}
    ours = {("plain", 1), ("step", 1), ("nstep", 1), ("plain-var", 1), ("nstep-var", 1)}
    assert names == ours | {("chainer-step", 1), ("chainer-nstep", 1)}
    # Chainer's forecast, timed in the same run: the article's 121 points, one layer.
    args = (tmp_path / "chainer" / "args").read_text().split()
    assert args[args.index("--forecast") + 1] == "121" and args[args.index("--layers") + 1] == "1"
    assert args[args.index("--cell") + 1] == "nstep"
    assert saved["chainer_forecast"]["seconds"] == [0.75, 0.5]
    assert saved["chainer_forecast"]["points_per_second"] == 121 / 0.5
    original = saved["reference_figures"]["original_forecast"]
    for f in saved["forecast"]:
        assert f["vs_chainer"] == pytest.approx(f["points_per_second"] / 242)
        assert f["speedup"] == pytest.approx(f["points_per_second"] / original["points_per_second"])
    assert saved["failed"] == []
    table = (tmp_path / "bench.md").read_text()
    assert "best 0.500 s for 121 points, 242 points/s." in table
    assert "| device | mode | starts | best s | points/s | x original | x Chainer |" in table
    var = {r["contender"]: r for r in saved["training"] if r["contender"].endswith("-var")}
    assert var["plain-var"]["steps"] == var["nstep-var"]["steps"]  # the same windows, cut alike
    assert var["nstep-var"]["vs_plain_var_min"] > 0
    for r in saved["training"]:
        assert len(r["seconds"]) == saved["repeats"] == 2  # --repeats holds with --quick too
        assert r["min"] <= r["mean"] <= r["max"]
        assert math.isfinite(r["roofline"]) and r["roofline"] > 0
    assert {(f["mode"], f["starts"] > 1) for f in saved["forecast"]} == {
        ("window", False),
        ("window", True),
        ("stream", False),
        ("stream", True),
    }
    # No speed claims from a quick run: its series is not the (it once graded the
    # forecast and nstep lines on it, under load "MISSED").
    assert saved["targets"] == {}
    assert "\nTargets: not checked (--quick is a smoke test" in (tmp_path / "bench.md").read_text()
    assert "glibc malloc defaults" not in (tmp_path / "bench.md").read_text()  # no such row
    assert saved["peak"]["cpu"]["gflops"] > 0
    assert saved["peak_rss"]["peak_rss_mib"] > 0
    assert " --out RUN " in saved["peak_rss"]["command"]  # not a temporary directory, gone
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert (tmp_path / "bench.md").read_text().startswith("Machine:")
    with pytest.raises(InputError, match="--force"):
        run_bench(out=tmp_path, quick=True)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_peak_rss_is_the_child_alone_not_the_parent():
    from nsteplstm.bench import peak_rss
    from nsteplstm.config import Config

    ballast = torch.ones(192 * 2**20)  # 768 MiB resident here, in the parent
    rss = peak_rss(Config(device="cpu", total_size=500), torch.device("cpu"), 1)
    assert rss["source"] == "VmHWM"
    assert 50 < rss["peak_rss_mib"] < 700  # a fork would report the parent's 768+ MiB
    assert rss["cuda_peak_mib"] is None
    del ballast


@pytest.mark.parametrize("name", [JSON_FILE, TABLE_FILE, CHART_FILE])
def test_every_existing_output_is_kept_unless_force(tmp_path: Path, name: str):
    (tmp_path / name).write_text("mine")
    # With a bad device too: the outputs are checked first, so the test stays fast
    # (were the check missing, it would fail on the device instead of benchmarking).
    with pytest.raises(InputError, match=rf"{name} already exists; use --force"):
        run_bench(out=tmp_path, device="tpu")
    assert (tmp_path / name).read_text() == "mine"
    with pytest.raises(InputError, match="device"):
        run_bench(out=tmp_path, device="tpu", force=True)


FAKE_FACTS = {"chainer": "7.8.1", "numpy": "1.26.4", "blas": None, "blas_threads": None}


def fake_python(path: Path, run: str, probe: str = f"echo '{json.dumps(FAKE_FACTS)}'") -> Path:
    """An executable that answers the chainer probe (``-c ...``) by running ``probe``
    (by default printing FAKE_FACTS) and the baseline script by running ``run``."""
    path.write_text(f'#!/bin/sh\ncase "$1" in -c) {probe};; *) {run};; esac\n')
    path.chmod(0o755)
    return path


def test_chainer_python_is_run_from_where_it_is(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_python(tmp_path / "python", "exit 0")
    assert check_chainer_python(Path("./python")) == (tmp_path / "python", FAKE_FACTS)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notpy").write_text("x = 1\n")  # no #! line
    (tmp_path / "sub" / "notpy").chmod(0o755)
    with pytest.raises(InputError, match=r"sub/notpy: cannot run it \(Exec format error\)"):
        check_chainer_python(Path("sub/notpy"))
    with pytest.raises(InputError, match="/bin/true: printed no chainer version"):
        check_chainer_python(Path("/bin/true"))
    with pytest.raises(InputError, match="other: printed no chainer version"):
        check_chainer_python(fake_python(tmp_path / "other", "exit 0", probe="echo 7.8.1"))


def test_the_chainer_probe_reports_its_blas_threads(tmp_path: Path):
    # The probe really runs in a Python: a fake chainer module, numpy as installed here.
    (tmp_path / "chainer.py").write_text("__version__ = '7.8.1'\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _CHAINER_PROBE], capture_output=True, text=True, env=env
    )
    facts = json.loads(done.stdout)
    assert (facts["chainer"], facts["numpy"]) == ("7.8.1", np.__version__)
    assert facts["blas_threads"] is None or facts["blas_threads"] >= 1


def test_the_report_names_chainers_side() -> None:
    facts = {"chainer": "7.8.1", "numpy": "1.26.4", "blas": "openblas64 0.3.23", "blas_threads": 2}
    assert _chainer_words(facts) == "; Chainer 7.8.1 (numpy 1.26.4, openblas64 0.3.23, 2 threads)"
    assert _chainer_words(FAKE_FACTS) == (
        "; Chainer 7.8.1 (numpy 1.26.4, BLAS unknown, BLAS threads unknown)"
    )
    assert _chainer_words(None) == ""


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (
            "echo boom >&2; echo 'ValueError: chainer broke' >&2; exit 3",
            "ValueError: chainer broke",
        ),
        ('echo \'{"seconds_per_epoch": ["abc"]}\'', "'seconds_per_epoch': \\[seconds"),
        ("echo '{\"seconds_per_epoch\": []}'", "'seconds_per_epoch': \\[seconds"),
        # Times no epoch takes once ended in a ZeroDivisionError in the ratios.
        ("echo '{\"seconds_per_epoch\": [1e-320]}'", r"\(1e-6 to 1e6 s\)"),
        ("echo '{\"seconds_per_epoch\": [1e308]}'", r"\(1e-6 to 1e6 s\)"),
        ("echo 'not json'", "got 'not json'"),
        ("exit 0", "got ''"),
    ],
)
def test_a_failing_chainer_baseline_is_one_input_error(tmp_path: Path, run: str, message: str):
    python, _ = check_chainer_python(fake_python(tmp_path / "python", run))
    epoch = chainer(python, tmp_path / "script.py", "step", Config(), 10, malloc=False)
    with pytest.raises(InputError, match=rf"python: the baseline run failed.*{message}") as e:
        epoch()
    assert "\n" not in str(e.value)


def test_a_chainer_forecast_without_its_times_is_one_input_error(tmp_path: Path):
    from nsteplstm.bench import chainer_forecast

    run = """echo '{"seconds_per_epoch": [1.0], "seconds_per_forecast": [0.5, 0]}'"""
    python, _ = check_chainer_python(fake_python(tmp_path / "python", run))
    told = r"python: the baseline run failed: .* 'seconds_per_forecast': \[seconds, ...\]"
    with pytest.raises(InputError, match=told):  # 0 s: no forecast takes that
        chainer_forecast(python, tmp_path / "script.py", Config(), 2, malloc=False)


def test_chainers_python_runs_without_this_packages_directory(tmp_path: Path):
    # An installed nsteplstm's directory holds its numpy too; put first on Chainer's
    # PYTHONPATH, it hid Chainer's numpy 1.26 ("np.sctypes was removed in NumPy 2.0").
    import nsteplstm

    package_root = str(Path(nsteplstm.__file__).resolve().parents[1])
    python = fake_python(
        tmp_path / "python", 'echo "{\\"seconds_per_epoch\\": [1], \\"p\\": \\"$PYTHONPATH\\"}"'
    )
    python, _ = check_chainer_python(python)
    epoch = chainer(python, tmp_path / "script.py", "step", Config(), 10, malloc=True)
    assert epoch() == (1.0, 10)
    from nsteplstm import bench

    env = bench._env(malloc=True, package=False)
    assert package_root not in env.get("PYTHONPATH", "").split(os.pathsep)
    assert package_root in bench._env(malloc=True)["PYTHONPATH"].split(os.pathsep)


def test_a_baseline_that_hangs_is_stopped_with_its_children(tmp_path: Path):
    from nsteplstm import bench

    pid_file = tmp_path / "pid"
    spawn = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(bench.TimedOut, match="hang: no result within 2 s"):
        bench._run_python([sys.executable, "-c", spawn, str(pid_file)], "hang", 2)
    child = int(pid_file.read_text())
    for _ in range(50):  # the orphan is reaped by init shortly after the kill
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the baseline's child {child} outlived it")


def test_chainer_facts_that_bench_json_cannot_hold_are_refused(tmp_path: Path):
    # NaN passed the check, and bench.json failed to write after the whole bench.
    python = fake_python(
        tmp_path / "python", "exit 0", probe="""echo '{"chainer": "7.8.1", "numpy": NaN}'"""
    )
    with pytest.raises(InputError, match="printed no chainer version"):
        check_chainer_python(python)


def test_a_failed_bench_leaves_no_out_directory(tmp_path: Path, monkeypatch):
    # A failure that is no contender's nor a measurement's (here the chart's, drawn
    # once everything is measured) still ends the run before anything is written.
    # (A failing Chainer baseline, memory probe or float32 peak after the race ended it
    # too; each is now recorded under 'failed': test_a_contender_that_fails_mid_run_...,
    # test_a_memory_probe_..., test_a_peak_that_fails_after_the_race_...)
    from nsteplstm import bench

    def broken(doc):
        raise RuntimeError("chart broke")

    (tmp_path / "new").mkdir()
    _make_up_timings(tmp_path / "new", monkeypatch, {})
    monkeypatch.setattr(bench, "chart", broken)
    with pytest.raises(RuntimeError, match="chart broke"):
        bench.run_bench(out=tmp_path / "new" / "out", device="cpu", repeats=3)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["python"]  # no out


def test_a_chainer_baseline_that_crashes_mid_race_is_a_failed_contender(tmp_path: Path):
    from nsteplstm.bench import Contender, race

    python, _ = check_chainer_python(
        fake_python(tmp_path / "python", "echo 'chainer broke' >&2; exit 1")
    )
    epoch = chainer(python, tmp_path / "script.py", "step", Config(), 10, malloc=False)
    crashing = Contender("chainer-step", "cpu", 1, epoch, warm_up=False)
    race([crashing], 3, lambda line: None)
    said = f"--chainer-python {python}: the baseline run failed (exit code 1): chainer broke"
    assert crashing.failure == {"round": 1, "reason": said, "timed_out": False}


def test_best_peak_keeps_each_kernels_best_reading() -> None:
    # One reading disturbed by other load must not lower the peak (and inflate every roofline).
    before = {"kernels": [{"name": "mm", "gflops": 190.0}, {"name": "lstm", "gflops": 4.0}]}
    after = {"kernels": [{"name": "mm", "gflops": 2.0}, {"name": "lstm", "gflops": 150.0}]}
    merged = best_peak(before, after)
    assert merged["kernels"] == [{"name": "mm", "gflops": 190.0}, {"name": "lstm", "gflops": 150.0}]
    assert (merged["best"], merged["gflops"]) == ("mm", 190.0)


def _cuda_doc() -> dict:
    """A report of CUDA rows only, as ``nsteplstm bench --device cuda`` makes one (no
    GPU here: the timings are made up, the report's code is real)."""
    from nsteplstm import bench

    rows = []
    for layers in (1, 2, 3):
        for name, seconds in (("plain", 0.05), ("step", 0.2 * layers), ("nstep", 0.05)):
            run = bench.Contender(name, "cuda:0", layers, lambda: (0, 0), seconds=[seconds] * 3,
                                  steps=[53_100] * 3)  # fmt: skip
            rows.append(bench._summary(run, Config(), 55_000.0))
    bench._ratios(rows)
    return {
        "machine": {"cpu": "x", "cores": 16, "torch": "2.11", "torch_threads": 16,
                    "cuda_devices": ["NVIDIA H200"], "malloc_tuned": True, "chainer": None},
        "setup": {"windows": 1770, "sequence_size": 30, "batch_size": 100, "n_hidden": 200,
                  "variable_min_length": 10},
        "repeats": 3, "layers": [1, 2, 3], "training": rows, "arguments": {"quick": False},
        "forecast": [],
        "peak": {"cuda:0": {"gflops": 55_000.0, "best": "mm",
                            "kernels": [{"name": "mm", "gflops": 55_000.0}]}},
        "peak_rss": {"command": "nsteplstm train --device cuda:0", "peak_rss_mib": 1500.0,
                     "device": "cuda:0", "cuda_peak_mib": 41.4},
    }  # fmt: skip


def test_a_cuda_report_grades_no_cpu_target_and_shows_small_rooflines() -> None:
    from nsteplstm import bench

    doc = _cuda_doc()
    assert bench._targets(doc) == {}  # the 1 GiB line is for CPU training: not a CUDA process
    doc["targets"] = {}
    table = bench.markdown(doc)
    assert table.endswith(
        "\nTargets: none on this device (the speed targets in docs/performance.md are for the "
        "CPU)\n"
    )
    nstep = [line for line in table.splitlines() if "| ours, nstep | 1 |" in line]
    # 51.29 GFLOP in 0.05 s against 55 TFLOP/s: 1.9% (it printed as "2%")
    assert nstep and nstep[0].endswith("| 1.9% |")
    assert [bench._percent(x) for x in (0.713, 1.0, 0.0152)] == ["71%", "100%", "1.5%"]
    memory = [line for line in table.splitlines() if line.startswith("Peak resident memory")]
    assert memory and "**1500 MiB**; on the GPU its tensors held at most **41 MiB**" in memory[0]


def test_targets_grade_best_epochs_and_give_the_median_of_paired_rounds() -> None:
    # Three rounds. Ours's best epoch (round 3) and plain's (round 1) come from
    # different rounds: best against best says 0.9, while ours was slower in two
    # rounds of three (the median of the rounds' ratios, 'paired', says 1.05).
    from nsteplstm import bench

    times = {
        "plain": [1.0, 1.2, 1.1],
        "nstep": [1.05, 1.26, 0.9],
        "chainer-nstep": [4.0, 4.2, 4.6],
        "step": [2.0, 2.0, 2.0],
        "chainer-step": [3.2, 2.8, 3.0],
    }
    rows = []
    for name, seconds in times.items():
        run = bench.Contender(name, "cpu", 1, lambda: (0, 0), seconds=seconds, steps=[100] * 3)
        rows.append(bench._summary(run, Config(), 200.0))
    bench._ratios(rows)
    doc = {"arguments": {"quick": False}, "training": rows, "forecast": [],
           "peak_rss": {"device": "cpu", "peak_rss_mib": 400.0}}  # fmt: skip
    targets = bench._targets(doc)
    assert targets["nstep_1L_vs_plain"] == {
        "value": pytest.approx(0.9),
        "paired": pytest.approx(1.05),
        "met": True,
        "goal": "nstep_vs_plain",
    }
    chainer = targets["nstep_1L_speedup_vs_chainer_nstep"]
    assert (chainer["value"], chainer["met"]) == (pytest.approx(4.0 / 0.9), True)
    assert chainer["paired"] == pytest.approx(4.0 / 1.05)  # rounds: 3.81, 3.33, 5.11
    step = targets["step_1L_speedup_vs_chainer_step"]
    assert (step["value"], step["paired"]) == (pytest.approx(1.4), pytest.approx(1.5))
    assert step["met"] is False
    assert step["against"] == "measured"
    doc["targets"] = targets
    words = bench._targets_words(doc)
    assert "nstep_1L_vs_plain 0.9 (met; paired 1.05)" in words
    assert "step_1L_speedup_vs_chainer_step 1.4 (MISSED; paired 1.5)" in words
    assert "peak_rss_mib 400 (met)" in words


def test_a_baseline_that_prints_without_end_is_stopped(tmp_path: Path, monkeypatch):
    # Its output was all kept in memory: `yes` as --chainer-python took 6 GiB in 5 s,
    # and the probe waits 120 s (an epoch 1200 s).
    from nsteplstm import bench

    monkeypatch.setattr(bench, "MAX_OUTPUT", 2**20)
    flood = "head -c 3000000 /dev/zero; sleep 30"
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"^flood: printed more than 1 MiB of output$"):
        bench._run_python(["sh", "-c", flood], "flood", 5)
    assert time.perf_counter() - started < 4


def test_the_report_says_when_fewer_cores_are_usable() -> None:
    # Under taskset or a container's CPU set the report named all the host's cores,
    # while the timings had one.
    from nsteplstm.bench import _machine_words

    facts = {"cpu": "X", "cores": 8, "usable_cores": 1, "torch": "2", "torch_threads": 1}
    assert ", 8 cores (1 usable), torch 2 (1 threads)" in _machine_words(
        facts | {"cuda_devices": []}
    )
    same = facts | {"usable_cores": 8, "cuda_devices": []}
    assert ", 8 cores, torch" in _machine_words(same)
    assert ", 8 cores, torch" in _machine_words(same | {"usable_cores": None})


# ---------------------------------------------------------------- a contender that fails


def _epoch_failing_on(
    call: int | None, error: BaseException | None = None, seconds: float = 1.0, steps: int = 100
):
    """An epoch that takes ``seconds`` for ``steps`` steps (made up: nothing is timed)
    and raises ``error`` on its ``call``-th call (1-based; None: never)."""
    calls = []

    def epoch() -> tuple[float, int]:
        calls.append(1)
        if len(calls) == call:
            raise error
        return seconds, steps

    return epoch


def test_race_drops_a_failing_contender_and_races_the_rest_to_the_end() -> None:
    # A Chainer subprocess that timed out in round 9 of 10 threw away the whole run.
    from nsteplstm.bench import Contender, TimedOut, race

    timeout = TimedOut("--chainer-python /py: the baseline run failed: no result within 1200 s")
    contenders = [
        Contender("chainer-step", "cpu", 1, _epoch_failing_on(2, timeout), warm_up=False),
        Contender("plain", "cpu", 1, _epoch_failing_on(1, RuntimeError("boom\nsecond line"))),
        Contender("nstep", "cpu", 1, _epoch_failing_on(None)),
    ]
    lines: list[str] = []
    race(contenders, 3, lines.append)
    chainer, plain, nstep = contenders
    assert chainer.failure == {"round": 2, "reason": str(timeout), "timed_out": True}
    assert (chainer.seconds, chainer.steps) == ([1.0], [100])  # its round 1 is kept
    assert plain.failure == {
        "round": 0,
        "reason": "RuntimeError: boom second line",
        "timed_out": False,
    }
    assert plain.seconds == []
    assert nstep.failure is None and nstep.seconds == [1.0] * 3
    failures = [line for line in lines if "failed" in line]
    assert failures == [
        "plain (cpu, 1 layer) failed in its warm-up, dropped from the rounds left: "
        "RuntimeError: boom second line",
        "chainer-step (cpu, 1 layer) failed in round 2 of 3, dropped from the rounds left: "
        f"{timeout}",
    ]
    assert sum(line.startswith("round ") for line in lines) == 1 + 3  # chainer 1, nstep 3


def test_ctrl_c_in_a_contender_still_ends_the_race() -> None:
    from nsteplstm.bench import Contender, race

    stopped = Contender("nstep", "cpu", 1, _epoch_failing_on(2, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        race([stopped], 3, lambda line: None)


SECONDS = {"chainer-step": 3.0, "chainer-nstep": 6.0, "plain-default": 1.5, "plain": 1.0,
           "step": 2.0, "nstep": 0.8, "plain-var": 0.9, "nstep-var": 0.6}  # fmt: skip


RSS = {"command": "nsteplstm train", "device": "cpu", "epochs": 3, "seconds": 1.0,
       "source": "VmHWM", "peak_rss_mib": 500.0, "cuda_peak_mib": None}  # fmt: skip


def _made_up_bench(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: dict[tuple[str, int], tuple[int, Exception]],
    peak_rss=None,
) -> dict:
    """``run_bench`` at the article's settings (3 layers, 3 rounds, Chainer given) with
    every timing made up (:func:`_make_up_timings`). Returns bench.json as written
    into ``tmp_path / "out"``."""
    from nsteplstm import bench

    python = _make_up_timings(tmp_path, monkeypatch, failing, peak_rss)
    bench.run_bench(out=tmp_path / "out", device="cpu", repeats=3, chainer_python=python)
    return json.loads((tmp_path / "out" / JSON_FILE).read_text())


def _make_up_timings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: dict[tuple[str, int], tuple[int, Exception]],
    peak_rss=None,
) -> Path:
    """Every timing of the bench made up: each contender's epoch (:data:`SECONDS` times
    its layers), the peak, the forecasts and the memory probe (:data:`RSS`) are
    stand-ins. ``failing[(name, layers)] = (call, error)`` makes that contender raise
    ``error`` on its ``call``-th epoch; ``("chainer-forecast", 1)``, Chainer's
    forecast; ``("forecast", 1)``, ours; ``peak_rss`` replaces the memory probe's
    stand-in. Returns a stand-in Chainer Python (in ``tmp_path``) that answers the probe."""
    from nsteplstm import bench

    def epochs(s, dev, layers):
        made_up = {}
        for name, seconds in SECONDS.items():
            call, error = failing.get((name, layers), (None, None))
            made_up[name] = _epoch_failing_on(call, error, seconds * layers, 53_100)
        return made_up

    def forecast_speed(config, dataset, device, many, repeats, trials=3):
        if ("forecast", 1) in failing:
            raise failing[("forecast", 1)][1]
        return [
            {"device": "cpu", "mode": mode, "starts": starts, "horizon": 120, "points": 120,
             "seconds": [0.01], "best_seconds": 0.01, "points_per_second": 12_000.0,
             "speedup": speedup}
            for mode, speedup in (("window", 150.0), ("stream", 900.0))
            for starts in (1, many)
        ]  # fmt: skip

    def chainer_forecast(*args):
        if ("chainer-forecast", 1) in failing:
            raise failing[("chainer-forecast", 1)][1]
        return {"model": "m", "points": 121, "seconds": [1.0], "best_seconds": 1.0,
                "points_per_second": 121.0}  # fmt: skip

    def peak(*args, **kwargs):
        return bench._peak([{"name": "mm", "gflops": 100.0}])

    monkeypatch.setattr(bench, "_epochs", epochs)
    monkeypatch.setattr(bench, "measure_peak", peak)
    monkeypatch.setattr(bench, "forecast_speed", forecast_speed)
    monkeypatch.setattr(bench, "chainer_forecast", chainer_forecast)
    monkeypatch.setattr(bench, "peak_rss", peak_rss or (lambda *args: RSS))
    monkeypatch.setattr(bench, "tune_malloc", lambda: True)  # as on glibc
    return fake_python(tmp_path / "python", "exit 1")  # its epochs are never run


def test_a_contender_that_fails_mid_run_is_recorded_and_the_rest_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Chainer's NStepLSTM times out in round 2 of 3 at one layer (its subprocess warms up
    # itself: the second call is round 2), the plain loop crashes in its warm-up at two
    # layers, Chainer's forecast crashes: all three were the end of the whole run, nothing
    # written.
    timeout = InputError("--chainer-python /py: the baseline run failed: no result within 1200 s")
    doc = _made_up_bench(
        tmp_path,
        monkeypatch,
        {
            ("chainer-nstep", 1): (2, timeout),
            ("plain", 2): (1, MemoryError("no memory")),
            ("chainer-forecast", 1): (1, InputError("--chainer-python /py: forecast broke")),
        },
    )
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "failed" in line and "wrote" not in line] == [
        "bench: plain (cpu, 2 layers) failed in its warm-up, dropped from the rounds left: "
        "MemoryError: no memory",
        f"bench: chainer-nstep (cpu, 1 layer) failed in round 2 of 3, dropped from the rounds "
        f"left: {timeout}",
        "bench: chainer-forecast (cpu, 1 layer) failed: --chainer-python /py: forecast broke",
    ]
    assert [(f["contender"], f["n_layers"], f["round"], f["seconds"]) for f in doc["failed"]] == [
        ("chainer-nstep", 1, 2, [6.0]),
        ("plain", 2, 0, []),
        ("chainer-forecast", 1, None, []),
    ]
    assert doc["failed"][0]["reason"] == str(timeout) and doc["failed"][0]["steps"] == [53_100]
    # Everything else is there, whole: 8 contenders at 3 depths, less the two.
    rows = {(r["contender"], r["n_layers"]): r for r in doc["training"]}
    assert len(rows) == 8 * 3 - 2 and ("chainer-nstep", 1) not in rows and ("plain", 2) not in rows
    assert all(len(r["seconds"]) == 3 for r in rows.values())
    assert "vs_chainer_min" not in rows[("nstep", 1)] and "vs_plain_min" not in rows[("nstep", 2)]
    assert rows[("nstep", 3)]["vs_chainer_min"] == pytest.approx(0.8 / 6.0)
    assert doc["chainer_forecast"] is None
    assert all("vs_chainer" not in f for f in doc["forecast"])
    # Targets that needed a failed contender say so; the others are graded.
    targets = doc["targets"]
    assert targets["nstep_1L_speedup_vs_chainer_nstep"] == {
        "met": None,
        "not_measured": "chainer-nstep (cpu, 1 layer) failed in round 2",
        "goal": "nstep_1L_speedup_vs_chainer_nstep",
    }
    for name in ("nstep_2L_vs_plain", "nstep-var_2L_vs_plain"):
        assert targets[name]["met"] is None
        assert targets[name]["not_measured"] == "plain (cpu, 2 layers) failed in its warm-up"
    assert targets["nstep_3L_speedup_vs_chainer_nstep"]["met"] is True  # 7.5x
    assert targets["nstep_1L_vs_plain"]["met"] is True
    assert targets["step_1L_speedup_vs_chainer_step"]["against"] == "measured"
    table = (tmp_path / "out" / TABLE_FILE).read_text()
    assert table.count("**Failed:**") == 3
    assert (
        "- **Failed:** Chainer NStepLSTM (cpu, 1 layer) in round 2 of 3, after 1 timed epoch: "
        f"{timeout}. Left out of the tables" in table
    )
    assert "- **Failed:** plain torch.nn.LSTM loop (cpu, 2 layers) in its warm-up: " in table
    assert "| x original |\n" in table  # the forecast table has no x Chainer column
    assert "Chainer NStepLSTM, closed-loop forecast (cpu, 1 layer): --chainer-python /py: " in table
    unmeasured = "nstep_1L_speedup_vs_chainer_nstep not measured (chainer-nstep (cpu, 1 layer)"
    assert f"{unmeasured} failed in round 2)" in table
    nstep_1l = [line for line in table.splitlines() if line.startswith("| cpu | ours, nstep | 1 |")]
    assert nstep_1l[0].split("|")[9] == "  "  # its / Chainer cell is empty
    assert "Chainer NStepLSTM | 1 |" not in table
    assert (tmp_path / "out" / CHART_FILE).stat().st_size > 0


def test_chainers_forecast_is_not_started_once_a_chainer_contender_timed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Chainer's training timed out after its 1200 s, and then its forecast was started
    # with the same --chainer-python, to wait out 1200 s more. A crash (chainer-nstep
    # here) is no reason to skip it; a timeout (chainer-step) is.
    from nsteplstm.bench import TimedOut

    timeout = TimedOut("--chainer-python /py: the baseline run failed: no result within 1200 s")
    started = AssertionError("Chainer's forecast was started")
    doc = _made_up_bench(
        tmp_path,
        monkeypatch,
        {
            ("chainer-nstep", 1): (1, InputError("--chainer-python /py: exit code 1: broke")),
            ("chainer-step", 2): (2, timeout),
            ("chainer-forecast", 1): (1, started),  # raised if it is started
        },
    )
    reason = "not run: chainer-step (cpu, 2 layers) timed out in round 2 of 3, with the same "
    reason += "--chainer-python"
    assert [(f["contender"], f["round"], f["reason"]) for f in doc["failed"]] == [
        ("chainer-nstep", 1, "--chainer-python /py: exit code 1: broke"),
        ("chainer-step", 2, str(timeout)),
        ("chainer-forecast", None, reason),
    ]
    assert doc["chainer_forecast"] is None
    assert all("vs_chainer" not in f for f in doc["forecast"])
    assert f"bench: chainer-forecast (cpu, 1 layer) failed: {reason}" in capsys.readouterr().err
    table = (tmp_path / "out" / TABLE_FILE).read_text()
    assert f"Chainer NStepLSTM, closed-loop forecast (cpu, 1 layer): {reason}." in table


def test_chainers_forecast_still_runs_after_a_chainer_contender_crashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = InputError("--chainer-python /py: the baseline run failed (exit code 1): broke")
    doc = _made_up_bench(tmp_path, monkeypatch, {("chainer-step", 1): (1, crash)})
    assert [f["contender"] for f in doc["failed"]] == ["chainer-step"]
    assert doc["chainer_forecast"]["points_per_second"] == 121.0


def test_a_memory_probe_that_fails_after_the_race_is_recorded_and_the_rest_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The memory probe runs after the 20-minute race; when it crashed or hung, the
    # whole finished race was thrown away, nothing written.
    from nsteplstm import cli
    from nsteplstm.bench import TimedOut

    timeout = TimedOut("nsteplstm train --quiet --out RUN: no result within 1200 s")

    def hung(*args):
        raise timeout

    python = _make_up_timings(tmp_path, monkeypatch, {}, peak_rss=hung)
    out = tmp_path / "out"
    argv = ["bench", "--out", str(out), "--device", "cpu", "--chainer-python", str(python)]
    assert cli.main(argv) == 1  # written in full, but a measurement is missing
    err = capsys.readouterr().err
    assert f"\nbench: peak-rss (cpu, 1 layer) failed: {timeout}\n" in err
    assert f"{CHART_FILE} (1 failed: see bench.md)\n" in err
    doc = json.loads((out / JSON_FILE).read_text())
    assert doc["peak_rss"] is None
    assert [(f["contender"], f["device"], f["round"], f["reason"]) for f in doc["failed"]] == [
        ("peak-rss", "cpu", None, str(timeout))
    ]
    assert doc["targets"]["peak_rss_mib"] == {
        "met": None,
        "not_measured": "peak-rss (cpu, 1 layer) failed",
        "goal": "peak_rss_mib",
    }
    # Everything else is there, whole and graded.
    assert len(doc["training"]) == 8 * 3 and len(doc["forecast"]) == 4
    assert doc["chainer_forecast"]["points_per_second"] == 121.0
    assert doc["targets"]["forecast_window_speedup"]["met"] is True
    table = (out / TABLE_FILE).read_text()
    assert table.count("**Failed:**") == 1
    assert (
        f"- **Failed:** peak resident memory of nsteplstm train (cpu, 1 layer): {timeout}. "
        "The report gives no peak resident memory.\n" in table
    )
    assert "Peak resident memory of" not in table
    assert "peak_rss_mib not measured (peak-rss (cpu, 1 layer) failed)\n" in table
    assert (out / CHART_FILE).stat().st_size > 0


def test_a_peak_that_fails_after_the_race_keeps_the_reading_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The float32 peak is measured again after the 20-minute race; when that raised,
    # the whole finished race was thrown away, nothing written.
    from nsteplstm import bench, cli

    python = _make_up_timings(tmp_path, monkeypatch, {})
    calls = []

    def peak(*args, **kwargs):
        calls.append(args[0])
        if len(calls) > 1:  # after the race
            raise RuntimeError("out of memory")
        return bench._peak([{"name": "mm", "gflops": 100.0}])

    monkeypatch.setattr(bench, "measure_peak", peak)
    out = tmp_path / "out"
    argv = ["bench", "--out", str(out), "--device", "cpu", "--chainer-python", str(python)]
    assert cli.main(argv) == 1  # written in full, but a measurement is missing
    assert calls == [torch.device("cpu")] * 2
    reason = "RuntimeError: out of memory"
    assert f"\nbench: peak (cpu, 1 layer) failed: {reason}\n" in capsys.readouterr().err
    doc = json.loads((out / JSON_FILE).read_text())
    assert [(f["contender"], f["device"], f["round"], f["reason"]) for f in doc["failed"]] == [
        ("peak", "cpu", None, reason)
    ]
    assert doc["peak"]["cpu"] == {
        "kernels": [{"name": "mm", "gflops": 100.0}],
        "best": "mm",
        "gflops": 100.0,
    }
    # Everything else is there, whole and graded; the rooflines use the reading before.
    rows = {(r["contender"], r["n_layers"]): r for r in doc["training"]}
    assert len(rows) == 8 * 3 and len(doc["forecast"]) == 4
    assert rows[("nstep", 1)]["roofline"] == pytest.approx(51.3 / 100.0 / 0.8, rel=1e-3)
    assert all(t["met"] is not None for t in doc["targets"].values())
    table = (out / TABLE_FILE).read_text()
    assert (
        f"- **Failed:** float32 peak, measured again after the race (cpu, 1 layer): {reason}. "
        "The float32 peak of this device, and so its rooflines, are from the reading before "
        "the race alone.\n" in table
    )
    assert "- cpu: **100 GFLOP/s** (mm). All: mm: 100\n" in table


def test_our_forecast_that_fails_after_the_race_is_recorded_and_the_rest_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An exception in our forecast timing, after the race, threw the whole run away.
    crash = RuntimeError("forecast broke")
    doc = _made_up_bench(tmp_path, monkeypatch, {("forecast", 1): (1, crash)})
    reason = "RuntimeError: forecast broke"
    assert [(f["contender"], f["device"], f["round"], f["reason"]) for f in doc["failed"]] == [
        ("forecast", "cpu", None, reason)
    ]
    assert f"bench: forecast (cpu, 1 layer) failed: {reason}\n" in capsys.readouterr().err
    assert doc["forecast"] == []
    assert doc["chainer_forecast"]["points_per_second"] == 121.0  # Chainer's still runs
    targets = doc["targets"]
    assert list(targets)[-3:] == [
        "forecast_window_speedup",
        "forecast_stream_speedup",
        "peak_rss_mib",
    ]
    for mode in ("window", "stream"):
        assert targets[f"forecast_{mode}_speedup"] == {
            "met": None,
            "not_measured": "forecast (cpu, 1 layer) failed",
            "goal": f"forecast_{mode}_speedup",
        }
    assert targets["peak_rss_mib"]["met"] is True and len(doc["training"]) == 8 * 3
    table = (tmp_path / "out" / TABLE_FILE).read_text()
    assert (
        f"- **Failed:** ours, forecast throughput (cpu, 1 layer): {reason}. The forecast "
        "table has no rows of this device.\n" in table
    )
    assert "forecast_stream_speedup not measured (forecast (cpu, 1 layer) failed)" in table
    assert "Peak resident memory of `nsteplstm train`: **500 MiB**" in table
    assert "| device | mode | starts |" not in table  # no empty table
    assert "Chainer in this run (" in table


def test_a_memory_probe_that_hangs_is_stopped_at_the_subprocess_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It waited for the training subprocess without a limit: a hung one hung the bench.
    from nsteplstm import bench

    pid_file = tmp_path / "pid"
    hang = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(30)"
    monkeypatch.setattr(bench, "_RSS_PROBE", hang)
    monkeypatch.setattr(bench, "SUBPROCESS_TIMEOUT", 1)
    told = r"^nsteplstm train --quiet --out RUN --epochs 1 .*: no result within 1 s$"
    with pytest.raises(bench.TimedOut, match=told):
        bench.peak_rss(Config(device="cpu", total_size=500), torch.device("cpu"), 1)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pid_file.read_text()), 0)


def test_a_baseline_run_is_stopped_at_the_subprocess_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nsteplstm import bench

    monkeypatch.setattr(bench, "SUBPROCESS_TIMEOUT", 1)
    python, _ = check_chainer_python(fake_python(tmp_path / "python", "sleep 5"))
    epoch = chainer(python, tmp_path / "script.py", "step", Config(), 10, malloc=False)
    with pytest.raises(
        bench.TimedOut, match=r"python: the baseline run failed: no result within 1 s$"
    ):
        epoch()


def test_chainers_forecast_may_run_as_long_as_its_repeats_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chainer's forecast times --repeats forecasts of about 2.1 s each in one subprocess
    # (docs/performance.md), which had the fixed 1200 s: from about 570 repeats on (up
    # to 1000 allowed) it could only time out.
    from nsteplstm import bench

    timeouts = {}

    def run_python(cmd, who, timeout, env=None):
        timeouts[(cmd[cmd.index("--repeats") + 1], "--forecast" in cmd)] = timeout
        out = json.dumps({"seconds_per_forecast": [2.1], "seconds_per_epoch": [2.0]})
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(bench, "_run_python", run_python)
    python, script = tmp_path / "python", tmp_path / "script.py"
    for repeats in (3, bench.MAX_REPEATS):
        bench.chainer_forecast(python, script, Config(), repeats, malloc=False)
    chainer(python, script, "nstep", Config(), 10, malloc=False)()  # a training epoch
    took = (1 + bench.MAX_REPEATS) * 2.1  # a warm-up and the timed forecasts
    assert timeouts[(str(bench.MAX_REPEATS), True)] > 2 * took
    assert timeouts[("3", True)] >= bench.SUBPROCESS_TIMEOUT
    assert timeouts[("1", False)] == bench.SUBPROCESS_TIMEOUT  # one epoch: as before


def test_results_go_beside_an_out_that_changed_while_the_bench_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bench.md written into --out during the bench's 20 minutes: the final check
    # refused it, rightly, and the whole finished run was lost.
    from nsteplstm import cli

    out = tmp_path / "out"
    (tmp_path / "out.1").mkdir()  # someone's: kept as it is
    (tmp_path / "out.1" / TABLE_FILE).write_text("theirs")

    def meanwhile(*args):
        out.mkdir()
        (out / TABLE_FILE).write_text("mine")
        return RSS

    python = _make_up_timings(tmp_path, monkeypatch, {}, peak_rss=meanwhile)
    argv = ["bench", "--out", str(out), "--device", "cpu", "--chainer-python", str(python)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"nsteplstm bench: error: the results are in {out}.2, not in --out {out}, found "
        f"changed once the bench had run: {out / TABLE_FILE} already exists; use --force to "
        "overwrite it (force=True from Python)"
    )
    assert os.listdir(out) == [TABLE_FILE] and (out / TABLE_FILE).read_text() == "mine"
    assert os.listdir(tmp_path / "out.1") == [TABLE_FILE]
    assert (tmp_path / "out.1" / TABLE_FILE).read_text() == "theirs"
    written = tmp_path / "out.2"
    assert sorted(os.listdir(written)) == sorted([JSON_FILE, TABLE_FILE, CHART_FILE])
    doc = json.loads((written / JSON_FILE).read_text())
    assert len(doc["training"]) == 8 * 3 and doc["failed"] == []
    # It said --out OUT alone, read in OUT.2: the --out given, and where it went.
    assert doc["arguments"]["out"] == str(out) and doc["written_to"] == f"{out}.2"
    assert (written / TABLE_FILE).read_text().startswith("Machine:")


def test_results_beside_out_are_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nsteplstm import bench

    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")

    def files(where: Path) -> dict[str, str]:
        return {"a.txt": where.name}

    assert bench._write_beside(Path("."), files) == tmp_path / "here.1"
    assert (tmp_path / "here.1" / "a.txt").read_text() == "here.1"  # told where it goes
    (tmp_path / "file").write_text("")
    assert bench._write_beside(tmp_path / "file" / "out", files) is None

    def full(files):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bench, "write_files", full)
    assert bench._write_beside(tmp_path / "here", files) is None
    assert not (tmp_path / "here.2").exists()  # made, then removed again


def test_bench_json_alone_recomputes_every_met(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bench.md compared with the article's 10.2 s and the targets' thresholds, which
    # bench.json did not hold: a reader of it could not check a "met".
    import operator

    from nsteplstm import forecast
    from nsteplstm.bench import CHAINER_REFERENCE, TARGETS

    doc = _made_up_bench(tmp_path, monkeypatch, {})
    figures = doc["reference_figures"]
    assert figures["original_forecast"] == {
        "points": 121,
        "seconds": 10.2,
        "points_per_second": pytest.approx(121 / 10.2),
    }
    assert figures["forecast_one_thread_starts"] == forecast.ONE_THREAD_STARTS
    chainer = figures["chainer_seconds_per_epoch"]
    assert {(c["cell"], c["n_layers"]): c["seconds"] for c in chainer} == CHAINER_REFERENCE
    assert {goal: t["threshold"] for goal, t in figures["targets"].items()} == TARGETS
    rule = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}
    assert list(doc["targets"]) == [  # in the order bench.md gave them before
        "step_1L_speedup_vs_chainer_step",
        "nstep_1L_vs_plain",
        "nstep_1L_speedup_vs_chainer_nstep",
        "stretch_nstep_1L_speedup_vs_plain",
        "stretch_nstep_1L_speedup_vs_plain_default",
        "nstep-var_1L_vs_plain",
        "nstep_2L_vs_plain",
        "nstep-var_2L_vs_plain",
        "nstep_3L_vs_plain",
        "nstep_3L_speedup_vs_chainer_nstep",
        "nstep-var_3L_vs_plain",
        "forecast_window_speedup",
        "forecast_stream_speedup",
        "peak_rss_mib",
    ]
    assert {t["met"] for t in doc["targets"].values()} == {True, False}  # 900x < 1000x
    for name, target in doc["targets"].items():
        goal = figures["targets"][target["goal"]]
        assert rule[goal["rule"]](target["value"], goal["threshold"]) is target["met"], name
    assert figures["targets"]["nstep_vs_plain"]["rule"] == "<="  # ours no slower than plain
    assert figures["targets"]["peak_rss_mib"]["rule"] == "<"  # under 1 GiB
    assert doc["failed"] == [] and "**Failed:**" not in (tmp_path / "out" / TABLE_FILE).read_text()
    assert "written_to" not in doc  # written into --out itself


def test_the_step_target_without_chainer_uses_the_reference_time() -> None:
    from nsteplstm import bench

    rows = []
    for name in ("plain", "step", "nstep"):
        run = bench.Contender(name, "cpu", 1, lambda: (0, 0), seconds=[0.5], steps=[100])
        rows.append(bench._summary(run, Config(), 200.0))
    bench._ratios(rows)
    doc = {"arguments": {"quick": False}, "training": rows, "forecast": [], "failed": [],
           "peak_rss": {"device": "cuda:0"}}  # fmt: skip
    step = bench._targets(doc)["step_1L_speedup_vs_chainer_step"]
    assert step == {
        "value": pytest.approx(0.85 / 0.5),
        "against": "reference 0.85 s",
        "met": True,
        "goal": "step_speedup_vs_chainer_step",
    }
    # Ours failed: every target of it is not measured, and none of Chainer's appears
    # (Chainer did not run; only the step-wise target has a reference time).
    failed = bench._failed("step", "cpu", 1, {"round": 3, "reason": "x"}, [0.5] * 2, [100] * 2)
    doc = doc | {"training": rows[::2], "failed": [failed]}
    assert bench._targets(doc) == {
        "step_1L_speedup_vs_chainer_step": {
            "met": None,
            "not_measured": "step (cpu, 1 layer) failed in round 3",
            "goal": "step_speedup_vs_chainer_step",
        },
        "nstep_1L_vs_plain": bench._targets(doc)["nstep_1L_vs_plain"],
        "stretch_nstep_1L_speedup_vs_plain": bench._targets(doc)[
            "stretch_nstep_1L_speedup_vs_plain"
        ],
    }
    assert bench._target_words("a", {"met": None, "not_measured": "why"}) == "a not measured (why)"


def test_a_chart_of_no_finished_contender_is_drawn() -> None:
    from nsteplstm import bench

    doc = _cuda_doc() | {"training": []}  # every contender failed
    assert bench.png_bytes(bench.chart(doc))[:4] == b"\x89PNG"
    var_only = [r for r in _cuda_doc()["training"] if r["contender"] == "plain"]
    for r in var_only:
        r["contender"] = "plain-var"  # no bar of its own in the chart
    assert bench.png_bytes(bench.chart(_cuda_doc() | {"training": var_only}))[:4] == b"\x89PNG"


# ---------------------------------------------------------------- Chainer's training points


def test_chainers_baseline_is_told_the_training_points_ours_uses() -> None:
    # The script split with int(total * split_rate): 0.57 of 100 points is 56 that way,
    # 57 in nsteplstm (the decimal 0.57), so the two trained on different windows.
    from nsteplstm.bench import _chainer_cmd
    from nsteplstm.config import train_points

    config = Config(total_size=100, split_rate=0.57)
    assert int(config.total_size * config.split_rate) == 56 != train_points(0.57, 100) == 57
    cmd = _chainer_cmd(Path("python"), Path("chainer_baseline.py"), "nstep", config)
    assert cmd[cmd.index("--train-points") + 1] == "57"


def _load_baseline_script():
    """benchmarks/chainer_baseline.py as a module, with whatever chainer imports now."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "chainer_baseline.py"
    spec = importlib.util.spec_from_file_location("chainer_baseline_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def baseline_script(monkeypatch: pytest.MonkeyPatch):
    """benchmarks/chainer_baseline.py as a module, over stand-in chainer modules (it
    runs in Chainer's venv; its argument parsing needs none of Chainer)."""
    import types

    chainer = types.ModuleType("chainer")
    chainer.Chain = chainer.Optimizer = chainer.Variable = object
    chainer.initializers, chainer.optimizers = types.ModuleType("i"), types.ModuleType("o")
    for name, module in {
        "chainer": chainer,
        "chainer.functions": types.ModuleType("chainer.functions"),
        "chainer.links": types.ModuleType("chainer.links"),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return _load_baseline_script()


def test_chainers_baseline_without_chainer_helps_and_then_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Run by a Python without Chainer, even --help ended in an ImportError traceback.
    monkeypatch.setitem(sys.modules, "chainer", None)  # import chainer: ImportError
    script = _load_baseline_script()
    with pytest.raises(SystemExit) as e:
        script.main(["--help"])
    assert e.value.code == 0 and "--forecast FORECAST" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        script.main(["--forecast", "5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"chainer_baseline.py: needs Chainer 7.8.1, which {sys.executable} ")
    assert '(docs/performance.md, "Chainer\'s side")' in err


def test_chainers_baseline_by_hand_splits_as_nsteplstm_does(baseline_script) -> None:
    from nsteplstm.config import train_points

    args = baseline_script.parse_args(["--total-size", "100", "--split-rate", "0.57"])
    assert args.train_points == 57  # int() gave 56
    for total in (100, 200, 300, 2000, 12_345):
        for rate in (k / 100 for k in range(1, 100)):
            assert baseline_script.train_points(rate, total) == train_points(rate, total)
    given = baseline_script.parse_args(["--total-size", "100", "--train-points", "40"])
    assert given.train_points == 40  # wins over --split-rate


def test_chainers_baseline_refuses_training_points_it_cannot_use(
    baseline_script, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, message in (
        (["--total-size", "100", "--train-points", "101"], "--train-points 101 is more than"),
        (["--total-size", "100", "--train-points", "30"], "(30 points) is shorter than one"),
        (["--total-size", "100", "--split-rate", "0.29"], "(29 points) is shorter than one"),
    ):
        with pytest.raises(SystemExit) as e:
            baseline_script.parse_args(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err
