"""`python -m emotrace.cli`: the same as the `emotrace` command."""

from emotrace.cli import main

main()
