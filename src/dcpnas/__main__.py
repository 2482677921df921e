"""``python -m dcpnas`` runs the ``dcpnas`` command line."""

from dcpnas.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
