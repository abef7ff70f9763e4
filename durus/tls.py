"""TLS contexts for the storage server and its clients (standard ``ssl``).

``server_context(cert, key, client_ca=None)``: serve TLS 1.2 or newer
with the certificate chain in ``cert``; with ``client_ca``, clients must
present a certificate signed by that CA (mutual TLS).  The context
carries the channel binding data of the server's certificate
(``durus_channel_binding``), which the server's authentication uses.

``client_context(ca=None, cert=None, key=None)``: verify the server
against ``ca`` (default: the system's trusted CAs); ``cert``/``key`` for
mutual TLS.
"""

import ssl

from durus.auth import certificate_binding


def _pem_certificates(path):
    with open(path, encoding='ascii', errors='replace') as f:
        text = f.read()
    end = '-----END CERTIFICATE-----'
    blocks = []
    while end in text:
        head, _, text = text.partition(end)
        start = head.find('-----BEGIN CERTIFICATE-----')
        if start >= 0:
            blocks.append(head[start:] + end + '\n')
    return blocks


def file_binding(cert_path):
    """The channel binding data of the first certificate in a PEM file."""
    blocks = _pem_certificates(cert_path)
    if not blocks:
        raise ValueError('%s holds no PEM certificate' % cert_path)
    return certificate_binding(ssl.PEM_cert_to_DER_cert(blocks[0]))


def server_context(cert, key=None, client_ca=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ValueError('cannot load the TLS certificate %s and key %s: %s'
                         % (cert, key or cert, error)) from None
    if client_ca:
        try:
            context.load_verify_locations(client_ca)
        except (OSError, ssl.SSLError) as error:
            raise ValueError('cannot load the client CA %s: %s'
                             % (client_ca, error)) from None
        context.verify_mode = ssl.CERT_REQUIRED
    context.durus_channel_binding = file_binding(cert)
    return context


def client_context(ca=None, cert=None, key=None):
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(cert, key)
    return context
