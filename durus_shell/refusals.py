"""What the shell says about loading policy and refused globals (issue 13).

The shell loads with durus's safe unpickling policy: a global a record
names that is not a persistent class or a plain value type is never
resolved; the value shows as ``<refused module.name in oid N>``.  These
helpers word the notes the banner, the toolbar and each statement show.
"""

from durus.utils import str_to_int8

from durus_shell import render

TRUST_WARNING = ('--trust: records may name functions and classes that run '
                 'when they load; use it only for databases you trust')


def toolbar_part(session):
    """Toolbar text for the loading policy ('' when safe)."""
    return 'TRUSTED LOADS' if session.trusted else ''


def banner_fragments(session):
    if session.trusted:
        return [(render.T_ERROR, '\n' + TRUST_WARNING)]
    return []


def describe(oid, name):
    number = str_to_int8(oid) if len(oid) == 8 else '?'
    return 'refused %s in oid %s' % (name, number)


def refusal_note(session):
    """Fragments naming globals refused since the last note, or []."""
    fresh = session.new_refusals()
    if not fresh:
        return []
    shown = ', '.join(describe(oid, name) for oid, name in fresh[:5])
    more = ' and %d more' % (len(fresh) - 5) if len(fresh) > 5 else ''
    return [(render.T_NOTE,
             'Not loaded (safe loading): %s%s. Those values show as '
             '<refused ...> and their objects cannot be changed; durus-shell '
             '--trust (or --allow MODULE:NAME) loads them.' % (shown, more))]
