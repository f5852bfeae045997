"""Certificates and keys for a loopback control plane (a kubeadm-like layout, made in Python).

One cluster CA signs the API server's serving certificate, the admin client certificate every
component uses, the Kueue webhook's serving certificate and the kubelet-client certificate; a
separate front-proxy CA signs the aggregator's client certificate (Kueue's visibility API is an
aggregated API). The service-account key pair signs and verifies tokens.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
LOOPBACK_IPS = ("127.0.0.1",)
VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


class Authority:
    """A CA on disk that issues leaf certificates."""

    def __init__(self, folder: Path, name: str):
        self.key = _key()
        self.subject = _name(name)
        cert = (
            _builder(self.subject, self.subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.pair = Pair(
            _write(folder / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _write(folder / f"{name}.key", _key_pem(self.key)),
        )

    def issue(
        self,
        folder: Path,
        filename: str,
        common_name: str,
        *,
        organization: str | None = None,
        server: bool = False,
        client: bool = False,
        names: tuple[str, ...] = (),
    ) -> Pair:
        key = _key()
        usages = []
        builder = _builder(_name(common_name, organization), self.subject, key.public_key())
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(n) for n in (*LOOPBACK_NAMES, *names)]
                    + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in LOOPBACK_IPS]
                ),
                critical=False,
            )
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        cert = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(
            self.key, hashes.SHA256()
        )
        return Pair(
            _write(folder / f"{filename}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _write(folder / f"{filename}.key", _key_pem(key)),
        )


@dataclass(frozen=True)
class ClusterPKI:
    ca: Pair
    apiserver: Pair
    admin: Pair
    kubelet_client: Pair
    webhook: Pair
    front_proxy_ca: Pair
    front_proxy_client: Pair
    service_account_key: Path
    service_account_public: Path


def make_pki(folder: Path) -> ClusterPKI:
    folder.mkdir(parents=True, exist_ok=True)
    ca = Authority(folder, "ca")
    front = Authority(folder, "front-proxy-ca")
    account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = account_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ClusterPKI(
        ca=ca.pair,
        apiserver=ca.issue(folder, "apiserver", "kube-apiserver", server=True),
        admin=ca.issue(folder, "admin", "admin", organization="system:masters", client=True),
        kubelet_client=ca.issue(
            folder,
            "kubelet-client",
            "kube-apiserver-kubelet-client",
            organization="system:masters",
            client=True,
        ),  # fmt: skip
        # Also Kueue's visibility server: the aggregator checks the Service's DNS name.
        webhook=ca.issue(
            folder,
            "webhook",
            "kueue-webhook",
            server=True,
            names=("kueue-visibility-server.kueue-system.svc",),
        ),  # fmt: skip
        front_proxy_ca=front.pair,
        front_proxy_client=front.issue(
            folder, "front-proxy-client", "front-proxy-client", client=True
        ),  # fmt: skip
        service_account_key=_write(folder / "sa.key", _key_pem(account_key)),
        service_account_public=_write(folder / "sa.pub", public),
    )
