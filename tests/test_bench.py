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
    for f in saved["forecast"]:
        assert f["vs_chainer"] == pytest.approx(f["points_per_second"] / 242)
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
    with pytest.raises(InputError, match="hang: no result within 2 s"):
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


@pytest.mark.slow
def test_a_failed_bench_leaves_no_out_directory(tmp_path: Path):
    python = fake_python(tmp_path / "python", "echo 'chainer broke' >&2; exit 1")
    out = tmp_path / "new" / "bench"
    with pytest.raises(InputError, match="the baseline run failed .*: chainer broke"):
        run_bench(out=out, quick=True, device="cpu", chainer_python=python)
    assert not (tmp_path / "new").exists()


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
