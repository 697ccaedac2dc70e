"""The command line's shell: lazy verbs, quick start-up, --version, and help that reads at 80 columns."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import rewardkit
from rewardkit.cli.app import ANNOTATE_VERBS, DATA_VERBS, VERBS, app

runner = CliRunner()
COMMANDS = ([[name] for name in VERBS] + [["data", name] for name in DATA_VERBS]
            + [["annotate", name] for name in ANNOTATE_VERBS])


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("verbs", [VERBS, DATA_VERBS, ANNOTATE_VERBS], ids=["rewardkit", "data", "annotate"])
def test_listed_summaries_are_each_verbs_docstring_first_line(verbs):
    for verb in verbs.values():
        function = getattr(importlib.import_module(f"rewardkit.cli.{verb.module}"), verb.function)
        assert inspect.getdoc(function).splitlines()[0] == verb.summary


def test_help_imports_no_verb_and_no_torch_until_a_verb_is_asked():
    loaded = run_python(
        "import sys\n"
        "from rewardkit.cli.app import app\n"
        "def modules(args):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    return [m for m in ('torch', 'transformers', 'rewardkit.cli.serve', 'rewardkit.cli.train') "
        "if m in sys.modules]\n"
        "print(modules(['--help']), modules(['data', '--help']), modules(['serve', '--help']))\n")
    assert loaded.splitlines()[-1] == "[] [] ['torch', 'transformers', 'rewardkit.cli.serve']"


def test_the_package_loads_its_public_names_on_first_use():
    assert run_python("import sys, rewardkit\nprint('torch' in sys.modules)").strip() == "False"
    from rewardkit.models.reward_model import RewardModel

    assert rewardkit.RewardModel is RewardModel
    assert set(rewardkit.__all__) <= set(dir(rewardkit))
    namespace: dict = {}
    exec("from rewardkit import *", namespace)
    assert {name for name in namespace if not name.startswith("__")} == set(rewardkit.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        rewardkit.nope  # noqa: B018


def test_version():
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"rewardkit {rewardkit.__version__}\n")
    assert rewardkit.__version__ == importlib.metadata.version("rewardkit")


@pytest.mark.parametrize("command", [[], ["data"], ["annotate"], *COMMANDS], ids=lambda c: " ".join(c) or "rewardkit")
def test_help_reads_at_80_columns(command):
    """No line over 80 columns, nothing cut short, every option by its full name and with a description."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in result.stdout
    params = resolved(command).params
    options = lines[lines.index("Options:"):]
    assert not any("<list[" in line or "<str>" in line for line in options), "an option without a placeholder"
    assert [line.split()[0] for line in options if line.startswith("  --")] == [
        p.opts[0] for p in params if p.param_type_name == "option"] + ["--help"]
    assert all(p.help for p in params)
    listed = {(): VERBS, ("data",): DATA_VERBS, ("annotate",): ANNOTATE_VERBS}.get(tuple(command), {})
    assert all(f"  {name}" in result.stdout and verb.summary in result.stdout for name, verb in listed.items())


def resolved(command: list[str]):
    """The click command `rewardkit COMMAND` runs."""
    found = get_command(app)
    for name in command:
        found = found.resolve_command(None, [name])[1]
    return found
