"""The CLI as a test calls it: in-process, with stdout and stderr captured."""

from __future__ import annotations

import io

from gpuwizard.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``gpuwizard ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()
