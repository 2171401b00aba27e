"""TLS as Mesos's libprocess configures it, by environment, in one place for every process of
ours: the daemons (through ``agent_runtime/tls.py``), our clients, and the executors.

``LIBPROCESS_SSL_ENABLED``      (false) servers speak TLS only, clients connect with TLS
``LIBPROCESS_SSL_CERT_FILE``    this process's certificate (PEM): a server's identity, and what a
``LIBPROCESS_SSL_KEY_FILE``     client presents when asked
``LIBPROCESS_SSL_CA_FILE``      the CAs a peer's certificate must chain to
``LIBPROCESS_SSL_CA_DIR``       (a hashed directory of them, as OpenSSL's ``-CApath``)
``LIBPROCESS_SSL_VERIFY_CERT``  (false) a server verifies a client certificate if one is
                                presented; a client verifies the server's chain and name
``LIBPROCESS_SSL_REQUIRE_CERT`` (false) a server refuses a client without a valid certificate

Booleans are ``true|1|false|0`` as Mesos reads them. A server never downgrades to plain text
(Mesos's ``LIBPROCESS_SSL_SUPPORT_DOWNGRADE`` is not offered): a plain client is refused.

Standard library only, and ``ssl`` is imported only when TLS is on: an executor imports this
module, and its start-up time is every task's launch latency.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping

PREFIX = "LIBPROCESS_SSL_"
ENABLED = PREFIX + "ENABLED"
CERT_FILE = PREFIX + "CERT_FILE"
KEY_FILE = PREFIX + "KEY_FILE"
CA_FILE = PREFIX + "CA_FILE"
CA_DIR = PREFIX + "CA_DIR"
VERIFY_CERT = PREFIX + "VERIFY_CERT"
REQUIRE_CERT = PREFIX + "REQUIRE_CERT"
NAMES = (ENABLED, CERT_FILE, KEY_FILE, CA_FILE, CA_DIR, VERIFY_CERT, REQUIRE_CERT)
TRUE, FALSE = ("1", "true"), ("0", "false", "")


def flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean variable; ValueError naming it when it is neither true nor false."""
    value = env.get(name, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{name} must be true, false, 1 or 0, not {value[:32]!r}")


def enabled(env: Mapping[str, str]) -> bool:
    return flag(env, ENABLED)


def _load(context: ssl.SSLContext, env: Mapping[str, str], server: bool) -> None:
    cert, key = env.get(CERT_FILE), env.get(KEY_FILE)
    if server and not (cert and key):
        raise ValueError(f"{ENABLED} needs {CERT_FILE} and {KEY_FILE} for a server")
    if cert:
        context.load_cert_chain(cert, key or None)
    if env.get(CA_FILE) or env.get(CA_DIR):
        context.load_verify_locations(cafile=env.get(CA_FILE) or None,
                                      capath=env.get(CA_DIR) or None)


def server_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """A server's context; ValueError or OSError when the variables or files are wrong."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, env, server=True)
    if flag(env, REQUIRE_CERT):
        context.verify_mode = ssl.CERT_REQUIRED
    elif flag(env, VERIFY_CERT):
        context.verify_mode = ssl.CERT_OPTIONAL  # verified when presented, as Mesos
    return context


def client_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """A client's context: the server verified (chain and name) only with VERIFY_CERT, as
    Mesos; our certificate presented when we have one."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if flag(env, VERIFY_CERT):
        if not (env.get(CA_FILE) or env.get(CA_DIR)):
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _load(context, env, server=False)
    return context
