"""Paths from the root for objects the shell names (:diff, :status, the
conflict report, :find and :refs rows).

Loaded objects are found first through what is in memory; the others
(e.g. reached through :find) are looked up in the storage, lazily and
bounded in count and time, and the answers are remembered for the
session.  An object without a path (unreachable, new and not yet
attached, or over the bound) keeps being named by its oid.
"""

import time
import weakref

from durus_shell import peek, scan

MAX_STORED_SEARCHES = 10     # objects looked up in the storage per call
SECONDS_PER_SEARCH = 0.5     # for each of them, at most
SECONDS_PER_CALL = 2.0       # for all of them together, at most
MEMORY_VISIT_LIMIT = 100000  # references followed through loaded objects
MEMORY_SECONDS = 0.1         # and for at most this long (a statement that
                             # loaded 1M objects made a :commit take 26 s)

_REMEMBERED = weakref.WeakKeyDictionary()  # session -> {oid: path or None}


def object_paths(session, objects, in_memory=True,
                 max_searches=MAX_STORED_SEARCHES):
    """``{id(obj): path}`` for those of ``objects`` whose path is known or
    found within the bounds (in order: the first objects get the
    searches).  ``in_memory=False`` skips the walk through loaded objects
    (for callers that already made it); ``max_searches=0`` asks the
    storage nothing (paths come from memory and earlier answers)."""
    seconds_per_search = SECONDS_PER_SEARCH
    objects = [obj for obj in objects if obj is not None]
    found = {}
    if in_memory and objects:
        found.update(peek.find_memory_paths(
            session.connection.get_root(), objects,
            limit_objects=MEMORY_VISIT_LIMIT,
            deadline=time.monotonic() + MEMORY_SECONDS))
    remembered = _REMEMBERED.setdefault(session, {})
    searches = 0
    deadline = time.monotonic() + SECONDS_PER_CALL
    for obj in objects:
        oid = peek.oid_of(obj)
        if id(obj) in found or oid is None:
            continue
        if oid not in remembered:
            left = deadline - time.monotonic()
            if searches >= max_searches or left <= 0:
                continue
            searches += 1
            path, settled = scan.path_search(
                session.connection, oid, min(seconds_per_search, left))
            if not settled:   # out of time: another call may try again
                continue
            remembered[oid] = path
        if remembered[oid] is not None:
            found[id(obj)] = remembered[oid]
    return found
