"""A tiny stock-keeping library."""

from inventory.models import Item
from inventory.store import Store

__all__ = ["Item", "Store"]
