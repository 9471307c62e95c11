"""`python -m lenscope`: the same as the `lenscope` command."""
from lenscope.app.cli.main import main

main()
