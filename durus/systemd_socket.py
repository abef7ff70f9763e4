"""The listening socket systemd hands over under socket activation.

systemd passes sockets as file descriptors starting at 3 and names the
receiving process in ``LISTEN_PID``; ``LISTEN_FDS`` says how many there
are.  A Durus server listens on exactly one.
"""

import os
import socket

FIRST_FD = 3
SD_LISTEN_FDS_START = FIRST_FD     # the name systemd and Durus 4.3 use


def sd_listen_fds():
    """How many sockets systemd passed to this process: 0 when it passed
    none or LISTEN_PID names another process.  As systemd's sd_listen_fds()
    does, marks them close-on-exec so child processes do not inherit them.

    Raises OSError when LISTEN_FDS is not a count.
    """
    if os.environ.get('LISTEN_PID') != str(os.getpid()):
        return 0
    text = os.environ.get('LISTEN_FDS', '')
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise OSError('invalid LISTEN_FDS value %r: systemd sets it to the '
                      'number of sockets it passes' % text)
    for fd in range(FIRST_FD, FIRST_FD + count):
        os.set_inheritable(fd, False)
    return count


def get_systemd_socket():
    """The inherited listening socket, or None when not socket-activated.

    Raises OSError when systemd passed more than one socket.
    """
    if os.environ.get('LISTEN_PID') != str(os.getpid()):
        return None
    count = int(os.environ.get('LISTEN_FDS', '0') or 0)
    if count == 0:
        return None
    if count != 1:
        raise OSError('systemd passed %d sockets (LISTEN_FDS); a durus '
                      'server needs exactly one' % count)
    # Children must not mistake these variables for their own.
    for name in ('LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'):
        os.environ.pop(name, None)
    return socket.socket(fileno=FIRST_FD)
