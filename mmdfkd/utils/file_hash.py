"""The SHA-256 of a file's bytes, read in blocks (checkpoints can be large)."""
import hashlib


def file_sha256(path: str) -> str:
    """The hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
