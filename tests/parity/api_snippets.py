"""API behaviour snippets printed one result per line.

Run unchanged under the real Durus 4.3 and under this project by
tests/test_parity_durus43.py; the outputs must be identical.
"""
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.btree import BTree, BNode16
from durus.connection import Connection
from durus.storage import MemoryStorage
from durus.error import *
from durus.utils import *
out = []
def p(*a): out.append(' '.join(repr(x) for x in a))
d = PersistentDict(a=1); p(d.keys(), d.items(), d == {'a':1}, d == PersistentDict(a=1), d.get('z'), d.setdefault('b', 2), sorted(d.copy().items()))
l = PersistentList([3,1,2]); p(l == [3,1,2], l[1:], type(l[1:]).__name__, type(l + [4]).__name__, l < [4], sorted(l))
s = PersistentSet([1,2]); p(repr(s).split(' ')[0], s == {1,2}, type(s | {3}).__name__, sorted(s & {2,3}))
try: s < {1}
except TypeError as e: p('TypeError')
t = BTree()
for i in range(100): t[i] = str(i)
p(len(t), t.get_min_item(), t.get_max_item(), list(t.items_from(95)), list(t.items_backward_from(3)), list(t.items_range(5, 8)), list(t.items_range(8, 5)), t == dict((i, str(i)) for i in range(100)), t.get_depth() > 0, t.has_key(5), 200 in t)
p(list(t.items_from(97, closed=False)), list(t.items_backward_from(3, closed=True)))
p(t.set_bnode_minimum_degree(4), t.set_bnode_minimum_degree(4))
e = BTree()
try: e.get_min_item()
except AssertionError: p('AssertionError')
p(str(ConflictError([b'\0'*7+b'\1'])), str(ConflictError()), str(ConflictError([b'\0'*7+b'\1', b'\0'*7+b'\2'])))
p(isinstance(DurusKeyError('x'), KeyError), issubclass(WriteConflictError, ConflictError))
c = Connection(MemoryStorage())
p(c.get_transaction_serial(), c.get_cache_count() >= 1, c.get_root().__class__.__name__)
r = c.get_root(); r['x'] = PersistentList(); c.commit(); p(c.get_transaction_serial(), r['x']._p_oid, repr(r['x']))
p(int8_to_str(5), str_to_int8(b'\0'*7+b'\5'), int4_to_str(7), as_bytes('é'))
from durus.serialize import split_oids, extract_class_name
p(split_oids(b''), split_oids(b'\0'*16))
try: c.set_cache_size(0)
except ValueError: p('ValueError')
p(c.get(999), c.get(0) is r)
from durus.persistent import Persistent, ComputedAttribute
class X(Persistent): pass
x = X(); p(x._p_status, x._p_serial, x._p_oid, x._p_format_oid(), repr(x).split(' ')[0])
import pickle
x.a = 1; y = pickle.loads(pickle.dumps(x, 2)); p(y.a, y._p_status)
ca = ComputedAttribute(); p(ca.get(lambda: 5), ca.get(lambda: 6))
# More edges: failing mutators still note the change; serials; abort.
r['d'] = PersistentDict(); c.commit()
dd = r['d']
try: dd.pop('missing')
except KeyError: p('KeyError', dd._p_status)
try: dd.update({}, {})
except TypeError: p('TypeError')
c.abort(); p(c.get_transaction_serial(), dd._p_status)
p(sorted(PersistentDict.fromkeys('ab', 0).items()), PersistentDict(x=1).has_key('x'))
ll = PersistentList([1, 2]); ll += [3]; ll *= 2; p(list(ll), ll.count(1), ll.index(3), 3 in ll)
ss = PersistentSet('ab'); ss |= {'c'}; p(sorted(ss), ss.issubset(set('abcd')), sorted(ss.symmetric_difference({'a', 'z'})))
t.clear(); p(len(t), bool(t), list(t.items_backward()))
t.update({3: 'c', 1: 'a'}); t.add(2); p(list(t.items()), list(reversed(t)), t.setdefault(9, 'z'), t.setdefault(9, 'y'))
from durus.persistent import call_if_persistent
p(call_if_persistent(lambda o: 'yes', t), call_if_persistent(lambda o: 'yes', 5))
from durus.storage import get_census, gen_oid_class
p(sorted(get_census(c.get_storage()).items()))
print("\n".join(out))
