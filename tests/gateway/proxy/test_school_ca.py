"""`kalkan ca create|export`: files, modes, formats and the install instructions."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509

from gateway.cli import main
from gateway.proxy.ca import CERT_FILE, KEY_FILE, MITMPROXY_FILE


def run(tmp_path: Path, *args: str) -> object:
    config = tmp_path / "kalkan.yaml"
    if not config.exists():
        config.write_text(f'school_id: bishkek-61\ndata_dir: "{tmp_path}"\n')
    return CliRunner().invoke(main, ["--config", str(config), *args])


def test_create_writes_a_private_key_and_a_ca_certificate(tmp_path: Path) -> None:
    result = run(tmp_path, "ca", "create")
    assert result.exit_code == 0, result.output
    directory = tmp_path / "ca"
    for name in (KEY_FILE, MITMPROXY_FILE):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((directory / CERT_FILE).read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "bishkek-61" in cert.subject.rfc4514_string()
    again = run(tmp_path, "ca", "create")
    assert again.exit_code == 2 and "already exists" in again.output


def test_export_pem_and_der_with_instructions(tmp_path: Path) -> None:
    assert run(tmp_path, "ca", "create").exit_code == 0
    pem = run(tmp_path, "ca", "export")
    assert pem.exit_code == 0
    assert "-----BEGIN CERTIFICATE-----" in pem.output
    for platform in ("Windows", "Linux", "Android", "certutil", "update-ca-certificates"):
        assert platform in pem.output
    der_file = tmp_path / "kalkan-ca.crt"
    der = run(tmp_path, "ca", "export", "--format", "der", "-o", str(der_file))
    assert der.exit_code == 0
    x509.load_der_x509_certificate(der_file.read_bytes())


def test_export_without_a_ca_says_how_to_make_one(tmp_path: Path) -> None:
    result = run(tmp_path, "ca", "export")
    assert result.exit_code == 2 and "kalkan ca create" in result.output
