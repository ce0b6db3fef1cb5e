"""`python -m poisonlab.cli`: the same CLI as the `poisonlab` command."""

from poisonlab.cli import main

main()
