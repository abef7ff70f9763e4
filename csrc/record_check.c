/* The deep check of one object record (durus/record_check.py), compiled.

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.

   record_fine(record) walks a record as durus.record_check.record_problem
   does (the Python twin, the reference) and answers:
     True   the twin would find nothing wrong (returns None);
     False  the twin would name a problem;
     None   this walk does not decide: the record is not a bytes object,
            or a pickle uses an opcode of the text protocols whose
            argument needs Python's number or escape parsing (INT, LONG,
            FLOAT, GET, PUT, UNICODE; Durus writes protocol 2, which has
            none of them), or the state is compressed and the module was
            built without zlib.
   durus.record_check asks the twin for False and None, so every message
   comes from one place; this walk only has to be fast when all is fine
   and never call a damaged record fine (tests/test_record_check.py
   fuzzes the two against each other).

   Every byte is hostile: each read is bounds-checked against the pickle's
   length, the walk is a loop (no recursion), and the stack, marks, memo
   and values grow at most by one entry per opcode byte, so memory stays
   proportional to the record (a compressed state's, up to
   RC_INFLATE_LIMIT, beyond which the twin decides). */

#include <stdint.h>
#include <string.h>

/* What the walk knows of a stack value: only what can change a verdict.
   A str matters as a name ('_codecs', 'encode', 'latin1', 'latin-1') or
   when it encodes to 8 latin-1 bytes (an oid, via _codecs.encode); bytes
   matter when they are 8 long (an oid); tuples when they are pairs (a
   global, the arguments of _codecs.encode, a persistent id).  Anything
   else the twin treats like its "any value" marker. */
enum { RC_ANY, RC_STR, RC_BYTES8, RC_PAIR };
#define RC_CODECS 1   /* str '_codecs' */
#define RC_ENCODE 2   /* str 'encode' */
#define RC_LATIN1 4   /* str 'latin1' or 'latin-1' */
#define RC_HAS8 8     /* str that encodes to the 8 latin-1 bytes in eight */

typedef struct {
    unsigned char kind;
    uint32_t first, second;     /* RC_PAIR: value indices */
    const unsigned char *text;  /* RC_STR: its UTF-8 bytes (in the */
    Py_ssize_t text_size;       /* record or the inflated state) */
    unsigned char eight[8];     /* RC_BYTES8 */
} RcValue;

/* Opcode arguments (the twin's _TABLE). */
enum { A_NONE, A_FIXED, A_LEN, A_LINE, A_PAIR };

typedef struct {
    unsigned char valid, arg, width, signed_len, pops, to_mark, pushes;
} RcOpcode;

#define RC_HIGHEST_PROTOCOL 5   /* record_check._HIGHEST_PROTOCOL */

/* Outcomes of the walk. */
#define RC_OK 0
#define RC_BAD 1
#define RC_UNSURE 2
#define RC_ERROR (-1)

static RcOpcode rc_table[256];

static void
rc_op(int code, int arg, int width, int signed_len, int pops, int to_mark,
      int pushes)
{
    RcOpcode *entry = &rc_table[code];
    entry->valid = 1;
    entry->arg = (unsigned char)arg;
    entry->width = (unsigned char)width;
    entry->signed_len = (unsigned char)signed_len;
    entry->pops = (unsigned char)pops;
    entry->to_mark = (unsigned char)to_mark;
    entry->pushes = (unsigned char)pushes;
}

/* The facts of pickletools.opcodes, as in the twin's _TABLE. */
static void
rc_init_table(void)
{
    rc_op('(', A_NONE, 0, 0, 0, 0, 1);   /* MARK */
    rc_op(')', A_NONE, 0, 0, 0, 0, 1);   /* EMPTY_TUPLE */
    rc_op('.', A_NONE, 0, 0, 1, 0, 0);   /* STOP */
    rc_op('0', A_NONE, 0, 0, 1, 0, 0);   /* POP */
    rc_op('1', A_NONE, 0, 0, 0, 1, 0);   /* POP_MARK */
    rc_op('2', A_NONE, 0, 0, 1, 0, 2);   /* DUP */
    rc_op('B', A_LEN, 4, 0, 0, 0, 1);    /* BINBYTES */
    rc_op('C', A_LEN, 1, 0, 0, 0, 1);    /* SHORT_BINBYTES */
    rc_op('F', A_LINE, 0, 0, 0, 0, 1);   /* FLOAT */
    rc_op('G', A_FIXED, 8, 0, 0, 0, 1);  /* BINFLOAT */
    rc_op('I', A_LINE, 0, 0, 0, 0, 1);   /* INT */
    rc_op('J', A_FIXED, 4, 0, 0, 0, 1);  /* BININT */
    rc_op('K', A_FIXED, 1, 0, 0, 0, 1);  /* BININT1 */
    rc_op('L', A_LINE, 0, 0, 0, 0, 1);   /* LONG */
    rc_op('M', A_FIXED, 2, 0, 0, 0, 1);  /* BININT2 */
    rc_op('N', A_NONE, 0, 0, 0, 0, 1);   /* NONE */
    rc_op('P', A_LINE, 0, 0, 0, 0, 1);   /* PERSID */
    rc_op('Q', A_NONE, 0, 0, 1, 0, 1);   /* BINPERSID */
    rc_op('R', A_NONE, 0, 0, 2, 0, 1);   /* REDUCE */
    rc_op('S', A_LINE, 0, 0, 0, 0, 1);   /* STRING */
    rc_op('T', A_LEN, 4, 1, 0, 0, 1);    /* BINSTRING */
    rc_op('U', A_LEN, 1, 0, 0, 0, 1);    /* SHORT_BINSTRING */
    rc_op('V', A_LINE, 0, 0, 0, 0, 1);   /* UNICODE */
    rc_op('X', A_LEN, 4, 0, 0, 0, 1);    /* BINUNICODE */
    rc_op(']', A_NONE, 0, 0, 0, 0, 1);   /* EMPTY_LIST */
    rc_op('a', A_NONE, 0, 0, 2, 0, 1);   /* APPEND */
    rc_op('b', A_NONE, 0, 0, 2, 0, 1);   /* BUILD */
    rc_op('c', A_PAIR, 0, 0, 0, 0, 1);   /* GLOBAL */
    rc_op('d', A_NONE, 0, 0, 0, 1, 1);   /* DICT */
    rc_op('e', A_NONE, 0, 0, 1, 1, 1);   /* APPENDS */
    rc_op('g', A_LINE, 0, 0, 0, 0, 1);   /* GET */
    rc_op('h', A_FIXED, 1, 0, 0, 0, 1);  /* BINGET */
    rc_op('i', A_PAIR, 0, 0, 0, 1, 1);   /* INST */
    rc_op('j', A_FIXED, 4, 0, 0, 0, 1);  /* LONG_BINGET */
    rc_op('l', A_NONE, 0, 0, 0, 1, 1);   /* LIST */
    rc_op('o', A_NONE, 0, 0, 0, 1, 1);   /* OBJ */
    rc_op('p', A_LINE, 0, 0, 0, 0, 0);   /* PUT */
    rc_op('q', A_FIXED, 1, 0, 0, 0, 0);  /* BINPUT */
    rc_op('r', A_FIXED, 4, 0, 0, 0, 0);  /* LONG_BINPUT */
    rc_op('s', A_NONE, 0, 0, 3, 0, 1);   /* SETITEM */
    rc_op('t', A_NONE, 0, 0, 0, 1, 1);   /* TUPLE */
    rc_op('u', A_NONE, 0, 0, 1, 1, 1);   /* SETITEMS */
    rc_op('}', A_NONE, 0, 0, 0, 0, 1);   /* EMPTY_DICT */
    rc_op(0x80, A_FIXED, 1, 0, 0, 0, 0); /* PROTO */
    rc_op(0x81, A_NONE, 0, 0, 2, 0, 1);  /* NEWOBJ */
    rc_op(0x82, A_FIXED, 1, 0, 0, 0, 1); /* EXT1 */
    rc_op(0x83, A_FIXED, 2, 0, 0, 0, 1); /* EXT2 */
    rc_op(0x84, A_FIXED, 4, 0, 0, 0, 1); /* EXT4 */
    rc_op(0x85, A_NONE, 0, 0, 1, 0, 1);  /* TUPLE1 */
    rc_op(0x86, A_NONE, 0, 0, 2, 0, 1);  /* TUPLE2 */
    rc_op(0x87, A_NONE, 0, 0, 3, 0, 1);  /* TUPLE3 */
    rc_op(0x88, A_NONE, 0, 0, 0, 0, 1);  /* NEWTRUE */
    rc_op(0x89, A_NONE, 0, 0, 0, 0, 1);  /* NEWFALSE */
    rc_op(0x8a, A_LEN, 1, 0, 0, 0, 1);   /* LONG1 */
    rc_op(0x8b, A_LEN, 4, 1, 0, 0, 1);   /* LONG4 */
    rc_op(0x8c, A_LEN, 1, 0, 0, 0, 1);   /* SHORT_BINUNICODE */
    rc_op(0x8d, A_LEN, 8, 0, 0, 0, 1);   /* BINUNICODE8 */
    rc_op(0x8e, A_LEN, 8, 0, 0, 0, 1);   /* BINBYTES8 */
    rc_op(0x8f, A_NONE, 0, 0, 0, 0, 1);  /* EMPTY_SET */
    rc_op(0x90, A_NONE, 0, 0, 1, 1, 1);  /* ADDITEMS */
    rc_op(0x91, A_NONE, 0, 0, 0, 1, 1);  /* FROZENSET */
    rc_op(0x92, A_NONE, 0, 0, 3, 0, 1);  /* NEWOBJ_EX */
    rc_op(0x93, A_NONE, 0, 0, 2, 0, 1);  /* STACK_GLOBAL */
    rc_op(0x94, A_NONE, 0, 0, 1, 0, 1);  /* MEMOIZE */
    rc_op(0x95, A_FIXED, 8, 0, 0, 0, 0); /* FRAME */
    rc_op(0x96, A_LEN, 8, 0, 0, 0, 1);   /* BYTEARRAY8 */
    rc_op(0x97, A_NONE, 0, 0, 0, 0, 1);  /* NEXT_BUFFER */
    rc_op(0x98, A_NONE, 0, 0, 1, 0, 1);  /* READONLY_BUFFER */
}

/* A growable array that starts in a small buffer inside RcWalk, so that
   a usual record needs no allocation. */
typedef struct {
    void *items;
    size_t count, capacity, size;
    void *inline_items;
} RcArray;

#define RC_INLINE 64

typedef struct {
    RcArray values, stack, marks, pids;
    RcValue values_inline[RC_INLINE];
    uint32_t stack_inline[RC_INLINE];
    size_t marks_inline[RC_INLINE];
    unsigned char pids_inline[RC_INLINE][8];
    /* The memo: open addressing, key + 1 (0 marks a free slot). */
    uint64_t *memo_keys;
    uint32_t *memo_values;
    size_t memo_count, memo_capacity;
    uint64_t memo_keys_inline[RC_INLINE * 2];
    uint32_t memo_values_inline[RC_INLINE * 2];
    int pids_unreadable;        /* the twin's pids is None */
} RcWalk;

static void
rc_array_init(RcArray *array, void *inline_items, size_t size)
{
    array->items = array->inline_items = inline_items;
    array->count = 0;
    array->capacity = RC_INLINE;
    array->size = size;
}

static void
rc_array_free(RcArray *array)
{
    if (array->items != array->inline_items)
        PyMem_Free(array->items);
}

/* Room for one more item: 0, or -1 with MemoryError. */
static int
rc_array_grow(RcArray *array)
{
    size_t capacity;
    void *items;
    if (array->capacity > (size_t)PY_SSIZE_T_MAX / 2 / array->size) {
        PyErr_NoMemory();
        return -1;
    }
    capacity = array->capacity * 2;
    if (array->items == array->inline_items) {
        items = PyMem_Malloc(capacity * array->size);
        if (items != NULL)
            memcpy(items, array->items, array->count * array->size);
    }
    else
        items = PyMem_Realloc(array->items, capacity * array->size);
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    array->items = items;
    array->capacity = capacity;
    return 0;
}

static inline int
rc_array_reserve(RcArray *array)
{
    return array->count < array->capacity ? 0 : rc_array_grow(array);
}

static void
rc_walk_init(RcWalk *walk)
{
    rc_array_init(&walk->values, walk->values_inline, sizeof(RcValue));
    rc_array_init(&walk->stack, walk->stack_inline, sizeof(uint32_t));
    rc_array_init(&walk->marks, walk->marks_inline, sizeof(size_t));
    rc_array_init(&walk->pids, walk->pids_inline, 8);
    memset(walk->values_inline, 0, sizeof(RcValue));
    walk->values.count = 1;     /* value 0: any value */
    walk->memo_keys = walk->memo_keys_inline;
    walk->memo_values = walk->memo_values_inline;
    walk->memo_capacity = RC_INLINE * 2;
    walk->memo_count = 0;
    memset(walk->memo_keys_inline, 0, sizeof(walk->memo_keys_inline));
    walk->pids_unreadable = 0;
}

static void
rc_walk_free(RcWalk *walk)
{
    rc_array_free(&walk->values);
    rc_array_free(&walk->stack);
    rc_array_free(&walk->marks);
    rc_array_free(&walk->pids);
    if (walk->memo_keys != walk->memo_keys_inline) {
        PyMem_Free(walk->memo_keys);
        PyMem_Free(walk->memo_values);
    }
}

#define RC_VALUES(walk) ((RcValue *)(walk)->values.items)
#define RC_STACK(walk) ((uint32_t *)(walk)->stack.items)
#define RC_MARKS(walk) ((size_t *)(walk)->marks.items)

/* A new value (zeroed) of kind; its index, or -1 with MemoryError.
   Value indices stay below 2**32: a record that needs more is far over
   any size the file formats allow. */
static int64_t
rc_new_value(RcWalk *walk, int kind)
{
    RcValue *value;
    if (walk->values.count >= UINT32_MAX) {
        PyErr_NoMemory();
        return -1;
    }
    if (rc_array_reserve(&walk->values) < 0)
        return -1;
    value = &RC_VALUES(walk)[walk->values.count];
    memset(value, 0, sizeof(*value));
    value->kind = (unsigned char)kind;
    return (int64_t)walk->values.count++;
}

static int
rc_push(RcWalk *walk, uint32_t value)
{
    if (rc_array_reserve(&walk->stack) < 0)
        return -1;
    RC_STACK(walk)[walk->stack.count++] = value;
    return 0;
}

static inline size_t
rc_memo_slot(uint64_t key, size_t capacity)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & (capacity - 1);
}

/* The memo slot of key: where it is, or the free slot where it goes. */
static size_t
rc_memo_find(RcWalk *walk, uint64_t key)
{
    size_t mask = walk->memo_capacity - 1;
    size_t slot = rc_memo_slot(key, walk->memo_capacity);
    while (walk->memo_keys[slot] != 0 && walk->memo_keys[slot] != key + 1)
        slot = (slot + 1) & mask;
    return slot;
}

static int
rc_memo_grow(RcWalk *walk)
{
    size_t old_capacity = walk->memo_capacity, capacity, i;
    uint64_t *old_keys = walk->memo_keys, *keys;
    uint32_t *old_values = walk->memo_values, *values;
    if (old_capacity > (size_t)PY_SSIZE_T_MAX / 2 / sizeof(uint64_t)) {
        PyErr_NoMemory();
        return -1;
    }
    capacity = old_capacity * 2;
    keys = PyMem_Calloc(capacity, sizeof(uint64_t));
    values = PyMem_Malloc(capacity * sizeof(uint32_t));
    if (keys == NULL || values == NULL) {
        PyMem_Free(keys);
        PyMem_Free(values);
        PyErr_NoMemory();
        return -1;
    }
    walk->memo_keys = keys;
    walk->memo_values = values;
    walk->memo_capacity = capacity;
    for (i = 0; i < old_capacity; i++) {
        if (old_keys[i] != 0) {
            size_t slot = rc_memo_find(walk, old_keys[i] - 1);
            keys[slot] = old_keys[i];
            values[slot] = old_values[i];
        }
    }
    if (old_keys != walk->memo_keys_inline) {
        PyMem_Free(old_keys);
        PyMem_Free(old_values);
    }
    return 0;
}

/* memo[key] = value: 0, or -1 with MemoryError. */
static int
rc_memo_put(RcWalk *walk, uint64_t key, uint32_t value)
{
    size_t slot = rc_memo_find(walk, key);
    if (walk->memo_keys[slot] == 0) {
        if ((walk->memo_count + 1) * 2 > walk->memo_capacity) {
            if (rc_memo_grow(walk) < 0)
                return -1;
            slot = rc_memo_find(walk, key);
        }
        walk->memo_keys[slot] = key + 1;
        walk->memo_count++;
    }
    walk->memo_values[slot] = value;
    return 0;
}

/* 1 and *value = memo[key], or 0 when the key was never written. */
static int
rc_memo_get(RcWalk *walk, uint64_t key, uint32_t *value)
{
    size_t slot = rc_memo_find(walk, key);
    if (walk->memo_keys[slot] == 0)
        return 0;
    *value = walk->memo_values[slot];
    return 1;
}

/* 1 when p[0:n] decodes as bytes.decode('utf-8', 'surrogatepass') does:
   UTF-8, with encoded surrogates (ED A0..BF xx) allowed. */
static int
rc_utf8_ok(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned int c = p[i], c1;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xC2)
            return 0;
        if (c < 0xE0) {
            if (n - i < 2 || (p[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
            continue;
        }
        if (c < 0xF0) {
            if (n - i < 3)
                return 0;
            c1 = p[i + 1];
            if (c == 0xE0 ? (c1 < 0xA0 || c1 > 0xBF) : (c1 & 0xC0) != 0x80)
                return 0;
            if ((p[i + 2] & 0xC0) != 0x80)
                return 0;
            i += 3;
            continue;
        }
        if (c < 0xF5) {
            if (n - i < 4)
                return 0;
            c1 = p[i + 1];
            if (c1 < (c == 0xF0 ? 0x90u : 0x80u) ||
                    c1 > (c == 0xF4 ? 0x8Fu : 0xBFu))
                return 0;
            if ((p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80)
                return 0;
            i += 4;
            continue;
        }
        return 0;
    }
    return 1;
}

/* A str value for the text p[0:n]; what it is as a name or as latin-1
   is worked out only when an opcode asks (rc_str_flags). */
static int64_t
rc_new_str(RcWalk *walk, const unsigned char *p, Py_ssize_t n)
{
    int64_t index = rc_new_value(walk, RC_STR);
    if (index >= 0) {
        RC_VALUES(walk)[index].text = p;
        RC_VALUES(walk)[index].text_size = n;
    }
    return index;
}

/* The name flags of a str value and, when it is 8 code points all below
   256 (RC_HAS8), its latin-1 bytes in eight.  A byte sequence that is
   not such a code point (an invalid one decodes to U+FFFD under the
   'replace' of GLOBAL's lines) rules latin-1 out. */
static int
rc_str_flags(const RcValue *value, unsigned char *eight)
{
    const unsigned char *p = value->text;
    Py_ssize_t n = value->text_size, i = 0;
    int flags = 0, count = 0;
    if (n == 7 && memcmp(p, "_codecs", 7) == 0)
        flags = RC_CODECS;
    else if (n == 6 && memcmp(p, "encode", 6) == 0)
        flags = RC_ENCODE;
    else if ((n == 6 && memcmp(p, "latin1", 6) == 0) ||
             (n == 7 && memcmp(p, "latin-1", 7) == 0))
        flags = RC_LATIN1;
    if (n < 8 || n > 16)
        return flags;
    while (i < n) {
        unsigned int c = p[i];
        if (count == 8)
            return flags;
        if (c < 0x80) {
            eight[count++] = (unsigned char)c;
            i++;
        }
        else if ((c == 0xC2 || c == 0xC3) && i + 1 < n &&
                 (p[i + 1] & 0xC0) == 0x80) {
            eight[count++] = (unsigned char)(((c & 0x1F) << 6) |
                                             (p[i + 1] & 0x3F));
            i += 2;
        }
        else
            return flags;
    }
    return count == 8 ? flags | RC_HAS8 : flags;
}

/* 1 when value is a str with all of flags. */
static int
rc_is_str(RcWalk *walk, uint32_t index, int flags, unsigned char *eight)
{
    const RcValue *value = &RC_VALUES(walk)[index];
    unsigned char unused[8];
    return value->kind == RC_STR &&
        (rc_str_flags(value, eight ? eight : unused) & flags) == flags;
}

static int64_t
rc_new_pair(RcWalk *walk, uint32_t first, uint32_t second)
{
    int64_t index = rc_new_value(walk, RC_PAIR);
    if (index >= 0) {
        RC_VALUES(walk)[index].first = first;
        RC_VALUES(walk)[index].second = second;
    }
    return index;
}

/* What _codecs.encode(text, 'latin1') gives, as the twin's _reduce. */
static int64_t
rc_reduce(RcWalk *walk, uint32_t function, uint32_t args)
{
    RcValue f = RC_VALUES(walk)[function], a = RC_VALUES(walk)[args];
    unsigned char eight[8];
    int64_t index;
    if (f.kind != RC_PAIR || a.kind != RC_PAIR ||
            !rc_is_str(walk, f.first, RC_CODECS, NULL) ||
            !rc_is_str(walk, f.second, RC_ENCODE, NULL) ||
            !rc_is_str(walk, a.second, RC_LATIN1, NULL) ||
            !rc_is_str(walk, a.first, RC_HAS8, eight))
        return 0;   /* no bytes of 8 (no oid): like any value */
    index = rc_new_value(walk, RC_BYTES8);
    if (index >= 0)
        memcpy(RC_VALUES(walk)[index].eight, eight, 8);
    return index;
}

static inline uint64_t
rc_read_le(const unsigned char *p, int width)
{
    switch (width) {
    case 1:
        return p[0];
    case 2:
        return p[0] | (uint64_t)p[1] << 8;
    case 4:
        return p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
            (uint64_t)p[3] << 24;
    default: {
        uint64_t value = 0;
        int i;
        for (i = width - 1; i >= 0; i--)
            value = (value << 8) | p[i];
        return value;
    }
    }
}

#define RC_CHECK(index) do { if ((index) < 0) return RC_ERROR; } while (0)

/* Walk one pickle data[position:size] to its STOP, as the twin's
   walk_pickle; the memo is the walk's, the stack and marks start empty.
   Persistent ids met are added to walk->pids (or walk->pids_unreadable
   set).  RC_OK with *end after the STOP, RC_BAD, RC_UNSURE or RC_ERROR. */
#define RC_MEMO_SLACK 1024  /* durus.memo_guard.MEMO_SLACK */

static int
rc_walk_pickle(RcWalk *walk, const unsigned char *data, Py_ssize_t size,
               Py_ssize_t position, Py_ssize_t *end)
{
    walk->stack.count = 0;
    walk->marks.count = 0;
    for (;;) {
        const RcOpcode *entry;
        unsigned char code;
        Py_ssize_t at, base;
        uint64_t number = 0;
        int64_t value = 0;
        uint32_t *stack, first, second;

        if (position >= size)
            return RC_BAD;
        code = data[position];
        entry = &rc_table[code];
        if (!entry->valid)
            return RC_BAD;
        at = position + 1;
        switch (entry->arg) {
        case A_NONE:
            position = at;
            break;
        case A_FIXED:
            if (size - at < entry->width)
                return RC_BAD;
            number = rc_read_le(data + at, entry->width);
            position = at + entry->width;
            break;
        case A_LEN: {
            uint64_t length;
            Py_ssize_t start;
            if (size - at < entry->width)
                return RC_BAD;
            length = rc_read_le(data + at, entry->width);
            if (entry->signed_len && (length & 0x80000000u))
                return RC_BAD;          /* a negative length */
            start = at + entry->width;
            if (length > (uint64_t)(size - start))
                return RC_BAD;
            position = start + (Py_ssize_t)length;
            if (code == 0x8c || code == 'X' || code == 0x8d) {
                if (!rc_utf8_ok(data + start, (Py_ssize_t)length))
                    return RC_BAD;
                value = rc_new_str(walk, data + start, (Py_ssize_t)length);
                RC_CHECK(value);
            }
            else if (length == 8 && (code == 'U' || code == 'T' ||
                                     code == 'C' || code == 'B' ||
                                     code == 0x8e)) {
                value = rc_new_value(walk, RC_BYTES8);
                RC_CHECK(value);
                memcpy(RC_VALUES(walk)[value].eight, data + start, 8);
            }
            break;
        }
        case A_LINE: {
            const unsigned char *newline = memchr(data + at, '\n',
                                                  (size_t)(size - at));
            if (newline == NULL)
                return RC_BAD;
            position = newline - data + 1;
            if (code != 'S' && code != 'P')
                return RC_UNSURE;   /* a number or an escaped text */
            break;
        }
        default: {  /* A_PAIR: GLOBAL, INST */
            const unsigned char *newline = memchr(data + at, '\n',
                                                  (size_t)(size - at)),
                *second_line;
            Py_ssize_t line_end;
            if (newline == NULL)
                return RC_BAD;
            line_end = newline - data;
            second_line = data + line_end + 1;
            newline = memchr(second_line, '\n',
                             (size_t)(size - line_end - 1));
            if (newline == NULL)
                return RC_BAD;
            position = newline - data + 1;
            if (code == 'c') {
                int64_t module = rc_new_str(walk, data + at, line_end - at),
                    name;
                RC_CHECK(module);
                name = rc_new_str(walk, second_line, newline - second_line);
                RC_CHECK(name);
                value = rc_new_pair(walk, (uint32_t)module, (uint32_t)name);
                RC_CHECK(value);
            }
        }
        }

        /* The stack, as the unpickler would see it. */
        if (code == '(') {
            if (rc_array_reserve(&walk->marks) < 0)
                return RC_ERROR;
            RC_MARKS(walk)[walk->marks.count++] = walk->stack.count;
            continue;
        }
        if (entry->to_mark) {
            size_t cut;
            if (walk->marks.count == 0)
                return RC_BAD;
            cut = RC_MARKS(walk)[--walk->marks.count];
            if (code == 'o' && walk->stack.count == cut)
                return RC_BAD;  /* OBJ without a class */
            if (code == 't' && walk->stack.count - cut == 2) {
                stack = RC_STACK(walk);
                value = rc_new_pair(walk, stack[cut], stack[cut + 1]);
                RC_CHECK(value);
            }
            walk->stack.count = cut;
        }
        base = walk->marks.count ? (Py_ssize_t)RC_MARKS(walk)[
            walk->marks.count - 1] : 0;
        if ((Py_ssize_t)walk->stack.count - base < entry->pops)
            return RC_BAD;
        stack = RC_STACK(walk);
        switch (code) {
        case 'q': case 'r': case 0x94:  /* BINPUT, LONG_BINPUT, MEMOIZE */
            if (walk->stack.count == 0)
                return RC_BAD;
            /* An index far beyond the pickle's length (durus/memo_guard.py:
               the unpickler would allocate for it) */
            if (code == 'r' && number > (uint64_t)size + RC_MEMO_SLACK)
                return RC_BAD;
            if (rc_memo_put(walk, code == 0x94 ? walk->memo_count : number,
                            stack[walk->stack.count - 1]) < 0)
                return RC_ERROR;
            continue;
        case 'h': case 'j': {           /* BINGET, LONG_BINGET */
            uint32_t found;
            if (!rc_memo_get(walk, number, &found))
                return RC_BAD;
            if (rc_push(walk, found) < 0)
                return RC_ERROR;
            continue;
        }
        case '.':
            if (walk->stack.count != 1 || walk->marks.count)
                return RC_BAD;
            *end = position;
            return RC_OK;
        case 0x80:
            if (number > RC_HIGHEST_PROTOCOL)
                return RC_BAD;
            continue;
        case 0x97: case 0x98:           /* out-of-band buffers */
            return RC_BAD;
        case 'P':                       /* a text pid: not readable */
            walk->pids_unreadable = 1;
            break;
        }
        walk->stack.count -= entry->pops;
        first = entry->pops > 0 ? stack[walk->stack.count] : 0;
        second = entry->pops > 1 ? stack[walk->stack.count + 1] : 0;
        switch (code) {
        case 0x86:                      /* TUPLE2 */
            value = rc_new_pair(walk, first, second);
            RC_CHECK(value);
            break;
        case 0x93:                      /* STACK_GLOBAL */
            if (RC_VALUES(walk)[first].kind == RC_STR &&
                    RC_VALUES(walk)[second].kind == RC_STR) {
                value = rc_new_pair(walk, first, second);
                RC_CHECK(value);
            }
            break;
        case 'R':
            value = rc_reduce(walk, first, second);
            RC_CHECK(value);
            break;
        case 'Q': {                     /* BINPERSID */
            RcValue *values = RC_VALUES(walk), *pid = &values[first];
            if (!walk->pids_unreadable && pid->kind == RC_PAIR &&
                    values[pid->first].kind == RC_BYTES8) {
                if (rc_array_reserve(&walk->pids) < 0)
                    return RC_ERROR;
                memcpy((unsigned char *)walk->pids.items +
                       8 * walk->pids.count++,
                       RC_VALUES(walk)[pid->first].eight, 8);
            }
            else
                walk->pids_unreadable = 1;
            break;
        }
        case '2':                       /* DUP */
            if (rc_push(walk, first) < 0 || rc_push(walk, first) < 0)
                return RC_ERROR;
            continue;
        }
        if (entry->pushes && rc_push(walk, (uint32_t)value) < 0)
            return RC_ERROR;
    }
}

static int
rc_compare_oids(const void *a, const void *b)
{
    return memcmp(a, b, 8);
}

/* The twin's reference check: the oids of the state's persistent ids,
   minus the record's own, as a set, equal to the refs trailer, which
   lists each once.  RC_OK or RC_BAD (RC_ERROR on MemoryError). */
static int
rc_check_refs(RcWalk *walk, const unsigned char *oid,
              const unsigned char *refs, size_t refs_size)
{
    size_t npids = walk->pids.count, nrefs = refs_size / 8, i, kept = 0;
    unsigned char *pids = walk->pids.items, *listed;
    int result = RC_OK;

    qsort(pids, npids, 8, rc_compare_oids);
    for (i = 0; i < npids; i++) {   /* drop repeats and the record's oid */
        if (memcmp(pids + 8 * i, oid, 8) == 0 ||
                (kept && memcmp(pids + 8 * i, pids + 8 * (kept - 1), 8) == 0))
            continue;
        memmove(pids + 8 * kept++, pids + 8 * i, 8);
    }
    if (kept != nrefs)
        return RC_BAD;
    if (nrefs == 0)
        return RC_OK;
    listed = PyMem_Malloc(refs_size);
    if (listed == NULL) {
        PyErr_NoMemory();
        return RC_ERROR;
    }
    memcpy(listed, refs, refs_size);
    qsort(listed, nrefs, 8, rc_compare_oids);
    if (memcmp(listed, pids, refs_size) != 0)
        result = RC_BAD;            /* also when an oid is listed twice */
    PyMem_Free(listed);
    return result;
}

/* Inflating a compressed state as the twin does with
   zlib.decompressobj(): fine only for one complete stream (checksum
   included) with nothing after it.  setup.py defines DURUS_HAVE_ZLIB when
   zlib.h and the library are there; the stream and the output buffer
   are reused from record to record (the walk calls no Python code, so
   nothing can re-enter).  Without zlib, records with a compressed state
   are left to the twin. */

#define RC_INFLATE_LIMIT ((Py_ssize_t)64 << 20)  /* beyond: the twin's */

#ifdef DURUS_HAVE_ZLIB
#include <zlib.h>

static z_stream rc_stream;
static int rc_stream_ready;
static unsigned char *rc_out;
static Py_ssize_t rc_out_capacity;

/* RC_OK with *out, *out_size (valid until the next record), RC_BAD,
   RC_UNSURE (over RC_INFLATE_LIMIT) or RC_ERROR. */
static int
rc_inflate(const unsigned char *state, Py_ssize_t size,
           const unsigned char **out, Py_ssize_t *out_size)
{
    Py_ssize_t used = 0;
    int err;
    if (size > (Py_ssize_t)UINT_MAX)
        return RC_UNSURE;
    if (!rc_stream_ready) {
        memset(&rc_stream, 0, sizeof(rc_stream));
        if (inflateInit(&rc_stream) != Z_OK) {
            PyErr_NoMemory();
            return RC_ERROR;
        }
        rc_stream_ready = 1;
    }
    else if (inflateReset(&rc_stream) != Z_OK) {
        PyErr_SetString(PyExc_SystemError, "inflateReset failed");
        return RC_ERROR;
    }
    rc_stream.next_in = (Bytef *)state;
    rc_stream.avail_in = (uInt)size;
    for (;;) {
        if (used == rc_out_capacity) {
            Py_ssize_t capacity = rc_out_capacity ? rc_out_capacity * 2
                                                  : 64 << 10;
            unsigned char *grown;
            if (capacity > RC_INFLATE_LIMIT)
                return RC_UNSURE;
            grown = PyMem_Realloc(rc_out, capacity);
            if (grown == NULL) {
                PyErr_NoMemory();
                return RC_ERROR;
            }
            rc_out = grown;
            rc_out_capacity = capacity;
        }
        rc_stream.next_out = rc_out + used;
        rc_stream.avail_out = (uInt)(rc_out_capacity - used);
        err = inflate(&rc_stream, Z_NO_FLUSH);
        used = rc_out_capacity - rc_stream.avail_out;
        if (err == Z_STREAM_END)
            break;
        if (err == Z_OK || (err == Z_BUF_ERROR && rc_stream.avail_out == 0))
            continue;
        return RC_BAD;  /* damaged, or cut short (no input left) */
    }
    if (rc_stream.avail_in != 0)
        return RC_BAD;  /* stray bytes after the stream */
    *out = rc_out;
    *out_size = used;
    return RC_OK;
}

/* A buffer grown for one huge state is not kept. */
static void
rc_inflate_done(void)
{
    if (rc_out_capacity > (Py_ssize_t)1 << 20) {
        PyMem_Free(rc_out);
        rc_out = NULL;
        rc_out_capacity = 0;
    }
}

#else  /* no zlib at build time: compressed states are the twin's */

static int
rc_inflate(const unsigned char *state, Py_ssize_t size,
           const unsigned char **out, Py_ssize_t *out_size)
{
    return RC_UNSURE;
}

static void
rc_inflate_done(void)
{
}

#endif

/* For the compiled loads (reader.c): a compressed state inflated with
   the same reused stream, as bytes; NULL without an error when
   zlib.decompress must answer (damage, stray bytes after the stream, a
   huge state, no zlib at build time), which then gives its own result. */
static PyObject *
inflate_state(const unsigned char *state, Py_ssize_t size)
{
    const unsigned char *out;
    Py_ssize_t out_size;
    PyObject *result;
    if (rc_inflate(state, size, &out, &out_size) != RC_OK) {
        PyErr_Clear();
        return NULL;
    }
    result = PyBytes_FromStringAndSize((const char *)out, out_size);
    rc_inflate_done();
    if (result == NULL)
        PyErr_Clear();  /* zlib.decompress answers (and says why) */
    return result;
}

/* The twin's record_problem, as an outcome. */
static int
rc_check_record(RcWalk *walk, const unsigned char *record, Py_ssize_t size)
{
    Py_ssize_t data_size, class_end, state_end, state_size;
    const unsigned char *data, *state;
    int outcome;

    if (size < 12)
        return RC_BAD;
    data_size = (Py_ssize_t)(((uint32_t)record[8] << 24) |
                             ((uint32_t)record[9] << 16) |
                             ((uint32_t)record[10] << 8) | record[11]);
    if (data_size > size - 12 || (size - 12 - data_size) & 7)
        return RC_BAD;
    data = record + 12;
    outcome = rc_walk_pickle(walk, data, data_size, 0, &class_end);
    if (outcome != RC_OK)
        return outcome;
    state = data + class_end;
    state_size = data_size - class_end;
    if (state_size > 0 && state[0] == 0x78) {
        outcome = rc_inflate(state, state_size, &state, &state_size);
        if (outcome != RC_OK)
            return outcome;
    }
    walk->pids.count = 0;
    walk->pids_unreadable = 0;
    outcome = rc_walk_pickle(walk, state, state_size, 0, &state_end);
    if (outcome != RC_OK)
        return outcome;
    if (state_end != state_size)
        return RC_BAD;
    if (walk->pids_unreadable || walk->pids.count == 0)
        return RC_OK;
    return rc_check_refs(walk, record, record + 12 + data_size,
                         (size_t)(size - 12 - data_size));
}

/* One walk's buffers, kept from record to record (a fresh one should a
   check ever run inside another). */
static RcWalk *rc_spare_walk;

/* record_fine(record) -> True, False or None (see the top of the file). */
static PyObject *
record_fine(PyObject *module, PyObject *record)
{
    RcWalk *walk;
    int outcome;
    if (!PyBytes_CheckExact(record))
        Py_RETURN_NONE;
    /* The walk's inline buffers are a few KiB: on the heap, not the C
       stack. */
    walk = rc_spare_walk;
    rc_spare_walk = NULL;
    if (walk == NULL && (walk = PyMem_Malloc(sizeof(RcWalk))) == NULL)
        return PyErr_NoMemory();
    rc_walk_init(walk);
    outcome = rc_check_record(walk,
                              (const unsigned char *)PyBytes_AS_STRING(record),
                              PyBytes_GET_SIZE(record));
    rc_walk_free(walk);
    if (rc_spare_walk == NULL)
        rc_spare_walk = walk;
    else
        PyMem_Free(walk);
    rc_inflate_done();
    switch (outcome) {
    case RC_OK:
        Py_RETURN_TRUE;
    case RC_BAD:
        Py_RETURN_FALSE;
    case RC_UNSURE:
        Py_RETURN_NONE;
    default:
        return NULL;
    }
}

/* memo_bomb(data) -> None, or the memo index far beyond the pickle's length
   that a LONG_BINPUT or PUT names (durus.memo_guard.memo_bomb, its twin):
   Python's unpickler would allocate and zero a memo of twice that many
   slots.  Stops quietly, answering None, at anything it cannot read. */
static PyObject *
memo_bomb_c(PyObject *module, PyObject *arg)
{
    const unsigned char *data;
    Py_ssize_t size, position = 0;
    uint64_t limit;
    if (!PyBytes_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "memo_bomb() takes bytes");
        return NULL;
    }
    data = (const unsigned char *)PyBytes_AS_STRING(arg);
    size = PyBytes_GET_SIZE(arg);
    limit = (uint64_t)size + RC_MEMO_SLACK;
    if (memchr(data, 'r', (size_t)size) == NULL &&
            memchr(data, 'p', (size_t)size) == NULL)
        Py_RETURN_NONE;
    while (position < size) {
        unsigned char code = data[position];
        const RcOpcode *entry = &rc_table[code];
        Py_ssize_t at = position + 1;
        if (!entry->valid || code == '.')
            Py_RETURN_NONE;
        switch (entry->arg) {
        case A_NONE:
            position = at;
            break;
        case A_FIXED:
            if (size - at < entry->width)
                Py_RETURN_NONE;
            if (code == 'r') {
                uint64_t index = rc_read_le(data + at, 4);
                if (index > limit)
                    return PyLong_FromUnsignedLongLong(index);
            }
            position = at + entry->width;
            break;
        case A_LEN: {
            uint64_t length;
            if (size - at < entry->width)
                Py_RETURN_NONE;
            length = rc_read_le(data + at, entry->width);
            if ((entry->signed_len && (length & 0x80000000u)) ||
                    length > (uint64_t)(size - at - entry->width))
                Py_RETURN_NONE;
            position = at + entry->width + (Py_ssize_t)length;
            break;
        }
        default: {  /* A_LINE, A_PAIR */
            const unsigned char *newline = memchr(data + at, '\n',
                                                  (size_t)(size - at));
            if (newline == NULL)
                Py_RETURN_NONE;
            if (code == 'p') {
                /* PUT: the line read as int() reads it (as the twin does) */
                PyObject *line = PyBytes_FromStringAndSize(
                    (const char *)data + at, newline - (data + at));
                PyObject *index = line ? PyLong_FromString(
                    PyBytes_AS_STRING(line), NULL, 10) : NULL;
                Py_XDECREF(line);
                if (index == NULL) {
                    if (!PyErr_ExceptionMatches(PyExc_ValueError))
                        return NULL;
                    PyErr_Clear();
                    Py_RETURN_NONE;
                }
                {
                    int overflow;
                    long long value = PyLong_AsLongLongAndOverflow(index,
                                                                   &overflow);
                    if (overflow > 0 || (overflow == 0 && value >= 0 &&
                                         (uint64_t)value > limit))
                        return index;
                }
                Py_DECREF(index);
            }
            position = newline - data + 1;
            if (entry->arg == A_PAIR) {
                newline = memchr(data + position, '\n',
                                 (size_t)(size - position));
                if (newline == NULL)
                    Py_RETURN_NONE;
                position = newline - data + 1;
            }
        }
        }
    }
    Py_RETURN_NONE;
}
