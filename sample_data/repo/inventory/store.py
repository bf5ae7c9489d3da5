import json
from pathlib import Path

from inventory.models import Item


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, Item] = {}

    def load(self) -> None:
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.items = {k: Item(**v) for k, v in data.items()}

    def add(self, name: str, quantity: int) -> Item:
        item = self.items.setdefault(name, Item(name))
        item.quantity += quantity  # no check for negative stock
        return item

    def save(self) -> None:
        # Not atomic: a crash mid-write loses the store.
        self.path.write_text(json.dumps({k: vars(v) for k, v in self.items.items()}))
