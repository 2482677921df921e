"""dcpnas: Discrepant Child-Parent Neural Architecture Search for 1-bit CNNs."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: ``import dcpnas`` stays light (no torch); ``dcpnas.search_architecture`` imports the search.
    if name == "search_architecture":
        from .search.api import search

        return search
    raise AttributeError(f"module 'dcpnas' has no attribute {name!r}")
