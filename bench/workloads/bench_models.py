"""Application classes stored in the benchmark databases.

Their module path (`bench_models`) is pickled into every record, so both
interpreters must import this module under this name: the workloads run
with bench/workloads as the script directory, and the shell workloads put
it on PYTHONPATH.
"""

from durus.persistent import Persistent


class Item(Persistent):
    """The bulk of the 1M-object file: a small product record."""

    def __init__(self, number):
        self.number = number
        self.name = 'item %d' % number
        self.price = (number % 1000) / 10.0
        self.tags = ['red', 'blue'] if number % 2 else ['green']


class Account(Persistent):
    """A rare class (one per thousand items): what :find looks for."""

    def __init__(self, number):
        self.number = number
        self.owner = 'owner %d' % number
        self.balance = number * 3


class Small(Persistent):
    """A tiny object for the commit and server workloads."""

    def __init__(self, n):
        self.n = n
