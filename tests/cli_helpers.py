"""Running the CLI in-process, and what every test checks of a refused command: its exit code and one line."""

from click.testing import CliRunner

from mobilepack.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])



def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]
