"""Registry events: topic filters and decoding with eth_abi, yielding web3's ``EventData``.

Why not ``contract.events.X().get_logs``: web3 decodes each log through generic ABI machinery
(normalisers mapped over the argument tree, re-deriving the event's types per log), about 1-2 ms a
log, which dominated listing a run of 1,000 checkpoints. Here each event's types are worked out
once; a log costs one ``eth_abi.decode`` of its data plus slicing its topics. The result is the
same ``AttributeDict`` web3 builds (same keys, checksummed addresses, ``bytes`` for fixed bytes,
nested ``AttributeDict`` for structs), so callers and tests that read ``EventData`` are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from eth_abi import decode, encode
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address, to_hex
from web3.datastructures import AttributeDict
from web3.types import EventData, LogReceipt

from llmchain.artifacts import abi_type
from llmchain.errors import BadInput


class EventCodec:
    """One non-anonymous event of an ABI: its filter topics and its log decoder."""

    def __init__(self, abi: dict[str, Any]) -> None:
        self.name: str = abi["name"]
        self.topic0 = event_abi_to_log_topic(abi)  # type: ignore[arg-type]  # a plain ABI dict is an ABIEvent
        self._indexed = [item for item in abi["inputs"] if item["indexed"]]
        self._unindexed = [item for item in abi["inputs"] if not item["indexed"]]
        self._indexed_types = [abi_type(item) for item in self._indexed]
        self._data_types = [abi_type(item) for item in self._unindexed]
        self._order = [item["name"] for item in abi["inputs"]]

    def topics(self, argument_filters: dict[str, Any] | None) -> list[Any]:
        """The ``topics`` of an eth_getLogs filter: the event, then indexed arguments (a list: any of)."""
        filters = dict(argument_filters or {})
        unknown = set(filters) - {item["name"] for item in self._indexed}
        if unknown:
            raise BadInput(f"event {self.name} has no indexed argument named {', '.join(sorted(unknown))}")
        topics: list[Any] = [to_hex(self.topic0)]
        for item in self._indexed:
            wanted = filters.get(item["name"])
            if wanted is None:
                topics.append(None)
            elif isinstance(wanted, list):
                topics.append([to_hex(_topic(item, value)) for value in wanted])
            else:
                topics.append(to_hex(_topic(item, wanted)))
        while topics[-1] is None:
            topics.pop()
        return topics

    def decode(self, log: LogReceipt) -> EventData:
        """The log as web3's ``EventData``; ValueError if it is not this event's log."""
        topics = log["topics"]
        if len(topics) != 1 + len(self._indexed) or bytes(topics[0]) != self.topic0:
            raise ValueError(f"log {log['transactionHash'].hex()}:{log['logIndex']} is not a {self.name} log")
        args = {
            item["name"]: _from_topic(item, kind, bytes(topic))
            for item, kind, topic in zip(self._indexed, self._indexed_types, topics[1:])
        }
        values = decode(self._data_types, bytes(log["data"]))
        args.update((item["name"], _named(item, value)) for item, value in zip(self._unindexed, values))
        event = {
            "args": AttributeDict({name: args[name] for name in self._order}),
            "event": self.name,
            "logIndex": log["logIndex"],
            "transactionIndex": log["transactionIndex"],
            "transactionHash": log["transactionHash"],
            "address": log["address"],
            "blockHash": log["blockHash"],
            "blockNumber": log["blockNumber"],
        }
        return cast(EventData, AttributeDict(event))


def event_codecs(abi: Sequence[dict[str, Any]]) -> dict[str, EventCodec]:
    """The codecs of an ABI's non-anonymous events, by name."""
    return {
        item["name"]: EventCodec(item)
        for item in abi
        if item.get("type") == "event" and not item.get("anonymous", False)
    }


def _is_dynamic(kind: str) -> bool:
    return kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("(")


def _topic(item: dict[str, Any], value: Any) -> bytes:
    """An indexed argument as its 32-byte topic (dynamic types are stored as their keccak)."""
    kind = abi_type(item)
    try:
        if _is_dynamic(kind):
            return keccak(value.encode("utf-8") if isinstance(value, str) else bytes(value))
        return encode([kind], [value])
    except Exception as error:  # eth_abi raises a family of encoding errors with no common base
        raise BadInput(f"invalid value {value!r} for {item['name']} ({kind}): {error}") from None


def _from_topic(item: dict[str, Any], kind: str, topic: bytes) -> Any:
    """An indexed argument from its topic; dynamic types can only come back as their hash."""
    if _is_dynamic(kind) or kind == "bytes32":
        return topic
    if kind == "address":
        return _checksummed(topic[12:])
    if kind.startswith("uint"):
        return int.from_bytes(topic, "big")
    return _named(item, decode([kind], topic)[0])


@lru_cache(maxsize=1024)
def _checksummed(address: bytes | str) -> str:
    """EIP-55 costs a keccak; a run's logs repeat the same few committers."""
    return to_checksum_address(address)


def _named(item: dict[str, Any], value: Any) -> Any:
    """Decoded values as web3 returns them: checksummed addresses, structs as AttributeDicts."""
    kind = item["type"]
    if kind.endswith("]"):
        element = {**item, "type": kind[: kind.rindex("[")]}
        return tuple(_named(element, v) for v in value)
    if kind == "tuple":
        return AttributeDict({c["name"]: _named(c, v) for c, v in zip(item["components"], value)})
    if kind == "address":
        return _checksummed(value)
    return value
