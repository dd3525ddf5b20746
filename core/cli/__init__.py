"""The `lettafleet` command line. `app.main` is the command; the plugin manager's commands join it when it first
runs, never at import, so importing any part of lettafleet loads no plugin."""
