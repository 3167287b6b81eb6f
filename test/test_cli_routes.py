"""Every documented command route as a user meets it: output folders and caches that cannot be
written, resumes and overwrites, argument errors, the user's umask, messages that name flags.

Commands run for real (in-process through ``dna-depth``'s ``main``, or as the installed console
script in a subprocess where the environment matters: HOME, umask, the whole stderr), on real
files and folders, at tiny sizes (64x96, a 12-frame sample bag, 1-3 training steps).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dna_depth_core.checkpoint import ModelMetadata, load_checkpoint, save_checkpoint
from dna_depth_core.cli import main as dna_depth
from dna_depth_core.cli import parse_arguments
from dna_depth_core.cli import SUBCOMMAND_MODULES
from dna_depth_core.inference.precision import read_checkpoint_precision, weights_fingerprint
from dna_depth_core.networks import PoseNet, create_depth_net

HEIGHT, WIDTH = 64, 96
POSE = "resnet10t"


def console_script() -> str:
    script = Path(sys.executable).with_name("dna-depth")
    command = str(script) if script.exists() else shutil.which("dna-depth")
    assert command, "the dna-depth console script is not installed (pip install -e .)"
    return command


def run_command(*arguments: str, env: dict | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
    """``dna-depth ARGUMENTS`` in a subprocess, with ``env`` added to the environment."""
    environment = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([console_script(), *arguments], capture_output=True, text=True, timeout=900,
                          env={key: value for key, value in environment.items() if value is not None},
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def one_error_line(text: str, command: str) -> str:
    """The single ``dna-depth COMMAND: error: ...`` line ``text`` must be, progress bars aside (no traceback)."""
    assert "Traceback" not in text, text
    lines = [line for line in re.split(r"[\r\n]", text) if line.strip() and not re.search(r"\d+%\|", line)]
    assert len(lines) == 1 and lines[0].startswith(f"dna-depth {command}: error: "), text
    return lines[0]


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` unwritable for this process, also as root (``chattr +i``); skip where impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no way to make a folder read-only")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: modification time (ns) and SHA-256 of its bytes."""
    return {str(path.relative_to(folder)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def sample_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bag") / "sample_bag"
    assert dna_depth(["make-sample-bag", str(path), "--frames", "12", "--height", str(HEIGHT),
                      "--width", str(WIDTH)]) == 0
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("init") / "tiny.safetensors"
    metadata = ModelMetadata(height=HEIGHT, width=WIDTH, pose_encoder=POSE, provenance={"weights": "random"})
    save_checkpoint(path, create_depth_net("dna_depth_b0"), metadata, PoseNet(POSE))
    return path


# ------------------------------------------------------------------ output folders and files

class WorkStarted(Exception):
    """Raised by the stand-in for a command's work: the path check did not come first."""


def _work(*args, **kwargs):
    raise WorkStarted


# command -> (arguments given the bad path, the option the message names, the work to stand in for)
def _routes(checkpoint: Path, bag: Path, tmp: Path) -> dict[str, tuple]:
    (tmp / "weights").mkdir(exist_ok=True)
    split = tmp / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0002_sync 69 l\n")
    return {
        "train": (lambda p: ["train", "data.dataset=synthetic", f"runtime.output_dir={p}"], "runtime.output_dir",
                  "dna_depth_core.cli.train.build_datasets", "folder"),
        "evaluate": (lambda p: ["evaluate", "--checkpoint", str(checkpoint), "--data", "synthetic", "--output-dir",
                                str(p)], "--output-dir", "dna_depth_core.cli.evaluate.evaluate_checkpoint", "folder"),
        "finetune-bag": (lambda p: ["finetune-bag", str(bag), "-o", str(p), "--init", str(checkpoint)], "-o",
                         "dna_depth_core.training.finetune.run_finetune", "folder"),
        "finetune-bag --cache-dir": (lambda p: ["finetune-bag", str(bag), "-o", str(tmp / "out"), "--cache-dir",
                                                str(p)], "--cache-dir",
                                     "dna_depth_core.training.finetune.run_finetune", "folder"),
        "make-sample-bag": (lambda p: ["make-sample-bag", str(p / "bag")], "OUT's folder",
                            "dna_depth_core.data.rosbag.sample_bag.make_sample_bag", "parent"),
        "export": (lambda p: ["export", "--checkpoint", str(checkpoint), "-o", str(p)], "-o",
                   "dna_depth_core.cli.export.export_onnx", "file"),
        "export-gt": (lambda p: ["export-gt", "--data-root", str(tmp), "--split-file", str(split), "-o", str(p)],
                      "-o", "dna_depth_core.cli.export_gt.read_split_file", "file"),
        "import-weights": (lambda p: ["import-weights", str(tmp / "weights"), "-o", str(p)], "-o",
                           "dna_depth_core.cli.import_weights.import_authors_weights", "file"),
    }


ROUTES = ["train", "evaluate", "finetune-bag", "finetune-bag --cache-dir", "make-sample-bag", "export", "export-gt",
          "import-weights"]


def _bad_path(kind: str, problem: str, tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    """The path given for an output of ``kind`` with ``problem``, and what the error line says."""
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")
    if problem == "read-only folder":
        folder = stack.enter_context(read_only(tmp / "locked"))
        return (folder if kind == "parent" else folder / "inside"), "cannot write in"
    if problem == "parent is a file":
        return a_file / "inside", "is a file, not a folder"
    if kind == "file":  # a file output named like an existing folder
        (tmp / "a_folder").mkdir()
        return tmp / "a_folder", "is a folder"
    return a_file, "is a file, not a folder"  # a folder output (or OUT's folder) that is a file


@pytest.mark.parametrize("problem", ["path is a file", "parent is a file", "read-only folder"])
@pytest.mark.parametrize("route", ROUTES)
def test_unwritable_outputs_are_one_line_before_the_work(route, problem, checkpoint, sample_bag, tmp_path,
                                                         monkeypatch, capsys):
    arguments, option, work, kind = _routes(checkpoint, sample_bag, tmp_path)[route]
    monkeypatch.setattr(work, _work)  # raises WorkStarted: the check must come first
    with contextlib.ExitStack() as stack:
        path, expected = _bad_path(kind, problem, tmp_path, stack)
        code = dna_depth(arguments(path))
    captured = capsys.readouterr()
    assert code == 2, captured
    line = one_error_line(captured.err, route.split()[0])
    assert expected in line and f"{option} " in line, line


def test_read_only_output_as_a_real_command(tmp_path):
    with read_only(tmp_path / "locked") as folder:
        result = run_command("make-sample-bag", str(folder / "bag"), "--frames", "3", env={"PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    line = one_error_line(result.stderr, "make-sample-bag")
    assert "cannot write in" in line and str(folder) in line


def test_a_filesystem_error_during_the_work_is_one_line(checkpoint, tmp_path, monkeypatch, capsys):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "evaluation" / "metrics.json"))

    monkeypatch.setattr("dna_depth_core.cli.evaluate.write_report", disk_full)
    code = dna_depth(["evaluate", "--checkpoint", str(checkpoint), "--data", "synthetic", "--num-sequences", "1",
                      "--frames-per-sequence", "3", "--num-examples", "0", "--output-dir", str(tmp_path / "evaluation")])
    assert code == 2
    line = one_error_line(capsys.readouterr().err, "evaluate")
    assert "no space left on device" in line and "metrics.json" in line


# ------------------------------------------------------------------------------- caches

@pytest.fixture
def no_cache_settings(monkeypatch):
    for variable in ("XDG_CACHE_HOME", "DNA_DEPTH_CACHE_DIR"):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize("cache", ["bag_frames", "onnx"])
def test_default_caches_fall_back_to_a_temporary_folder(cache, tmp_path, monkeypatch, no_cache_settings):
    from dna_depth_core.data.rosbag.dataset import default_cache_dir
    from dna_depth_core.inference.model_cache import onnx_cache_dir

    default = {"bag_frames": default_cache_dir, "onnx": onnx_cache_dir}[cache]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # does not exist
    with pytest.warns(UserWarning, match=f"the {cache} cache cannot be kept .*home folder .* does not exist"):
        folder = default()
    assert not (tmp_path / "home").exists()  # a missing home is not created
    assert folder.is_dir() and not str(folder).startswith(str(tmp_path / "home"))

    with read_only(tmp_path / "read_only_home") as home:
        monkeypatch.setenv("HOME", str(home))
        with pytest.warns(UserWarning, match="cannot write in"):
            assert default() == folder  # one temporary cache per process

    monkeypatch.setenv("DNA_DEPTH_CACHE_DIR", str(tmp_path / "caches"))
    assert default() == tmp_path / "caches" / cache


def test_temporary_cache_is_removed_at_exit(tmp_path):
    code = "from dna_depth_core.paths import cache_dir; print(cache_dir('bag_frames'))"
    (tmp_path / "a_file").write_text("")
    environment = {**os.environ, "HOME": str(tmp_path / "a_file" / "home"), "TMPDIR": str(tmp_path)}
    for variable in ("XDG_CACHE_HOME", "DNA_DEPTH_CACHE_DIR"):
        environment.pop(variable, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.parent == tmp_path and not folder.exists()
    assert "does not exist" in result.stderr and "DNA_DEPTH_CACHE_DIR" in result.stderr


# ----------------------------------------------------------------------------- training

def _train(output: Path, *extra: str, precision_record: bool = False) -> list[str]:
    """A tiny ``dna-depth train`` run; without ``precision_record`` it skips the final measurement."""
    return ["train", "data.dataset=synthetic", f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.batch_size=2",
            "data.num_workers=0", "data.synthetic.train_sequences=1", "data.synthetic.val_sequences=0",
            "data.synthetic.frames_per_sequence=5", f"model.pose_encoder={POSE}", "runtime.progress=false",
            "runtime.checkpoint_every_steps=0", "runtime.log_every_steps=1", f"runtime.output_dir={output}",
            *([] if precision_record else ["--no-precision-record"]), *extra]


def _printed_report(text: str) -> dict:
    return json.loads(text[text.index("{"):])


def test_train_refuses_a_used_folder_and_resume_of_a_finished_run_changes_nothing(tmp_path, capsys):
    output = tmp_path / "run"
    # 3 triplets, batch 2: one step per epoch; stopped by the step limit at the end of epoch 1.
    assert dna_depth(_train(output, "optim.max_steps=1")) == 0
    report = _printed_report(capsys.readouterr().out)
    assert (report["steps"], report["epochs_completed"], report["epochs"]) == (1, 1, 1.0)
    before = snapshot(output)

    assert dna_depth(_train(output, "optim.max_steps=1")) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "already holds a training run" in line and "--resume" in line and "--overwrite" in line

    assert dna_depth([*_train(output, "optim.max_steps=1"), "--resume"]) == 0
    assert "already finished (optim.max_steps=1, reached at step 1); nothing changed" in capsys.readouterr().out
    assert snapshot(output) == before  # not one byte, not one timestamp

    assert dna_depth(["train", "--resume", "--overwrite", f"runtime.output_dir={output}"]) == 2
    assert "choose one" in one_error_line(capsys.readouterr().err, "train")

    # Overrides anywhere on the line: a higher limit continues the run by one step.
    assert dna_depth([*_train(output), "--resume", "optim.max_steps=2"]) == 0
    report = _printed_report(capsys.readouterr().out)
    assert (report["steps"], report["epochs_completed"], report["epochs"]) == (2, 2, 2.0)

    assert dna_depth([*_train(output, "optim.max_steps=1"), "--overwrite"]) == 0
    assert _printed_report(capsys.readouterr().out)["steps"] == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1]  # the old run's logs are gone


def test_train_records_what_precision_auto_runs_its_output_in(tmp_path, capsys):
    """Like a fine-tune, a training run ends by measuring its output as calibrate-precision
    does (the node's auto then runs what met the budget, not float32 by default); a --resume
    of the finished run finds the record and changes nothing."""
    output = tmp_path / "run"
    arguments = _train(output, "optim.max_steps=1", precision_record=True)
    assert dna_depth(arguments) == 0
    printed = capsys.readouterr().out
    checkpoint = output / "output.safetensors"
    record, _ = read_checkpoint_precision(checkpoint)
    assert record is not None and record.weights == weights_fingerprint(load_checkpoint(checkpoint).depth_net)
    assert (record.height, record.width) == (HEIGHT, WIDTH)
    assert ("fp32", "eager") in {(entry.precision, entry.backend) for entry in record.configurations}
    expected = record.fastest_within_budget("cpu", lambda precision, backend: True)
    assert "measuring the trained network's precisions on cpu" in printed
    assert f"output.safetensors: precision 'auto' on cpu runs {expected.precision} on {expected.backend}" in printed

    before = snapshot(output)
    assert dna_depth([*arguments, "--resume"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert snapshot(output) == before


# ------------------------------------------------------------------------ fine-tuning

@pytest.fixture(scope="module")
def finetuned(sample_bag, checkpoint, tmp_path_factory):
    """One fine-tune as a user runs it: the console script, no usable home for the frame cache,
    umask 022, overrides before, between and after the options; then its --resume.
    (Metric fine-tuning, its report and its progress: test_bag_finetune.py.)"""
    folder = tmp_path_factory.mktemp("finetune")
    output = folder / "out"
    (folder / "a_file").write_text("")
    # A home that nobody can create (root would: matplotlib makes a missing one at import).
    environment = {"HOME": str(folder / "a_file" / "home"), "XDG_CACHE_HOME": None, "DNA_DEPTH_CACHE_DIR": None,
                   "TMPDIR": str(folder)}
    run = run_command("finetune-bag", "data.num_workers=0", str(sample_bag), "-o", str(output), "--init",
                      str(checkpoint), "runtime.log_every_steps=1", "--steps", "2", "--batch-size", "2",
                      "--val-fraction", "0.3", "optim.lr=1e-4", env=environment, umask=0o022)
    assert run.returncode == 0, run.stderr[-3000:]
    files = snapshot(output)
    resumed = run_command("finetune-bag", "-o", str(output), "--resume", env=environment)
    return {"run": run, "output": output, "files": files, "resumed": resumed, "bag": sample_bag.resolve()}


def test_finetune_runs_without_a_home(finetuned):
    run, output = finetuned["run"], finetuned["output"]
    warning = re.search(r"warning: the bag_frames cache cannot be kept \(the home folder .* does not exist\); "
                        r"using (\S+), removed at exit", run.stderr)
    assert warning, run.stderr[-3000:]
    assert not Path(warning.group(1)).exists()  # the temporary frame cache went with the process
    report = json.loads((output / "report.json").read_text())
    assert report["metric"] is False and report["metres_per_unit"] is None  # no odometry: relative depth
    # 6 training triplets, batch 2: 3 steps per epoch; 2 steps are two thirds of epoch 1.
    assert (report["steps"], report["epochs_completed"], report["epochs"]) == (2, 0, 0.67)
    assert report["ground_truth_topics"] == {str(finetuned["bag"]): "/camera/depth_gt"}
    settings = (output / "finetune.yaml").read_text()
    assert "lr: 0.0001" in settings and "num_workers: 0" in settings and "log_every_steps: 1" in settings


def test_finetune_files_follow_the_umask(finetuned):
    output = finetuned["output"]
    for name in ("dna_depth_finetuned.safetensors", "report.json", "loss_curves.png", "depth_before_after.png",
                 "finetune.yaml", "training/last.safetensors", "training/train_state.pt", "training/config.yaml"):
        assert stat.S_IMODE((output / name).stat().st_mode) == 0o644, name


def test_finetune_records_what_precision_auto_runs_the_result_in(finetuned):
    """The run ends by measuring its weights as calibrate-precision does, so the node's auto
    runs what met the accuracy budget instead of float32 by default."""
    checkpoint = finetuned["output"] / "dna_depth_finetuned.safetensors"
    record, int8_model = read_checkpoint_precision(checkpoint)
    assert record is not None and int8_model is None  # no --int8
    assert record.weights == weights_fingerprint(load_checkpoint(checkpoint).depth_net)
    assert (record.height, record.width) == (HEIGHT, WIDTH)
    measured = {(entry.precision, entry.backend) for entry in record.configurations}
    assert ("fp32", "eager") in measured
    expected = record.fastest_within_budget("cpu", lambda precision, backend: True)
    stdout = finetuned["run"].stdout
    assert "measuring the fine-tuned network's precisions on cpu" in stdout
    # What the estimator then runs: test_precision.py::test_the_estimator_runs_what_its_record_chose.
    assert (f"dna_depth_finetuned.safetensors: precision 'auto' on cpu runs {expected.precision} on "
            f"{expected.backend}") in stdout


def test_resume_of_a_finished_finetune_changes_nothing(finetuned):
    resumed = finetuned["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    assert "already finished (optim.max_steps=2, reached at step 2); nothing changed" in resumed.stdout
    assert snapshot(finetuned["output"]) == finetuned["files"]


def test_finetune_init_is_checked_before_the_bag_is_read(sample_bag, checkpoint, tmp_path, capsys):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    cache = tmp_path / "cache"
    code = dna_depth(["finetune-bag", str(sample_bag), "-o", str(tmp_path / "out"), "--init", str(truncated),
                      "--cache-dir", str(cache)])
    assert code == 2
    line = one_error_line(capsys.readouterr().err, "finetune-bag")
    assert "truncated.safetensors" in line and "finetune-bag" in line  # names the tools that write checkpoints
    assert not cache.exists() and not (tmp_path / "out").exists()


# -------------------------------------------------------------------- arguments, messages

@pytest.mark.parametrize("module", SUBCOMMAND_MODULES)
def test_argument_errors_print_the_subcommand_usage(module, capsys):
    subcommand = module.replace("_", "-")
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments([subcommand, "--no-such-option", "x=1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"usage: dna-depth {subcommand} ") and f"\ndna-depth {subcommand}: error: " in error


def test_finetune_overrides_anywhere_on_the_line():
    from dna_depth_core.cli.finetune_bag import split_inputs

    args = parse_arguments(["finetune-bag", "optim.lr=1e-4", "day1", "-o", "out", "data.batch_size=4", "--steps", "5",
                            "day2.mcap", "optim.epochs=2"])
    assert (args.output, args.steps) == ("out", 5)
    assert split_inputs(args.inputs) == (["day1", "day2.mcap"], ["optim.lr=1e-4", "data.batch_size=4", "optim.epochs=2"])


@pytest.mark.parametrize("arguments, flag", [
    (["make-sample-bag", "{tmp}/bag", "--frames", "2"], "--frames must be at least 3"),
    (["make-sample-bag", "{tmp}/bag", "--seed", "-1"], "--seed must be >= 0"),
    (["evaluate", "--checkpoint", "{checkpoint}", "--data", "synthetic", "--output-dir", "{tmp}/evaluation",
      "--frames-per-sequence", "2"], "--frames-per-sequence must be at least 3"),
    (["evaluate", "--checkpoint", "{checkpoint}", "--data", "synthetic", "--output-dir", "{tmp}/evaluation",
      "--num-sequences", "0"], "--num-sequences must be at least 1"),
    (["finetune-bag", "{bag}", "-o", "{tmp}/out", "--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
    (["finetune-bag", "{bag}", "-o", "{tmp}/out", "--static-threshold", "-1"], "--static-threshold and --min-speed"),
    (["finetune-bag", "{bag}", "-o", "{tmp}/out", "--frame-spacing", "0"], "--frame-spacing must be a whole number"),
    (["finetune-bag", "{bag}", "-o", "{tmp}/out", "--int8", "--no-precision-record"],
     "--int8 is part of the precision record that --no-precision-record skips"),
])
def test_messages_name_the_flag_the_user_typed(arguments, flag, checkpoint, sample_bag, tmp_path, capsys):
    values = {"tmp": tmp_path, "checkpoint": checkpoint, "bag": sample_bag}
    command = [argument.format(**values) for argument in arguments]
    assert dna_depth(command) == 2
    line = one_error_line(capsys.readouterr().err, command[0])
    assert flag in line, line
    assert not re.search(r"\b(frames_per_sequence|num_sequences|val_fraction|static_threshold|min_speed|frame_spacing)\b", line)


# --------------------------------------------------------------------------------- umask

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_files_are_written_with_the_umask(umask, mode, checkpoint, tmp_path):
    from dna_depth_core.paths import atomic_write
    from dna_depth_core.training.state import save_training_state

    previous = os.umask(umask)
    try:
        torch.manual_seed(0)
        save_checkpoint(tmp_path / "model.safetensors", create_depth_net("dna_depth_b0"),
                        ModelMetadata(height=HEIGHT, width=WIDTH))
        save_training_state(tmp_path / "train_state.pt", {"step": 1})
        atomic_write(tmp_path / "report.json", lambda temporary: temporary.write_text("{}"))
    finally:
        os.umask(previous)
    for name in ("model.safetensors", "train_state.pt", "report.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
