"""The built-in command plugins: conversations, messages and agents from the command line, as lettactl spells them."""
