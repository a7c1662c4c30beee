"""docs/ covers the CLI. Each --help having an Example is tests/test_cli.py's job; that the blocks
match --help word for word is `cog --check` in `make test`. This only reads the page."""

from pathlib import Path

import pytest

from mobilepack.cli.main import cli

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "cli-reference.md"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_cli_reference_has_every_command(command):
    text = REFERENCE.read_text()
    assert f"\n## mobilepack {command}\n" in text and f"Usage: mobilepack {command} " in text, (
        f"docs/cli-reference.md lacks `mobilepack {command}`; regenerate it: .venv/bin/cog -r docs/cli-reference.md")
