"""Guessing which records a storage client will ask for next.

When a client loads two objects referred to by the same record (two
items of a list, two values of a dict), it is usually walking that
container; the next siblings are fetched with the current one in one
bulk request, saving a round trip per object.  A walk that goes on into
the next container of the same parent (the next leaf of a BTree, the
next list of a list of lists) fetches its children with its first one:
the container before it was walked to its end.  A lookup that takes one
child per node (a BTree search) never triggers either.

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
        self.walked = set()     # parents whose children were fetched to the end

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
            self.walked.clear()
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
        if hits < 2 and not self._follows_a_walk(parent):
            return []
        children = self.children.get(parent)
        if children is None:
            return []
        end = position + 1 + self.batch
        if end >= len(children):
            self.walked.add(parent)
        records = self.records
        return [child for child in children[position + 1:end]
                if child not in records]

    def _follows_a_walk(self, parent):
        """Whether the sibling just before ``parent`` (in their own
        parent's record) had its children fetched to the end."""
        link = self.parent_of.get(parent)
        if link is None or not link[1]:
            return False
        grandparent, position = link
        siblings = self.children.get(grandparent)
        return (siblings is not None and
                siblings[position - 1] in self.walked)
