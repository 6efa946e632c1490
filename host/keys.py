"""Master keys: 32 random bytes kept outside the image, in a file (mode 0600) or TILESWAP_KEY.

A key file holds 64 hex digits and a newline. Key material is never printed, logged or put in an
error message.
"""

import binascii
import os

from .errors import HostError

ENV = "TILESWAP_KEY"


def keygen(path, *, force=False):
    """Write a new random key to `path` with mode 0600 (atomically: temp file, then rename)."""
    if os.path.exists(path) and not force:
        raise HostError("%s exists; refusing to overwrite a key (delete it first if you mean to)" % path)
    key = os.urandom(32)
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, binascii.hexlify(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _parse(text, where):
    s = text.strip()
    try:
        key = binascii.unhexlify(s)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise HostError("%s is not a tileswap key (expected 64 hex digits; create one with `tileswap keygen -o FILE`)"
                        % where)
    return key


def load_key(path=None, *, required=True):
    """The key from `path`, else from $TILESWAP_KEY (hex); None if neither and not required."""
    if path:
        try:
            with open(path, "rb") as f:
                return _parse(f.read(), path)
        except OSError as e:
            raise HostError("cannot read key file %s: %s" % (path, e.strerror)) from None
    env = os.environ.get(ENV)
    if env:
        return _parse(env.encode(), "$" + ENV)
    if required:
        raise HostError("no key: pass --key KEYFILE or set %s (create a key with `tileswap keygen -o KEYFILE`)" % ENV)
    return None
