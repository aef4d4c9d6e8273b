"""file_sha256: the digest of a file's bytes, across the blocks it is read in."""
import hashlib

from mmdfkd.utils import file_sha256


def test_digest_of_a_known_content_and_of_a_file_longer_than_a_block(tmp_path):
    small = tmp_path / 'abc'
    small.write_bytes(b'abc')
    # FIPS 180-2's example digest of "abc".
    assert file_sha256(str(small)) == (
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    big = tmp_path / 'big'
    big.write_bytes(b'\x00' * ((1 << 20) + 1))
    assert file_sha256(str(big)) == hashlib.sha256(b'\x00' * ((1 << 20) + 1)).hexdigest()
