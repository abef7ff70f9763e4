"""durus: a drop-in reimplementation of the Durus 4.3 object database.

Importing this package imports only the standard library.
"""

__version__ = '4.3'
