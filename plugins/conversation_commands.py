"""Placeholder until the command plugin lands: contributes no commands yet."""
