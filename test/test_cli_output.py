"""The command line's output as a shell pipeline meets it: a reader that stops early."""

from __future__ import annotations

import os
import subprocess

from dna_depth_core.checkpoint import shipped_checkpoint_path
from dna_depth_core.cli import BROKEN_PIPE_EXIT_CODE
from dna_depth_core.cli import main as dna_depth

from test_cli_routes import console_script


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """``dna-depth info CKPT | head -1``: the reader closes the pipe before the output is
    written (here: before the command starts), so every write fails with EPIPE."""
    reading, writing = os.pipe()
    os.close(reading)
    try:
        result = subprocess.run([console_script(), "info", "--verbose", str(shipped_checkpoint_path())],
                                stdout=writing, stderr=subprocess.PIPE, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        os.close(writing)
    assert result.returncode == BROKEN_PIPE_EXIT_CODE
    assert result.stderr == ""  # no "error: broken pipe", no "Exception ignored" at the exit's flush


def test_another_broken_pipe_is_still_an_error_line(monkeypatch, capsys):
    """A pipe that breaks elsewhere (a worker's, a child process's) while stdout is fine is an error."""
    from dna_depth_core.cli import info

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(info, "run", broken)
    assert dna_depth(["info", "any.safetensors"]) == 2
    assert capsys.readouterr().err.startswith("dna-depth info: error: ")
