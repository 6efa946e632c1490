"""The host layer's error type; `tileswap.host.cli.main` prints it as `tileswap: message`."""


class HostError(Exception):
    """A user-facing problem on the host (bad file, bad option); the message says what to do."""

    exit_code = 1
