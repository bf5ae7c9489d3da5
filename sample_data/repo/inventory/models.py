from dataclasses import dataclass


@dataclass
class Item:
    name: str
    quantity: int = 0
    price_cents: int = 0

    def value(self) -> float:
        # Bug for reviewers to find: integer cents become a float of euros here.
        return self.quantity * self.price_cents / 100
