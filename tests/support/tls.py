"""Throw-away X.509 material for TLS tests, made with the ``openssl`` CLI.

Everything is generated into one directory and valid for two days, which is
plenty for a test session and short enough that a leaked key is worthless.
EC P-256 keys are used because they generate in milliseconds (RSA-2048 keygen
costs ~100 ms each and this runs once per TLS broker).

Example::

    from tests.support.tls import make_tls_bundle

    bundle = make_tls_bundle(tmp_path / "pki")
    ctx = ssl.create_default_context(cafile=bundle.ca_cert)
    # bundle.server_cert / bundle.server_key go to the broker,
    # bundle.client_cert / bundle.client_key are signed by the same CA,
    # bundle.other_ca_cert is an unrelated CA for "wrong CA" tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsBundle", "make_tls_bundle", "openssl_available"]

# Seconds; openssl finishes in a few ms, this only guards against a wedged binary.
_OPENSSL_TIMEOUT_S = 30.0
_DAYS = "2"


@dataclass(frozen=True)
class TlsBundle:
    """Paths to PEM files of one test PKI.

    ``server_cert`` carries CN=127.0.0.1 and SAN IP:127.0.0.1, DNS:localhost,
    so hostname verification passes for both names.
    """

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path
    other_ca_key: Path


def openssl_available() -> bool:
    """True when the ``openssl`` binary is on PATH."""
    return shutil.which("openssl") is not None


def _run(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_OPENSSL_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")


def _make_ca(directory: Path, stem: str, common_name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    _run(
        [
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            key.name,
            "-out",
            cert.name,
            "-days",
            _DAYS,
            "-sha256",
            "-subj",
            f"/CN={common_name}",
            # Explicit CA extensions: strict verifiers (Python >= 3.13 sets
            # VERIFY_X509_STRICT) reject CAs without keyUsage / key identifiers.
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
        directory,
    )
    return cert, key


def _make_leaf(
    directory: Path, stem: str, common_name: str, ca_cert: Path, ca_key: Path, extensions: str
) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{stem}{s}" for s in (".crt", ".key", ".csr", ".ext"))
    _run(
        [
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            key.name,
            "-out",
            csr.name,
            "-subj",
            f"/CN={common_name}",
        ],
        directory,
    )
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _run(
        [
            "x509",
            "-req",
            "-in",
            csr.name,
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            # Random serials so two bundles never share issuer+serial (avoids a
            # .srl file and confusing "same cert" caching in clients).
            "-set_serial",
            str(int.from_bytes(os.urandom(8), "big")),
            "-out",
            cert.name,
            "-days",
            _DAYS,
            "-sha256",
            "-extfile",
            ext.name,
        ],
        directory,
    )
    csr.unlink()
    ext.unlink()
    return cert, key


def make_tls_bundle(directory: Path) -> TlsBundle:
    """Create a CA, a server and a client cert signed by it, and an unrelated CA.

    ``directory`` is created if needed. Files are made world-readable (keys too):
    they are test-only secrets and a broker that drops privileges to another
    user must still be able to read them.

    Takes ~130 ms (six openssl runs).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(directory, "ca", "genre-pi test CA")
    other_cert, other_key = _make_ca(directory, "other-ca", "genre-pi unrelated CA")
    server_cert, server_key = _make_leaf(
        directory,
        "server",
        "127.0.0.1",
        ca_cert,
        ca_key,
        "keyUsage=critical,digitalSignature,keyAgreement\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    client_cert, client_key = _make_leaf(
        directory,
        "client",
        "genre-pi-test-client",
        ca_cert,
        ca_key,
        "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\n",
    )
    for path in directory.iterdir():
        path.chmod(0o644)
    return TlsBundle(
        directory=directory,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        other_ca_cert=other_cert,
        other_ca_key=other_key,
    )
