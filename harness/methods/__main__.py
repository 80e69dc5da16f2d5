"""``python -m harness.methods``: list the method presets, one per line."""

from harness.methods import METHODS


def main() -> None:
    for name, method in METHODS.items():
        print(f"{name}\t{method.entry}\t{','.join(method.spaces)}\t{method.description}")


if __name__ == "__main__":
    main()
