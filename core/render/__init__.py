"""Renderers: turn a plan into text, Markdown or JSON. They read plans; they never compute them."""
