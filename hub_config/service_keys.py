"""The private keys our hub services hold (the LTI tool's, the one that signs completion records): an RSA 2048 key
in a PEM file of the service's state dir, made there on the first start with mode 0600, never logged. A key file
that others than its owner may read is refused: the service does not start until it is fixed."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def load_or_make_rsa_key(path: Path, what: str, log: logging.Logger) -> bytes:
    """The key in `path` (PEM), made there the first time; `what` names it in words for the log and the refusal."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        log.info("made %s in %s", what, path)
    if path.stat().st_mode & 0o077:
        raise SystemExit(f"{path} is readable by others than its owner: chmod 600 it ({what})")
    return path.read_bytes()
