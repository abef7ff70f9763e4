"""Fixed-size arrays kept in a file region (re-exported by durus.utils).

Each array lives in ``size`` bytes of a backing store starting at
``start``.  The store is anything with ``pread(n, offset)`` and
``pwrite(data, offset)`` (a ``durus.file.File``), or, when none is given,
a private in-memory buffer.  SHELF-1's offset map is such a region: a
``WordArray`` of big-endian unsigned words whose all-``FF`` value means
"blank".
"""


class MemoryBuffer(object):
    """An in-memory stand-in for a file: ``pread``/``pwrite`` on a bytearray."""

    def __init__(self, size=0):
        self.data = bytearray(size)

    def pread(self, n, offset):
        return bytes(self.data[offset:offset + n])

    def pwrite(self, data, offset):
        end = offset + len(data)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[offset:end] = data


class ByteArray(object):
    """``size`` bytes at ``start`` of a backing store, indexable by position."""

    def __init__(self, size=0, file=None, start=0):
        self.size = size
        self.start = start
        self.file = file if file is not None else MemoryBuffer(start + size)

    def __len__(self):
        return self.size

    def _position(self, index):
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError('index %d out of range 0..%d' % (index,
                                                              self.size))
        return self.start + index

    def __getitem__(self, index):
        return self.file.pread(1, self._position(index))[0]

    def __setitem__(self, index, value):
        self.file.pwrite(bytes((value,)), self._position(index))

    def __iter__(self):
        return iter(self.get_bytes())

    def get_bytes(self):
        return self.file.pread(self.size, self.start)

    def set_bytes(self, data):
        if len(data) != self.size:
            raise ValueError('need exactly %d bytes, got %d'
                             % (self.size, len(data)))
        self.file.pwrite(data, self.start)


class Byte(object):
    """Bit operations on one byte value (bit 0 is the most significant)."""

    @staticmethod
    def get_bit(value, bit):
        return (value >> (7 - bit)) & 1

    @staticmethod
    def set_bit(value, bit, on=True):
        mask = 1 << (7 - bit)
        return (value | mask) if on else (value & ~mask & 0xFF)


class BitArray(object):
    """``size`` bits stored in ``(size + 7) // 8`` bytes."""

    def __init__(self, size=0, file=None, start=0):
        self.size = size
        self.bytes = ByteArray((size + 7) // 8, file, start)

    def __len__(self):
        return self.size

    def _check(self, index):
        if not 0 <= index < self.size:
            raise IndexError('bit %d out of range 0..%d' % (index, self.size))

    def __getitem__(self, index):
        self._check(index)
        return bool(Byte.get_bit(self.bytes[index >> 3], index & 7))

    def __setitem__(self, index, on):
        self._check(index)
        byte = self.bytes[index >> 3]
        self.bytes[index >> 3] = Byte.set_bit(byte, index & 7, bool(on))

    def __iter__(self):
        data = self.bytes.get_bytes()
        for index in range(self.size):
            yield bool(Byte.get_bit(data[index >> 3], index & 7))


class WordArray(object):
    """``count`` unsigned big-endian words of ``word_size`` bytes each."""

    def __init__(self, file=None, word_size=8, count=0, start=0):
        if not 1 <= word_size <= 8:
            raise ValueError('word size must be 1..8 bytes, not %d'
                             % word_size)
        self.word_size = word_size
        self.count = count
        self.bytes = ByteArray(word_size * count, file, start)
        self.blank = (1 << (8 * word_size)) - 1

    def __len__(self):
        return self.count

    def _offset(self, index):
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError('word %d out of range 0..%d' % (index,
                                                             self.count))
        return self.bytes.start + index * self.word_size

    def __getitem__(self, index):
        word = self.bytes.file.pread(self.word_size, self._offset(index))
        return int.from_bytes(word, 'big')

    def __setitem__(self, index, value):
        self.bytes.file.pwrite(value.to_bytes(self.word_size, 'big'),
                               self._offset(index))

    def __iter__(self):
        data = self.bytes.get_bytes()
        size = self.word_size
        for position in range(0, len(data), size):
            yield int.from_bytes(data[position:position + size], 'big')


def word_size_for(maximum):
    """Bytes needed to hold ``maximum`` (at least 1)."""
    return max(1, (maximum.bit_length() + 7) // 8)


class IntArray(WordArray):
    """Integers ``0 <= n < maximum`` (or blank, read as None), compactly."""

    def __init__(self, file=None, count=0, maximum=(1 << 64) - 2, start=0):
        WordArray.__init__(self, file, word_size_for(maximum + 1), count,
                           start)

    def __getitem__(self, index):
        value = WordArray.__getitem__(self, index)
        return None if value == self.blank else value

    def __setitem__(self, index, value):
        WordArray.__setitem__(self, index,
                              self.blank if value is None else value)

    def __iter__(self):
        for value in WordArray.__iter__(self):
            yield None if value == self.blank else value


class IntSet(object):
    """A set of integers in ``range(size)`` kept as a bitmap."""

    def __init__(self, size=0, file=None, start=0):
        self.bits = BitArray(size, file, start)

    def add(self, n):
        self.bits[n] = True

    def discard(self, n):
        if 0 <= n < len(self.bits):
            self.bits[n] = False

    def __contains__(self, n):
        return 0 <= n < len(self.bits) and self.bits[n]

    def __iter__(self):
        return (n for n, on in enumerate(self.bits) if on)

    def __len__(self):
        return sum(1 for _ in self)
