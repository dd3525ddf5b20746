"""The built-in resource handlers, one kind (or one family of kinds) per module."""
