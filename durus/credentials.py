"""Where a command-line client finds a user's secret and its TLS files.

Never on the command line (other users see it in ``ps``): from
``--secret-file FILE`` (its first line), else the ``DURUS_SECRET``
environment variable, else a prompt without echo on the terminal.
"""

import getpass
import os
import sys

SECRET_ENV = 'DURUS_SECRET'


def read_secret(user, secret_file=None, environ=None, prompt=None):
    """The secret of ``user``; ValueError when there is no way to get it."""
    environ = os.environ if environ is None else environ
    if secret_file:
        try:
            with open(secret_file, encoding='utf-8') as f:
                secret = f.readline().rstrip('\r\n')
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError('cannot read the secret file %s: %s'
                             % (secret_file, error)) from None
        if not secret:
            raise ValueError('the secret file %s is empty' % secret_file)
        return secret
    secret = environ.get(SECRET_ENV)
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise ValueError('no secret for user %s: give --secret-file FILE or '
                         'set %s (no terminal to ask on)' % (user, SECRET_ENV))
    return getpass.getpass(prompt or 'Secret for %s: ' % user)


def client_tls_context(ca=None, cert=None, key=None):
    """A client TLS context from the --tls-* options, or None."""
    if not (ca or cert or key):
        return None
    if key and not cert:
        raise ValueError('--tls-key needs --tls-cert')
    from durus.tls import client_context
    try:
        return client_context(ca, cert, key)
    except (OSError, ValueError) as error:
        raise ValueError('cannot load the TLS files (--tls-ca %s, --tls-cert '
                         '%s): %s' % (ca, cert, error)) from None


def add_client_options(parser):
    """--user, --secret-file and --tls-ca/--tls-cert/--tls-key (optparse)."""
    parser.add_option('--user', default=None,
                      help='authenticate as this user; the secret comes from '
                           '--secret-file, $%s, or a prompt' % SECRET_ENV)
    parser.add_option('--secret-file', dest='secret_file', default=None,
                      help='read the secret from the first line of this file')
    parser.add_option('--tls-ca', dest='tls_ca', default=None,
                      help='connect with TLS, trusting this CA file')
    parser.add_option('--tls-cert', dest='tls_cert', default=None,
                      help='client certificate (mutual TLS)')
    parser.add_option('--tls-key', dest='tls_key', default=None,
                      help='key of the client certificate')


def client_storage_options(options):
    """ClientStorage keywords from options made by add_client_options."""
    keywords = {}
    if options.user:
        keywords['user'] = options.user
        keywords['secret'] = read_secret(options.user, options.secret_file)
    context = client_tls_context(options.tls_ca, options.tls_cert,
                                 options.tls_key)
    if context is not None:
        keywords['ssl_context'] = context
    return keywords
