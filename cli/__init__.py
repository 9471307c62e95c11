"""The `lenscope` command: one parser per command (docs/guide/cli.md), each calling the layers below."""
