"""The Textual app (`app.LenscopeApp`): the shell (app, main screen, keys, the tab registry
`tabs`, the runner), one folder per tab, shared widgets and the dialogs. Domain code lives
outside tui/ and imports no Textual; `workspace` is the app's state without Textual."""
