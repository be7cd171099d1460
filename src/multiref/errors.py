"""Exceptions raised on bad input. Every message names the file, field or value at fault."""


class MultirefError(Exception):
    """Base class of the errors that the pipeline reports to users."""


class CorpusError(MultirefError):
    """The corpus archive or one of its files is missing, corrupt or malformed."""


class ChecksumError(CorpusError):
    """A file's sha256 differs from the one the configuration expects."""


class DownloadError(CorpusError):
    """A download failed; the message says how to use a local copy instead."""


class ConfigError(MultirefError):
    """A configuration value is invalid."""


class OutputError(MultirefError):
    """An output file cannot be written where it belongs (its folder is a file, or not writable)."""
