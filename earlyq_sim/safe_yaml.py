"""Reading a user's YAML spec (arch, sweep) with limits, so a small file cannot exhaust memory,
recurse without end, or silently lose a value.

Refused, each with a one-line :class:`UserError` naming the file (and line): files over
``MAX_BYTES``; bytes that are not UTF-8; aliases (``*name``: a spec never needs them, and an
"alias bomb" expands a few lines into gigabytes); nesting deeper than ``MAX_DEPTH``; a key given
twice in one mapping (YAML would keep the last one without a word).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from earlyq_sim.errors import UserError

MAX_BYTES = 1 << 20  # 1 MiB: the shipped specs are ~2 KB
MAX_DEPTH = 32


class _SpecLoader(yaml.SafeLoader):
    def __init__(self, stream, src: str):
        super().__init__(stream)
        self.src, self.depth = src, 0

    def _fail(self, mark, msg: str) -> UserError:
        return UserError(f"{self.src}: line {mark.line + 1}: {msg}")

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise self._fail(self.peek_event().start_mark, "YAML aliases (*name) are not allowed in a spec; "
                                                            "write the value out")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._fail(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels; allowed "
                                                            f"at most {MAX_DEPTH}")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise self._fail(key_node.start_mark, f"key {key!r} given twice (first on line "
                                                          f"{seen[key] + 1}); allowed once per mapping")
                seen[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: the base class reports it
                break
        return super().construct_mapping(node, deep=deep)


def read_yaml(path) -> object:
    """Parse a spec file within the limits above; a syntax error names the file and line."""
    p = Path(path)
    src = str(p)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{src}: {size} bytes; allowed a spec file of at most {MAX_BYTES} bytes")
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{src}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{src}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "allowed a UTF-8 YAML file") from None
    loader = _SpecLoader(text, src)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise UserError(f"{src}:{where} not valid YAML ({problem})") from None
    except RecursionError:
        raise UserError(f"{src}: nested too deeply; allowed at most {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
