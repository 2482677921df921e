"""User-facing errors: the CLI prints these as one line on stderr and exits non-zero."""


class DcpnasError(Exception):
    """An error caused by the user's input (path, option, data, genotype, config).

    The message must be one line that names the culprit; the CLI prints it without a traceback.
    """


class ConfigError(DcpnasError):
    """Unknown key, bad value or unreadable configuration."""


class DataError(DcpnasError):
    """Missing, truncated or corrupt data."""


class GenotypeError(DcpnasError):
    """Invalid genotype (unknown op, bad node index, wrong shape, unreadable file)."""


class NonFiniteLossError(DcpnasError):
    """A loss became NaN or Inf; the run stops and keeps its last good checkpoint."""
