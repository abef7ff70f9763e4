"""The sample database of ``durus-shell --demo``.

A small shop: customers, products, orders.  The classes live here, in an
importable module, because the pickles in the demo file name them
(``durus_shell.demo.Customer`` ...).  ``ensure_demo(path)`` writes the
file once; later runs open what is there (edits included).

Default place: ``$XDG_DATA_HOME/durus-shell/demo.durus``
(``~/.local/share/durus-shell/demo.durus``).
"""

import datetime
import decimal
import os

from durus.persistent import Persistent

N_CUSTOMERS = 50
N_ORDERS = 400


class Customer(Persistent):
    """A customer: name, email, address (a dict), orders (a list)."""

    def __init__(self, number, name, email):
        self.number = number
        self.name = name
        self.email = email
        self.address = {'city': 'Springfield', 'street': '%d Main St'
                        % number}
        from durus.persistent_list import PersistentList
        self.orders = PersistentList()


class Product(Persistent):
    """A product: sku, title, price (a Decimal), tags (a set)."""

    def __init__(self, sku, title, price, tags=()):
        self.sku = sku
        self.title = title
        self.price = decimal.Decimal(price)
        self.tags = set(tags)


class Order(Persistent):
    """An order: number, customer, lines [(product, quantity)], status."""

    def __init__(self, number, customer, lines, placed, status='open'):
        self.number = number
        self.customer = customer
        self.lines = lines
        self.placed = placed
        self.status = status

    def total(self):
        return sum(product.price * quantity
                   for product, quantity in self.lines)


def default_path():
    base = os.environ.get('XDG_DATA_HOME') or os.path.join(
        os.path.expanduser('~'), '.local', 'share')
    return os.path.join(base, 'durus-shell', 'demo.durus')


def populate(root):
    """Fill an empty root with the shop."""
    from durus.btree import BTree
    from durus.persistent_dict import PersistentDict
    from durus.persistent_list import PersistentList
    from durus.persistent_set import PersistentSet
    products = PersistentDict()
    catalogue = [('tea-001', 'Green tea', '4.50', ['tea', 'drink']),
                 ('tea-002', 'Black tea', '3.90', ['tea', 'drink']),
                 ('cof-001', 'Espresso beans', '12.00', ['coffee']),
                 ('cup-001', 'Mug', '7.25', ['kitchen']),
                 ('pot-001', 'Teapot', '24.00', ['kitchen', 'tea'])]
    for sku, title, price, tags in catalogue:
        products[sku] = Product(sku, title, price, tags)
    customers = BTree()
    for number in range(1, N_CUSTOMERS + 1):
        customers[number] = Customer(number, 'customer%d' % number,
                                     'customer%d@example.org' % number)
    orders = BTree()
    skus = sorted(products)
    start = datetime.datetime(2024, 1, 1, 9, 0)
    for number in range(1, N_ORDERS + 1):
        customer = customers[number % N_CUSTOMERS + 1]
        lines = [(products[skus[number % len(skus)]], number % 3 + 1)]
        order = Order(number, customer, lines,
                      start + datetime.timedelta(hours=7 * number),
                      'shipped' if number % 4 else 'open')
        orders[number] = order
        customer.orders.append(order)
    root['products'] = products
    root['customers'] = customers
    root['orders'] = orders
    root['settings'] = PersistentDict({
        'currency': 'EUR',
        'shipping': {'zones': ['home', 'eu', 'world'],
                     'rates': {'home': 0, 'eu': 5, 'world': 15}},
        'opened': datetime.date(2024, 1, 1)})
    root['audit'] = PersistentList(['created the demo shop'])
    root['featured'] = PersistentSet(['tea-001', 'pot-001'])


def ensure_demo(path):
    """Create the demo database at ``path`` unless a file is there."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return path
    from durus.connection import Connection
    from durus.format import open_storage
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    storage = open_storage(path, create=True)
    try:
        connection = Connection(storage)
        populate(connection.get_root())
        connection.commit()
    finally:
        storage.close()
    return path
