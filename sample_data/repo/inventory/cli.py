import sys
from pathlib import Path

from inventory.store import Store


def main(argv: list[str]) -> int:
    store = Store(Path("stock.json"))
    store.load()
    if argv[:1] == ["add"]:
        item = store.add(argv[1], int(argv[2]), price_cents=int(argv[3]))
        store.save()
        print(f"{item.name}: {item.quantity}")
        return 0
    print("usage: inventory add NAME QUANTITY PRICE_CENTS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
