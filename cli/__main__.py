"""``python -m mura.cli``: the ``mura`` command."""

from mura.cli.commands import main

main()
