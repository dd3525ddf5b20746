"""Built-in resource handlers, registered through the `lettafleet` entry-point group."""
