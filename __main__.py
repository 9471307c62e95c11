"""`python -m lenscope`: the same as the `lenscope` command."""
from lenscope.cli.main import main

main()
