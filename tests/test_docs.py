"""The README's promises: two quick-start commands, the CI runs the second, every command documented."""

from __future__ import annotations

import re

from datacheck.cli import cli
from datacheck.errors import ExitStatus

from .conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "datacheck audit sample_data" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (REPO_ROOT / ".ci" / "run").read_text()


def test_every_command_and_option_is_documented():
    for name, command in cli.commands.items():
        assert f"datacheck {name}" in README
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert f"`{opt}" in README, f"{name} {opt} is not documented in README.md"


def test_every_exit_status_is_documented():
    for status in ExitStatus:
        assert f"| {int(status)} |" in README
