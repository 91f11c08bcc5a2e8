"""CLI shell: every fixed command exists with --help; library errors become one line and exit code 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from geotower.cli import COMMANDS, _guard, app
from geotower.errors import DataError

runner = CliRunner()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_geotower_error_becomes_message_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise DataError("bad value", path="x.csv", row=3, column="lat")

    import typer

    with pytest.raises(typer.Exit) as info:
        _guard(boom)()
    assert info.value.exit_code == 1
    assert "error: file x.csv, row 3, column 'lat': bad value" in capsys.readouterr().err


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == "0.1.0"
