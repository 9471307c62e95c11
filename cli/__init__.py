"""The `lenscope` command: one parser per command (README: Command line), each calling the layers below."""
