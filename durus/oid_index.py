"""A compact in-memory map from oid number to file offset.

Oids are handed out densely (0, 1, 2, ...), so most entries live in an
``array('Q')`` indexed by oid number: 8 bytes per oid instead of the
~100 bytes a dict entry costs.  Offset 0 never holds a record in any
format (a magic prefix is there), so 0 in the array means "absent".
Oid numbers far beyond the array (sparse or renumbered files) go to a
small overflow dict, so one huge oid cannot blow up memory.
"""

from array import array
import sys

_BIG_ENDIAN = sys.byteorder == 'big'
_MIN_DENSE = 1024


class OidIndex(object):

    def __init__(self):
        self.dense = array('Q')
        self.overflow = {}
        self.count = 0
        self.max_number = -1

    def __len__(self):
        return self.count

    def get(self, number):
        """The offset recorded for ``number``, or 0."""
        if number < len(self.dense):
            return self.dense[number]
        return self.overflow.get(number, 0)

    def __contains__(self, number):
        return self.get(number) != 0

    def set(self, number, offset):
        dense = self.dense
        if number < len(dense):
            if not dense[number]:
                self.count += 1
            dense[number] = offset
        elif number < max(2 * len(dense), 2 * self.count + _MIN_DENSE):
            new_size = max(number + 1, 2 * len(dense))
            dense.frombytes(bytes(8 * (new_size - len(dense))))
            self._absorb_overflow()
            self.count += 1
            dense[number] = offset
        else:
            if number not in self.overflow:
                self.count += 1
            self.overflow[number] = offset
        if number > self.max_number:
            self.max_number = number

    def set_many(self, pairs):
        """``set(number, offset)`` for each pair (a transaction's
        records), without a method call for those the array holds."""
        dense = self.dense
        size = len(dense)
        count = self.count
        top = self.max_number
        for number, offset in pairs:
            if number < size:
                if not dense[number]:
                    count += 1
                dense[number] = offset
                if number > top:
                    top = number
            else:
                self.count = count
                self.max_number = top
                self.set(number, offset)
                size = len(dense)
                count = self.count
                top = self.max_number
        self.count = count
        self.max_number = top

    def _absorb_overflow(self):
        """Move overflow entries that now fit into the dense array."""
        size = len(self.dense)
        for number in [n for n in self.overflow if n < size]:
            self.dense[number] = self.overflow.pop(number)

    def discard(self, number):
        if number < len(self.dense):
            if self.dense[number]:
                self.dense[number] = 0
                self.count -= 1
        elif self.overflow.pop(number, 0):
            self.count -= 1

    def items(self):
        """``(number, offset)`` pairs, dense part in number order."""
        for number, offset in enumerate(self.dense):
            if offset:
                yield number, offset
        for number in sorted(self.overflow):
            yield number, self.overflow[number]

    def numbers(self):
        return (number for number, _ in self.items())

    def update_from(self, other):
        for number, offset in other.items():
            self.set(number, offset)

    def memory_bytes(self):
        """Rough memory held by the entries (for measurements)."""
        return (self.dense.buffer_info()[1] * self.dense.itemsize
                + sys.getsizeof(self.overflow))

    # Serialization for the saved index file: big-endian words.

    def dense_bytes(self):
        words = array('Q', self.dense)
        if not _BIG_ENDIAN:
            words.byteswap()
        data = words.tobytes().rstrip(b'\0')  # trailing empty slots
        return data + bytes(-len(data) % 8)

    def overflow_bytes(self):
        pairs = array('Q')
        for number in sorted(self.overflow):
            pairs.append(number)
            pairs.append(self.overflow[number])
        if not _BIG_ENDIAN:
            pairs.byteswap()
        return pairs.tobytes()

    @classmethod
    def from_bytes(cls, dense_bytes, overflow_bytes, count=None):
        """The inverse of ``dense_bytes``/``overflow_bytes``; ``count``
        (the number of entries, if known) saves counting them."""
        index = cls()
        dense = array('Q')
        dense.frombytes(dense_bytes)
        pairs = array('Q')
        pairs.frombytes(overflow_bytes)
        if not _BIG_ENDIAN:
            dense.byteswap()
            pairs.byteswap()
        index.dense = dense
        index.max_number = len(dense) - 1  # dense_bytes() trims empty tails
        for position in range(0, len(pairs), 2):
            index.overflow[pairs[position]] = pairs[position + 1]
            index.max_number = max(index.max_number, pairs[position])
        index.count = (count if count is not None else
                       len(dense) - dense.count(0) + len(index.overflow))
        return index
