"""The worker of examples/errors.py: its handlers raise, and it keeps serving."""

from __future__ import annotations

from typing import Any

from errors_messages import Count, Messages, OutOfStock, Reserve, Restock

from isolated_workers import get_startup_data, run_worker

# The stock comes from the host as plain data: nothing checks its values here.
stock: dict[str, Any] = get_startup_data()


def reserve(msg: Reserve) -> int:
    if msg.quantity <= 0:
        raise ValueError(f"cannot reserve {msg.quantity} {msg.item}")
    left: int = stock[msg.item]  # a KeyError for an item nobody stocks
    if left < msg.quantity:
        raise OutOfStock(f"only {left} {msg.item} left, {msg.quantity} asked")
    stock[msg.item] = left - msg.quantity
    return left - msg.quantity


def count(msg: Count) -> int:
    left: int = stock[msg.item]  # an annotation, not a check: "12" passes here
    return left


def restock(msg: Restock) -> None:
    if msg.quantity <= 0:
        raise ValueError(f"cannot restock {msg.quantity} {msg.item}")
    stock[msg.item] = stock.get(msg.item, 0) + msg.quantity


if __name__ == "__main__":
    run_worker(Messages, {Reserve: reserve, Count: count, Restock: restock})
