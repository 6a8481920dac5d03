# TLS clients over memory BIOs, for the tests that play a client's bytes
# themselves (t_bad_peers' driver, t_handshake_backlog): the ClientHello is
# made before the client connects, then sent at once, or slowly, or the
# client's last flight is held back.
import ssl


def client_ctx(pki):
    """The test client "web" of certs.sh's PKI, trusting its CA."""
    c = ssl.create_default_context(cafile=pki + "/ca.pem")
    c.load_cert_chain(pki + "/web.pem", pki + "/web.key")
    c.check_hostname = False
    return c


def hello_first(ctx):
    """A client's TLS state over memory BIOs, and its ClientHello, made
    before it connects: (tls, incoming, outgoing, hello)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return tls, inc, out, out.read()
