"""Built-in method plugins, registered through the ``zsadbench.methods`` entry-point group."""
