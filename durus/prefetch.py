"""Guessing which records a storage client will ask for next.

When a client loads two objects referred to by the same record (two
items of a list, two values of a dict), it is usually walking that
container; the next siblings are fetched with the current one in one
bulk request, saving a round trip per object.  A lookup that takes one
child per node (a BTree search) never triggers it.

Consistency: prefetched records may only be used until the client next
learns about other clients' commits (sync, or the start of a commit);
``forget_records()`` must be called then.  The server answers a bulk
load with 'I' for oids changed since the client's last sync, and those
are never kept, so every record served from here is the state as of the
last sync: the same snapshot a direct load gives.
"""

from durus.record import RecordError, refs_start

BATCH = 200            # siblings fetched with one load
MAX_RECORDS = 20000    # records kept at most
MAX_LINKS = 200000     # child -> parent hints kept at most


class Prefetcher(object):

    def __init__(self, batch=BATCH, max_records=MAX_RECORDS,
                 max_links=MAX_LINKS):
        self.batch = batch
        self.max_records = max_records
        self.max_links = max_links
        self.records = {}       # oid -> record, valid until forget_records
        self.parent_of = {}     # child oid -> (parent oid, position)
        self.children = {}      # parent oid -> list of child oids
        self.hits = {}          # parent oid -> children loaded one by one

    def take(self, oid):
        """The prefetched record of ``oid`` (removed), or None."""
        return self.records.pop(oid, None)

    def keep(self, oid, record):
        self.records[oid] = record

    def forget_records(self):
        """Called whenever invalidations may have arrived."""
        self.records.clear()

    def note_record(self, oid, record):
        """Remember the children a loaded record refers to."""
        try:
            start = refs_start(record)
        except RecordError:
            return
        count = (len(record) - start) // 8
        if count < 2:
            return
        if len(self.parent_of) + count > self.max_links:
            self.parent_of.clear()
            self.children.clear()
            self.hits.clear()
        children = [record[i:i + 8]
                    for i in range(start, len(record), 8)]
        self.children[oid] = children
        self.hits.pop(oid, None)
        parent_of = self.parent_of
        for position, child in enumerate(children):
            parent_of[child] = (oid, position)

    def siblings_to_fetch_with(self, oid):
        """Oids worth fetching together with a direct load of ``oid``."""
        link = self.parent_of.get(oid)
        if link is None or len(self.records) >= self.max_records:
            return []
        parent, position = link
        hits = self.hits.get(parent, 0) + 1
        self.hits[parent] = hits
        if hits < 2:
            return []
        children = self.children.get(parent)
        if children is None:
            return []
        records = self.records
        return [child for child in
                children[position + 1:position + 1 + self.batch]
                if child not in records]
