"""Arrays kept in a seekable file (re-exported by durus.utils).

These are Durus 4.3's array helpers, with its constructors, methods and
file layout.  Each array lives in a file-like object (anything with
``seek``, ``tell``, ``read`` and ``write``: a ``durus.file.File`` or an
``io.BytesIO``, the default) starting at the position the file had when
the array was made.  A ``WordArray`` (so an ``IntArray``) starts with a
24-byte header: int8 bytes-that-follow, int8 bytes per word, int8 number
of words; SHELF-1's offset map is such an ``IntArray``.

Only an array at the end of its file can be created or grown.  Where
Durus 4.3 asserted, ``ArrayLayoutError`` (an ``AssertionError``) says
what was wrong.
"""

from io import BytesIO
from struct import Struct

from durus.error import DurusError, ShortRead

_int8 = Struct('>Q')
_header = Struct('>QQQ')  # bytes that follow, bytes per word, words
# Bytes written per step while an array grows; each step yields the
# number still to write (progress for large arrays), as Durus 4.3 did.
GROW_CHUNK = 8196


class ArrayLayoutError(DurusError, AssertionError):
    """An array does not fit its file: not at the end, shrinking, or a
    header that does not add up."""


def _read_exactly(file, n):
    data = file.read(n)
    if len(data) < n:
        raise ShortRead('wanted %d bytes of an array, the file had %d'
                        % (n, len(data)))
    return data


def _as_bytes(value):
    return value.encode('latin-1') if isinstance(value, str) else value


class ByteArray(object):
    """``size`` bytes of ``file``; each item is a one-byte ``bytes``."""

    def __init__(self, size=0, file=None):
        self.file = BytesIO() if file is None else file
        self.start = self.file.tell()
        self.size = 0
        self.set_size(size)

    def get_size(self):
        return self.size

    def gen_set_size(self, size, init_byte=b'\x00'):
        """Grow to ``size`` bytes, appending ``init_byte`` to the file
        where it is too short; yields the bytes still to append after
        each step."""
        if size < self.size:
            raise ArrayLayoutError('a ByteArray only grows: it has %d bytes, '
                                   'not %d' % (self.size, size))
        init_byte = _as_bytes(init_byte)
        if size > self.size:
            file = self.file
            file.seek(0, 2)
            end = file.tell()
            if end < self.start + self.size:
                raise ArrayLayoutError(
                    'the file ends at %d, inside the array (%d bytes from %d)'
                    % (end, self.size, self.start))
            if end < self.start + size:
                if end != self.start + self.size:
                    raise ArrayLayoutError(
                        'only an array at the end of its file can grow: this '
                        'one ends at %d, the file at %d'
                        % (self.start + self.size, end))
                if len(init_byte) != 1:
                    raise ArrayLayoutError('init_byte must be one byte, not %r'
                                           % (init_byte,))
                remaining = size - self.size
                chunk = init_byte * GROW_CHUNK
                while remaining > 0:
                    piece = chunk if remaining >= GROW_CHUNK \
                        else chunk[:remaining]
                    file.write(piece)
                    remaining -= len(piece)
                    yield remaining
        self.size = size
        self.file.seek(self.start + size)

    def set_size(self, size, init_byte=b'\x00'):
        """``gen_set_size`` run to the end."""
        for _ in self.gen_set_size(size, init_byte=init_byte):
            pass

    def _check_range(self, j, k):
        if not 0 <= j < k <= self.size:
            raise IndexError((j, k))

    def __getitem__(self, j):
        if isinstance(j, slice):
            return self._get_slice(j)
        if not 0 <= j < self.size:
            raise IndexError(j)
        self.file.seek(self.start + j)
        return _read_exactly(self.file, 1)

    def _slice_bounds(self, j):
        if j.step not in (None, 1):
            raise IndexError(j)
        low = 0 if j.start is None else j.start
        high = self.size if j.stop is None else j.stop
        self._check_range(low, high)
        return low, high

    def _get_slice(self, j):
        low, high = self._slice_bounds(j)
        self.file.seek(self.start + low)
        return _read_exactly(self.file, high - low)

    def __setitem__(self, j, v):
        v = _as_bytes(v)
        if isinstance(j, slice):
            low, high = self._slice_bounds(j)
            if len(v) != high - low:
                raise ValueError('%d bytes given for %d places'
                                 % (len(v), high - low))
            self.file.seek(self.start + low)
        else:
            if not 0 <= j < self.size:
                raise IndexError(j)
            if len(v) != 1:
                raise ValueError('one byte is needed, not %r' % (v,))
            self.file.seek(self.start + j)
        self.file.write(v)

    # Python 2's slice protocol, kept because Durus 4.3 offered it by name.
    def __getslice__(self, j, k):
        return self[j:k]

    def __setslice__(self, j, k, value):
        self[j:k] = value

    def __len__(self):
        return self.size

    def __iter__(self):
        self.file.seek(self.start)
        data = _read_exactly(self.file, self.size)
        for j in range(self.size):
            yield data[j:j + 1]


ALL_BYTES = [bytes((value,)) for value in range(256)]


class Byte(object):
    """The 8 bits of one byte, indexable (bit 0 is the most significant)."""

    def __init__(self, v):
        if isinstance(v, (bytes, bytearray)) and len(v) == 1:
            self.value = v[0]
        elif isinstance(v, int) and 0 <= v <= 255:
            self.value = v
        else:
            raise TypeError('a Byte is made of one byte or an int 0..255, '
                            'not %r' % (v,))

    @staticmethod
    def _bit(j):
        if -8 <= j <= -1:
            j += 8
        if not 0 <= j <= 7:
            raise IndexError(j)
        return 0x80 >> j

    def __getitem__(self, j):
        return 1 if self.value & self._bit(j) else 0

    def __setitem__(self, j, v):
        mask = self._bit(j)
        if v:
            self.value |= mask
        else:
            self.value &= ~mask

    def __str__(self):
        return chr(self.value)

    def __int__(self):
        return self.value

    def byte(self):
        return ALL_BYTES[self.value]


class BitArray(object):
    """``size`` bits (items 0 or 1) in the bytes of a ``ByteArray``."""

    def __init__(self, size, file=None):
        self.byte_array = ByteArray(file=file)
        self.set_size(size)

    def get_size(self):
        return self.size

    def set_size(self, size):
        self.byte_array.set_size((size + 7) // 8)
        self.size = size

    def _place(self, j):
        p = self.size + j if j < 0 else j
        if not 0 <= p < self.size:
            raise IndexError(j)
        return divmod(p, 8)

    def __getitem__(self, j):
        q, r = self._place(j)
        return Byte(self.byte_array[q])[r]

    def __setitem__(self, j, v):
        q, r = self._place(j)
        byte = Byte(self.byte_array[q])
        byte[r] = v
        self.byte_array[q] = byte.byte()

    def __len__(self):
        return self.size

    def __iter__(self):
        left = self.size
        for value in self.byte_array:
            byte = Byte(value)
            for r in range(min(8, left)):
                yield byte[r]
            left -= 8
            if left <= 0:
                return

    def __str__(self):
        return ''.join(str(bit) for bit in self)


class WordArray(object):
    """A header, then ``number_of_words`` words of ``bytes_per_word``
    bytes; items are ``bytes`` of that length.

    On a file positioned at its end, the array is created (zero words);
    elsewhere, the header found at the file's position gives its shape.
    """

    def __init__(self, file=None, bytes_per_word=None, number_of_words=None):
        self.file = BytesIO() if file is None else file
        start = self.file.tell()
        self.file.seek(0, 2)
        if self.file.tell() == start:
            for _ in type(self).generate(self.file, bytes_per_word,
                                         number_of_words, b'\x00'):
                pass
        self.file.seek(start)
        total, bytes_per_word, number_of_words = _header.unpack(
            _read_exactly(self.file, 24))
        if total != 16 + bytes_per_word * number_of_words:
            raise ArrayLayoutError(
                'the word array header at %d does not add up: %d bytes for '
                '%d words of %d' % (start, total, number_of_words,
                                    bytes_per_word))
        self.byte_array = ByteArray(bytes_per_word * number_of_words,
                                    file=self.file)
        self.bytes_per_word = bytes_per_word
        self.number_of_words = number_of_words

    @staticmethod
    def generate(file, bytes_per_word, number_of_words, init_byte):
        """Append a new array to ``file`` (positioned at its end), every
        byte ``init_byte``; yields progress while the words are written."""
        if bytes_per_word is None or number_of_words is None:
            raise TypeError('a new WordArray needs bytes_per_word and '
                            'number_of_words')
        start = file.tell()
        file.seek(0, 2)
        if file.tell() != start:
            raise ArrayLayoutError(
                'a new array goes at the end of its file (%d), not at %d'
                % (file.tell(), start))
        file.write(_header.pack(16 + bytes_per_word * number_of_words,
                                bytes_per_word, number_of_words))
        words = ByteArray(size=0, file=file)
        for step in words.gen_set_size(bytes_per_word * number_of_words,
                                       init_byte=init_byte):
            yield step
        file.seek(start)

    def __len__(self):
        return self.number_of_words

    def _span(self, j):
        p = self.number_of_words + j if j < 0 else j
        if not 0 <= p < self.number_of_words:
            raise IndexError(j)
        start = p * self.bytes_per_word
        return slice(start, start + self.bytes_per_word)

    def __getitem__(self, j):
        return self.byte_array[self._span(j)]

    def __setitem__(self, j, word):
        self.byte_array[self._span(j)] = word

    def __iter__(self):
        size = self.bytes_per_word
        count = self.number_of_words
        if not size or not count:
            for _ in range(count):
                yield b''
            return
        data = self.byte_array[0:size * count]
        for start in range(0, size * count, size):
            yield data[start:start + size]

    def get_bytes_per_word(self):
        return self.bytes_per_word


def bytes_per_int(maximum_int):
    """Word size Durus 4.3 gives an ``IntArray`` for ints up to
    ``maximum_int`` (one value more stays free for the blank word)."""
    if maximum_int is None:
        return 8
    return len(_int8.pack(maximum_int + 1).lstrip(b'\x00'))


class IntArray(object):
    """Unsigned ints in a ``WordArray``, compact when ``maximum_int`` is
    given.  New words are blank (all ``FF`` bytes): ``get`` gives the
    default for them, indexing gives the all-ones number."""

    def __init__(self, file=None, number_of_ints=None, maximum_int=None):
        self.file = BytesIO() if file is None else file
        start = self.file.tell()
        self.file.seek(0, 2)
        if self.file.tell() == start:
            for _ in type(self).generate(self.file, number_of_ints,
                                         maximum_int):
                pass
        self.file.seek(start)
        self.word_array = WordArray(self.file)
        size = self.word_array.get_bytes_per_word()
        self.pad = bytes(8 - size)
        self.blank = b'\xff' * size

    @staticmethod
    def generate(file, number_of_ints, maximum_int):
        """Append a new all-blank array to ``file`` (at its end)."""
        start = file.tell()
        for step in WordArray.generate(file, bytes_per_int(maximum_int),
                                       number_of_ints, b'\xff'):
            yield step
        file.seek(start)

    def get_blank_value(self):
        return _int8.unpack(self.pad + self.blank)[0]

    def get(self, j, default=None):
        try:
            word = self.word_array[j]
        except IndexError:
            return default
        if word == self.blank:
            return default
        return _int8.unpack(self.pad + word)[0]

    def __getitem__(self, j):
        return _int8.unpack(self.pad + self.word_array[j])[0]

    def __setitem__(self, j, value):
        packed = _int8.pack(value)
        if not packed.startswith(self.pad):
            raise ValueError('%d does not fit in a word of %d bytes'
                             % (value, 8 - len(self.pad)))
        self.word_array[j] = packed[len(self.pad):]

    def __iter__(self):
        pad = self.pad
        for word in self.word_array:
            yield _int8.unpack(pad + word)[0]

    def iteritems(self):
        """``(index, int)`` of every word that is not blank."""
        pad, blank = self.pad, self.blank
        for j, word in enumerate(self.word_array):
            if word != blank:
                yield j, _int8.unpack(pad + word)[0]

    items = iteritems

    def __len__(self):
        return len(self.word_array)


class IntSet(object):
    """A set of non-negative ints, one bit each; grows to hold any int."""

    def __init__(self, size=(2 ** 10 - 1), file=None):
        self.bit_array = BitArray(size=size, file=file)

    def add(self, n):
        if n >= self.bit_array.get_size():
            # Room for a fifth more (and at least for n itself).
            self.bit_array.set_size(max(int(n * 1.2), n + 1))
        self.bit_array[n] = 1

    def __contains__(self, n):
        return 0 <= n < self.bit_array.get_size() and self.bit_array[n] == 1

    def discard(self, n):
        if 0 <= n < self.bit_array.get_size():
            self.bit_array[n] = 0

    def __iter__(self):
        return (n for n, bit in enumerate(self.bit_array) if bit)

    def __len__(self):
        return sum(1 for _ in self)


def word_size_for(maximum):
    """Bytes needed to hold ``maximum`` (at least 1)."""
    return max(1, (maximum.bit_length() + 7) // 8)


class MemoryBuffer(object):
    """An in-memory stand-in for a file: ``pread``/``pwrite`` on bytes."""

    def __init__(self, size=0):
        self.data = bytearray(size)
        self.name = '<memory>'

    def get_size(self):
        return len(self.data)

    def pread(self, n, offset):
        return bytes(self.data[offset:offset + n])

    def pwrite(self, data, offset):
        end = offset + len(data)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[offset:end] = data


class StreamAccess(object):
    """``pread``/``pwrite``/``get_size`` over a seekable stream (such as
    ``io.BytesIO``), for code written against ``durus.file.File``."""

    def __init__(self, stream):
        self.stream = stream
        self.name = getattr(stream, 'name', repr(stream))

    def get_size(self):
        here = self.stream.tell()
        self.stream.seek(0, 2)
        size = self.stream.tell()
        self.stream.seek(here)
        return size

    def pread(self, n, offset):
        here = self.stream.tell()
        self.stream.seek(offset)
        data = self.stream.read(n)
        self.stream.seek(here)
        return data

    def pwrite(self, data, offset):
        here = self.stream.tell()
        self.stream.seek(offset)
        self.stream.write(data)
        self.stream.seek(here)
