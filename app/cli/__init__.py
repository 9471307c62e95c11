"""The `lenscope` command: one parser per command (CONTRACT.md), each calling the layers below."""
