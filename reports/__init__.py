"""Reports of finished results: the terminal (Rich), HTML, Markdown and SVG. They read
records (plain data) and never run the model."""
