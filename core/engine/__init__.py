"""The engine: file -> document -> validated fleet -> desired -> live -> plan -> apply. It knows no resource kind,
and imports no command-line, terminal or process library: every kind comes from a plugin."""
