"""Every subcommand answers --help with a sentence saying what it does."""

from typer.main import get_command
from typer.testing import CliRunner

from guomen.cli import app


def _leaf_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _leaf_commands(cmd, path)
        else:
            yield path, cmd


def test_every_subcommand_has_help():
    root = get_command(app)
    runner = CliRunner()
    commands = list(_leaf_commands(root))
    assert len(commands) >= 2
    for path, cmd in commands:
        assert cmd.help and len(cmd.help.split()) >= 4, f"{' '.join(path)} has no real help"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
