"""The school's certificate authority, used only for groups in ``proxy.inspect_groups``.

``kalkan ca create`` writes, under ``data_dir/ca``:

- ``kalkan-ca.key``: the private key (mode 0600; whoever holds it can impersonate any site to
  the school's computers, so it never leaves the router);
- ``kalkan-ca.pem``: the certificate that the school installs on its computers;
- ``mitmproxy-ca.pem``: key and certificate in one file (0600), the form mitmproxy reads from
  its ``confdir``; kalkan points ``confdir`` at this directory, so mitmproxy never makes a CA of
  its own.

``kalkan ca export`` prints the certificate (PEM or DER) and how to install it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from policies.errors import KalkanError

KEY_FILE = "kalkan-ca.key"
CERT_FILE = "kalkan-ca.pem"
MITMPROXY_FILE = "mitmproxy-ca.pem"  # mitmproxy's CONF_BASENAME + "-ca.pem"
VALID_YEARS = 10


def ca_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "ca"


def create_ca(directory: Path, school: str, *, force: bool = False,
              now: dt.datetime | None = None) -> Path:
    """Make a new CA in ``directory``; refuses to replace one unless ``force``."""
    directory = Path(directory)
    if (directory / CERT_FILE).exists() and not force:
        raise KalkanError(f"a school CA already exists in {directory}",
                          hint="use --force to replace it; every computer must then install "
                               "the new certificate")
    now = now or dt.datetime.now(dt.UTC)
    # P-256: accepted by every browser and phone in use, and much faster to sign leaf
    # certificates with than RSA-4096 (a leaf is made for each new site seen while inspecting).
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"kalkan school CA ({school})"[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{school} (kalkan)"[:64]),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * VALID_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    _write(directory / KEY_FILE, key_pem, 0o600)
    _write(directory / MITMPROXY_FILE, key_pem + cert_pem, 0o600)
    _write(directory / CERT_FILE, cert_pem, 0o644)
    return directory / CERT_FILE


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a new file of the final mode, then rename: never a readable key, even
    for a moment, and never half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_ca_certificate(directory: Path) -> x509.Certificate:
    path = Path(directory) / CERT_FILE
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise KalkanError(f"there is no school CA in {directory}",
                          hint="create one with `kalkan ca create`") from None


def export_ca(directory: Path, fmt: str = "pem") -> bytes:
    """The certificate in ``pem`` or ``der`` form."""
    cert = load_ca_certificate(directory)
    encoding = serialization.Encoding.DER if fmt == "der" else serialization.Encoding.PEM
    return cert.public_bytes(encoding)


def require_ca(directory: Path) -> None:
    """Inspection needs the CA: say how to make it rather than let mitmproxy make its own."""
    if not (Path(directory) / MITMPROXY_FILE).exists():
        raise KalkanError(f"proxy.inspect_groups is set, but there is no school CA in "
                          f"{directory}", hint="run `kalkan ca create`, install the "
                          "certificate on the computers (`kalkan ca export`), then start again")


def fingerprint(directory: Path) -> str:
    cert = load_ca_certificate(directory)
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


INSTALL_INSTRUCTIONS = """\
How to install the school certificate ({file}, SHA-256 {fingerprint}):

Windows (each computer, as an administrator):
  1. Copy the file in PEM or DER form (kalkan-ca.crt) to the computer.
  2. Run:  certutil -addstore -f Root kalkan-ca.crt
     or double-click the file → Install Certificate → Local Machine →
     "Place all certificates in the following store" → Trusted Root Certification Authorities.
  3. Firefox keeps its own list: Settings → Privacy & Security → Certificates →
     View Certificates → Authorities → Import, tick "Trust this CA to identify websites"
     (or set security.enterprise_roots.enabled to true).

Linux (Debian, Ubuntu, Astra, ALT):
  1. sudo cp kalkan-ca.crt /usr/local/share/ca-certificates/kalkan-ca.crt   (PEM form)
  2. sudo update-ca-certificates
  3. Firefox and Chromium read their own store: import the file under Settings →
     Certificates → Authorities.

Android (7 and later):
  1. Copy the DER file (kalkan-ca.crt) to the phone or tablet.
  2. Settings → Security → Encryption & credentials → Install a certificate →
     CA certificate, and pick the file. Android warns that the network may be monitored:
     on a school device that is the truth, and the warning should stay.
  3. Apps other than the browser trust only their own certificates; that is why the
     do-not-inspect list exists.

Check it: the fingerprint the computer shows must be the one above.
"""
