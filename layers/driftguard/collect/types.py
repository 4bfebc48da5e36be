"""Normalising the column types a database reports into the families schema checks compare.

Families: integer, float, numeric, text, boolean, date, timestamp (no time zone), timestamptz
(an instant), json, binary, other. The raw type is kept next to the family, so a change inside
a family (varchar(20) -> varchar(50)) is still visible.
"""

from __future__ import annotations

import re
from typing import Literal

Dialect = Literal["postgresql", "mysql", "sqlite", "duckdb", "clickhouse"]

TIME_FAMILIES = frozenset({"date", "timestamp", "timestamptz"})
NUMBER_FAMILIES = frozenset({"integer", "float", "numeric"})
FAMILIES = frozenset(
    {
        "integer",
        "float",
        "numeric",
        "text",
        "boolean",
        "date",
        "timestamp",
        "timestamptz",
        "json",
        "binary",
        "other",
    }
)

_PARENTHESISED = re.compile(r"\([^)]*\)")
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)  # MariaDB: "datetime(6) /* mariadb-5.3 */"

_POSTGRES = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "int": "integer",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "real": "float",
    "double precision": "float",
    "float4": "float",
    "float8": "float",
    "numeric": "numeric",
    "decimal": "numeric",
    "money": "numeric",
    "text": "text",
    "character varying": "text",
    "varchar": "text",
    "character": "text",
    "char": "text",
    '"char"': "text",
    "bpchar": "text",
    "name": "text",
    "citext": "text",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp": "timestamp",
    "timestamp with time zone": "timestamptz",
    "timestamptz": "timestamptz",
    "json": "json",
    "jsonb": "json",
    "bytea": "binary",
}

_MYSQL = {
    "tinyint": "integer",
    "smallint": "integer",
    "mediumint": "integer",
    "int": "integer",
    "integer": "integer",
    "bigint": "integer",
    "year": "integer",
    "bit": "integer",
    "float": "float",
    "double": "float",
    "double precision": "float",
    "real": "float",
    "decimal": "numeric",
    "numeric": "numeric",
    "fixed": "numeric",
    "char": "text",
    "varchar": "text",
    "tinytext": "text",
    "text": "text",
    "mediumtext": "text",
    "longtext": "text",
    "enum": "text",
    "set": "text",
    "bool": "boolean",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp",
    "timestamp": "timestamptz",  # MySQL stores TIMESTAMP as UTC and converts on read: an instant
    "json": "json",
    "binary": "binary",
    "varbinary": "binary",
    "tinyblob": "binary",
    "blob": "binary",
    "mediumblob": "binary",
    "longblob": "binary",
}


_DUCKDB = {
    **{t: "integer" for t in ("tinyint", "smallint", "integer", "bigint", "hugeint", "int", "int1", "int2")},
    **{t: "integer" for t in ("int4", "int8", "utinyint", "usmallint", "uinteger", "ubigint", "uhugeint")},
    "float": "float",
    "real": "float",
    "double": "float",
    "decimal": "numeric",
    "numeric": "numeric",
    "varchar": "text",
    "text": "text",
    "string": "text",
    "uuid": "text",
    "enum": "text",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_s": "timestamp",
    "timestamp_ms": "timestamp",
    "timestamp_ns": "timestamp",
    "timestamp with time zone": "timestamptz",
    "timestamptz": "timestamptz",
    "json": "json",
    "blob": "binary",
}


def _base_type(raw: str) -> str:
    """'numeric(10,2)' -> 'numeric'; 'int(11) unsigned zerofill' -> 'int'; 'timestamp(3) with time zone'
    -> 'timestamp with time zone'."""
    text = _PARENTHESISED.sub("", _COMMENT.sub("", raw).strip().lower())
    text = re.sub(r"\b(unsigned|signed|zerofill)\b", "", text)
    return " ".join(text.split())


def _sqlite_family(declared: str) -> str:
    """SQLite's type affinity rules (https://sqlite.org/datatype3.html §3.1), refined so that the
    time and boolean names people actually declare keep their meaning."""
    t = declared.upper()
    if not t:
        return "other"
    if "TIMESTAMPTZ" in t or "WITH TIME ZONE" in t:
        return "timestamptz"
    if "DATETIME" in t or "TIMESTAMP" in t:
        return "timestamp"
    if "DATE" in t:
        return "date"
    if "BOOL" in t:
        return "boolean"
    if "JSON" in t:
        return "json"
    if "INT" in t:
        return "integer"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if "BLOB" in t:
        return "binary"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "float"
    if "NUMERIC" in t or "DECIMAL" in t:
        return "numeric"
    return "other"


_CLICKHOUSE_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality|SimpleAggregateFunction)\((.*)\)$")
_CLICKHOUSE = {
    **{t: "integer" for t in ("Int8", "Int16", "Int32", "Int64", "Int128", "Int256")},
    **{t: "integer" for t in ("UInt8", "UInt16", "UInt32", "UInt64", "UInt128", "UInt256")},
    "Float32": "float",
    "Float64": "float",
    "BFloat16": "float",
    "Decimal": "numeric",
    **{t: "numeric" for t in ("Decimal32", "Decimal64", "Decimal128", "Decimal256")},
    **{t: "text" for t in ("String", "FixedString", "UUID", "Enum8", "Enum16", "Enum", "IPv4", "IPv6")},
    "Bool": "boolean",
    "Date": "date",
    "Date32": "date",
    "DateTime": "timestamptz",  # seconds since the epoch: an instant (a zone only changes its display)
    "DateTime64": "timestamptz",
    "JSON": "json",
    "Object": "json",
}


def _clickhouse_family(raw: str) -> str:
    """'Nullable(DateTime('UTC'))' -> timestamptz; 'LowCardinality(String)' -> text. Names are
    case-sensitive in ClickHouse."""
    text = raw.strip()
    while (wrapped := _CLICKHOUSE_WRAPPERS.match(text)) is not None:
        inner = wrapped.group(1)
        text = inner.split(",", 1)[1].strip() if text.startswith("SimpleAggregateFunction(") else inner
    return _CLICKHOUSE.get(text.split("(", 1)[0], "other")


def normalise_type(dialect: Dialect, raw_type: str) -> str:
    """The family of `raw_type` as reported by `dialect`'s catalog."""
    if dialect == "sqlite":
        return _sqlite_family(raw_type)
    if dialect == "clickhouse":
        return _clickhouse_family(raw_type)
    spelled = _COMMENT.sub("", raw_type).strip().lower()
    if dialect == "mysql" and re.fullmatch(r"tinyint\s*\(\s*1\s*\)(\s+unsigned)?", spelled):
        return "boolean"  # how MySQL spells BOOLEAN
    base = _base_type(raw_type)
    if dialect == "postgresql" and base.endswith("[]"):
        return "other"
    table = {"postgresql": _POSTGRES, "duckdb": _DUCKDB}.get(dialect, _MYSQL)
    return table.get(base, "other")
