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


class NonFiniteStateError(NonFiniteLossError):
    """Weights, buffers or optimiser state hold NaN/Inf: the run stops before saving them."""


class RunDirError(DcpnasError):
    """A run directory that is of another kind, not a run, in use by another process, or not usable."""


class WriteError(DcpnasError):
    """A file could not be written; the message names the path, the reason and what was kept."""

    def __init__(self, path, reason: str, kept: str):
        self.path, self.reason, self.kept = str(path), reason, kept
        super().__init__(f"cannot write {path}: {reason}; {kept}")


class RunFinished(DcpnasError):
    """``--resume`` of a run that has finished: nothing to do. The CLI says so and exits 0."""
