"""dcpnas: Discrepant Child-Parent Neural Architecture Search for 1-bit CNNs."""

__version__ = "0.1.0"
