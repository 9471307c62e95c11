"""lenscope without its screens: models, the engine, chat, views' maths, files, reports,
batch work, the TUI's state and the command line, one subpackage each (README: Layout)."""
