"""Built-in ibb plugins. Each is registered exactly like a third-party plugin (see ibb.core.plugins)."""
