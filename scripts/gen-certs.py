"""Generates the local stack's private CA, a server certificate for the MESH
sandbox (127.0.0.1, localhost) and a client certificate for mutual TLS.

    python gen-certs.py DIR

Writes ca.pem, server.pem, server.key, client.pem, client.key into DIR once;
a second run leaves existing files alone. These are test credentials for a
loopback-only sandbox, never for a real MESH environment.
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def main(out):
    if os.path.exists(os.path.join(out, "client.key")):
        return
    os.makedirs(out, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry local test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn, usage, sans=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    srv_key, srv = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cli_key, cli = leaf("ferry local MESH client", ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    write(os.path.join(out, "ca.pem"), ca.public_bytes(pem))
    write(os.path.join(out, "server.pem"), srv.public_bytes(pem))
    write(os.path.join(out, "server.key"), key_pem(srv_key), 0o600)
    write(os.path.join(out, "client.pem"), cli.public_bytes(pem))
    write(os.path.join(out, "client.key"), key_pem(cli_key), 0o600)


if __name__ == "__main__":
    main(sys.argv[1])
