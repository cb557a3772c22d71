"""Per-cluster credentials: a CA and TLS certificates for Dask, a shared secret for Spark.

On a swarm, a published port is open on every interface of the node (the
host IP of a port mapping is ignored), so loopback is no protection there:
every cluster gets its own material, made here when it starts and thrown away
when it goes. The nodes get it as swarm secrets (files under
``/run/secrets``, never in an image layer or the stack file); the client on
this machine reads its copy from ``<run dir>/secrets/<cluster>/`` (mode 0600).

    >>> material = Material.create("demo")
    >>> sorted(material.files())[:3]
    ['clusterkit-ca.pem', 'clusterkit-client-key.pem', 'clusterkit-client.pem']
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterkit.errors import ClusterUnavailable
from clusterkit.paths import run_root
from clusterkit.spec import ClusterSpec

#: Where a node finds its files (the swarm secrets' mount point).
NODE_SECRETS_DIR = "/run/secrets"
CA = "clusterkit-ca.pem"
NODE_CERT, NODE_KEY = "clusterkit-node.pem", "clusterkit-node-key.pem"
CLIENT_CERT, CLIENT_KEY = "clusterkit-client.pem", "clusterkit-client-key.pem"
SPARK_SECRET = "clusterkit-spark-secret"  # noqa: S105 - a file name, not a secret
#: The uid the node images run as.
NODE_UID = 1000
#: What the nodes need (the client's key stays on this machine).
NODE_FILES = (CA, NODE_CERT, NODE_KEY, SPARK_SECRET)


def secured(spec: ClusterSpec) -> bool:
    """Does ``spec`` run with TLS/auth? (A runtime fills in its default before it starts.)"""
    return spec.security == "tls"


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(subject: str, key: Any, issuer: tuple[str, Any] | None, *, ca: bool) -> bytes:
    """A certificate for ``subject``; self-signed when ``issuer`` (name, key) is ``None``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Material:
    """Everything one cluster's nodes and its client need, as bytes."""

    cluster: str
    ca: bytes
    node_cert: bytes
    node_key: bytes
    client_cert: bytes
    client_key: bytes
    spark_secret: bytes

    @classmethod
    def create(cls, cluster: str) -> Material:
        """New CA, node and client certificates (mutual TLS) and a Spark secret."""
        ca_name = f"clusterkit {cluster} CA"
        ca_key, node_key, client_key = _key(), _key(), _key()
        return cls(
            cluster=cluster,
            ca=_certificate(ca_name, ca_key, None, ca=True),
            node_cert=_certificate(f"clusterkit {cluster} node", node_key, (ca_name, ca_key), ca=False),
            node_key=_pem_key(node_key),
            client_cert=_certificate(f"clusterkit {cluster} client", client_key, (ca_name, ca_key), ca=False),
            client_key=_pem_key(client_key),
            spark_secret=secrets.token_hex(32).encode(),
        )

    def files(self) -> dict[str, bytes]:
        return {
            CA: self.ca,
            NODE_CERT: self.node_cert,
            NODE_KEY: self.node_key,
            CLIENT_CERT: self.client_cert,
            CLIENT_KEY: self.client_key,
            SPARK_SECRET: self.spark_secret,
        }


def client_dir(cluster: str) -> Path:
    """Where this machine keeps the client's copy of a cluster's material."""
    return run_root() / "secrets" / cluster


def save(material: Material) -> Path:
    """Write the material for the client on this machine (a 0700 folder, 0600 files)."""
    folder = client_dir(material.cluster)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    for name, data in material.files().items():
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return folder


def share_with_nodes(cluster: str, uid: int = NODE_UID) -> Path:
    """Let the nodes' user (``uid``: the caller's, or the images' 1000) read the node files, for
    compose's bind-mounted secrets; the folder stays closed to other users of this machine. Returns the folder."""
    folder = client_dir(cluster)
    for name in NODE_FILES:
        path = folder / name
        if path.stat().st_uid == uid:
            continue  # the nodes run as the files' owner (the caller)
        if os.geteuid() == 0:
            os.chown(path, uid, uid)
        elif os.geteuid() != NODE_UID:
            os.chmod(path, 0o644)  # the 0700 folder still keeps other users out
    return folder


def forget(cluster: str) -> None:
    """Remove this machine's copy (``down``)."""
    shutil.rmtree(client_dir(cluster), ignore_errors=True)


def _client_file(cluster: str, name: str) -> Path:
    path = client_dir(cluster) / name
    if not path.is_file():
        raise ClusterUnavailable(
            f"cluster {cluster!r} requires TLS/authentication, and this machine has no credentials for it "
            f"(no {path}); connect from the machine that ran `clusterkit up`, or copy that folder here"
        )
    return path


def dask_security(cluster: str) -> Any:
    """A ``distributed.Security`` for a client of ``cluster`` (mutual TLS, encryption required).

    >>> client = Client("tls://127.0.0.1:8786", security=dask_security("mycluster"))  # doctest: +SKIP
    """
    from distributed import Security

    return Security(
        tls_ca_file=str(_client_file(cluster, CA)),
        tls_client_cert=str(_client_file(cluster, CLIENT_CERT)),
        tls_client_key=str(_client_file(cluster, CLIENT_KEY)),
        require_encryption=True,
    )


def spark_secret(cluster: str) -> str:
    """The authentication secret a Spark driver of ``cluster`` needs."""
    return _client_file(cluster, SPARK_SECRET).read_text().strip()


def connect_token(secret: str) -> str:
    """The Spark Connect token of a cluster whose Spark secret is ``secret``.

    Derived, not stored: the nodes already hold the secret (a swarm secret),
    this host holds it with the cluster's other credentials, and a token that
    shows up in a log does not give the secret away.

    >>> len(connect_token("s3cret")), connect_token("s3cret") == connect_token("s3cret")
    (64, True)
    """
    import hashlib
    import hmac

    return hmac.new(secret.encode(), b"clusterkit spark connect", hashlib.sha256).hexdigest()


def spark_connect_token(cluster: str) -> str:
    """The token ``cluster``'s Spark Connect server requires (``security: tls``, every swarm cluster)."""
    return connect_token(spark_secret(cluster))
