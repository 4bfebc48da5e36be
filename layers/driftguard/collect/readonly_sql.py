"""Refusing custom SQL that is not exactly one read-only query, before it reaches the database.

A small dialect-aware lexer skips comments, string literals, quoted identifiers and (PostgreSQL,
DuckDB) dollar quotes, so that a ';' or a keyword inside them does not count. What remains must be
one statement that starts with SELECT, WITH, VALUES or TABLE and names no data-modifying or DDL
keyword anywhere (a PostgreSQL or SQLite WITH may wrap an INSERT/UPDATE/DELETE in parentheses).

The lexer is the first of three defences, because a lexer can disagree with a server that is
configured differently (PostgreSQL with standard_conforming_strings off, MySQL with
NO_BACKSLASH_ESCAPES): the statement is sent wrapped as a derived table
(`as_derived_table`), so a ';' that the server sees outside a literal is a syntax error there
rather than the start of a second statement (pg8000 sends parameterless SQL with the simple
protocol, which would run several); and it runs in a read-only transaction that is rolled back.
MySQL strings are lexed with backslash escapes (the default sql_mode).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from driftguard.collect.types import Dialect
from driftguard.errors import CheckDefinitionError

ALLOWED_FIRST_WORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
FORBIDDEN_WORDS = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "CREATE", "DROP", "ALTER", "TRUNCATE",
        "GRANT", "REVOKE", "COPY", "CALL", "DO", "LOCK", "SET", "INTO", "EXECUTE", "PREPARE",
        "ATTACH", "DETACH", "PRAGMA", "VACUUM", "REINDEX", "COMMIT", "ROLLBACK", "SAVEPOINT",
    }
)  # fmt: skip

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Token:
    kind: str  # "word", ";", "(", ")", "other"
    text: str
    start: int
    end: int


class _Refused(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def _is_word_start(c: str) -> bool:
    return c.isalpha() or c == "_"


def _is_word_char(c: str, dialect: Dialect) -> bool:
    return c.isalnum() or c == "_" or (c == "$" and dialect != "sqlite")


class _Lexer:
    def __init__(self, sql: str, dialect: Dialect) -> None:
        self.sql = sql
        self.dialect = dialect
        self.pos = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        sql, n = self.sql, len(self.sql)
        while self.pos < n:
            c = sql[self.pos]
            nxt = sql[self.pos + 1] if self.pos + 1 < n else ""
            if c.isspace():
                self.pos += 1
            elif self._line_comment_starts(c, nxt):
                self._skip_line()
            elif c == "/" and nxt == "*":
                self._skip_block_comment()
            elif c == "'":
                self._skip_quoted("'", backslash=self._backslash_escapes_here(), what="string literal")
            elif c == '"':
                if self.dialect == "mysql":  # a string unless ANSI_QUOTES
                    self._skip_quoted('"', backslash=True, what="string literal")
                else:
                    self._skip_quoted('"', backslash=False, what="quoted identifier")
            elif c == "`" and self.dialect != "postgresql":
                self._skip_quoted("`", backslash=False, what="quoted identifier")
            elif c == "[" and self.dialect == "sqlite":
                self._skip_until("]", what="[quoted identifier]")
            elif c == "$" and self.dialect in ("postgresql", "duckdb") and _DOLLAR_TAG.match(sql, self.pos):
                self._skip_dollar_quote()
            elif _is_word_start(c):
                start = self.pos
                while self.pos < n and _is_word_char(sql[self.pos], self.dialect):
                    self.pos += 1
                self.tokens.append(Token("word", sql[start : self.pos], start, self.pos))
            else:
                kind = c if c in ";()" else "other"
                self.tokens.append(Token(kind, c, self.pos, self.pos + 1))
                self.pos += 1
        return self.tokens

    def _line_comment_starts(self, c: str, nxt: str) -> bool:
        if c == "#":
            return self.dialect == "mysql"
        if c != "-" or nxt != "-":
            return False
        if self.dialect != "mysql":
            return True
        # MySQL needs whitespace or a control character after '--' (else `1--1` is arithmetic).
        after = self.sql[self.pos + 2 : self.pos + 3]
        return after == "" or after.isspace() or ord(after) < 32

    def _backslash_escapes_here(self) -> bool:
        if self.dialect in ("mysql", "clickhouse"):  # ClickHouse strings always take \' and \\
            return True
        if self.dialect == "postgresql" and self.tokens:
            last = self.tokens[
                -1
            ]  # E'...' escape strings, including a prefix glued to a word: xE'..' is not one
            return last.end == self.pos and last.kind == "word" and last.text.upper() == "E"
        return False

    def _skip_line(self) -> None:
        end = self.sql.find("\n", self.pos)
        self.pos = len(self.sql) if end < 0 else end + 1

    def _skip_block_comment(self) -> None:
        start = self.pos
        if self.dialect == "mysql" and re.match(r"/\*M?!", self.sql[start:]):
            raise _Refused("MySQL executable comments (/*! ... */) are not allowed in a check", start)
        nestable = self.dialect == "postgresql"
        depth, self.pos = 1, start + 2
        while depth:
            if self.pos >= len(self.sql):
                raise _Refused("a /* comment is never closed", start)
            pair = self.sql[self.pos : self.pos + 2]
            if pair == "*/":
                depth -= 1
                self.pos += 2
            elif pair == "/*" and nestable:
                depth += 1
                self.pos += 2
            else:
                self.pos += 1

    def _skip_quoted(self, quote: str, *, backslash: bool, what: str) -> None:
        start, sql = self.pos, self.sql
        self.pos += 1
        while True:
            if self.pos >= len(sql):
                raise _Refused(f"a {what} is never closed", start)
            c = sql[self.pos]
            if backslash and c == "\\":
                self.pos += 2
            elif c == quote:
                if sql[self.pos + 1 : self.pos + 2] == quote:  # doubled quote: an escaped quote
                    self.pos += 2
                else:
                    self.pos += 1
                    self.tokens.append(Token("other", "<literal>", start, self.pos))
                    return
            else:
                self.pos += 1

    def _skip_until(self, closing: str, *, what: str) -> None:
        start = self.pos
        end = self.sql.find(closing, self.pos + 1)
        if end < 0:
            raise _Refused(f"a {what} is never closed", start)
        self.pos = end + 1
        self.tokens.append(Token("other", "<identifier>", start, self.pos))

    def _skip_dollar_quote(self) -> None:
        start = self.pos
        match = _DOLLAR_TAG.match(self.sql, start)
        assert match is not None
        tag = match.group()
        end = self.sql.find(tag, match.end())
        if end < 0:
            raise _Refused(f"a {tag}-quoted string is never closed", start)
        self.pos = end + len(tag)
        self.tokens.append(Token("other", "<literal>", start, self.pos))


def as_derived_table(statement: str, *, row_limit: int | None = None) -> str:
    """`statement` (from read_only_statement) as one SELECT over it: the server itself then
    refuses anything that is not a single query. Newlines keep a trailing '--' comment inside.
    `row_limit` makes the server stop producing rows there: drivers that buffer a whole result
    (pg8000, PyMySQL) then never receive more, whatever the query would return."""
    limit = f" LIMIT {int(row_limit):d}" if row_limit is not None else ""
    return f"SELECT * FROM (\n{statement}\n) AS driftguard_check{limit}"  # noqa: S608 - statement passed the lexer


def _line_of(sql: str, position: int) -> int:
    return sql.count("\n", 0, position) + 1


def read_only_statement(sql: str, dialect: Dialect, *, where: str) -> str:
    """The one read-only statement in `sql`, without trailing ';', or CheckDefinitionError whose
    message starts with `where` (e.g. "source orders, sql check late_orders")."""
    try:
        tokens = _Lexer(sql, dialect).run()
    except _Refused as e:
        raise CheckDefinitionError(f"{where}: {e} (line {_line_of(sql, e.position)})") from None
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.kind == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    non_empty = [s for s in statements if s]
    if not non_empty:
        raise CheckDefinitionError(
            f"{where}: the SQL is empty; write one SELECT that returns a status column"
        )
    if len(non_empty) > 1:
        second = non_empty[1][0]
        raise CheckDefinitionError(
            f"{where}: the SQL holds {len(non_empty)} statements (the second starts at line "
            f"{_line_of(sql, second.start)}: {second.text!r}); a check must be exactly one read-only query"
        )
    statement = non_empty[0]
    first_word = next((t for t in statement if t.kind != "("), statement[0])
    if first_word.kind != "word" or first_word.text.upper() not in ALLOWED_FIRST_WORDS:
        raise CheckDefinitionError(
            f"{where}: the SQL starts with {first_word.text!r}; a check must be a query starting with "
            f"{', '.join(sorted(ALLOWED_FIRST_WORDS))}"
        )
    for token in statement:
        if token.kind == "word" and token.text.upper() in FORBIDDEN_WORDS:
            raise CheckDefinitionError(
                f"{where}: the SQL uses {token.text.upper()} (line {_line_of(sql, token.start)}); "
                "a check may only read: remove data-modifying, DDL and session statements"
            )
    return sql[statement[0].start : statement[-1].end]
