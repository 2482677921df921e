"""The ``dcpnas`` command line: ``main.main`` plus one module per subcommand (``add_parser``, ``run``)."""
